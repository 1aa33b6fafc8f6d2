//! The Raft log and vote, over a durable key-value backend.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{
    Entry, LogId, LogState, OptionalSend, RaftLogReader, StorageError, StorageIOError, Vote,
};
use parking_lot::Mutex;
use pemba_codec::{CodecError, Format};
use serde::de::DeserializeOwned;
use serde::Serialize;
use thiserror::Error;

use crate::log_thread::LogThread;
use crate::{NodeId, TypeConfig};

const VOTE: &str = "vote";
const COMMITTED: &str = "committed";
const LAST_PURGED: &str = "last_purged";

/// Why the log's storage failed a call.
#[derive(Debug, Error)]
pub enum LogBackendError {
    /// The storage under the log failed (an I/O error, a full disk).
    #[error("raft log storage: {operation}: {source}")]
    Storage {
        /// What was being done, in words.
        operation: &'static str,
        /// The storage's error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A stored value could not be read back, or a value could not be encoded.
    #[error("raft log data: {0}")]
    Codec(#[from] CodecError),
    /// The log's I/O thread is gone (it can only stop if a step panicked): nothing more can be
    /// written.
    #[error("raft log storage: the log's I/O thread stopped")]
    ThreadGone,
    /// Stored data is not laid out as any Pemba build writes it.
    #[error("raft log storage: {what} is corrupt: {detail}")]
    Corrupt {
        /// What is corrupt.
        what: &'static str,
        /// How.
        detail: &'static str,
    },
}

impl LogBackendError {
    /// A failure of the storage under the log while doing `operation`.
    pub fn storage(
        operation: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        LogBackendError::Storage {
            operation,
            source: source.into(),
        }
    }
}

/// Where the log lives: entries by index plus a few metadata values.
///
/// Durability works like a write-ahead log: each mutating method is one atomic step, visible to
/// reads at once, and durable once a later [`LogBackend::sync`] returns (a backend may make it
/// durable sooner). A crash may lose steps not yet synced, but only the newest ones: what
/// survives is always every step up to some point, in order. Raft counts a vote or an entry as
/// promised once it is reported durable, so [`LogStore`] syncs before it reports.
pub trait LogBackend: Send + Sync + 'static {
    /// The metadata value under `key`.
    fn read_meta(&self, key: &str) -> Result<Option<Vec<u8>>, LogBackendError>;
    /// Stores a metadata value.
    fn write_meta(&self, key: &str, value: &[u8]) -> Result<(), LogBackendError>;
    /// Appends encoded entries by index, in one atomic step.
    fn append(&self, entries: &[(u64, Vec<u8>)]) -> Result<(), LogBackendError>;
    /// Removes every entry at or after `from`.
    fn truncate_from(&self, from: u64) -> Result<(), LogBackendError>;
    /// Removes every entry at or before `upto` and stores the metadata value `(key, value)`, in
    /// one atomic step.
    fn purge_upto(&self, upto: u64, key: &str, value: &[u8]) -> Result<(), LogBackendError>;
    /// The entries with an index in `[from, to)`, in order.
    fn range(&self, from: u64, to: u64) -> Result<Vec<(u64, Vec<u8>)>, LogBackendError>;
    /// The entry with the highest index.
    fn last(&self) -> Result<Option<(u64, Vec<u8>)>, LogBackendError>;
    /// Makes every step before this call durable (fsynced) before it returns.
    fn sync(&self) -> Result<(), LogBackendError>;
    /// Whether mutating calls and syncs block on a disk: then [`LogStore`] runs them on a
    /// thread of their own (see [`crate::log_thread`]), never on the async runtime. A memory
    /// backend runs them inline, so a simulation's scheduler sees every step.
    fn blocks(&self) -> bool {
        false
    }
}

/// A log backend in memory, for tests and simulations. Clones share one "disk", so a node
/// restarted over a clone finds its log and vote again: every step, synced or not, unless
/// [`MemoryLog::crash`] is told to lose the unsynced ones.
#[derive(Debug, Clone, Default)]
pub struct MemoryLog {
    disk: Arc<Mutex<MemoryDisk>>,
}

#[derive(Debug, Default)]
struct MemoryDisk {
    /// What reads see: every step.
    current: LogImage,
    /// What survives any crash: the steps up to the last sync.
    synced: LogImage,
    /// The steps since the last sync, oldest first.
    unsynced: Vec<Step>,
    /// Every write fails while set, as on a full or failing disk.
    failing: bool,
}

#[derive(Debug, Default, Clone)]
struct LogImage {
    meta: BTreeMap<String, Vec<u8>>,
    entries: BTreeMap<u64, Vec<u8>>,
}

/// One mutating step, as a write-ahead log records it.
#[derive(Debug, Clone)]
enum Step {
    WriteMeta(String, Vec<u8>),
    Append(Vec<(u64, Vec<u8>)>),
    TruncateFrom(u64),
    PurgeUpto(u64, String, Vec<u8>),
}

impl LogImage {
    fn apply(&mut self, step: &Step) {
        match step {
            Step::WriteMeta(key, value) => {
                self.meta.insert(key.clone(), value.clone());
            }
            Step::Append(entries) => self.entries.extend(entries.iter().cloned()),
            Step::TruncateFrom(from) => {
                self.entries.split_off(from);
            }
            Step::PurgeUpto(upto, key, value) => {
                self.entries = self.entries.split_off(&(upto + 1));
                self.meta.insert(key.clone(), value.clone());
            }
        }
    }
}

impl MemoryLog {
    /// Empties the disk, as a node restarted on a new volume finds it.
    pub fn wipe(&self) {
        *self.disk.lock() = MemoryDisk::default();
    }

    /// What a crash leaves: every synced step, and of the `n` unsynced ones the first
    /// `kept(n)` (at most `n`), as a write-ahead log whose tail had not reached the disk.
    pub fn crash(&self, kept: impl FnOnce(usize) -> usize) {
        let mut disk = self.disk.lock();
        let unsynced = std::mem::take(&mut disk.unsynced);
        let kept = kept(unsynced.len()).min(unsynced.len());
        for step in &unsynced[..kept] {
            disk.synced.apply(step);
        }
        disk.current = disk.synced.clone();
    }

    /// Makes every write fail from now on (`true`), as on a full disk, or succeed again.
    pub fn set_failing(&self, failing: bool) {
        self.disk.lock().failing = failing;
    }

    /// Takes one step (fails while the disk is failing).
    fn step(&self, step: Step) -> Result<(), LogBackendError> {
        let mut disk = self.writable()?;
        disk.current.apply(&step);
        disk.unsynced.push(step);
        Ok(())
    }

    /// The disk, for a write: fails while the disk is failing.
    fn writable(&self) -> Result<parking_lot::MutexGuard<'_, MemoryDisk>, LogBackendError> {
        let disk = self.disk.lock();
        match disk.failing {
            true => Err(LogBackendError::storage(
                "writing",
                // ENOSPC, as a full disk reports it.
                std::io::Error::from_raw_os_error(28),
            )),
            false => Ok(disk),
        }
    }
}

impl LogBackend for MemoryLog {
    fn read_meta(&self, key: &str) -> Result<Option<Vec<u8>>, LogBackendError> {
        Ok(self.disk.lock().current.meta.get(key).cloned())
    }

    fn write_meta(&self, key: &str, value: &[u8]) -> Result<(), LogBackendError> {
        self.step(Step::WriteMeta(key.to_string(), value.to_vec()))
    }

    fn append(&self, entries: &[(u64, Vec<u8>)]) -> Result<(), LogBackendError> {
        self.step(Step::Append(entries.to_vec()))
    }

    fn truncate_from(&self, from: u64) -> Result<(), LogBackendError> {
        self.step(Step::TruncateFrom(from))
    }

    fn purge_upto(&self, upto: u64, key: &str, value: &[u8]) -> Result<(), LogBackendError> {
        self.step(Step::PurgeUpto(upto, key.to_string(), value.to_vec()))
    }

    fn sync(&self) -> Result<(), LogBackendError> {
        let mut disk = self.writable()?;
        let disk = &mut *disk;
        for step in disk.unsynced.drain(..) {
            disk.synced.apply(&step);
        }
        Ok(())
    }

    fn range(&self, from: u64, to: u64) -> Result<Vec<(u64, Vec<u8>)>, LogBackendError> {
        if from >= to {
            return Ok(Vec::new());
        }
        let disk = self.disk.lock();
        Ok(disk
            .current
            .entries
            .range(from..to)
            .map(|(i, e)| (*i, e.clone()))
            .collect())
    }

    fn last(&self) -> Result<Option<(u64, Vec<u8>)>, LogBackendError> {
        Ok(self
            .disk
            .lock()
            .current
            .entries
            .last_key_value()
            .map(|(i, e)| (*i, e.clone())))
    }
}

fn encode<T: Serialize>(format: Format, value: &T) -> Result<Vec<u8>, LogBackendError> {
    Ok(pemba_codec::encode(format, value)?)
}

fn decode<T: DeserializeOwned>(format: Format, bytes: &[u8]) -> Result<T, LogBackendError> {
    Ok(pemba_codec::decode(format, bytes)?)
}

/// openraft's log storage over a [`LogBackend`]. Clones share the backend.
///
/// A vote, appended entries and a truncation are synced before the call reports them done
/// (for entries: before the flush callback), so a crash never takes back a promise Raft made.
/// The committed index and purges are not: losing them only means re-applying or keeping
/// more of the log. Over a backend that [`LogBackend::blocks`], appends, votes and truncations
/// are written and synced on the log's own thread, in order.
pub struct LogStore<B> {
    backend: Arc<B>,
    /// Where writes and syncs run, for a backend that [`LogBackend::blocks`].
    thread: Option<LogThread>,
    /// How many syncs (fsyncs, for a disk backend) this store and its clones made.
    syncs: Arc<AtomicU64>,
    /// Set by a deliberately broken build: never sync (see [`LogStore::skip_syncs`]).
    #[cfg(feature = "fault-injection")]
    skip_syncs: Arc<std::sync::atomic::AtomicBool>,
}

impl<B> Clone for LogStore<B> {
    fn clone(&self) -> Self {
        Self {
            backend: self.backend.clone(),
            thread: self.thread.clone(),
            syncs: self.syncs.clone(),
            #[cfg(feature = "fault-injection")]
            skip_syncs: self.skip_syncs.clone(),
        }
    }
}

/// How many syncs a [`LogStore`] made: with group commit, several writes share one.
#[derive(Debug, Clone, Default)]
pub struct SyncCount(Arc<AtomicU64>);

impl SyncCount {
    /// The syncs so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Switches a [`LogStore`]'s syncs off, for proving that a simulation whose crashes lose unsynced
/// steps catches it. Production builds do not have it.
#[cfg(feature = "fault-injection")]
#[derive(Clone)]
pub struct SkipSyncs(Arc<std::sync::atomic::AtomicBool>);

#[cfg(feature = "fault-injection")]
impl SkipSyncs {
    /// From now on, the store never syncs.
    pub fn engage(&self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl<B: LogBackend> LogStore<B> {
    /// A log store over `backend`, with its I/O thread if the backend blocks.
    pub fn new(backend: B) -> Result<Self, LogBackendError> {
        let thread = backend.blocks().then(LogThread::spawn).transpose()?;
        Ok(Self {
            backend: Arc::new(backend),
            thread,
            syncs: Arc::default(),
            #[cfg(feature = "fault-injection")]
            skip_syncs: Arc::default(),
        })
    }

    /// Runs `step` on the log's I/O thread (or here, for a backend that does not block) and
    /// waits for it, without blocking the async runtime.
    async fn off_runtime<T: Send + 'static>(
        &self,
        step: impl FnOnce(&Self) -> Result<T, LogBackendError> + Send + 'static,
    ) -> Result<T, LogBackendError> {
        let Some(thread) = &self.thread else {
            return step(self);
        };
        let store = self.clone();
        let (done, result) = tokio::sync::oneshot::channel();
        thread.run(move || {
            let _ = done.send(step(&store));
        })?;
        result.await.map_err(|_| LogBackendError::ThreadGone)?
    }

    /// A counter of the syncs this store (and its clones) made, readable while openraft owns it.
    pub fn sync_count(&self) -> SyncCount {
        SyncCount(self.syncs.clone())
    }

    /// The switch that makes this store (and its clones) skip every sync.
    #[cfg(feature = "fault-injection")]
    pub fn skip_syncs(&self) -> SkipSyncs {
        SkipSyncs(self.skip_syncs.clone())
    }

    /// Makes every step so far durable.
    fn sync(&self) -> Result<(), LogBackendError> {
        #[cfg(feature = "fault-injection")]
        if self.skip_syncs.load(std::sync::atomic::Ordering::SeqCst) {
            return Ok(());
        }
        self.backend.sync()?;
        self.syncs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// The backend, shared: for metadata of the node's own kept beside the log's.
    pub fn backend(&self) -> Arc<B> {
        self.backend.clone()
    }

    fn meta<T: DeserializeOwned>(
        &self,
        key: &str,
        format: Format,
    ) -> Result<Option<T>, LogBackendError> {
        self.backend
            .read_meta(key)?
            .map(|bytes| decode(format, &bytes))
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
                    .map(|(_, bytes)| decode::<Entry<TypeConfig>>(Format::LogEntry, bytes))
                    .collect()
            })
            .map_err(|e| StorageError::from(StorageIOError::<NodeId>::read_logs(&e)))
    }
}

impl<B: LogBackend> RaftLogStorage<TypeConfig> for LogStore<B> {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let last_purged_log_id: Option<LogId<NodeId>> = self
            .meta(LAST_PURGED, Format::LogId)
            .map_err(|e| StorageError::from(StorageIOError::<NodeId>::read_logs(&e)))?;
        let last = self
            .backend
            .last()
            .and_then(|last| {
                last.map(|(_, bytes)| decode::<Entry<TypeConfig>>(Format::LogEntry, &bytes))
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
        let bytes = encode(Format::Vote, vote)
            .map_err(|e| StorageError::from(StorageIOError::<NodeId>::write_vote(&e)))?;
        self.off_runtime(move |store| {
            store.backend.write_meta(VOTE, &bytes)?;
            store.sync()
        })
        .await
        .map_err(|e| StorageError::from(StorageIOError::<NodeId>::write_vote(&e)))
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        self.meta(VOTE, Format::Vote)
            .map_err(|e| StorageError::from(StorageIOError::<NodeId>::read_vote(&e)))
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<NodeId>>,
    ) -> Result<(), StorageError<NodeId>> {
        encode(Format::LogId, &committed)
            .and_then(|bytes| self.backend.write_meta(COMMITTED, &bytes))
            .map_err(|e| StorageError::from(StorageIOError::<NodeId>::write(&e)))
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        Ok(self
            .meta::<Option<LogId<NodeId>>>(COMMITTED, Format::LogId)
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
            .map(|e| Ok((e.log_id.index, encode(Format::LogEntry, &e)?)))
            .collect::<Result<Vec<_>, LogBackendError>>()
            .map_err(|e| StorageError::from(StorageIOError::<NodeId>::write_logs(&e)))?;
        // The entries are synced before the flush is reported, as openraft requires; a disk
        // log reports from its I/O thread, and openraft waits for the report, not this call.
        let store = self.clone();
        let write = move || {
            let written = store.backend.append(&encoded).and_then(|()| store.sync());
            callback.log_io_completed(written.map_err(std::io::Error::other));
        };
        match &self.thread {
            Some(thread) => thread
                .run(write)
                .map_err(|e| StorageError::from(StorageIOError::<NodeId>::write_logs(&e)))?,
            None => write(),
        }
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.off_runtime(move |store| {
            store.backend.truncate_from(log_id.index)?;
            store.sync()
        })
        .await
        .map_err(|e| StorageError::from(StorageIOError::<NodeId>::write_logs(&e)))
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        encode(Format::LogId, &log_id)
            .and_then(|bytes| self.backend.purge_upto(log_id.index, LAST_PURGED, &bytes))
            .map_err(|e| StorageError::from(StorageIOError::<NodeId>::write_logs(&e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn indexes(log: &MemoryLog) -> Vec<u64> {
        let entries = log.range(0, u64::MAX).expect("readable");
        entries.into_iter().map(|(index, _)| index).collect()
    }

    #[test]
    fn a_crash_keeps_what_was_synced_and_a_first_part_of_the_rest() {
        let log = MemoryLog::default();
        log.append(&[(1, vec![1]), (2, vec![2])]).unwrap();
        log.sync().unwrap();
        log.append(&[(3, vec![3])]).unwrap();
        log.write_meta("vote", b"v").unwrap();
        log.append(&[(4, vec![4])]).unwrap();
        assert_eq!(indexes(&log), [1, 2, 3, 4], "reads see unsynced steps");

        let mut offered = None;
        log.crash(|unsynced| {
            offered = Some(unsynced);
            1
        });
        assert_eq!(offered, Some(3));
        assert_eq!(indexes(&log), [1, 2, 3]);
        assert_eq!(log.read_meta("vote").unwrap(), None, "the vote came after");

        log.crash(|_| 0);
        assert_eq!(indexes(&log), [1, 2, 3], "what survived a crash is on disk");
    }

    #[test]
    fn a_crash_after_a_sync_loses_nothing() {
        let log = MemoryLog::default();
        log.write_meta("vote", b"v").unwrap();
        log.append(&[(1, vec![1])]).unwrap();
        log.truncate_from(1).unwrap();
        log.append(&[(1, vec![9])]).unwrap();
        log.sync().unwrap();
        log.crash(|_| 0);
        assert_eq!(log.range(0, 5).unwrap(), [(1, vec![9])]);
        assert_eq!(log.read_meta("vote").unwrap(), Some(b"v".to_vec()));
    }
}
