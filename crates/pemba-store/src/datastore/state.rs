//! The datastore's state in memory: the multi-versioned index, schemas, the log of writes with
//! the clock, the sidecar, epochs and digests; and how it is built from an image.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::SystemTime;

use pemba_engine::ClosureCache;
use pemba_types::Revision;

use super::epochs::Epochs;
use super::{ReadError, SchemaVersion};
use crate::digest::Digests;
use crate::index::{key_of, Change, RelationshipIndex, RelationshipKey, Version};
use crate::persistence::{AppliedWrite, PersistenceError, Recovered};

#[cfg(feature = "fault-injection")]
pub(super) use crate::faults::gc_horizon_ignored;

/// Without deliberate bugs, the horizon is never ignored.
#[cfg(not(feature = "fault-injection"))]
pub(super) fn gc_horizon_ignored() -> bool {
    false
}

pub(super) struct State {
    pub(super) index: RelationshipIndex,
    pub(super) head: Revision,
    pub(super) horizon: Revision,
    pub(super) schemas: BTreeMap<Revision, Arc<SchemaVersion>>,
    /// Writes newer than `horizon`: their time and changes (for Watch and garbage collection).
    pub(super) writes: BTreeMap<Revision, (SystemTime, Arc<Vec<Change>>)>,
    /// The revisions from `horizon` on at which time advanced, with their times: a revision's
    /// time is that of the newest entry at or before it (the Unix epoch before any). Reads at a
    /// revision judge expirations at its time, so every replica answers a revision alike.
    pub(super) clock: BTreeMap<Revision, SystemTime>,
    /// The layer above's key-values, durable with each write (see [`SidecarUpdate`]).
    pub(super) sidecar: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Where the check path's flattened subject sets stay valid (see [`Epochs`]).
    pub(super) epochs: Epochs,
    /// Flattened subject sets of the newest epoch; a state installed whole starts a new cache.
    pub(super) closures: Arc<ClosureCache>,
    /// The running digest, and those of the newest revisions (see [`crate::digest`]).
    pub(super) digests: Digests,
}

impl State {
    pub(super) fn from_image(image: Recovered) -> Result<State, PersistenceError> {
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
    pub(super) fn image(&self, versions: Vec<Vec<Version>>) -> Recovered {
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
    pub(super) fn write_records(&self) -> Vec<AppliedWrite> {
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

    /// Installs version lists applied at a revision whose time is `time`, keeping the digest.
    pub(super) fn install_versions(
        &mut self,
        versions: &[(RelationshipKey, Vec<Version>)],
        time: SystemTime,
    ) {
        self.digests.advance_time(time);
        for (key, new) in versions {
            self.digests.replace(self.index.versions_of(key), new, time);
        }
        self.index.install(versions);
    }

    /// The time of revision `at`.
    pub(super) fn time_at(&self, at: Revision) -> SystemTime {
        self.clock
            .range(..=at)
            .next_back()
            .map_or(SystemTime::UNIX_EPOCH, |(_, time)| *time)
    }

    pub(super) fn schema_at(&self, at: Revision) -> Option<Arc<SchemaVersion>> {
        self.schemas
            .range(..=at)
            .next_back()
            .map(|(_, s)| s.clone())
    }

    pub(super) fn check_readable(&self, at: Revision) -> Result<(), ReadError> {
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

/// Builds a [`State`] from an image piece by piece (version lists first, then the log of
/// writes), so that the image need not be in memory beside the state built from it.
#[derive(Default)]
pub(super) struct StateBuilder {
    index: RelationshipIndex,
    writes: BTreeMap<Revision, (SystemTime, Arc<Vec<Change>>)>,
    clock: BTreeMap<Revision, SystemTime>,
}

impl StateBuilder {
    /// Adds one key's version list (an empty one adds nothing).
    pub(super) fn add(&mut self, versions: Vec<Version>) {
        if let Some(first) = versions.first() {
            let key = key_of(&first.relationship);
            self.index.install(&[(key, versions)]);
        }
    }

    /// Adds the next record of the log of writes (oldest first), after every version list:
    /// its changes share their relationships with the index.
    pub(super) fn add_write(&mut self, record: AppliedWrite) {
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
    pub(super) fn finish(
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
