//! Epochs of flattened subject sets: the revisions after which a cached closure stays valid.

use pemba_schema::CompiledSchema;
use pemba_types::Revision;

use crate::index::Change;

/// The revisions that start a new epoch of flattened subject sets: those that changed a
/// relationship with a subject set, or the schema. Known exactly from `tracked_since` (the head
/// this state was built at) on; reads at older revisions have no epoch. (Reads get no epoch
/// either while a subject set with an expiration is kept: its reach changes with time alone.)
#[derive(Debug, Default)]
pub(super) struct Epochs {
    tracked_since: Revision,
    /// Ascending, all after `tracked_since`.
    starts: Vec<Revision>,
}

impl Epochs {
    pub(super) fn starting_at(head: Revision) -> Epochs {
        Epochs {
            tracked_since: head,
            starts: Vec::new(),
        }
    }

    /// Starts a new epoch at `at`, newer than every revision seen so far.
    pub(super) fn start(&mut self, at: Revision) {
        self.starts.push(at);
    }

    /// The epoch of revision `at`: its first revision.
    pub(super) fn of(&self, at: Revision) -> Option<Revision> {
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
    pub(super) fn collect_garbage(&mut self, horizon: Revision) {
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
pub(super) fn starts_epoch(
    changes: &[Change],
    schema: Option<&CompiledSchema>,
    schema_changed: bool,
) -> bool {
    schema_changed
        || changes.iter().any(|change| {
            let r = change.relationship();
            r.subject.relation.is_some()
                && schema.is_none_or(|s| s.admits_subject_set(&r.resource.object_type, &r.relation))
        })
}
