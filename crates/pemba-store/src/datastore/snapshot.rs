//! Consistent reads at one revision: [`Snapshot`] and its read-locked form, [`SnapshotRead`].

use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::{RwLock, RwLockReadGuard};
use pemba_engine::{ClosureCache, DirectRelationships, RelationshipSnapshot, SnapshotError};
use pemba_schema::CompiledSchema;
use pemba_types::{ObjectRef, Relationship, Revision, SubjectRef};

use super::state::{gc_horizon_ignored, State};
use super::SchemaVersion;
use crate::filter::RelationshipFilter;
use crate::index::{ReadAt, RelationshipKey};
use crate::plan::EMPTY_SCHEMA;

/// A consistent view of the datastore at one revision and that revision's time, with the
/// schema in force then. Relationships expired at its time are invisible to every read.
#[derive(Clone)]
pub struct Snapshot {
    pub(super) state: Arc<RwLock<State>>,
    pub(super) at: ReadAt,
    pub(super) schema: Option<Arc<SchemaVersion>>,
    /// The state's closure cache and this revision's epoch in it, if it has one.
    pub(super) closures: Option<(Arc<ClosureCache>, Revision)>,
}

impl Snapshot {
    /// The revision read.
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
