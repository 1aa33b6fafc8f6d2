//! The engine's only view of stored data: a consistent snapshot of relationships at one revision.

use std::time::SystemTime;

use pemba_types::{ObjectRef, Relationship};
use thiserror::Error;

/// A failure of the storage behind a snapshot (I/O, corruption, a revision no longer available).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("storage error: {0}")]
pub struct SnapshotError(pub String);

/// Relationships as of one revision. Implementations must answer every call from the same revision,
/// so that one request sees one consistent state, however many calls it makes.
pub trait RelationshipSnapshot {
    /// Every relationship `resource#relation@…`, ordered by subject (type, id, relation).
    fn subjects(
        &self,
        resource: &ObjectRef,
        relation: &str,
    ) -> Result<Vec<Relationship>, SnapshotError>;

    /// Every relationship whose subject object is `subject`, with any subject relation, ordered by
    /// resource (type, id) and relation. A relationship to the wildcard `type:*` is found by asking
    /// for the object `type:*`.
    fn resources_of(&self, subject: &ObjectRef) -> Result<Vec<Relationship>, SnapshotError>;

    /// The instant this snapshot is read at: relationships that expired before it are invisible.
    /// It must be the same for every call, and in a replicated store the same on every replica
    /// at one revision, so that a revision has one answer everywhere.
    fn time(&self) -> SystemTime;
}
