//! The multi-versioned relationship index: every version of every relationship inside the
//! garbage-collection window, indexed by resource and by subject object.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::SystemTime;

use rustc_hash::FxHashMap;

use pemba_types::{ObjectRef, Relationship, Revision, SubjectRef};
use serde::{Deserialize, Serialize};

use crate::filter::RelationshipFilter;

/// Identity of a relationship: resource, relation and subject (caveat and expiration are payload).
pub type RelationshipKey = (ObjectRef, String, SubjectRef);

pub fn key_of(r: &Relationship) -> RelationshipKey {
    (r.resource.clone(), r.relation.clone(), r.subject.clone())
}

/// One version of a relationship: alive from `created` (inclusive) to `deleted` (exclusive).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    pub created: Revision,
    pub deleted: Option<Revision>,
    /// Shared: reads hand it out without copying it.
    pub relationship: Arc<Relationship>,
}

impl Version {
    pub fn visible_at(&self, at: Revision) -> bool {
        self.created <= at && self.deleted.is_none_or(|d| d > at)
    }

    /// Visible at the read's revision and not expired at its time.
    fn live_at(&self, at: ReadAt) -> bool {
        self.visible_at(at.revision) && !self.relationship.is_expired_at(at.time)
    }
}

/// Where a read looks: the revision, and the time expirations are judged at (the revision's own
/// time for reads; a write's time when the write is planned).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadAt {
    pub revision: Revision,
    pub time: SystemTime,
}

/// An effective change made by a write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    /// The relationship now exists with exactly this payload (created or replaced).
    Touch(Relationship),
    /// The relationship no longer exists.
    Delete(Relationship),
}

impl Change {
    pub fn relationship(&self) -> &Relationship {
        match self {
            Change::Touch(r) | Change::Delete(r) => r,
        }
    }
}

/// A key's versions, oldest first; shared by the index's two views of it.
type Versions = Arc<Vec<Version>>;

/// The keys stored under one `resource#relation`, sorted by subject, with their versions.
type RelationEntries = Vec<(SubjectRef, Versions)>;

#[derive(Debug, Default)]
pub struct RelationshipIndex {
    /// Every key's versions, in key order: filtered scans, pages, images, garbage collection.
    by_resource: BTreeMap<RelationshipKey, Versions>,
    /// The same versions by resource, then relation (hashed), then subject (sorted): Check's
    /// reads are hash lookups and short scans, with no string-keyed tree descents.
    by_relation: FxHashMap<ObjectRef, FxHashMap<String, RelationEntries>>,
    /// (subject object, resource, relation, subject relation): keys into `by_resource`.
    by_subject: BTreeSet<(ObjectRef, ObjectRef, String, Option<String>)>,
}

fn lowest_object() -> ObjectRef {
    ObjectRef::new(String::new(), String::new())
}

fn lowest_subject() -> SubjectRef {
    SubjectRef::new(lowest_object(), None)
}

impl RelationshipIndex {
    /// How many relationship keys, and versions of them, are held.
    pub fn sizes(&self) -> (usize, usize) {
        (
            self.by_resource.len(),
            self.by_resource.values().map(|v| v.len()).sum(),
        )
    }

    /// Every key's version list, in key order (a datastore image).
    pub fn all_versions(&self) -> Vec<Vec<Version>> {
        self.by_resource.values().map(|v| v.to_vec()).collect()
    }

    /// The entries of `resource#relation`, sorted by subject.
    fn entries(&self, resource: &ObjectRef, relation: &str) -> &[(SubjectRef, Versions)] {
        self.by_relation
            .get(resource)
            .and_then(|relations| relations.get(relation))
            .map_or(&[], Vec::as_slice)
    }

    /// The version of `resource#relation@subject` live at `at`.
    pub fn live(
        &self,
        resource: &ObjectRef,
        relation: &str,
        subject: &SubjectRef,
        at: ReadAt,
    ) -> Option<&Arc<Relationship>> {
        let entries = self.entries(resource, relation);
        let found = entries.binary_search_by(|(s, _)| s.cmp(subject)).ok()?;
        live_version(&entries[found].1, at).map(|v| &v.relationship)
    }

    /// The version of `key` live at `at`.
    pub fn visible(&self, key: &RelationshipKey, at: ReadAt) -> Option<&Arc<Relationship>> {
        self.live(&key.0, &key.1, &key.2, at)
    }

    /// The version lists that applying `changes` as of `revision` (newer than every revision
    /// applied before) would leave, per changed key; nothing is modified.
    pub fn updated_versions(
        &self,
        revision: Revision,
        changes: &[Change],
    ) -> Vec<(RelationshipKey, Vec<Version>)> {
        let mut updated: BTreeMap<RelationshipKey, Vec<Version>> = BTreeMap::new();
        for change in changes {
            let key = key_of(change.relationship());
            let versions = updated.entry(key.clone()).or_insert_with(|| {
                self.by_resource
                    .get(&key)
                    .map(|v| v.to_vec())
                    .unwrap_or_default()
            });
            if let Some(live) = versions.last_mut().filter(|v| v.deleted.is_none()) {
                live.deleted = Some(revision);
            }
            // A version created and ended at the same revision was never visible: drop it.
            versions.retain(|v| v.deleted != Some(v.created));
            if let Change::Touch(r) = change {
                versions.push(Version {
                    created: revision,
                    deleted: None,
                    relationship: Arc::new(r.clone()),
                });
            }
        }
        updated.into_iter().collect()
    }

    /// Installs version lists computed by [`Self::updated_versions`] (or recovered from disk).
    pub fn install(&mut self, updated: &[(RelationshipKey, Vec<Version>)]) {
        for (key, versions) in updated {
            self.replace(
                key,
                (!versions.is_empty()).then(|| Arc::new(versions.clone())),
            );
        }
    }

    /// Sets `key`'s versions in every view (`None` removes the key).
    fn replace(&mut self, key: &RelationshipKey, versions: Option<Versions>) {
        let (resource, relation, subject) = key;
        let reverse = (
            subject.object.clone(),
            resource.clone(),
            relation.clone(),
            subject.relation.clone(),
        );
        let relations = self.by_relation.entry(resource.clone()).or_default();
        let entries = relations.entry(relation.clone()).or_default();
        let position = entries.binary_search_by(|(s, _)| s.cmp(subject));
        match (versions, position) {
            (Some(versions), Ok(i)) => {
                entries[i].1 = versions.clone();
                self.by_resource.insert(key.clone(), versions);
            }
            (Some(versions), Err(i)) => {
                entries.insert(i, (subject.clone(), versions.clone()));
                self.by_resource.insert(key.clone(), versions);
                self.by_subject.insert(reverse);
            }
            (None, found) => {
                if let Ok(i) = found {
                    entries.remove(i);
                }
                if entries.is_empty() {
                    relations.remove(relation);
                    if relations.is_empty() {
                        self.by_relation.remove(resource);
                    }
                }
                self.by_resource.remove(key);
                self.by_subject.remove(&reverse);
            }
        }
    }

    /// Applies `changes` as of `revision`; see [`Self::updated_versions`].
    #[cfg(test)]
    pub fn apply(&mut self, revision: Revision, changes: &[Change]) {
        let updated = self.updated_versions(revision, changes);
        self.install(&updated);
    }

    /// Drops every version that ended at or before `horizon`, and every version that expired
    /// before `horizon_time` (the horizon's time: reads at the horizon or later, whose times are
    /// no earlier, cannot see it); returns the changed keys with their remaining versions
    /// (`None`: the key is gone), for persistence.
    pub fn collect_garbage(
        &mut self,
        horizon: Revision,
        horizon_time: SystemTime,
    ) -> Vec<(RelationshipKey, Option<Vec<Version>>)> {
        let keep = |v: &Version| {
            v.deleted.is_none_or(|d| d > horizon) && !v.relationship.is_expired_at(horizon_time)
        };
        let changed: Vec<(RelationshipKey, Option<Vec<Version>>)> = self
            .by_resource
            .iter()
            .filter(|(_, versions)| !versions.iter().all(keep))
            .map(|(key, versions)| {
                let remaining: Vec<Version> =
                    versions.iter().filter(|v| keep(v)).cloned().collect();
                (key.clone(), (!remaining.is_empty()).then_some(remaining))
            })
            .collect();
        for (key, remaining) in &changed {
            self.replace(key, remaining.clone().map(Arc::new));
        }
        changed
    }

    /// Relationships of `resource#relation` live at `at`, in subject order.
    pub fn subjects(
        &self,
        resource: &ObjectRef,
        relation: &str,
        at: ReadAt,
    ) -> Vec<Arc<Relationship>> {
        self.live_where(resource, relation, at, |_| true)
    }

    /// Relationships of `resource#relation` live at `at` whose subject is a subject set, in
    /// subject order.
    pub fn subject_sets(
        &self,
        resource: &ObjectRef,
        relation: &str,
        at: ReadAt,
    ) -> Vec<Arc<Relationship>> {
        self.live_where(resource, relation, at, |subject| subject.relation.is_some())
    }

    /// Relationships of `resource#relation` live at `at` whose subject passes `wanted`.
    fn live_where(
        &self,
        resource: &ObjectRef,
        relation: &str,
        at: ReadAt,
        wanted: impl Fn(&SubjectRef) -> bool,
    ) -> Vec<Arc<Relationship>> {
        self.entries(resource, relation)
            .iter()
            .filter(|(subject, _)| wanted(subject))
            .filter_map(|(_, versions)| live_version(versions, at))
            .map(|v| v.relationship.clone())
            .collect()
    }

    /// Relationships whose subject object is `subject`, live at `at`, in resource order.
    pub fn resources_of(&self, subject: &ObjectRef, at: ReadAt) -> Vec<Arc<Relationship>> {
        let start = (subject.clone(), lowest_object(), String::new(), None);
        self.by_subject
            .range(start..)
            .take_while(|(subj, ..)| subj == subject)
            .filter_map(|(subj, resource, relation, subject_relation)| {
                let subject = SubjectRef::new(subj.clone(), subject_relation.clone());
                self.live(resource, relation, &subject, at).cloned()
            })
            .collect()
    }

    /// Up to `limit` relationships matching `filter` live at `at`, in key order, strictly after
    /// `after` when given. Uses the resource-type range when the filter names a type.
    pub fn query(
        &self,
        filter: &RelationshipFilter,
        at: ReadAt,
        after: Option<&RelationshipKey>,
        limit: usize,
    ) -> Vec<Relationship> {
        let start = match (&filter.resource_type, &filter.resource_id) {
            (Some(t), Some(id)) => (
                ObjectRef::new(t.clone(), id.clone()),
                String::new(),
                lowest_subject(),
            ),
            (Some(t), None) => (
                ObjectRef::new(t.clone(), String::new()),
                String::new(),
                lowest_subject(),
            ),
            _ => (lowest_object(), String::new(), lowest_subject()),
        };
        let start = match after {
            Some(after) if *after >= start => after.clone(),
            _ => start,
        };
        let in_type_range = |key: &RelationshipKey| {
            filter
                .resource_type
                .as_ref()
                .is_none_or(|t| key.0.object_type == *t)
                && filter
                    .resource_id
                    .as_ref()
                    .is_none_or(|id| key.0.object_id == *id)
        };
        self.by_resource
            .range(start..)
            .filter(|(key, _)| after != Some(*key))
            .take_while(|(key, _)| in_type_range(key))
            .filter_map(|(_, vs)| live_version(vs, at))
            .filter(|v| filter.matches(&v.relationship))
            .take(limit)
            .map(|v| v.relationship.as_ref().clone())
            .collect()
    }

    /// The first relationship live at `at` for which `predicate` holds, scanning resources of
    /// `resource_type` (or all, when `None`).
    pub fn find(
        &self,
        resource_type: Option<&str>,
        at: ReadAt,
        predicate: impl Fn(&Relationship) -> bool,
    ) -> Option<Relationship> {
        let filter = RelationshipFilter {
            resource_type: resource_type.map(str::to_string),
            ..Default::default()
        };
        let start = (
            ObjectRef::new(resource_type.unwrap_or_default(), ""),
            String::new(),
            lowest_subject(),
        );
        self.by_resource
            .range(start..)
            .take_while(|(key, _)| {
                filter
                    .resource_type
                    .as_ref()
                    .is_none_or(|t| key.0.object_type == *t)
            })
            .filter_map(|(_, vs)| live_version(vs, at))
            .map(|v| v.relationship.as_ref())
            .find(|r| predicate(r))
            .cloned()
    }
}

/// The version of a key's list that is live at `at`, if any.
fn live_version(versions: &[Version], at: ReadAt) -> Option<&Version> {
    versions
        .iter()
        .rev()
        .find(|v| v.visible_at(at.revision))
        .filter(|v| v.live_at(at))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(text: &str) -> Relationship {
        Relationship::parse(text).unwrap()
    }

    /// A read at `revision`, at a time before every expiration in these tests.
    fn at(revision: Revision) -> ReadAt {
        ReadAt {
            revision,
            time: SystemTime::UNIX_EPOCH,
        }
    }

    fn subjects(index: &RelationshipIndex, at: ReadAt) -> Vec<String> {
        index
            .subjects(&ObjectRef::new("doc", "one"), "viewer", at)
            .iter()
            .map(|r| r.subject.to_string())
            .collect()
    }

    #[test]
    fn reads_see_exactly_their_revision() {
        let mut index = RelationshipIndex::default();
        index.apply(1, &[Change::Touch(rel("doc:one#viewer@user:tom"))]);
        index.apply(2, &[Change::Touch(rel("doc:one#viewer@user:sam"))]);
        index.apply(3, &[Change::Delete(rel("doc:one#viewer@user:tom"))]);
        assert_eq!(subjects(&index, at(0)), Vec::<String>::new());
        assert_eq!(subjects(&index, at(1)), ["user:tom"]);
        assert_eq!(subjects(&index, at(2)), ["user:sam", "user:tom"]);
        assert_eq!(subjects(&index, at(3)), ["user:sam"]);
        assert_eq!(
            index
                .resources_of(&ObjectRef::new("user", "tom"), at(2))
                .len(),
            1
        );
        assert!(index
            .resources_of(&ObjectRef::new("user", "tom"), at(3))
            .is_empty());
    }

    #[test]
    fn garbage_collection_keeps_what_reads_after_the_horizon_need() {
        let mut index = RelationshipIndex::default();
        index.apply(1, &[Change::Touch(rel("doc:one#viewer@user:tom"))]);
        index.apply(
            2,
            &[
                Change::Delete(rel("doc:one#viewer@user:tom")),
                Change::Touch(rel("doc:one#viewer@user:sam")),
            ],
        );
        let changed = index.collect_garbage(1, SystemTime::UNIX_EPOCH);
        assert!(
            changed.is_empty(),
            "tom's version ended at 2, after the horizon"
        );
        let changed = index.collect_garbage(2, SystemTime::UNIX_EPOCH);
        assert_eq!(changed.len(), 1);
        assert_eq!(changed[0].1, None);
        assert_eq!(subjects(&index, at(2)), ["user:sam"]);
        assert!(index
            .resources_of(&ObjectRef::new("user", "tom"), at(1))
            .is_empty());
    }

    #[test]
    fn query_pages_in_key_order() {
        let mut index = RelationshipIndex::default();
        let all = [
            "doc:a#viewer@user:x",
            "doc:b#viewer@user:x",
            "doc:c#editor@user:y",
            "folder:a#viewer@user:x",
        ];
        index.apply(1, &all.map(|r| Change::Touch(rel(r))));
        let filter = RelationshipFilter {
            resource_type: Some("doc".into()),
            ..Default::default()
        };
        let first = index.query(&filter, at(1), None, 2);
        assert_eq!(first.len(), 2);
        let rest = index.query(&filter, at(1), Some(&key_of(&first[1])), 10);
        assert_eq!(
            rest.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
            ["doc:c#editor@user:y"]
        );
        let by_subject = RelationshipFilter {
            subject: Some(crate::filter::SubjectFilter {
                subject_type: "user".into(),
                subject_id: Some("x".into()),
                relation: None,
            }),
            ..Default::default()
        };
        assert_eq!(index.query(&by_subject, at(1), None, 10).len(), 3);
    }
}
