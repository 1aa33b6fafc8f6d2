//! The engine's only view of stored data: a consistent snapshot of relationships at one revision.

use std::sync::Arc;
use std::time::SystemTime;

use pemba_types::{ObjectRef, Relationship, Revision, SubjectRef};
use thiserror::Error;

use crate::closure::ClosureCache;

/// Why a snapshot cannot answer.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SnapshotError {
    /// Garbage collection dropped the history of the snapshot's revision while the snapshot was
    /// in use: an answer from it could be wrong, so none is given.
    #[error("revision {revision} was garbage-collected while it was being read (the oldest revision kept is now {horizon}); retry with a newer ZedToken or full consistency")]
    RevisionCollected {
        revision: Revision,
        horizon: Revision,
    },
}

/// The relationships of one `resource#relation` a check reads; see
/// [`RelationshipSnapshot::direct`].
#[derive(Debug, Default)]
pub struct DirectRelationships {
    pub exact: Option<Arc<Relationship>>,
    pub wildcard: Option<Arc<Relationship>>,
    /// In subject order.
    pub subject_sets: Vec<Arc<Relationship>>,
}

/// Relationships as of one revision. Implementations must answer every call from the same revision,
/// so that one request sees one consistent state, however many calls it makes, and must leave out
/// every relationship that expired before [`RelationshipSnapshot::time`]. Relationships are
/// handed out shared (`Arc`): a read copies none.
pub trait RelationshipSnapshot {
    /// Every relationship `resource#relation@…`, ordered by subject (type, id, relation).
    fn subjects(
        &self,
        resource: &ObjectRef,
        relation: &str,
    ) -> Result<Vec<Arc<Relationship>>, SnapshotError>;

    /// Every relationship whose subject object is `subject`, with any subject relation, ordered by
    /// resource (type, id) and relation. A relationship to the wildcard `type:*` is found by asking
    /// for the object `type:*`.
    fn resources_of(&self, subject: &ObjectRef) -> Result<Vec<Arc<Relationship>>, SnapshotError>;

    /// [`Self::resources_of`], or `None` if there are more than `limit`. Implementations with an
    /// index should stop reading after `limit + 1`; this default reads them all.
    fn resources_of_at_most(
        &self,
        subject: &ObjectRef,
        limit: usize,
    ) -> Result<Option<Vec<Arc<Relationship>>>, SnapshotError> {
        let all = self.resources_of(subject)?;
        Ok((all.len() <= limit).then_some(all))
    }

    /// The relationship `resource#relation@subject` exactly, if stored. Implementations with an
    /// index should answer with a point lookup; this default scans the relation.
    fn relationship(
        &self,
        resource: &ObjectRef,
        relation: &str,
        subject: &SubjectRef,
    ) -> Result<Option<Arc<Relationship>>, SnapshotError> {
        Ok(self
            .subjects(resource, relation)?
            .into_iter()
            .find(|r| r.subject == *subject))
    }

    /// The relationships of `resource#relation` whose subject is a subject set
    /// (`group:eng#member`), ordered by subject. Implementations with an index should not read
    /// the relation's other relationships; this default filters them out.
    fn subject_sets(
        &self,
        resource: &ObjectRef,
        relation: &str,
    ) -> Result<Vec<Arc<Relationship>>, SnapshotError> {
        let mut relationships = self.subjects(resource, relation)?;
        relationships.retain(|r| r.subject.relation.is_some());
        Ok(relationships)
    }

    /// What a check reads of `resource#relation`: the relationship to `exact` and the one to
    /// `wildcard` (each if asked for and stored), and those whose subject is a subject set.
    /// Implementations with an index should find the relation once; this default reads it for
    /// each part.
    fn direct(
        &self,
        resource: &ObjectRef,
        relation: &str,
        exact: Option<&SubjectRef>,
        wildcard: Option<&SubjectRef>,
    ) -> Result<DirectRelationships, SnapshotError> {
        let find = |subject: Option<&SubjectRef>| match subject {
            Some(subject) => self.relationship(resource, relation, subject),
            None => Ok(None),
        };
        Ok(DirectRelationships {
            exact: find(exact)?,
            wildcard: find(wildcard)?,
            subject_sets: self.subject_sets(resource, relation)?,
        })
    }

    /// The instant this snapshot is read at: relationships that expired before it are invisible.
    /// It must be the same for every call, and in a replicated store the same on every replica
    /// at one revision, so that a revision has one answer everywhere.
    fn time(&self) -> SystemTime;

    /// A cache of flattened subject sets (see [`ClosureCache`]) and this snapshot's epoch in it:
    /// the first revision of the range over which no relationship with a subject set, and no
    /// schema, changed up to this snapshot's revision. A store must only offer it when it knows
    /// that range exactly; by default there is none, and nothing is flattened.
    fn closures(&self) -> Option<(&ClosureCache, Revision)> {
        None
    }
}
