//! The boundary between the datastore and durable storage. The datastore decides what a write
//! changes; a [`Persistence`] makes it durable and gives it back after a restart.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::Mutex;

use pemba_codec::CodecError;
use pemba_schema::SchemaError;
use pemba_types::Revision;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::image::{ImageInMemory, ImageView};
use crate::index::{Change, RelationshipKey, Version};

/// Everything one applied write changed, as it must be made durable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppliedWrite {
    /// The revision the write was applied at.
    pub revision: Revision,
    /// The revision's time.
    pub timestamp: SystemTime,
    /// The new schema text, if the write changed the schema.
    pub schema: Option<String>,
    /// The effective relationship changes, for Watch.
    pub changes: Vec<Change>,
    /// Each changed key's whole version list after the write.
    pub versions: Vec<(RelationshipKey, Vec<Version>)>,
    /// Whether the revision carried a write. Revisions that carry none (a replication log's
    /// own entries) only advance the head: they are not in the change log.
    pub is_write: bool,
    /// Whether `timestamp` is later than the previous revision's time. Such a revision is kept
    /// in the log of writes even without a write, so that every revision's time (which decides
    /// what has expired) survives a restart. Derived again from the timestamps on recovery.
    #[serde(skip)]
    pub advances_clock: bool,
    /// The layer above's own state (replication progress, de-duplication records), made durable
    /// in the same atomic step as the write.
    pub sidecar: Vec<SidecarUpdate>,
}

/// A change to the sidecar: `value: None` deletes `key`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SidecarUpdate {
    /// The key changed.
    pub key: Vec<u8>,
    /// Its new value, or `None` to delete it.
    pub value: Option<Vec<u8>>,
}

/// What garbage collection removed, as it must be made durable.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Collected {
    /// History older than this revision is gone. Records of writes older than it are dropped;
    /// the horizon's own record stays (it carries the horizon's time).
    pub horizon: Revision,
    /// Changed keys with their remaining versions; `None` deletes the key.
    pub versions: Vec<(RelationshipKey, Option<Vec<Version>>)>,
}

/// The durable state found at start-up; also a whole datastore's image, as shipped in a
/// replication snapshot.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Recovered {
    /// The newest durable revision (0 for a new store).
    pub head: Revision,
    /// The oldest revision still readable.
    pub horizon: Revision,
    /// Every key's version list.
    pub versions: Vec<Vec<Version>>,
    /// Schema texts by the revision that wrote them, oldest first.
    pub schemas: Vec<(Revision, String)>,
    /// The horizon's own record and every newer one that wrote or advanced the clock, oldest
    /// first (their `versions` may be empty).
    pub writes: Vec<AppliedWrite>,
    /// The sidecar's key-values.
    pub sidecar: BTreeMap<Vec<u8>, Vec<u8>>,
}

/// Why durable storage failed a call. After any of them the datastore is unchanged.
#[derive(Debug, Error)]
pub enum PersistenceError {
    /// The storage failed (an I/O error, a full disk).
    #[error("storage failure: {operation}: {source}")]
    Storage {
        /// What was being done, in words.
        operation: &'static str,
        /// The storage's error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A stored value could not be read back, or a value could not be encoded.
    #[error("stored data: {0}")]
    Codec(#[from] CodecError),
    /// Stored data is not laid out as any Pemba build writes it.
    #[error("stored data is corrupt: {what} {detail}")]
    Corrupt {
        /// What is corrupt.
        what: &'static str,
        /// How.
        detail: &'static str,
    },
    /// A stored schema no longer compiles (this build reads the schema language differently
    /// from the one that wrote it).
    #[error("the schema stored at revision {revision} does not compile: {source}")]
    StoredSchema {
        /// The revision that wrote it.
        revision: Revision,
        /// Why it does not compile.
        source: Box<SchemaError>,
    },
}

impl PersistenceError {
    /// A failure of the storage while doing `operation`.
    pub fn storage(
        operation: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        PersistenceError::Storage {
            operation,
            source: source.into(),
        }
    }
}

/// How durable a persisted write must be when [`Persistence::persist`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// On stable storage (fsynced): the caller acknowledges the write on the strength of it.
    Synced,
    /// Written through to the operating system, so a crash of the process loses nothing, but
    /// not yet fsynced: a power loss may take back the newest such writes (never an older one
    /// without the newer ones). For writes that are durable elsewhere already (a replicated
    /// log's entries, applied again after such a loss); a later [`Persistence::sync`], or any
    /// synced write, makes them durable.
    Deferred,
}

/// Durable storage for a datastore.
pub trait Persistence: Send {
    /// Reads back everything persisted so far.
    fn recover(&mut self) -> Result<Recovered, PersistenceError>;

    /// Stores one write, atomically, as durable as `durability` says: with
    /// [`Durability::Synced`] it is on stable storage (fsynced) before this returns.
    fn persist(
        &mut self,
        write: &AppliedWrite,
        durability: Durability,
    ) -> Result<(), PersistenceError>;

    /// Makes every write stored so far durable (fsynced) before it returns.
    fn sync(&mut self) -> Result<(), PersistenceError>;

    /// Makes a garbage collection durable. Need not be synced: losing it only keeps history longer.
    fn collect(&mut self, collected: &Collected) -> Result<(), PersistenceError>;

    /// An image of everything stored now, fixed before this returns: writing it out may then
    /// take long, and blocks nothing (a replication snapshot is built from it).
    fn image(&self) -> Result<Box<dyn ImageView>, PersistenceError>;

    /// Starts replacing everything stored (a replication snapshot's install): forgets what an
    /// unfinished replacement staged. Until [`Persistence::commit_replacement`] what is stored
    /// stays as it was, for reads, writes and a crash alike.
    fn begin_replacement(&mut self) -> Result<(), PersistenceError>;

    /// Stages version lists of the replacement begun last, each non-empty and of a key no other
    /// staged list has. Staging need not be durable: it is written in parts, so the whole
    /// replacement is never in memory.
    fn stage_versions(&mut self, lists: &[Vec<Version>]) -> Result<(), PersistenceError>;

    /// Replaces everything stored with the staged version lists and `image` (whose own version
    /// lists are staged first), atomically: after a crash either the old state or the whole
    /// replacement is found. It must be fsynced before this returns.
    fn commit_replacement(&mut self, image: &Recovered) -> Result<(), PersistenceError>;
}

/// Keeps everything in memory: for tests and simulations. Clones share one "disk", so a store
/// reopened from a clone sees every write persisted before, as after a restart.
#[derive(Debug, Clone, Default)]
pub struct MemoryPersistence {
    disk: Arc<Mutex<Disk>>,
}

impl MemoryPersistence {
    /// Empties the disk, as a node restarted on a new volume finds it (for simulations).
    pub fn wipe(&self) {
        *self.disk.lock() = Disk::default();
    }

    /// How many times [`Persistence::replace`] has run since the disk was new: a simulation
    /// watches it to crash a node as it installs a snapshot.
    pub fn replacements(&self) -> u64 {
        self.disk.lock().replacements
    }
}

#[derive(Debug, Default)]
struct Disk {
    head: Revision,
    horizon: Revision,
    versions: BTreeMap<RelationshipKey, Vec<Version>>,
    schemas: Vec<(Revision, String)>,
    writes: Vec<AppliedWrite>,
    sidecar: BTreeMap<Vec<u8>, Vec<u8>>,
    replacements: u64,
    /// The version lists of a replacement not yet committed.
    staged: BTreeMap<RelationshipKey, Vec<Version>>,
}

impl MemoryPersistence {
    fn stored(&self) -> Recovered {
        let disk = self.disk.lock();
        Recovered {
            head: disk.head,
            horizon: disk.horizon,
            versions: disk.versions.values().cloned().collect(),
            schemas: disk.schemas.clone(),
            writes: disk.writes.clone(),
            sidecar: disk.sidecar.clone(),
        }
    }
}

impl Persistence for MemoryPersistence {
    fn recover(&mut self) -> Result<Recovered, PersistenceError> {
        Ok(self.stored())
    }

    fn image(&self) -> Result<Box<dyn ImageView>, PersistenceError> {
        Ok(Box::new(ImageInMemory(self.stored())))
    }

    fn persist(
        &mut self,
        write: &AppliedWrite,
        _durability: Durability,
    ) -> Result<(), PersistenceError> {
        let mut disk = self.disk.lock();
        disk.head = write.revision;
        for (key, versions) in &write.versions {
            if versions.is_empty() {
                disk.versions.remove(key);
            } else {
                disk.versions.insert(key.clone(), versions.clone());
            }
        }
        if let Some(schema) = &write.schema {
            disk.schemas.push((write.revision, schema.clone()));
        }
        if write.is_write || write.advances_clock {
            disk.writes.push(AppliedWrite {
                versions: Vec::new(),
                sidecar: Vec::new(),
                ..write.clone()
            });
        }
        for update in &write.sidecar {
            match &update.value {
                Some(value) => disk.sidecar.insert(update.key.clone(), value.clone()),
                None => disk.sidecar.remove(&update.key),
            };
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<(), PersistenceError> {
        Ok(())
    }

    fn collect(&mut self, collected: &Collected) -> Result<(), PersistenceError> {
        let mut disk = self.disk.lock();
        disk.horizon = collected.horizon;
        for (key, remaining) in &collected.versions {
            match remaining {
                Some(versions) => disk.versions.insert(key.clone(), versions.clone()),
                None => disk.versions.remove(key),
            };
        }
        disk.writes.retain(|w| w.revision >= collected.horizon);
        Ok(())
    }

    fn begin_replacement(&mut self) -> Result<(), PersistenceError> {
        self.disk.lock().staged.clear();
        Ok(())
    }

    fn stage_versions(&mut self, lists: &[Vec<Version>]) -> Result<(), PersistenceError> {
        let mut disk = self.disk.lock();
        for list in lists {
            if let Some(first) = list.first() {
                let key = crate::index::key_of(&first.relationship);
                disk.staged.insert(key, list.clone());
            }
        }
        Ok(())
    }

    fn commit_replacement(&mut self, image: &Recovered) -> Result<(), PersistenceError> {
        self.stage_versions(&image.versions)?;
        let mut disk = self.disk.lock();
        let replacements = disk.replacements + 1;
        let versions = std::mem::take(&mut disk.staged);
        *disk = Disk {
            head: image.head,
            horizon: image.horizon,
            versions,
            schemas: image.schemas.clone(),
            writes: image.writes.clone(),
            sidecar: image.sidecar.clone(),
            replacements,
            staged: BTreeMap::new(),
        };
        Ok(())
    }
}
