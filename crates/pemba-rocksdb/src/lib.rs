//! [`Persistence`] over RocksDB.
//!
//! Column families:
//! - `versions` and `versions_alt`: relationship key → every version of it (in `pemba_codec`'s
//!   format), the MVCC state. One of the two is live (`meta`'s `versions_family` names it,
//!   `versions` if unset); the other stages a replacement (a snapshot being installed) and is
//!   empty otherwise. A replacement is committed by one batch that names the staged family
//!   live, so a crash during an install finds the old state whole;
//! - `writes`: revision (big-endian) → the write's time and changes, for Watch after a restart;
//! - `schemas`: revision (big-endian) → schema text;
//! - `meta`: `head` and `horizon` revisions;
//! - `sidecar`: the replication layer's key-values, written in the same batch as the data;
//! - `raft_log`: Raft log entries by index (big-endian), and `raft_meta`: the vote, the committed
//!   and the last purged log ids ([`RocksLog`]).
//!
//! [`open`] opens one database for both the datastore and the Raft log.
//!
//! Every write is one atomic `WriteBatch`. A [`Durability::Synced`] write, a replacement and the
//! Raft log's syncs fsync the write-ahead log, which the datastore and the log share: each
//! also makes every earlier [`Durability::Deferred`] write durable.

mod image;

use std::path::Path;
use std::sync::Arc;

use pemba_codec::{encode, Format};
use pemba_raft::{LogBackend, LogBackendError};
use pemba_store::{
    AppliedWrite, Collected, Durability, ImageView, Persistence, PersistenceError, Recovered,
    RelationshipKey, Version,
};
use pemba_types::Revision;
use rocksdb::{
    ColumnFamilyDescriptor, Direction, IteratorMode, Options, WriteBatch, WriteOptions, DB,
};

const VERSIONS: &str = "versions";
const VERSIONS_ALT: &str = "versions_alt";
const WRITES: &str = "writes";
const SCHEMAS: &str = "schemas";
const META: &str = "meta";
const SIDECAR: &str = "sidecar";
const RAFT_LOG: &str = "raft_log";
const RAFT_META: &str = "raft_meta";
const FAMILIES: [&str; 8] = [
    VERSIONS,
    VERSIONS_ALT,
    WRITES,
    SCHEMAS,
    META,
    SIDECAR,
    RAFT_LOG,
    RAFT_META,
];
const HEAD: &[u8] = b"head";
const HORIZON: &[u8] = b"horizon";
/// Which of [`VERSIONS`] and [`VERSIONS_ALT`] is live.
const VERSIONS_FAMILY: &[u8] = b"versions_family";

/// Above every relationship key: keys are UTF-8 text joined by NUL, and no UTF-8 byte is 0xFF.
const PAST_EVERY_KEY: &[u8] = &[0xFF];

/// The family of version lists that is not `live`.
fn other_versions(live: &'static str) -> &'static str {
    if live == VERSIONS {
        VERSIONS_ALT
    } else {
        VERSIONS
    }
}

fn error(operation: &'static str, e: rocksdb::Error) -> PersistenceError {
    PersistenceError::storage(operation, e)
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
    let array: [u8; 8] = bytes.try_into().map_err(|_| PersistenceError::Corrupt {
        what: "a stored revision",
        detail: "is not 8 bytes long",
    })?;
    Ok(Revision::from_be_bytes(array))
}

/// A RocksDB database holding a datastore's state.
pub struct RocksPersistence {
    db: Arc<DB>,
    /// The family of version lists in use: [`VERSIONS`] or [`VERSIONS_ALT`].
    live: &'static str,
}

/// Opens (or creates) the database in `path`: the datastore's persistence and the Raft log over
/// one RocksDB instance.
pub fn open(path: &Path) -> Result<(RocksPersistence, RocksLog), PersistenceError> {
    let mut options = Options::default();
    options.create_if_missing(true);
    options.create_missing_column_families(true);
    let families = FAMILIES.map(|name| ColumnFamilyDescriptor::new(name, Options::default()));
    let db = Arc::new(
        DB::open_cf_descriptors(&options, path, families)
            .map_err(|e| error("opening RocksDB", e))?,
    );
    let mut persistence = RocksPersistence {
        db: db.clone(),
        live: VERSIONS,
    };
    persistence.live = persistence.live_versions()?;
    // What an install cut short by a crash staged, or the lists a committed one left behind.
    persistence.clear(other_versions(persistence.live))?;
    Ok((persistence, RocksLog { db }))
}

/// The column family `name` of `db`, which [`open`] creates.
fn family<'a>(
    db: &'a DB,
    name: &'static str,
) -> Result<&'a rocksdb::ColumnFamily, PersistenceError> {
    db.cf_handle(name).ok_or(PersistenceError::Corrupt {
        what: name,
        detail: "(a column family) is missing",
    })
}

impl RocksPersistence {
    fn family(&self, name: &'static str) -> Result<&rocksdb::ColumnFamily, PersistenceError> {
        family(&self.db, name)
    }

    /// The family of version lists `meta` names live.
    fn live_versions(&self) -> Result<&'static str, PersistenceError> {
        let named = self
            .db
            .get_cf(self.family(META)?, VERSIONS_FAMILY)
            .map_err(|e| error("reading meta", e))?;
        match named.as_deref() {
            None => Ok(VERSIONS),
            Some(name) if name == VERSIONS.as_bytes() => Ok(VERSIONS),
            Some(name) if name == VERSIONS_ALT.as_bytes() => Ok(VERSIONS_ALT),
            Some(_) => Err(PersistenceError::Corrupt {
                what: "the live versions family",
                detail: "names no family of version lists",
            }),
        }
    }

    /// Deletes every version list in `family` (not synced: it holds nothing live).
    fn clear(&self, family: &'static str) -> Result<(), PersistenceError> {
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(self.family(family)?, &b""[..], PAST_EVERY_KEY);
        self.db
            .write(batch)
            .map_err(|e| error("clearing staged version lists", e))
    }
}

impl RocksPersistence {
    fn write_synced(&self, batch: WriteBatch) -> Result<(), PersistenceError> {
        let mut options = WriteOptions::default();
        options.set_sync(true);
        self.db
            .write_opt(batch, &options)
            .map_err(|e| error("writing", e))
    }
}

impl Persistence for RocksPersistence {
    fn recover(&mut self) -> Result<Recovered, PersistenceError> {
        // A snapshot, although nothing writes while a datastore opens: one way of reading.
        pemba_store::recovered_from(&image::SnapshotSource::new(&self.db, self.live))
    }

    fn persist(
        &mut self,
        write: &AppliedWrite,
        durability: Durability,
    ) -> Result<(), PersistenceError> {
        let mut batch = WriteBatch::default();
        let versions = self.family(self.live)?;
        for (key, list) in &write.versions {
            if list.is_empty() {
                batch.delete_cf(versions, key_bytes(key));
            } else {
                batch.put_cf(versions, key_bytes(key), encode(Format::Versions, list)?);
            }
        }
        let revision = write.revision.to_be_bytes();
        if write.is_write || write.advances_clock {
            let logged = AppliedWrite {
                versions: Vec::new(),
                sidecar: Vec::new(),
                ..write.clone()
            };
            batch.put_cf(
                self.family(WRITES)?,
                revision,
                encode(Format::WriteRecord, &logged)?,
            );
        }
        if let Some(schema) = &write.schema {
            batch.put_cf(self.family(SCHEMAS)?, revision, schema.as_bytes());
        }
        let sidecar = self.family(SIDECAR)?;
        for update in &write.sidecar {
            match &update.value {
                Some(value) => batch.put_cf(sidecar, &update.key, value),
                None => batch.delete_cf(sidecar, &update.key),
            }
        }
        batch.put_cf(self.family(META)?, HEAD, revision);
        match durability {
            Durability::Synced => self.write_synced(batch),
            Durability::Deferred => self.db.write(batch).map_err(|e| error("writing", e)),
        }
    }

    fn sync(&mut self) -> Result<(), PersistenceError> {
        self.db
            .flush_wal(true)
            .map_err(|e| error("syncing the write-ahead log", e))
    }

    fn collect(&mut self, collected: &Collected) -> Result<(), PersistenceError> {
        let mut batch = WriteBatch::default();
        let versions = self.family(self.live)?;
        for (key, remaining) in &collected.versions {
            match remaining {
                Some(list) => {
                    batch.put_cf(versions, key_bytes(key), encode(Format::Versions, list)?)
                }
                None => batch.delete_cf(versions, key_bytes(key)),
            }
        }
        let end = collected.horizon.to_be_bytes();
        batch.delete_range_cf(self.family(WRITES)?, 0u64.to_be_bytes(), end);
        batch.put_cf(self.family(META)?, HORIZON, collected.horizon.to_be_bytes());
        self.db
            .write(batch)
            .map_err(|e| error("collecting garbage", e))
    }

    fn image(&self) -> Result<Box<dyn ImageView>, PersistenceError> {
        image::take(self.db.clone(), self.live)
    }

    fn begin_replacement(&mut self) -> Result<(), PersistenceError> {
        self.clear(other_versions(self.live))
    }

    fn stage_versions(&mut self, lists: &[Vec<Version>]) -> Result<(), PersistenceError> {
        let mut batch = WriteBatch::default();
        let staged = self.family(other_versions(self.live))?;
        for list in lists {
            if let Some(first) = list.first() {
                let key = pemba_store::key_of(&first.relationship);
                batch.put_cf(staged, key_bytes(&key), encode(Format::Versions, list)?);
            }
        }
        self.db
            .write(batch)
            .map_err(|e| error("staging version lists", e))
    }

    fn commit_replacement(&mut self, image: &Recovered) -> Result<(), PersistenceError> {
        self.stage_versions(&image.versions)?;
        let mut batch = WriteBatch::default();
        for name in [WRITES, SCHEMAS, SIDECAR] {
            let family = self.family(name)?;
            for item in self.db.iterator_cf(family, IteratorMode::Start) {
                let (key, _) = item.map_err(|e| error("reading for replacement", e))?;
                batch.delete_cf(family, key);
            }
        }
        for write in &image.writes {
            batch.put_cf(
                self.family(WRITES)?,
                write.revision.to_be_bytes(),
                encode(Format::WriteRecord, write)?,
            );
        }
        for (revision, text) in &image.schemas {
            batch.put_cf(
                self.family(SCHEMAS)?,
                revision.to_be_bytes(),
                text.as_bytes(),
            );
        }
        for (key, value) in &image.sidecar {
            batch.put_cf(self.family(SIDECAR)?, key, value);
        }
        let meta = self.family(META)?;
        batch.put_cf(meta, HEAD, image.head.to_be_bytes());
        batch.put_cf(meta, HORIZON, image.horizon.to_be_bytes());
        let staged = other_versions(self.live);
        batch.put_cf(meta, VERSIONS_FAMILY, staged.as_bytes());
        // Synced: every staged part before it in the write-ahead log is durable with it.
        self.write_synced(batch)?;
        let replaced = std::mem::replace(&mut self.live, staged);
        self.clear(replaced)
    }
}

/// The Raft log in the same RocksDB database as the datastore. Each mutation is one atomic write
/// to the write-ahead log; [`LogBackend::sync`] fsyncs the log (which a crash can only cut
/// short, never reorder), so every earlier write is durable when it returns.
pub struct RocksLog {
    db: Arc<DB>,
}

fn log_error(operation: &'static str, e: rocksdb::Error) -> LogBackendError {
    LogBackendError::storage(operation, e)
}

impl RocksLog {
    fn family(&self, name: &'static str) -> Result<&rocksdb::ColumnFamily, LogBackendError> {
        self.db.cf_handle(name).ok_or(LogBackendError::Corrupt {
            what: name,
            detail: "(a column family) is missing",
        })
    }

    fn write(&self, batch: WriteBatch) -> Result<(), LogBackendError> {
        self.db
            .write(batch)
            .map_err(|e| log_error("writing the Raft log", e))
    }
}

fn index_from(bytes: &[u8]) -> Result<u64, LogBackendError> {
    let array: [u8; 8] = bytes.try_into().map_err(|_| LogBackendError::Corrupt {
        what: "a Raft log index",
        detail: "is not 8 bytes long",
    })?;
    Ok(u64::from_be_bytes(array))
}

impl LogBackend for RocksLog {
    fn read_meta(&self, key: &str) -> Result<Option<Vec<u8>>, LogBackendError> {
        self.db
            .get_cf(self.family(RAFT_META)?, key)
            .map_err(|e| log_error("reading Raft metadata", e))
    }

    fn write_meta(&self, key: &str, value: &[u8]) -> Result<(), LogBackendError> {
        let mut batch = WriteBatch::default();
        batch.put_cf(self.family(RAFT_META)?, key, value);
        self.write(batch)
    }

    fn append(&self, entries: &[(u64, Vec<u8>)]) -> Result<(), LogBackendError> {
        let mut batch = WriteBatch::default();
        let log = self.family(RAFT_LOG)?;
        for (index, entry) in entries {
            batch.put_cf(log, index.to_be_bytes(), entry);
        }
        self.write(batch)
    }

    fn truncate_from(&self, from: u64) -> Result<(), LogBackendError> {
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(
            self.family(RAFT_LOG)?,
            from.to_be_bytes(),
            u64::MAX.to_be_bytes(),
        );
        batch.delete_cf(self.family(RAFT_LOG)?, u64::MAX.to_be_bytes());
        self.write(batch)
    }

    fn purge_upto(&self, upto: u64, key: &str, value: &[u8]) -> Result<(), LogBackendError> {
        let mut batch = WriteBatch::default();
        batch.put_cf(self.family(RAFT_META)?, key, value);
        batch.delete_range_cf(
            self.family(RAFT_LOG)?,
            0u64.to_be_bytes(),
            upto.saturating_add(1).to_be_bytes(),
        );
        self.write(batch)
    }

    fn range(&self, from: u64, to: u64) -> Result<Vec<(u64, Vec<u8>)>, LogBackendError> {
        let mut entries = Vec::new();
        if from >= to {
            return Ok(entries);
        }
        let start = from.to_be_bytes();
        let mode = IteratorMode::From(&start, Direction::Forward);
        for item in self.db.iterator_cf(self.family(RAFT_LOG)?, mode) {
            let (key, value) = item.map_err(|e| log_error("reading the Raft log", e))?;
            let index = index_from(&key)?;
            if index >= to {
                break;
            }
            entries.push((index, value.to_vec()));
        }
        Ok(entries)
    }

    fn last(&self) -> Result<Option<(u64, Vec<u8>)>, LogBackendError> {
        let mut iterator = self
            .db
            .iterator_cf(self.family(RAFT_LOG)?, IteratorMode::End);
        match iterator.next() {
            Some(item) => {
                let (key, value) = item.map_err(|e| log_error("reading the Raft log", e))?;
                Ok(Some((index_from(&key)?, value.to_vec())))
            }
            None => Ok(None),
        }
    }

    fn sync(&self) -> Result<(), LogBackendError> {
        self.db
            .flush_wal(true)
            .map_err(|e| log_error("syncing the Raft log", e))
    }

    /// A RocksDB log writes and fsyncs on disk: on the log's own thread.
    fn blocks(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, SystemTime};

    use pemba_codec::golden;
    use pemba_types::Relationship;

    use super::*;

    fn check<T: serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug>(
        name: &str,
        format: Format,
        value: &T,
    ) {
        golden::assert_fixture(env!("CARGO_MANIFEST_DIR"), name, format, value);
    }

    fn relationship(text: &str) -> Arc<Relationship> {
        Arc::new(Relationship::parse(text).expect("a valid relationship"))
    }

    /// A version list and a record of the log of writes, as this datastore stores them.
    #[test]
    fn golden_fixtures() {
        let viewer = relationship(
            r#"document:d#viewer@user:alice[c:{"x":1}][expiration:2031-05-06T07:08:09Z]"#,
        );
        let versions = vec![
            Version {
                created: 3,
                deleted: Some(8),
                relationship: viewer.clone(),
            },
            Version {
                created: 9,
                deleted: None,
                relationship: viewer.clone(),
            },
        ];
        check("versions", Format::Versions, &versions);
        let record = AppliedWrite {
            revision: 9,
            timestamp: SystemTime::UNIX_EPOCH + Duration::new(1_700_000_000, 42),
            schema: Some("definition user {}".into()),
            changes: vec![
                pemba_store::Change::Touch(viewer),
                pemba_store::Change::Delete(relationship("document:d#owner@user:bob")),
            ],
            versions: Vec::new(),
            is_write: true,
            advances_clock: false,
            sidecar: Vec::new(),
        };
        check("write_record", Format::WriteRecord, &record);
    }

    /// A data directory written before formats had versions is refused by name at start-up,
    /// not misread.
    #[test]
    fn an_unversioned_data_directory_is_refused() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let (mut persistence, _log) = open(dir.path()).expect("opens");
        let legacy: Vec<u8> = vec![1, 3, 0];
        let versions = persistence.family(VERSIONS).expect("family");
        persistence
            .db
            .put_cf(versions, b"document\0d\0viewer\0user\0alice\0", legacy)
            .expect("written");
        let e = persistence.recover().expect_err("refused");
        assert!(
            matches!(
                e,
                PersistenceError::Codec(pemba_codec::CodecError::Unversioned {
                    format: Format::Versions
                })
            ),
            "{e}"
        );
        assert!(
            e.to_string().contains("before formats were versioned"),
            "{e}"
        );
    }
}
