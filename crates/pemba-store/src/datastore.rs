//! The datastore: relationships and schemas by revision, writes applied atomically and made
//! durable before they are visible, and consistent snapshots for reads.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::{Mutex, MutexGuard, RwLock};
use pemba_schema::CompiledSchema;
use pemba_types::{Relationship, Revision};
use thiserror::Error;
use tokio::sync::watch;

use crate::command::{WriteCommand, WriteError, WriteResult};
use crate::digest::StateDigest;
use crate::image::ImageView;
use crate::index::{Change, ReadAt};
use crate::persistence::{
    AppliedWrite, Collected, Durability, Persistence, PersistenceError, Recovered, SidecarUpdate,
};
use crate::plan::{plan, Plan};

mod epochs;
mod install;
mod snapshot;
mod state;

use epochs::starts_epoch;
pub use install::Install;
pub use snapshot::{Snapshot, SnapshotRead};
use state::State;

/// A schema as written and as compiled.
#[derive(Debug)]
pub struct SchemaVersion {
    /// As written.
    pub text: String,
    /// As compiled.
    pub compiled: CompiledSchema,
}

/// The changes one write made, with its revision.
pub type ChangeBatch = (Revision, Arc<Vec<Change>>);

/// One command's outcome in an applied entry.
pub type Outcome = Result<WriteResult, WriteError>;

/// Why a read cannot be served at the revision asked for.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ReadError {
    /// Garbage collection has dropped the revision's history.
    #[error("revision {revision} is older than the oldest revision kept ({horizon}); retry with a newer ZedToken or full consistency")]
    RevisionTooOld {
        /// The revision asked for.
        revision: Revision,
        /// The oldest revision kept.
        horizon: Revision,
    },
    /// The datastore has not applied the revision yet.
    #[error("revision {revision} is newer than this datastore's head ({head})")]
    RevisionNotYetAvailable {
        /// The revision asked for.
        revision: Revision,
        /// The newest revision applied.
        head: Revision,
    },
}

/// An image taken by [`Datastore::image`].
pub struct TakenImage {
    /// The image, to be written out.
    pub view: Box<dyn ImageView>,
    /// The value of the sidecar key asked for, as the image holds it.
    pub sidecar_value: Option<Vec<u8>>,
}

/// A datastore's sizes and revisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatastoreStats {
    /// The newest revision applied.
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

    /// A consistent image of the datastore at its head, as storage holds it, with the value of
    /// `sidecar_key` in the sidecar at that moment (the image holds the whole sidecar). Writers
    /// wait only while the image is fixed, not while it is written out.
    pub fn image(&self, sidecar_key: &[u8]) -> Result<TakenImage, PersistenceError> {
        let persistence = self.persistence.lock();
        let view = persistence.image()?;
        let sidecar_value = self.state.read().sidecar.get(sidecar_key).cloned();
        Ok(TakenImage {
            view,
            sidecar_value,
        })
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
            state.epochs.start(revision);
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

/// The changes `revision` made, as the state records them (none if it wrote nothing).
fn changes_of(state: &State, revision: Revision) -> Vec<Change> {
    state
        .writes
        .get(&revision)
        .map(|(_, changes)| changes.as_ref().clone())
        .unwrap_or_default()
}
