//! The Raft log and vote, over a durable key-value backend.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{
    Entry, LogId, LogState, OptionalSend, RaftLogReader, StorageError, StorageIOError, Vote,
};
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::Serialize;
use thiserror::Error;

use crate::{NodeId, TypeConfig};

const VOTE: &str = "vote";
const COMMITTED: &str = "committed";
const LAST_PURGED: &str = "last_purged";

#[derive(Debug, Error)]
#[error("raft log storage: {0}")]
pub struct LogBackendError(pub String);

/// Where the log lives: entries by index plus a few metadata values. Every mutating method must
/// have made its change durable (fsynced) before it returns: Raft counts a vote or an entry as
/// promised the moment the call returns.
pub trait LogBackend: Send + Sync + 'static {
    /// The metadata value under `key`.
    fn read_meta(&self, key: &str) -> Result<Option<Vec<u8>>, LogBackendError>;
    /// Stores a metadata value, durably.
    fn write_meta(&self, key: &str, value: &[u8]) -> Result<(), LogBackendError>;
    /// Appends encoded entries by index, durably, in one atomic step.
    fn append(&self, entries: &[(u64, Vec<u8>)]) -> Result<(), LogBackendError>;
    /// Removes every entry at or after `from`, durably.
    fn truncate_from(&self, from: u64) -> Result<(), LogBackendError>;
    /// Removes every entry at or before `upto` and stores the metadata value `(key, value)`, in
    /// one atomic step.
    fn purge_upto(&self, upto: u64, key: &str, value: &[u8]) -> Result<(), LogBackendError>;
    /// The entries with an index in `[from, to)`, in order.
    fn range(&self, from: u64, to: u64) -> Result<Vec<(u64, Vec<u8>)>, LogBackendError>;
    /// The entry with the highest index.
    fn last(&self) -> Result<Option<(u64, Vec<u8>)>, LogBackendError>;
}

/// A log backend in memory, for tests and simulations. Clones share one "disk", so a node
/// restarted over a clone finds its log and vote again.
#[derive(Debug, Clone, Default)]
pub struct MemoryLog {
    disk: Arc<Mutex<MemoryDisk>>,
}

#[derive(Debug, Default)]
struct MemoryDisk {
    meta: BTreeMap<String, Vec<u8>>,
    entries: BTreeMap<u64, Vec<u8>>,
    /// Every write fails while set, as on a full or failing disk.
    failing: bool,
}

impl MemoryLog {
    /// Empties the disk, as a node restarted on a new volume finds it.
    pub fn wipe(&self) {
        *self.disk.lock() = MemoryDisk::default();
    }

    /// Makes every write fail from now on (`true`), as on a full disk, or succeed again.
    pub fn set_failing(&self, failing: bool) {
        self.disk.lock().failing = failing;
    }

    /// The disk, for a write: fails while the disk is failing.
    fn writable(&self) -> Result<parking_lot::MutexGuard<'_, MemoryDisk>, LogBackendError> {
        let disk = self.disk.lock();
        match disk.failing {
            true => Err(LogBackendError(
                "No space left on device (os error 28)".into(),
            )),
            false => Ok(disk),
        }
    }
}

impl LogBackend for MemoryLog {
    fn read_meta(&self, key: &str) -> Result<Option<Vec<u8>>, LogBackendError> {
        Ok(self.disk.lock().meta.get(key).cloned())
    }

    fn write_meta(&self, key: &str, value: &[u8]) -> Result<(), LogBackendError> {
        self.writable()?
            .meta
            .insert(key.to_string(), value.to_vec());
        Ok(())
    }

    fn append(&self, entries: &[(u64, Vec<u8>)]) -> Result<(), LogBackendError> {
        self.writable()?.entries.extend(entries.iter().cloned());
        Ok(())
    }

    fn truncate_from(&self, from: u64) -> Result<(), LogBackendError> {
        self.writable()?.entries.split_off(&from);
        Ok(())
    }

    fn purge_upto(&self, upto: u64, key: &str, value: &[u8]) -> Result<(), LogBackendError> {
        let mut disk = self.writable()?;
        disk.entries = disk.entries.split_off(&(upto + 1));
        disk.meta.insert(key.to_string(), value.to_vec());
        Ok(())
    }

    fn range(&self, from: u64, to: u64) -> Result<Vec<(u64, Vec<u8>)>, LogBackendError> {
        if from >= to {
            return Ok(Vec::new());
        }
        let disk = self.disk.lock();
        Ok(disk
            .entries
            .range(from..to)
            .map(|(i, e)| (*i, e.clone()))
            .collect())
    }

    fn last(&self) -> Result<Option<(u64, Vec<u8>)>, LogBackendError> {
        Ok(self
            .disk
            .lock()
            .entries
            .last_key_value()
            .map(|(i, e)| (*i, e.clone())))
    }
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, LogBackendError> {
    bincode::serde::encode_to_vec(value, bincode::config::standard())
        .map_err(|e| LogBackendError(format!("encoding: {e}")))
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, LogBackendError> {
    bincode::serde::decode_from_slice(bytes, bincode::config::standard())
        .map(|(value, _)| value)
        .map_err(|e| LogBackendError(format!("decoding stored log data: {e}")))
}

/// openraft's log storage over a [`LogBackend`]. Clones share the backend.
pub struct LogStore<B> {
    backend: Arc<B>,
}

impl<B> Clone for LogStore<B> {
    fn clone(&self) -> Self {
        Self {
            backend: self.backend.clone(),
        }
    }
}

impl<B: LogBackend> LogStore<B> {
    pub fn new(backend: B) -> Self {
        Self {
            backend: Arc::new(backend),
        }
    }

    /// The backend, shared: for metadata of the node's own kept beside the log's.
    pub fn backend(&self) -> Arc<B> {
        self.backend.clone()
    }

    fn meta<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, LogBackendError> {
        self.backend
            .read_meta(key)?
            .map(|bytes| decode(&bytes))
            .transpose()
    }
}

fn bounds(range: &impl RangeBounds<u64>) -> (u64, u64) {
    let from = match range.start_bound() {
        Bound::Included(i) => *i,
        Bound::Excluded(i) => i.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let to = match range.end_bound() {
        Bound::Included(i) => i.saturating_add(1),
        Bound::Excluded(i) => *i,
        Bound::Unbounded => u64::MAX,
    };
    (from, to)
}

impl<B: LogBackend> RaftLogReader<TypeConfig> for LogStore<B> {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<NodeId>> {
        let (from, to) = bounds(&range);
        self.backend
            .range(from, to)
            .and_then(|entries| {
                entries
                    .iter()
                    .map(|(_, bytes)| decode::<Entry<TypeConfig>>(bytes))
                    .collect()
            })
            .map_err(|e| StorageError::from(StorageIOError::<NodeId>::read_logs(&e)))
    }
}

impl<B: LogBackend> RaftLogStorage<TypeConfig> for LogStore<B> {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let last_purged_log_id: Option<LogId<NodeId>> = self
            .meta(LAST_PURGED)
            .map_err(|e| StorageError::from(StorageIOError::<NodeId>::read_logs(&e)))?;
        let last = self
            .backend
            .last()
            .and_then(|last| {
                last.map(|(_, bytes)| decode::<Entry<TypeConfig>>(&bytes))
                    .transpose()
            })
            .map_err(|e| StorageError::from(StorageIOError::<NodeId>::read_logs(&e)))?;
        Ok(LogState {
            last_purged_log_id,
            last_log_id: last.map(|e| e.log_id).or(last_purged_log_id),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        encode(vote)
            .and_then(|bytes| self.backend.write_meta(VOTE, &bytes))
            .map_err(|e| StorageError::from(StorageIOError::<NodeId>::write_vote(&e)))
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        self.meta(VOTE)
            .map_err(|e| StorageError::from(StorageIOError::<NodeId>::read_vote(&e)))
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<NodeId>>,
    ) -> Result<(), StorageError<NodeId>> {
        encode(&committed)
            .and_then(|bytes| self.backend.write_meta(COMMITTED, &bytes))
            .map_err(|e| StorageError::from(StorageIOError::<NodeId>::write(&e)))
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        Ok(self
            .meta::<Option<LogId<NodeId>>>(COMMITTED)
            .map_err(|e| StorageError::from(StorageIOError::<NodeId>::read(&e)))?
            .flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let encoded = entries
            .into_iter()
            .map(|e| Ok((e.log_id.index, encode(&e)?)))
            .collect::<Result<Vec<_>, LogBackendError>>()
            .map_err(|e| StorageError::from(StorageIOError::<NodeId>::write_logs(&e)))?;
        // The backend has synced the entries when `append` returns: only then is the flush
        // reported, as openraft requires.
        self.backend
            .append(&encoded)
            .map_err(|e| StorageError::from(StorageIOError::<NodeId>::write_logs(&e)))?;
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.backend
            .truncate_from(log_id.index)
            .map_err(|e| StorageError::from(StorageIOError::<NodeId>::write_logs(&e)))
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        encode(&log_id)
            .and_then(|bytes| self.backend.purge_upto(log_id.index, LAST_PURGED, &bytes))
            .map_err(|e| StorageError::from(StorageIOError::<NodeId>::write_logs(&e)))
    }
}
