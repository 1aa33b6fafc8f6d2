//! The datastore: relationships and schemas by revision, writes applied atomically and made
//! durable before they are visible, and consistent snapshots for reads.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::{Mutex, MutexGuard, RwLock, RwLockReadGuard};
use pemba_engine::{ClosureCache, DirectRelationships, RelationshipSnapshot, SnapshotError};
use pemba_schema::CompiledSchema;
use pemba_types::{ObjectRef, Relationship, Revision, SubjectRef};
use thiserror::Error;
use tokio::sync::watch;

use crate::command::{WriteCommand, WriteError, WriteResult};
use crate::digest::{Digests, StateDigest};
use crate::filter::RelationshipFilter;
use crate::index::{key_of, Change, ReadAt, RelationshipIndex, RelationshipKey, Version};
use crate::persistence::{
    AppliedWrite, Collected, Durability, Persistence, PersistenceError, Recovered, SidecarUpdate,
};
use crate::plan::{plan, Plan, EMPTY_SCHEMA};

mod install;

pub use install::Install;

/// A schema as written and as compiled.
#[derive(Debug)]
pub struct SchemaVersion {
    pub text: String,
    pub compiled: CompiledSchema,
}

/// The changes one write made, with its revision.
pub type ChangeBatch = (Revision, Arc<Vec<Change>>);

/// One command's outcome in an applied entry.
pub type Outcome = Result<WriteResult, WriteError>;

/// Why a read cannot be served at the revision asked for.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ReadError {
    #[error("revision {revision} is older than the oldest revision kept ({horizon}); retry with a newer ZedToken or full consistency")]
    RevisionTooOld {
        revision: Revision,
        horizon: Revision,
    },
    #[error("revision {revision} is newer than this datastore's head ({head})")]
    RevisionNotYetAvailable { revision: Revision, head: Revision },
}

struct State {
    index: RelationshipIndex,
    head: Revision,
    horizon: Revision,
    schemas: BTreeMap<Revision, Arc<SchemaVersion>>,
    /// Writes newer than `horizon`: their time and changes (for Watch and garbage collection).
    writes: BTreeMap<Revision, (SystemTime, Arc<Vec<Change>>)>,
    /// The revisions from `horizon` on at which time advanced, with their times: a revision's
    /// time is that of the newest entry at or before it (the Unix epoch before any). Reads at a
    /// revision judge expirations at its time, so every replica answers a revision alike.
    clock: BTreeMap<Revision, SystemTime>,
    /// The layer above's key-values, durable with each write (see [`SidecarUpdate`]).
    sidecar: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Where the check path's flattened subject sets stay valid (see [`Epochs`]).
    epochs: Epochs,
    /// Flattened subject sets of the newest epoch; a state installed whole starts a new cache.
    closures: Arc<ClosureCache>,
    /// The running digest, and those of the newest revisions (see [`crate::digest`]).
    digests: Digests,
}

/// The revisions that start a new epoch of flattened subject sets: those that changed a
/// relationship with a subject set, or the schema. Known exactly from `tracked_since` (the head
/// this state was built at) on; reads at older revisions have no epoch. (Reads get no epoch
/// either while a subject set with an expiration is kept: its reach changes with time alone.)
#[derive(Debug, Default)]
struct Epochs {
    tracked_since: Revision,
    /// Ascending, all after `tracked_since`.
    starts: Vec<Revision>,
}

impl Epochs {
    fn starting_at(head: Revision) -> Epochs {
        Epochs {
            tracked_since: head,
            starts: Vec::new(),
        }
    }

    /// The epoch of revision `at`: its first revision.
    fn of(&self, at: Revision) -> Option<Revision> {
        if at < self.tracked_since {
            return None;
        }
        let before = self.starts.partition_point(|start| *start <= at);
        Some(
            before
                .checked_sub(1)
                .map_or(self.tracked_since, |i| self.starts[i]),
        )
    }

    /// Forgets epochs that start before `horizon` but the one `horizon` is in.
    fn collect_garbage(&mut self, horizon: Revision) {
        if let Some(epoch) = self.of(horizon) {
            self.starts.retain(|start| *start > epoch);
            self.tracked_since = epoch;
        }
    }
}

/// True if a write of `changes` under `schema` (or of a new schema) starts a new epoch of
/// flattened subject sets: a closure only follows subject sets out of usersets that are
/// themselves subject sets (`group#member` when a relation admits `group#member`), so only a
/// change there can change one.
fn starts_epoch(changes: &[Change], schema: Option<&CompiledSchema>, schema_changed: bool) -> bool {
    schema_changed
        || changes.iter().any(|change| {
            let r = change.relationship();
            r.subject.relation.is_some()
                && schema.is_none_or(|s| s.admits_subject_set(&r.resource.object_type, &r.relation))
        })
}

impl State {
    fn from_image(image: Recovered) -> Result<State, PersistenceError> {
        let mut builder = StateBuilder::default();
        for versions in image.versions {
            builder.add(versions);
        }
        for record in image.writes {
            builder.add_write(record);
        }
        builder.finish(image.head, image.horizon, image.schemas, image.sidecar)
    }

    /// This state as an image, with `versions` as its version lists.
    fn image(&self, versions: Vec<Vec<Version>>) -> Recovered {
        Recovered {
            head: self.head,
            horizon: self.horizon,
            versions,
            schemas: self
                .schemas
                .iter()
                .map(|(revision, schema)| (*revision, schema.text.clone()))
                .collect(),
            writes: self.write_records(),
            sidecar: self.sidecar.clone(),
        }
    }

    /// The log of writes as records (without version lists or sidecar updates), oldest first:
    /// every revision that wrote or advanced the clock.
    fn write_records(&self) -> Vec<AppliedWrite> {
        let recorded: BTreeSet<Revision> = self
            .writes
            .keys()
            .chain(self.clock.keys())
            .copied()
            .collect();
        recorded
            .into_iter()
            .map(|revision| {
                let write = self.writes.get(&revision);
                AppliedWrite {
                    revision,
                    timestamp: self.time_at(revision),
                    schema: self.schemas.get(&revision).map(|s| s.text.clone()),
                    changes: write.map(|(_, c)| c.as_ref().clone()).unwrap_or_default(),
                    versions: Vec::new(),
                    is_write: write.is_some(),
                    advances_clock: self.clock.contains_key(&revision),
                    sidecar: Vec::new(),
                }
            })
            .collect()
    }
}

/// Builds a [`State`] from an image piece by piece (version lists first, then the log of
/// writes), so that the image need not be in memory beside the state built from it.
#[derive(Default)]
struct StateBuilder {
    index: RelationshipIndex,
    writes: BTreeMap<Revision, (SystemTime, Arc<Vec<Change>>)>,
    clock: BTreeMap<Revision, SystemTime>,
}

impl StateBuilder {
    /// Adds one key's version list (an empty one adds nothing).
    fn add(&mut self, versions: Vec<Version>) {
        if let Some(first) = versions.first() {
            let key = key_of(&first.relationship);
            self.index.install(&[(key, versions)]);
        }
    }

    /// Adds the next record of the log of writes (oldest first), after every version list:
    /// its changes share their relationships with the index.
    fn add_write(&mut self, record: AppliedWrite) {
        if self
            .clock
            .values()
            .next_back()
            .is_none_or(|t| *t < record.timestamp)
        {
            self.clock.insert(record.revision, record.timestamp);
        }
        if record.is_write {
            let changes = record
                .changes
                .into_iter()
                .map(|change| self.index.share(change))
                .collect();
            self.writes
                .insert(record.revision, (record.timestamp, Arc::new(changes)));
        }
    }

    /// The state at `head`, history from `horizon`, with `schemas` (by the revision that wrote
    /// them, oldest first) and `sidecar`, over what was added.
    fn finish(
        self,
        head: Revision,
        horizon: Revision,
        schemas: Vec<(Revision, String)>,
        sidecar: BTreeMap<Vec<u8>, Vec<u8>>,
    ) -> Result<State, PersistenceError> {
        let mut compiled_schemas = BTreeMap::new();
        for (revision, text) in schemas {
            let compiled = pemba_schema::compile("schema", &text).map_err(|source| {
                PersistenceError::StoredSchema {
                    revision,
                    source: Box::new(source),
                }
            })?;
            compiled_schemas.insert(revision, Arc::new(SchemaVersion { text, compiled }));
        }
        let mut state = State {
            index: self.index,
            head,
            horizon,
            schemas: compiled_schemas,
            writes: self.writes,
            clock: self.clock,
            sidecar,
            epochs: Epochs::starting_at(head),
            closures: Arc::default(),
            digests: Digests::default(),
        };
        let time = state.time_at(state.head);
        state.digests = Digests::of_state(state.index.version_lists(), time);
        let schema = state.schema_at(state.head);
        state
            .digests
            .set_schema(schema.as_ref().map(|s| s.text.as_str()));
        state.digests.record(state.head);
        Ok(state)
    }
}

impl State {
    /// Installs version lists applied at a revision whose time is `time`, keeping the digest.
    fn install_versions(&mut self, versions: &[(RelationshipKey, Vec<Version>)], time: SystemTime) {
        self.digests.advance_time(time);
        for (key, new) in versions {
            self.digests.replace(self.index.versions_of(key), new, time);
        }
        self.index.install(versions);
    }

    /// The time of revision `at`.
    fn time_at(&self, at: Revision) -> SystemTime {
        self.clock
            .range(..=at)
            .next_back()
            .map_or(SystemTime::UNIX_EPOCH, |(_, time)| *time)
    }

    fn schema_at(&self, at: Revision) -> Option<Arc<SchemaVersion>> {
        self.schemas
            .range(..=at)
            .next_back()
            .map(|(_, s)| s.clone())
    }

    fn check_readable(&self, at: Revision) -> Result<(), ReadError> {
        if at < self.horizon && !gc_horizon_ignored() {
            return Err(ReadError::RevisionTooOld {
                revision: at,
                horizon: self.horizon,
            });
        }
        if at > self.head {
            return Err(ReadError::RevisionNotYetAvailable {
                revision: at,
                head: self.head,
            });
        }
        Ok(())
    }
}

/// A datastore's sizes and revisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatastoreStats {
    pub head: Revision,
    /// The oldest revision still readable.
    pub horizon: Revision,
    /// Relationships with at least one kept version (live or historical).
    pub keys: usize,
    /// Versions kept across all keys.
    pub versions: usize,
}

/// Told of every revision this datastore applies (not of those a snapshot installs), in order,
/// with the revision's time and its changes (none for an entry that wrote nothing). Called
/// with the writer lock held: it must be quick and must not touch the datastore.
pub type Observer = Box<dyn Fn(Revision, SystemTime, &[Change]) + Send + Sync>;

/// A multi-versioned relationship store. Cheap to share: wrap it in an `Arc`.
pub struct Datastore {
    state: Arc<RwLock<State>>,
    /// Serializes writers; held while a write is planned, persisted and published.
    persistence: Mutex<Box<dyn Persistence>>,
    head: watch::Sender<Revision>,
    observer: std::sync::OnceLock<Observer>,
    /// Set by a deliberately broken build: every write loses a key (see
    /// [`Datastore::corrupt_writes`]).
    #[cfg(feature = "fault-injection")]
    corrupt: std::sync::atomic::AtomicBool,
}

impl Datastore {
    /// Opens a datastore over `persistence`, rebuilding memory from what it recovers.
    pub fn open(mut persistence: Box<dyn Persistence>) -> Result<Datastore, PersistenceError> {
        let state = State::from_image(persistence.recover()?)?;
        let (head, _) = watch::channel(state.head);
        Ok(Datastore {
            state: Arc::new(RwLock::new(state)),
            persistence: Mutex::new(persistence),
            head,
            observer: std::sync::OnceLock::new(),
            #[cfg(feature = "fault-injection")]
            corrupt: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Everything the datastore holds, consistent at its head: relationships with their kept
    /// history, schemas, the change log with the clock, and the sidecar.
    pub fn export(&self) -> Recovered {
        let _writers = self.persistence.lock();
        let state = self.state.read();
        state.image(state.index.all_versions())
    }

    /// Makes every applied entry durable (see [`Datastore::apply_entry`]).
    pub fn sync(&self) -> Result<(), PersistenceError> {
        self.persistence.lock().sync()
    }

    /// The sidecar's key-values.
    pub fn sidecar(&self) -> BTreeMap<Vec<u8>, Vec<u8>> {
        self.state.read().sidecar.clone()
    }

    /// The newest applied revision.
    pub fn head(&self) -> Revision {
        self.state.read().head
    }

    /// The time of the newest applied revision.
    pub fn head_time(&self) -> SystemTime {
        let state = self.state.read();
        state.time_at(state.head)
    }

    /// Sizes and revisions, for metrics.
    pub fn stats(&self) -> DatastoreStats {
        let state = self.state.read();
        let (keys, versions) = state.index.sizes();
        DatastoreStats {
            head: state.head,
            horizon: state.horizon,
            keys,
            versions,
        }
    }

    /// Notified with each new head revision.
    pub fn watch_head(&self) -> watch::Receiver<Revision> {
        self.head.subscribe()
    }

    /// A consistent view at `at`.
    pub fn snapshot(&self, at: Revision) -> Result<Snapshot, ReadError> {
        let state = self.state.read();
        state.check_readable(at)?;
        Ok(Snapshot {
            state: self.state.clone(),
            at: ReadAt {
                revision: at,
                time: state.time_at(at),
            },
            schema: state.schema_at(at),
            // An expiring subject set changes reach with time alone, within an epoch.
            closures: state
                .epochs
                .of(at)
                .filter(|_| !state.index.has_expiring_subject_sets())
                .map(|epoch| (state.closures.clone(), epoch)),
        })
    }

    /// Every write after `after` up to the head, oldest first, with its changes.
    pub fn changes_after(&self, after: Revision) -> Result<Vec<ChangeBatch>, ReadError> {
        let state = self.state.read();
        state.check_readable(after)?;
        Ok(state
            .writes
            .range(after + 1..)
            .map(|(r, (_, changes))| (*r, changes.clone()))
            .collect())
    }

    /// Applies `command` at `revision` (which must be newer than the head), durably, at time
    /// `timestamp` (the revision's time; an earlier one counts as the head's time, since time
    /// never goes back). A refused command changes nothing, not even the head.
    pub fn apply(
        &self,
        revision: Revision,
        timestamp: SystemTime,
        command: &WriteCommand,
    ) -> Result<WriteResult, WriteError> {
        let persistence = self.persistence.lock();
        let outcomes = self.apply_locked(
            persistence,
            revision,
            timestamp,
            &[command],
            Origin::Direct,
            |_| Ok(Vec::new()),
        )?;
        outcomes
            .into_iter()
            .next()
            .unwrap_or_else(|| unreachable!("the plan answers each command"))
    }

    /// Advances the head to `revision` (newer than the head, or equal to it when there are no
    /// commands), applying `commands` in order, each planned against the effects of the ones
    /// before it (see [`crate::plan`]), and stores the sidecar updates that `sidecar` derives
    /// from their outcomes in the same atomic step. Returns each command's outcome, in order:
    /// the revision is consumed even when commands are refused, and a refused command changes
    /// nothing. The error is a storage failure (after which nothing changed; one of `sidecar`'s
    /// is returned as it is) or a revision that is not newer than the head.
    ///
    /// For a replicated log's entries, which are durable in the log already: the step is
    /// stored with [`Durability::Deferred`] (a crash of the process loses nothing; a power loss
    /// may take back the newest entries' effects, which the log applies again). Call
    /// [`Datastore::sync`] before the log may forget an applied entry.
    pub fn apply_entry(
        &self,
        revision: Revision,
        timestamp: SystemTime,
        commands: &[&WriteCommand],
        sidecar: impl FnOnce(&[Outcome]) -> Result<Vec<SidecarUpdate>, PersistenceError>,
    ) -> Result<Vec<Outcome>, WriteError> {
        self.apply_locked(
            self.persistence.lock(),
            revision,
            timestamp,
            commands,
            Origin::LogEntry,
            sidecar,
        )
    }

    /// [`Datastore::apply_entry`] with the writer lock already held; a [`Origin::Direct`]
    /// write that is refused returns its refusal as the error and changes nothing.
    fn apply_locked(
        &self,
        mut persistence: MutexGuard<'_, Box<dyn Persistence>>,
        revision: Revision,
        timestamp: SystemTime,
        commands: &[&WriteCommand],
        origin: Origin,
        sidecar: impl FnOnce(&[Outcome]) -> Result<Vec<SidecarUpdate>, PersistenceError>,
    ) -> Result<Vec<Outcome>, WriteError> {
        let (planned, versions, timestamp, advances_clock) = {
            let state = self.state.read();
            let head_time = state.time_at(state.head);
            let advances_clock = timestamp > head_time;
            let timestamp = timestamp.max(head_time);
            // An entry carrying no write may repeat the head revision: a replication log's first
            // entry has index 0, the revision of an empty datastore.
            let repeats_head = revision == state.head && commands.is_empty();
            if revision <= state.head && !repeats_head {
                return Err(WriteError::RevisionNotNewer {
                    revision,
                    head: state.head,
                });
            }
            let head = ReadAt {
                revision: state.head,
                time: timestamp,
            };
            let planned = plan(&state.index, head, state.schema_at(state.head), commands);
            let versions = state.index.updated_versions(revision, &planned.changes);
            (planned, versions, timestamp, advances_clock)
        };
        let Plan {
            mut outcomes,
            changes,
            schema,
        } = planned;
        if origin == Origin::Direct {
            if let Some(refused) = outcomes.iter().position(Result::is_err) {
                // The refusal, as this function's error: nothing is stored.
                return outcomes.swap_remove(refused).map(|_| Vec::new());
            }
        }
        let outcomes: Vec<Outcome> = outcomes
            .into_iter()
            .map(|outcome| {
                outcome.map(|effect| WriteResult {
                    revision,
                    count: effect.count,
                    partial: effect.partial,
                })
            })
            .collect();
        let sidecar = sidecar(&outcomes)?;
        // A revision where some command took effect is a write (for Watch), even one that
        // changed nothing but the schema.
        let is_write = outcomes.iter().any(Result::is_ok);
        // Durable before visible: readers keep reading the old head meanwhile.
        let write = AppliedWrite {
            revision,
            timestamp,
            schema: schema.as_ref().map(|s| s.text.clone()),
            is_write,
            advances_clock,
            changes,
            versions,
            sidecar,
        };
        #[cfg(feature = "fault-injection")]
        let write = self.corrupted(write);
        persistence.persist(&write, origin.durability())?;
        let mut state = self.state.write();
        state.install_versions(&write.versions, timestamp);
        state.head = revision;
        let current = state.schema_at(revision);
        let current = current.as_ref().map(|s| &s.compiled);
        if starts_epoch(&write.changes, current, schema.is_some()) {
            state.epochs.starts.push(revision);
        }
        for update in write.sidecar {
            match update.value {
                Some(value) => state.sidecar.insert(update.key, value),
                None => state.sidecar.remove(&update.key),
            };
        }
        if let Some(schema) = schema {
            state.digests.set_schema(Some(&schema.text));
            state.schemas.insert(revision, schema);
        }
        if advances_clock {
            state.clock.insert(revision, timestamp);
        }
        if write.is_write {
            state
                .writes
                .insert(revision, (timestamp, Arc::new(write.changes)));
        }
        state.digests.record(revision);
        let time = state.time_at(revision);
        drop(state);
        self.head.send_replace(revision);
        if let Some(observer) = self.observer.get() {
            let changes = changes_of(&self.state.read(), revision);
            observer(revision, time, &changes);
        }
        Ok(outcomes)
    }

    /// The digest of `revision`, if it is one of the newest [`crate::REMEMBERED_DIGESTS`] revisions
    /// this datastore applied (or the one it was opened or installed at).
    pub fn digest_at(&self, revision: Revision) -> Option<StateDigest> {
        self.state.read().digests.at(revision)
    }

    /// Every remembered revision's digest, oldest first.
    pub fn recent_digests(&self) -> Vec<(Revision, StateDigest)> {
        self.state.read().digests.recent()
    }

    /// The newest revision with a digest (the head) and its digest.
    pub fn digest(&self) -> Option<(Revision, StateDigest)> {
        self.state.read().digests.newest()
    }

    /// Sets the observer told of every revision applied from now on (once; later calls do
    /// nothing). For simulations that keep the whole history while garbage collection drops it.
    pub fn observe(&self, observer: Observer) {
        let _ = self.observer.set(observer);
    }

    /// Drops history older than `window` before `now`: reads at older revisions fail afterwards.
    /// Relationships that expired before the new horizon's time go too (no read can see them).
    pub fn collect_garbage(
        &self,
        now: SystemTime,
        window: Duration,
    ) -> Result<Revision, PersistenceError> {
        let mut persistence = self.persistence.lock();
        let cutoff = now.checked_sub(window).unwrap_or(SystemTime::UNIX_EPOCH);
        let mut state = self.state.write();
        let horizon = state
            .writes
            .iter()
            .take_while(|(_, (time, _))| *time <= cutoff)
            .map(|(revision, _)| *revision)
            .last()
            .unwrap_or(state.horizon);
        if horizon <= state.horizon {
            return Ok(state.horizon);
        }
        let horizon_time = state.time_at(horizon);
        // Every version that ended by `horizon` and after the previous collection ended in one
        // of these writes.
        let ended: Vec<Arc<Relationship>> = state
            .writes
            .range(state.horizon + 1..=horizon)
            .flat_map(|(_, (_, changes))| changes.iter())
            .map(|change| match change {
                Change::Touch(r) | Change::Delete(r) => r.clone(),
            })
            .collect();
        let versions = state.index.collect_garbage(horizon, horizon_time, ended);
        state.horizon = horizon;
        state.epochs.collect_garbage(horizon);
        state.writes = state.writes.split_off(&(horizon + 1));
        state.clock = state.clock.split_off(&horizon);
        state.clock.insert(horizon, horizon_time);
        drop(state);
        persistence.collect(&Collected { horizon, versions })?;
        Ok(horizon)
    }
}

/// A deliberately broken apply, for proving that replicas' digests catch a replica whose state
/// silently departs from the log. Production builds do not have it.
#[cfg(feature = "fault-injection")]
impl Datastore {
    /// From now on, every write that changes relationships stores and shows all but one of
    /// them, while its change log (and observers) still list them all.
    pub fn corrupt_writes(&self) {
        self.corrupt
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    fn corrupted(&self, mut write: AppliedWrite) -> AppliedWrite {
        if self.corrupt.load(std::sync::atomic::Ordering::SeqCst) {
            write.versions.pop();
        }
        write
    }
}

/// Where a write comes from, which decides what its refusal does to the head and how durable it
/// is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// A write on its own ([`Datastore::apply`]): a refusal changes nothing (the revision can be
    /// used again), and an applied write is synced before it is acknowledged.
    Direct,
    /// A replicated log's entry ([`Datastore::apply_entry`]): its revision is consumed either
    /// way, and it is stored without a sync of its own (the log holds it durably).
    LogEntry,
}

impl Origin {
    fn durability(self) -> Durability {
        match self {
            Origin::Direct => Durability::Synced,
            Origin::LogEntry => Durability::Deferred,
        }
    }
}

/// A consistent view of the datastore at one revision and that revision's time, with the
/// schema in force then. Relationships expired at its time are invisible to every read.
#[derive(Clone)]
pub struct Snapshot {
    state: Arc<RwLock<State>>,
    at: ReadAt,
    schema: Option<Arc<SchemaVersion>>,
    /// The state's closure cache and this revision's epoch in it, if it has one.
    closures: Option<(Arc<ClosureCache>, Revision)>,
}

impl Snapshot {
    pub fn revision(&self) -> Revision {
        self.at.revision
    }

    /// The schema in force at this revision, if one was ever written.
    pub fn schema(&self) -> Option<&Arc<SchemaVersion>> {
        self.schema.as_ref()
    }

    /// The compiled schema, or an empty one if none was written.
    pub fn compiled_schema(&self) -> &CompiledSchema {
        self.schema
            .as_ref()
            .map(|s| &s.compiled)
            .unwrap_or(&EMPTY_SCHEMA)
    }

    /// Up to `limit` live relationships matching `filter` (expired ones left out), in key order,
    /// after `after` when given. Fails once garbage collection has passed this revision.
    pub fn query(
        &self,
        filter: &RelationshipFilter,
        after: Option<&RelationshipKey>,
        limit: usize,
    ) -> Result<Vec<Relationship>, SnapshotError> {
        let state = self.state.read();
        still_readable(&state, self.at.revision)?;
        Ok(state.index.query(filter, self.at, after, limit))
    }
}

impl Snapshot {
    /// The snapshot with the datastore's state locked for reading until the result is dropped:
    /// a request of many small reads (a check) locks once instead of once per read. Writes wait
    /// for it, so it must not be held long, nor across an `await`.
    pub fn read(&self) -> SnapshotRead<'_> {
        SnapshotRead {
            state: self.state.read(),
            snapshot: self,
        }
    }
}

/// A [`Snapshot`] with the state read-locked; see [`Snapshot::read`].
///
/// Every read first checks that garbage collection has not passed the snapshot's revision since
/// the snapshot was taken (a snapshot reads the shared, multi-versioned state, from which
/// collection drops old versions): a collected revision fails, it never answers wrongly.
pub struct SnapshotRead<'a> {
    state: RwLockReadGuard<'a, State>,
    snapshot: &'a Snapshot,
}

#[cfg(feature = "fault-injection")]
use crate::faults::gc_horizon_ignored;

/// Without deliberate bugs, the horizon is never ignored.
#[cfg(not(feature = "fault-injection"))]
fn gc_horizon_ignored() -> bool {
    false
}

/// Whether the state still holds every version readable at `revision`.
fn still_readable(state: &State, revision: Revision) -> Result<(), SnapshotError> {
    match state.horizon <= revision || gc_horizon_ignored() {
        true => Ok(()),
        false => Err(SnapshotError::RevisionCollected {
            revision,
            horizon: state.horizon,
        }),
    }
}

impl SnapshotRead<'_> {
    fn readable(&self) -> Result<(), SnapshotError> {
        still_readable(&self.state, self.snapshot.at.revision)
    }
}

impl RelationshipSnapshot for SnapshotRead<'_> {
    fn subjects(
        &self,
        resource: &ObjectRef,
        relation: &str,
    ) -> Result<Vec<Arc<Relationship>>, SnapshotError> {
        self.readable()?;
        Ok(self
            .state
            .index
            .subjects(resource, relation, self.snapshot.at))
    }

    fn resources_of(&self, subject: &ObjectRef) -> Result<Vec<Arc<Relationship>>, SnapshotError> {
        self.readable()?;
        Ok(self
            .state
            .index
            .resources_of(subject, self.snapshot.at, usize::MAX))
    }

    fn resources_of_at_most(
        &self,
        subject: &ObjectRef,
        limit: usize,
    ) -> Result<Option<Vec<Arc<Relationship>>>, SnapshotError> {
        self.readable()?;
        let found =
            self.state
                .index
                .resources_of(subject, self.snapshot.at, limit.saturating_add(1));
        Ok((found.len() <= limit).then_some(found))
    }

    fn relationship(
        &self,
        resource: &ObjectRef,
        relation: &str,
        subject: &SubjectRef,
    ) -> Result<Option<Arc<Relationship>>, SnapshotError> {
        self.readable()?;
        Ok(self
            .state
            .index
            .live(resource, relation, subject, self.snapshot.at)
            .cloned())
    }

    fn subject_sets(
        &self,
        resource: &ObjectRef,
        relation: &str,
    ) -> Result<Vec<Arc<Relationship>>, SnapshotError> {
        self.readable()?;
        Ok(self
            .state
            .index
            .subject_sets(resource, relation, self.snapshot.at))
    }

    fn direct(
        &self,
        resource: &ObjectRef,
        relation: &str,
        exact: Option<&SubjectRef>,
        wildcard: Option<&SubjectRef>,
    ) -> Result<DirectRelationships, SnapshotError> {
        self.readable()?;
        Ok(self
            .state
            .index
            .direct(resource, relation, exact, wildcard, self.snapshot.at))
    }

    fn time(&self) -> SystemTime {
        self.snapshot.time()
    }

    fn closures(&self) -> Option<(&ClosureCache, Revision)> {
        self.snapshot.closures()
    }
}

/// Each read locks the state for itself; [`Snapshot::read`] locks once for many.
impl RelationshipSnapshot for Snapshot {
    fn subjects(
        &self,
        resource: &ObjectRef,
        relation: &str,
    ) -> Result<Vec<Arc<Relationship>>, SnapshotError> {
        self.read().subjects(resource, relation)
    }

    fn resources_of(&self, subject: &ObjectRef) -> Result<Vec<Arc<Relationship>>, SnapshotError> {
        self.read().resources_of(subject)
    }

    fn resources_of_at_most(
        &self,
        subject: &ObjectRef,
        limit: usize,
    ) -> Result<Option<Vec<Arc<Relationship>>>, SnapshotError> {
        self.read().resources_of_at_most(subject, limit)
    }

    fn relationship(
        &self,
        resource: &ObjectRef,
        relation: &str,
        subject: &SubjectRef,
    ) -> Result<Option<Arc<Relationship>>, SnapshotError> {
        self.read().relationship(resource, relation, subject)
    }

    fn subject_sets(
        &self,
        resource: &ObjectRef,
        relation: &str,
    ) -> Result<Vec<Arc<Relationship>>, SnapshotError> {
        self.read().subject_sets(resource, relation)
    }

    fn direct(
        &self,
        resource: &ObjectRef,
        relation: &str,
        exact: Option<&SubjectRef>,
        wildcard: Option<&SubjectRef>,
    ) -> Result<DirectRelationships, SnapshotError> {
        self.read().direct(resource, relation, exact, wildcard)
    }

    fn time(&self) -> SystemTime {
        self.at.time
    }

    fn closures(&self) -> Option<(&ClosureCache, Revision)> {
        self.closures
            .as_ref()
            .map(|(cache, epoch)| (cache.as_ref(), *epoch))
    }
}

/// The changes `revision` made, as the state records them (none if it wrote nothing).
fn changes_of(state: &State, revision: Revision) -> Vec<Change> {
    state
        .writes
        .get(&revision)
        .map(|(_, changes)| changes.as_ref().clone())
        .unwrap_or_default()
}
