//! [`Persistence`] over RocksDB.
//!
//! Column families:
//! - `versions`: relationship key → every version of it (bincode), the MVCC state;
//! - `writes`: revision (big-endian) → the write's time and changes, for Watch after a restart;
//! - `schemas`: revision (big-endian) → schema text;
//! - `meta`: `head` and `horizon` revisions.
//!
//! Every write is one atomic `WriteBatch`, written with `sync = true`: it is on stable storage
//! (the WAL fsynced) before [`Persistence::persist`] returns.

use std::path::Path;
use std::sync::Arc;

use pemba_store::{
    AppliedWrite, Collected, Persistence, PersistenceError, Recovered, RelationshipKey, Version,
};
use pemba_types::Revision;
use rocksdb::{ColumnFamilyDescriptor, IteratorMode, Options, WriteBatch, WriteOptions, DB};

const VERSIONS: &str = "versions";
const WRITES: &str = "writes";
const SCHEMAS: &str = "schemas";
const META: &str = "meta";
const HEAD: &[u8] = b"head";
const HORIZON: &[u8] = b"horizon";

fn error(context: &str, e: impl std::fmt::Display) -> PersistenceError {
    PersistenceError(format!("{context}: {e}"))
}

fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, PersistenceError> {
    bincode::serde::encode_to_vec(value, bincode::config::standard())
        .map_err(|e| error("encoding", e))
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, PersistenceError> {
    bincode::serde::decode_from_slice(bytes, bincode::config::standard())
        .map(|(value, _)| value)
        .map_err(|e| error("decoding stored data", e))
}

/// A relationship key as bytes: its fields joined by NUL, which no name or id may contain.
fn key_bytes(key: &RelationshipKey) -> Vec<u8> {
    let (resource, relation, subject) = key;
    [
        resource.object_type.as_str(),
        &resource.object_id,
        relation,
        &subject.object.object_type,
        &subject.object.object_id,
        subject.relation.as_deref().unwrap_or(""),
    ]
    .join("\0")
    .into_bytes()
}

fn revision_from(bytes: &[u8]) -> Result<Revision, PersistenceError> {
    let array: [u8; 8] = bytes
        .try_into()
        .map_err(|_| error("revision", "not 8 bytes"))?;
    Ok(Revision::from_be_bytes(array))
}

/// A RocksDB database holding a datastore's state.
pub struct RocksPersistence {
    db: Arc<DB>,
}

impl RocksPersistence {
    /// Opens (or creates) the database in `path`.
    pub fn open(path: &Path) -> Result<Self, PersistenceError> {
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        let families = [VERSIONS, WRITES, SCHEMAS, META]
            .map(|name| ColumnFamilyDescriptor::new(name, Options::default()));
        let db = DB::open_cf_descriptors(&options, path, families)
            .map_err(|e| error("opening RocksDB", e))?;
        Ok(Self { db: Arc::new(db) })
    }

    fn family(&self, name: &str) -> Result<&rocksdb::ColumnFamily, PersistenceError> {
        self.db
            .cf_handle(name)
            .ok_or_else(|| error("column family missing", name))
    }

    fn read_revision(&self, name: &[u8]) -> Result<Revision, PersistenceError> {
        match self
            .db
            .get_cf(self.family(META)?, name)
            .map_err(|e| error("reading meta", e))?
        {
            Some(bytes) => revision_from(&bytes),
            None => Ok(0),
        }
    }
}

impl Persistence for RocksPersistence {
    fn recover(&mut self) -> Result<Recovered, PersistenceError> {
        let mut recovered = Recovered {
            head: self.read_revision(HEAD)?,
            horizon: self.read_revision(HORIZON)?,
            ..Recovered::default()
        };
        for item in self
            .db
            .iterator_cf(self.family(VERSIONS)?, IteratorMode::Start)
        {
            let (_, value) = item.map_err(|e| error("reading versions", e))?;
            recovered.versions.push(decode::<Vec<Version>>(&value)?);
        }
        for item in self
            .db
            .iterator_cf(self.family(SCHEMAS)?, IteratorMode::Start)
        {
            let (key, value) = item.map_err(|e| error("reading schemas", e))?;
            let text = String::from_utf8(value.to_vec()).map_err(|e| error("schema text", e))?;
            recovered.schemas.push((revision_from(&key)?, text));
        }
        for item in self
            .db
            .iterator_cf(self.family(WRITES)?, IteratorMode::Start)
        {
            let (_, value) = item.map_err(|e| error("reading writes", e))?;
            recovered.writes.push(decode::<AppliedWrite>(&value)?);
        }
        Ok(recovered)
    }

    fn persist(&mut self, write: &AppliedWrite) -> Result<(), PersistenceError> {
        let mut batch = WriteBatch::default();
        let versions = self.family(VERSIONS)?;
        for (key, list) in &write.versions {
            if list.is_empty() {
                batch.delete_cf(versions, key_bytes(key));
            } else {
                batch.put_cf(versions, key_bytes(key), encode(list)?);
            }
        }
        let revision = write.revision.to_be_bytes();
        let logged = AppliedWrite {
            versions: Vec::new(),
            ..write.clone()
        };
        batch.put_cf(self.family(WRITES)?, revision, encode(&logged)?);
        if let Some(schema) = &write.schema {
            batch.put_cf(self.family(SCHEMAS)?, revision, schema.as_bytes());
        }
        batch.put_cf(self.family(META)?, HEAD, revision);
        let mut options = WriteOptions::default();
        options.set_sync(true);
        self.db
            .write_opt(batch, &options)
            .map_err(|e| error("writing", e))
    }

    fn collect(&mut self, collected: &Collected) -> Result<(), PersistenceError> {
        let mut batch = WriteBatch::default();
        let versions = self.family(VERSIONS)?;
        for (key, remaining) in &collected.versions {
            match remaining {
                Some(list) => batch.put_cf(versions, key_bytes(key), encode(list)?),
                None => batch.delete_cf(versions, key_bytes(key)),
            }
        }
        let end = (collected.horizon + 1).to_be_bytes();
        batch.delete_range_cf(self.family(WRITES)?, 0u64.to_be_bytes(), end);
        batch.put_cf(self.family(META)?, HORIZON, collected.horizon.to_be_bytes());
        self.db
            .write(batch)
            .map_err(|e| error("collecting garbage", e))
    }
}
