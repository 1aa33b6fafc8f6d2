//! The state machine: log entries applied to the datastore, one revision per entry.
//!
//! Each entry is applied with its log index as the revision. The datastore persists, in the same
//! atomic step as the entry's data, this machine's own state in its sidecar: the last applied
//! log id with the membership, the cluster id, and the outcome of every write request of the
//! last [`DEDUPLICATION_WINDOW`] of log time and of the last [`DEDUPLICATION_ENTRIES`] log
//! entries, whichever keeps it longer (so a retried request is answered from its record instead
//! of being applied twice, even if the log's time jumped). A snapshot is the datastore's whole
//! image, sidecar included, so a replica that installs one de-duplicates exactly as the others do.
//!
//! Applying an entry does not fsync: the entry is durable in the log, and a power loss that takes
//! back the newest applied steps (the sidecar's last applied id with them) only makes openraft
//! apply those entries again, to the same effect. The log forgets entries only once a snapshot
//! covers them, and building a snapshot first makes every applied step durable.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use openraft::storage::RaftStateMachine;
use openraft::{
    Entry, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, Snapshot, SnapshotMeta,
    StorageError, StorageIOError, StoredMembership,
};
use parking_lot::Mutex;
use pemba_codec::{decode, encode, CodecError, Format};
use pemba_store::{
    Datastore, ImageError, PersistenceError, SidecarUpdate, StateDigest, WriteCommand, WriteError,
    WriteRefusal,
};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::request::{
    EntryOutcomes, Proposal, Request, WriteOutcome, Written, FIRST_LOG_FORMAT, NEWEST_LOG_FORMAT,
};
use crate::{Compute, NodeId, SnapshotBytes, TypeConfig};

/// How long (in log time) a write request's outcome is remembered for de-duplication, at least.
pub const DEDUPLICATION_WINDOW: Duration = Duration::from_secs(120);
/// How many log entries a write request's outcome is remembered for, at least: a retry within
/// that many entries is de-duplicated whatever the log's time did meanwhile.
pub const DEDUPLICATION_ENTRIES: u64 = 100_000;

const APPLIED_KEY: &[u8] = b"raft/applied";
const CLUSTER_ID_KEY: &[u8] = b"raft/cluster-id";
/// The cluster's log format (4 bytes, big-endian), once raised from [`FIRST_LOG_FORMAT`].
const LOG_FORMAT_KEY: &[u8] = b"raft/log-format";
/// Request records, by request id.
const REQUEST_PREFIX: &[u8] = b"raft/request-at/";

type Membership = StoredMembership<NodeId, openraft::BasicNode>;

/// Why the state machine could not apply an entry, build a snapshot or install one. Each
/// stops the node's Raft: the replica must not go on from a state it could not make durable.
#[derive(Debug, Error)]
pub enum StateMachineError {
    /// The datastore's storage failed.
    #[error("state machine storage: {0}")]
    Persistence(#[from] PersistenceError),
    /// A record of the state machine's own could not be read or written.
    #[error("state machine data: {0}")]
    Codec(#[from] CodecError),
    /// The blocking thread building or installing a snapshot stopped before its end.
    #[error("the thread building or installing a snapshot stopped: {0}")]
    Thread(tokio::task::JoinError),
    /// A snapshot could not be received: it is unreadable, or storing it failed.
    #[error("snapshot: {0}")]
    Image(#[from] ImageError),
    /// The datastore refused an entry that carries no write (its revision is not newer than
    /// the head): the log and the datastore disagree.
    #[error("log entry {index} could not be applied: {source}")]
    Unapplicable {
        /// The entry's index.
        index: u64,
        /// Why the datastore refused it.
        source: WriteError,
    },
    /// The datastore stored an entry's write without deciding its outcome (it decides it before
    /// it stores anything: this is a bug, and stops the node rather than the process).
    #[error("log entry {index} was applied without an outcome")]
    NoOutcome {
        /// The entry's index.
        index: u64,
    },
    /// Stored state is not laid out as any Pemba build writes it.
    #[error("state machine storage: {what} is corrupt: {detail}")]
    Corrupt {
        /// What is corrupt.
        what: &'static str,
        /// How.
        detail: &'static str,
    },
    /// The log (an entry, or a snapshot's state) is of a newer format than this build reads:
    /// the node stops rather than misread it. Upgrade it to a build that reads `version`.
    #[error("log entry {index} is of log format {version}, newer than this build reads ({newest}): upgrade this node")]
    FormatTooNew {
        /// The entry's index (a snapshot's: its last entry's).
        index: u64,
        /// The format it is of.
        version: u32,
        /// The newest format this build reads.
        newest: u32,
    },
    /// A snapshot's image does not hold the state its metadata names.
    #[error("snapshot {snapshot_id} holds state up to {holds:?}, not {names:?}")]
    SnapshotMismatch {
        /// The snapshot's id.
        snapshot_id: String,
        /// The last applied entry its image records.
        holds: Option<LogId<NodeId>>,
        /// The last entry its metadata names.
        names: Option<LogId<NodeId>>,
    },
}

/// A replica whose state at a revision differs from the leader's: it applied the same log to a
/// different result (a bug, a corrupted disk, a build that applies differently).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("at revision {revision} this replica's state digest is {ours}, the leader's {leaders} (compared at log entry {entry})")]
pub struct Divergence {
    /// The revision compared.
    pub revision: u64,
    /// This replica's digest there.
    pub ours: StateDigest,
    /// The leader's.
    pub leaders: StateDigest,
    /// The checkpoint entry that carried the leader's digest.
    pub entry: u64,
}

/// How the leader's digests compared with this replica's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DigestChecks {
    /// Equal digests.
    pub matched: u64,
    /// Digests of revisions this replica no longer remembered (it installed a snapshot after
    /// them, or applied more than `pemba_store::REMEMBERED_DIGESTS` revisions since).
    pub skipped: u64,
    /// Different digests.
    pub mismatched: u64,
}

/// The last applied entry and the membership in force, as persisted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct AppliedRecord {
    last_applied: Option<LogId<NodeId>>,
    membership: Membership,
    /// The newest write time applied: write times never go backwards, even across leaders
    /// whose clocks disagree.
    last_timestamp: Option<SystemTime>,
}

/// A remembered write request with the log position it was applied at.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct RequestRecord {
    timestamp: SystemTime,
    index: u64,
    outcome: WriteOutcome,
}

/// This machine's state beside the datastore, rebuilt from the sidecar.
#[derive(Debug, Default)]
struct Applied {
    record: AppliedRecord,
    cluster_id: Option<String>,
    /// The cluster's log format.
    log_format: u32,
    requests: BTreeMap<String, WriteOutcome>,
    /// Request ids with the log position and time they were applied at, oldest first, for
    /// expiry.
    request_times: VecDeque<(u64, SystemTime, String)>,
}

impl Applied {
    fn from_sidecar(sidecar: &BTreeMap<Vec<u8>, Vec<u8>>) -> Result<Self, StateMachineError> {
        let mut applied =
            Applied {
                record: sidecar
                    .get(APPLIED_KEY)
                    .map(|bytes| decode(Format::AppliedRecord, bytes))
                    .transpose()?
                    .unwrap_or_default(),
                cluster_id: sidecar
                    .get(CLUSTER_ID_KEY)
                    .map(|bytes| String::from_utf8_lossy(bytes).into_owned()),
                log_format: match sidecar.get(LOG_FORMAT_KEY) {
                    None => FIRST_LOG_FORMAT,
                    Some(bytes) => {
                        let bytes: [u8; 4] = bytes.as_slice().try_into().map_err(|_| {
                            StateMachineError::Corrupt {
                                what: "the log format record",
                                detail: "is not 4 bytes long",
                            }
                        })?;
                        u32::from_be_bytes(bytes)
                    }
                },
                ..Applied::default()
            };
        let mut times = Vec::new();
        for (key, value) in sidecar.range(REQUEST_PREFIX.to_vec()..) {
            let Some(id) = key.strip_prefix(REQUEST_PREFIX) else {
                break;
            };
            let id = String::from_utf8_lossy(id).into_owned();
            let record: RequestRecord = decode(Format::RequestRecord, value)?;
            times.push((record.index, record.timestamp, id.clone()));
            applied.requests.insert(id, record.outcome);
        }
        times.sort();
        applied.request_times = times.into();
        Ok(applied)
    }
}

fn request_key(id: &str) -> Vec<u8> {
    [REQUEST_PREFIX, id.as_bytes()].concat()
}

/// How many snapshots this replica built and installed since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SnapshotCounts {
    /// Snapshots built from this replica's state.
    pub built: u64,
    /// Snapshots received from a leader and installed.
    pub installed: u64,
}

struct StoredSnapshot {
    meta: SnapshotMeta<NodeId, openraft::BasicNode>,
    data: SnapshotBytes,
}

struct Shared {
    datastore: Arc<Datastore>,
    applied: Mutex<Applied>,
    /// The cluster's id once applied; readable without a lock (it never changes once set), so
    /// readers woken by a new head never wait on `applied`, which is held while heads publish.
    cluster_id: OnceLock<String>,
    /// The cluster's log format as applied; readable without a lock.
    log_format: AtomicU32,
    /// The newest log format this replica reads.
    newest_format: u32,
    current_snapshot: Mutex<Option<StoredSnapshot>>,
    counts: Mutex<SnapshotCounts>,
    digests: Mutex<DigestChecks>,
    /// The first divergence found; readable without a lock (every request checks it).
    divergence: OnceLock<Divergence>,
}

/// openraft's state machine over a datastore. Clones share it (the snapshot builder is one).
#[derive(Clone)]
pub struct StateMachine {
    shared: Arc<Shared>,
    /// Where building and installing snapshots (seconds of CPU and disk at millions of
    /// relationships) runs.
    compute: Compute,
}

impl StateMachine {
    /// A state machine over `datastore`, resuming from the state its sidecar recorded, that
    /// reads every log format this build knows.
    pub fn new(datastore: Arc<Datastore>) -> Result<Self, StateMachineError> {
        Self::reading_formats_up_to(datastore, NEWEST_LOG_FORMAT)
    }

    /// A state machine that reads log formats up to `newest` only, as an older build would (for
    /// upgrade tests): an entry raising the format beyond it stops the node.
    pub fn reading_formats_up_to(
        datastore: Arc<Datastore>,
        newest: u32,
    ) -> Result<Self, StateMachineError> {
        let applied = Applied::from_sidecar(&datastore.sidecar())?;
        let last_applied = applied.record.last_applied.map_or(0, |l| l.index);
        readable(applied.log_format, newest, last_applied)?;
        let cluster_id = OnceLock::new();
        if let Some(id) = &applied.cluster_id {
            let _ = cluster_id.set(id.clone());
        }
        Ok(Self {
            shared: Arc::new(Shared {
                datastore,
                cluster_id,
                log_format: AtomicU32::new(applied.log_format),
                newest_format: newest,
                applied: Mutex::new(applied),
                current_snapshot: Mutex::new(None),
                counts: Mutex::new(SnapshotCounts::default()),
                digests: Mutex::new(DigestChecks::default()),
                divergence: OnceLock::new(),
            }),
            compute: Compute::Inline,
        })
    }

    /// Builds and installs snapshots where `compute` says (on the calling task unless told:
    /// off the async workers for a datastore on disk).
    pub fn building_snapshots(self, compute: Compute) -> Self {
        StateMachine { compute, ..self }
    }

    /// Runs `work` where snapshots are built and installed.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(StateMachine) -> Result<T, StateMachineError> + Send + 'static,
    ) -> Result<T, StateMachineError> {
        let this = self.clone();
        self.compute
            .run(move || work(this))
            .await
            .map_err(StateMachineError::Thread)?
    }

    /// The cluster's log format, as applied here.
    pub fn log_format(&self) -> u32 {
        self.shared.log_format.load(Ordering::Acquire)
    }

    /// The newest log format this replica reads.
    pub fn newest_format(&self) -> u32 {
        self.shared.newest_format
    }

    /// The cluster's id, once the entry naming it is applied.
    pub fn cluster_id(&self) -> Option<String> {
        self.shared.cluster_id.get().cloned()
    }

    /// How many snapshots this replica built and installed since it started.
    pub fn snapshot_counts(&self) -> SnapshotCounts {
        *self.shared.counts.lock()
    }

    /// How the leader's digests compared with this replica's.
    pub fn digest_checks(&self) -> DigestChecks {
        *self.shared.digests.lock()
    }

    /// The first difference between the leader's digest and this replica's, kept until the
    /// process ends: from then on the replica must not serve.
    pub fn divergence(&self) -> Option<Divergence> {
        self.shared.divergence.get().copied()
    }

    /// Compares the leader's `digest` of `revision` (carried by entry `index`) with this
    /// replica's own, if it still remembers it.
    fn compare_digest(&self, index: u64, revision: u64, digest: StateDigest) {
        let ours = self.shared.datastore.digest_at(revision);
        let mut checks = self.shared.digests.lock();
        match ours {
            None => checks.skipped += 1,
            Some(ours) if ours == digest => checks.matched += 1,
            Some(ours) => {
                checks.mismatched += 1;
                let divergence = Divergence {
                    revision,
                    ours,
                    leaders: digest,
                    entry: index,
                };
                tracing::error!(%divergence, "this replica's state differs from the leader's: it stops serving and reports not ready; replace it (remove it, add a node with an empty data directory) after saving its data directory for diagnosis");
                let _ = self.shared.divergence.set(divergence);
            }
        }
    }

    /// Applies one entry durably; returns the outcome of each of its writes.
    fn apply_entry(&self, entry: Entry<TypeConfig>) -> Result<EntryOutcomes, StateMachineError> {
        let mut applied = self.shared.applied.lock();
        let index = entry.log_id.index;
        let mut record = AppliedRecord {
            last_applied: Some(entry.log_id),
            ..applied.record.clone()
        };
        let mut sidecar = Vec::new();
        let mut writes = Vec::new();
        let mut raised = None;
        match entry.payload {
            EntryPayload::Blank => {}
            EntryPayload::Membership(membership) => {
                record.membership = StoredMembership::new(Some(entry.log_id), membership);
            }
            EntryPayload::Normal(Request::InitCluster { cluster_id }) => {
                if applied.cluster_id.is_none() {
                    sidecar.push(SidecarUpdate {
                        key: CLUSTER_ID_KEY.to_vec(),
                        value: Some(cluster_id.clone().into_bytes()),
                    });
                    let _ = self.shared.cluster_id.set(cluster_id.clone());
                    applied.cluster_id = Some(cluster_id);
                }
            }
            EntryPayload::Normal(Request::Checkpoint { revision, digest }) => {
                self.compare_digest(index, revision, digest);
            }
            EntryPayload::Normal(Request::RaiseFormat { version }) => {
                readable(version, self.shared.newest_format, index)?;
                if version > applied.log_format {
                    sidecar.push(SidecarUpdate {
                        key: LOG_FORMAT_KEY.to_vec(),
                        value: Some(version.to_be_bytes().to_vec()),
                    });
                    raised = Some(version);
                }
            }
            EntryPayload::Normal(Request::Tick { timestamp }) => {
                advance_clock(&mut record, timestamp);
            }
            EntryPayload::Normal(Request::Write {
                request_id,
                timestamp,
                command,
            }) => {
                advance_clock(&mut record, timestamp);
                writes.push(Proposal {
                    request_id,
                    command: *command,
                });
            }
            EntryPayload::Normal(Request::Writes {
                timestamp,
                writes: proposed,
            }) => {
                advance_clock(&mut record, timestamp);
                writes = proposed;
            }
        }
        let timestamp = record.last_timestamp.unwrap_or(SystemTime::UNIX_EPOCH);
        forget_expired_requests(&mut applied, index, timestamp, &mut sidecar);
        sidecar.push(SidecarUpdate {
            key: APPLIED_KEY.to_vec(),
            value: Some(encode(Format::AppliedRecord, &record)?),
        });
        let outcomes = self.apply_writes(&mut applied, index, timestamp, writes, sidecar)?;
        applied.record = record;
        if let Some(version) = raised {
            applied.log_format = version;
            self.shared.log_format.store(version, Ordering::Release);
        }
        Ok(outcomes)
    }

    /// Applies an entry's `writes` at revision `index` with the entry's `sidecar` updates,
    /// remembering each new request's outcome; a request already applied (in an earlier entry
    /// or earlier in this one) is answered from its record instead.
    fn apply_writes(
        &self,
        applied: &mut Applied,
        index: u64,
        timestamp: SystemTime,
        writes: Vec<Proposal>,
        mut sidecar: Vec<SidecarUpdate>,
    ) -> Result<EntryOutcomes, StateMachineError> {
        // For each write: its remembered outcome, or its place among the commands applied now
        // (a request queued twice in one entry is applied once, at its first place).
        let mut slots = Vec::with_capacity(writes.len());
        let mut fresh: Vec<Proposal> = Vec::new();
        let mut places: HashMap<String, usize> = HashMap::new();
        for write in writes {
            if let Some(outcome) = applied.requests.get(&write.request_id) {
                slots.push(Slot::Remembered(outcome.clone()));
            } else if let Some(at) = places.get(&write.request_id) {
                slots.push(Slot::Applied(*at));
            } else {
                places.insert(write.request_id.clone(), fresh.len());
                slots.push(Slot::Applied(fresh.len()));
                fresh.push(write);
            }
        }
        let commands: Vec<&WriteCommand> = fresh.iter().map(|f| &f.command).collect();
        let mut answers = Vec::new();
        let result = self
            .shared
            .datastore
            .apply_entry(index, timestamp, &commands, |results| {
                answers = results.iter().map(answer).collect();
                for (write, outcome) in fresh.iter().zip(&answers) {
                    let remembered = RequestRecord {
                        timestamp,
                        index,
                        outcome: outcome.clone(),
                    };
                    sidecar.push(SidecarUpdate {
                        key: request_key(&write.request_id),
                        value: Some(encode(Format::RequestRecord, &remembered)?),
                    });
                }
                Ok(sidecar)
            });
        match result {
            Ok(_) => {}
            Err(WriteError::Persistence(e)) => return Err(e.into()),
            Err(source) => return Err(StateMachineError::Unapplicable { index, source }),
        }
        if answers.len() != fresh.len() {
            return Err(StateMachineError::NoOutcome { index });
        }
        for (write, outcome) in fresh.iter().zip(&answers) {
            let id = write.request_id.clone();
            applied
                .request_times
                .push_back((index, timestamp, id.clone()));
            applied.requests.insert(id, outcome.clone());
        }
        Ok(slots
            .into_iter()
            .map(|slot| match slot {
                Slot::Remembered(outcome) => outcome,
                Slot::Applied(at) => answers[at].clone(),
            })
            .collect())
    }

    fn install_image(
        &self,
        meta: &SnapshotMeta<NodeId, openraft::BasicNode>,
        data: SnapshotBytes,
    ) -> Result<(), StateMachineError> {
        // Locked in the order applying an entry locks them: the record, then the datastore.
        let mut applied = self.shared.applied.lock();
        let reader = std::io::BufReader::new(data.reader());
        let install = self.shared.datastore.receive(reader)?;
        let restored = Applied::from_sidecar(install.sidecar())?;
        let snapshot_index = meta.last_log_id.map_or(0, |l| l.index);
        readable(
            restored.log_format,
            self.shared.newest_format,
            snapshot_index,
        )?;
        if restored.record.last_applied != meta.last_log_id {
            return Err(StateMachineError::SnapshotMismatch {
                snapshot_id: meta.snapshot_id.clone(),
                holds: restored.record.last_applied,
                names: meta.last_log_id,
            });
        }
        install.commit()?;
        if let Some(id) = &restored.cluster_id {
            let _ = self.shared.cluster_id.set(id.clone());
        }
        self.shared
            .log_format
            .store(restored.log_format, Ordering::Release);
        *applied = restored;
        *self.shared.current_snapshot.lock() = Some(StoredSnapshot {
            meta: meta.clone(),
            data,
        });
        self.shared.counts.lock().installed += 1;
        Ok(())
    }

    fn build(&self) -> Result<Snapshot<TypeConfig>, StateMachineError> {
        // The image and the applied record in its sidecar are consistent: the datastore
        // publishes both in one step, and fixes the image before it lets a writer on.
        let image = self.shared.datastore.image(APPLIED_KEY)?;
        // Applied entries are stored without a sync of their own (the log holds them durably);
        // once this snapshot exists, the log may forget them, so their effects must be durable.
        self.shared.datastore.sync()?;
        let record: AppliedRecord = image
            .sidecar_value
            .map(|bytes| decode(Format::AppliedRecord, &bytes))
            .transpose()?
            .unwrap_or_default();
        let mut data = SnapshotBytes::default();
        image.view.write_to(&mut data)?;
        let mut counts = self.shared.counts.lock();
        counts.built += 1;
        let meta = SnapshotMeta {
            last_log_id: record.last_applied,
            last_membership: record.membership,
            snapshot_id: format!(
                "{}-{}",
                record.last_applied.map_or(0, |id| id.index),
                counts.built
            ),
        };
        drop(counts);
        let snapshot = Box::new(data.reader());
        *self.shared.current_snapshot.lock() = Some(StoredSnapshot {
            meta: meta.clone(),
            data,
        });
        Ok(Snapshot { meta, snapshot })
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        self.run(|this| this.build())
            .await
            .map_err(|e| StorageError::from(StorageIOError::<NodeId>::write_snapshot(None, &e)))
    }
}

/// Refuses log format `version` (met at log entry `index`) if it is newer than `newest`, the
/// newest this replica reads.
fn readable(version: u32, newest: u32, index: u64) -> Result<(), StateMachineError> {
    if version > newest {
        return Err(StateMachineError::FormatTooNew {
            index,
            version,
            newest,
        });
    }
    Ok(())
}

/// Where a write's outcome comes from when its entry is applied.
enum Slot {
    /// Its request was applied before: its recorded outcome.
    Remembered(WriteOutcome),
    /// The outcome of the entry's `n`th command applied now.
    Applied(usize),
}

/// A datastore outcome as the log answers it.
fn answer(result: &pemba_store::Outcome) -> WriteOutcome {
    match result {
        Ok(r) => Ok(Written {
            revision: r.revision,
            count: r.count,
            partial: r.partial,
        }),
        Err(e) => Err(WriteRefusal::from(e)),
    }
}

/// Moves the record's clock to `timestamp`, never backwards: write times never go back, even
/// across leaders whose clocks disagree.
fn advance_clock(record: &mut AppliedRecord, timestamp: SystemTime) {
    record.last_timestamp = Some(
        record
            .last_timestamp
            .map_or(timestamp, |t| t.max(timestamp)),
    );
}

/// Forgets requests that left the de-duplication window in both log time and position, as of
/// entry `index` at `timestamp`, and deletes their records.
fn forget_expired_requests(
    applied: &mut Applied,
    index: u64,
    timestamp: SystemTime,
    sidecar: &mut Vec<SidecarUpdate>,
) {
    let cutoff = timestamp.checked_sub(DEDUPLICATION_WINDOW);
    while let Some((at, time, _)) = applied.request_times.front() {
        let recent =
            cutoff.is_none_or(|cutoff| *time >= cutoff) || at + DEDUPLICATION_ENTRIES > index;
        if recent {
            break;
        }
        let Some((_, _, id)) = applied.request_times.pop_front() else {
            break;
        };
        sidecar.push(SidecarUpdate {
            key: request_key(&id),
            value: None,
        });
        applied.requests.remove(&id);
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, Membership), StorageError<NodeId>> {
        let applied = self.shared.applied.lock();
        Ok((
            applied.record.last_applied,
            applied.record.membership.clone(),
        ))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<EntryOutcomes>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut outcomes = Vec::new();
        for entry in entries {
            let log_id = entry.log_id;
            match self.apply_entry(entry) {
                Ok(outcome) => outcomes.push(outcome),
                Err(e) => {
                    return Err(StorageError::from(StorageIOError::<NodeId>::apply(
                        log_id, &e,
                    )))
                }
            }
        }
        Ok(outcomes)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<SnapshotBytes>, StorageError<NodeId>> {
        Ok(Box::new(SnapshotBytes::default()))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, openraft::BasicNode>,
        snapshot: Box<SnapshotBytes>,
    ) -> Result<(), StorageError<NodeId>> {
        let owned = meta.clone();
        let installed = self.run(move |this| this.install_image(&owned, *snapshot));
        installed.await.map_err(|e| {
            StorageIOError::<NodeId>::write_snapshot(Some(meta.signature()), &e).into()
        })
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        Ok(self
            .shared
            .current_snapshot
            .lock()
            .as_ref()
            .map(|stored| Snapshot {
                meta: stored.meta.clone(),
                snapshot: Box::new(stored.data.reader()),
            }))
    }
}

/// Golden fixtures of the state machine's own records (see `pemba_codec::golden`).
#[cfg(test)]
mod golden_tests {
    use std::collections::{BTreeMap, BTreeSet};

    use openraft::{CommittedLeaderId, Membership};
    use pemba_codec::golden;
    use pemba_store::RefusalKind;

    use super::*;

    fn check<T: Serialize + serde::de::DeserializeOwned + std::fmt::Debug>(
        name: &str,
        format: Format,
        value: &T,
    ) {
        golden::assert_fixture(env!("CARGO_MANIFEST_DIR"), name, format, value);
    }

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::new(seconds, 5)
    }

    #[test]
    fn applied_record() {
        let log_id = LogId::new(CommittedLeaderId::new(2, 3), 17);
        let nodes: BTreeMap<NodeId, openraft::BasicNode> = [1, 2, 3]
            .map(|id| (id, openraft::BasicNode::new(format!("node-{id}:50061"))))
            .into();
        let membership = Membership::new(vec![BTreeSet::from([1, 2, 3])], nodes);
        let record = AppliedRecord {
            last_applied: Some(log_id),
            membership: StoredMembership::new(
                Some(LogId::new(CommittedLeaderId::new(1, 1), 3)),
                membership,
            ),
            last_timestamp: Some(at(1_700_000_000)),
        };
        check("applied_record", Format::AppliedRecord, &record);
        check(
            "applied_record_empty",
            Format::AppliedRecord,
            &AppliedRecord::default(),
        );
    }

    #[test]
    fn request_records() {
        let written = RequestRecord {
            timestamp: at(1_700_000_001),
            index: 18,
            outcome: Ok(Written {
                revision: 18,
                count: 2,
                partial: true,
            }),
        };
        check("request_record_written", Format::RequestRecord, &written);
        let refused = RequestRecord {
            timestamp: at(1_700_000_002),
            index: 19,
            outcome: Err(WriteRefusal {
                kind: RefusalKind::AlreadyExists,
                message: "could not CREATE relationship `document:1#viewer@user:a`".into(),
            }),
        };
        check("request_record_refused", Format::RequestRecord, &refused);
    }
}
