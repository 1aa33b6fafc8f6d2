//! A snapshot over a fixed list of relationships: for tests, validation files and differential
//! cases, where data is small and written once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use pemba_types::{ObjectRef, Relationship, Revision};

use crate::closure::ClosureCache;
use crate::snapshot::{RelationshipSnapshot, SnapshotError};

/// Relationships held in a list sorted by (resource, relation, subject). Later duplicates (same
/// resource, relation and subject) replace earlier ones, as a TOUCH would. It is read at the wall
/// clock's time when it was made, unless [`FixedSnapshot::at_time`] says otherwise.
#[derive(Debug, Clone)]
pub struct FixedSnapshot {
    relationships: Vec<Arc<Relationship>>,
    time: SystemTime,
    /// Flattened subject sets, when asked for with [`FixedSnapshot::with_closures`].
    closures: Option<Arc<ClosureCache>>,
}

impl FixedSnapshot {
    pub fn new(relationships: impl IntoIterator<Item = Relationship>) -> Self {
        let unique: BTreeMap<_, _> = relationships
            .into_iter()
            .map(|r| {
                (
                    (r.resource.clone(), r.relation.clone(), r.subject.clone()),
                    r,
                )
            })
            .collect();
        Self {
            relationships: unique.into_values().map(Arc::new).collect(),
            time: SystemTime::now(),
            closures: None,
        }
    }

    /// The same relationships read at `time` (with a closure cache of its own, if it had one).
    pub fn at_time(self, time: SystemTime) -> Self {
        let closures = self.closures.as_ref().map(|_| Arc::default());
        Self {
            time,
            closures,
            ..self
        }
    }

    /// The same relationships, with a cache of flattened subject sets: the snapshot never
    /// changes, so all of it is one epoch.
    pub fn with_closures(self) -> Self {
        Self {
            closures: Some(Arc::default()),
            ..self
        }
    }

    /// Those of `relationships` that have not expired at this snapshot's time.
    fn live<'a>(
        &self,
        relationships: impl Iterator<Item = &'a Arc<Relationship>>,
    ) -> Vec<Arc<Relationship>> {
        relationships
            .filter(|r| !r.is_expired_at(self.time))
            .cloned()
            .collect()
    }
}

impl RelationshipSnapshot for FixedSnapshot {
    fn subjects(
        &self,
        resource: &ObjectRef,
        relation: &str,
    ) -> Result<Vec<Arc<Relationship>>, SnapshotError> {
        fn key(r: &Arc<Relationship>) -> (&ObjectRef, &str) {
            (&r.resource, r.relation.as_str())
        }
        let start = self
            .relationships
            .partition_point(|r| key(r) < (resource, relation));
        let matching = self.relationships[start..]
            .iter()
            .take_while(|r| key(r) == (resource, relation));
        Ok(self.live(matching))
    }

    fn resources_of(&self, subject: &ObjectRef) -> Result<Vec<Arc<Relationship>>, SnapshotError> {
        Ok(self.live(
            self.relationships
                .iter()
                .filter(|r| r.subject.object == *subject),
        ))
    }

    fn time(&self) -> SystemTime {
        self.time
    }

    fn closures(&self) -> Option<(&ClosureCache, Revision)> {
        Some((self.closures.as_deref()?, 0))
    }
}
