//! The multi-versioned relationship index: every version of every relationship inside the
//! garbage-collection window, indexed by resource and by subject object.
//!
//! Each relationship's strings are stored once: the index's views share one `Arc` per key (the
//! oldest kept version's relationship) and order or hash it by the fields they need.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::SystemTime;

use std::collections::hash_map::Entry;

use rustc_hash::FxHashMap;

use pemba_engine::DirectRelationships;
use pemba_types::{ObjectRef, Relationship, Revision, SubjectRef};
use serde::{Deserialize, Serialize};

use crate::filter::RelationshipFilter;
use crate::packed::Packed;

/// Identity of a relationship: resource, relation and subject (caveat and expiration are payload).
pub type RelationshipKey = (ObjectRef, String, SubjectRef);

/// `r`'s key.
pub fn key_of(r: &Relationship) -> RelationshipKey {
    (r.resource.clone(), r.relation.clone(), r.subject.clone())
}

/// Orders a relationship by its key, as [`RelationshipKey`] orders.
fn cmp_by_key(a: &Relationship, b: &Relationship) -> Ordering {
    (&a.resource, &a.relation, &a.subject).cmp(&(&b.resource, &b.relation, &b.subject))
}

fn cmp_to_key(a: &Relationship, key: &RelationshipKey) -> Ordering {
    (&a.resource, &a.relation, &a.subject).cmp(&(&key.0, &key.1, &key.2))
}

/// One version of a relationship: alive from `created` (inclusive) to `deleted` (exclusive).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    /// The revision that wrote it.
    pub created: Revision,
    /// The revision that deleted or replaced it, if one did.
    pub deleted: Option<Revision>,
    /// Shared: reads hand it out without copying it.
    pub relationship: Arc<Relationship>,
}

impl Version {
    /// Whether it is the relationship's version at revision `at` (expiration aside).
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

/// An effective change made by a write. The relationship is shared with the index's version of
/// it and with the change log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    /// The relationship now exists with exactly this payload (created or replaced).
    Touch(Arc<Relationship>),
    /// The relationship no longer exists.
    Delete(Arc<Relationship>),
}

impl Change {
    /// The relationship touched or deleted.
    pub fn relationship(&self) -> &Relationship {
        match self {
            Change::Touch(r) | Change::Delete(r) => r,
        }
    }
}

/// A key's versions, oldest first; never empty inside the index.
type Versions = Arc<[Version]>;

/// A key in resource order: (resource, relation, subject).
#[derive(Debug, Clone)]
struct ByResource(Arc<Relationship>);

impl PartialEq for ByResource {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for ByResource {}

impl PartialOrd for ByResource {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ByResource {
    fn cmp(&self, other: &Self) -> Ordering {
        cmp_by_key(&self.0, &other.0)
    }
}

/// The keys stored under one `resource#relation`, sorted by subject, with their versions.
#[derive(Debug, Default)]
struct RelationEntries {
    /// (packed subject, the key's relationship, its versions).
    list: Vec<(Packed, Arc<Relationship>, Versions)>,
    /// How many of them have a subject set: a relation of users alone (most of a nested
    /// group's) is skipped without reading its keys.
    subject_sets: usize,
}

static NO_ENTRIES: RelationEntries = RelationEntries {
    list: Vec::new(),
    subject_sets: 0,
};

#[derive(Debug, Default)]
pub struct RelationshipIndex {
    /// Every key's versions, in key order: filtered scans, pages, images, garbage collection.
    by_resource: BTreeMap<ByResource, Versions>,
    /// The same versions by `resource#relation` (hashed), then subject (sorted): Check's reads
    /// are one hash lookup and a binary search, with no tree descents.
    by_relation: FxHashMap<Packed, RelationEntries>,
    /// The same versions in subject order.
    by_subject: BTreeMap<Packed, Versions>,
    /// Kept versions with a subject set and an expiration: while there are any, a subject set's
    /// reach can change with time alone (see [`Self::has_expiring_subject_sets`]).
    expiring_subject_sets: usize,
    /// (expiration, key) of every kept version with an expiration, soonest first: garbage
    /// collection finds the expired ones here instead of looking at every key.
    expirations: BTreeSet<(SystemTime, ByResource)>,
}

/// How many of `versions` have a subject set and an expiration.
fn count_expiring_subject_sets(versions: &[Version]) -> usize {
    versions
        .iter()
        .filter(|v| {
            v.relationship.subject.relation.is_some() && v.relationship.expires_at.is_some()
        })
        .count()
}

/// A relationship standing for `key` in range bounds.
fn probe(resource: ObjectRef, relation: &str, subject: SubjectRef) -> Arc<Relationship> {
    Arc::new(Relationship::new(resource, relation, subject))
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

    /// True if a kept version has a subject set and an expiration: then what a subject set
    /// reaches can differ between two revisions with no write between them.
    pub fn has_expiring_subject_sets(&self) -> bool {
        self.expiring_subject_sets > 0
    }

    /// Every key's version list, in key order, without copying.
    pub fn version_lists(&self) -> impl Iterator<Item = &[Version]> {
        self.by_resource.values().map(|v| v.as_ref())
    }

    /// The version list of `key` (empty if it has none).
    pub fn versions_of(&self, key: &RelationshipKey) -> &[Version] {
        let (resource, relation, subject) = key;
        self.versions(resource, relation, subject)
            .map_or(&[], |v| v.as_ref())
    }

    /// Every key's version list, in key order (a datastore image).
    pub fn all_versions(&self) -> Vec<Vec<Version>> {
        self.by_resource.values().map(|v| v.to_vec()).collect()
    }

    /// The entries of `resource#relation`, sorted by subject.
    fn entries(&self, resource: &ObjectRef, relation: &str) -> &RelationEntries {
        self.by_relation
            .get(&Packed::resource_relation(resource, relation))
            .unwrap_or(&NO_ENTRIES)
    }

    /// Every kept version of `resource#relation@subject`, oldest first.
    fn versions(
        &self,
        resource: &ObjectRef,
        relation: &str,
        subject: &SubjectRef,
    ) -> Option<&Versions> {
        let entries = &self.entries(resource, relation).list;
        let subject = Packed::subject(subject);
        let found = entries
            .binary_search_by(|(packed, ..)| packed.cmp(&subject))
            .ok()?;
        Some(&entries[found].2)
    }

    /// The version of `resource#relation@subject` live at `at`.
    pub fn live(
        &self,
        resource: &ObjectRef,
        relation: &str,
        subject: &SubjectRef,
        at: ReadAt,
    ) -> Option<&Arc<Relationship>> {
        live_version(self.versions(resource, relation, subject)?, at).map(|v| &v.relationship)
    }

    /// What a check reads of `resource#relation` live at `at`: the relationships to `exact` and
    /// to `wildcard` (if asked for) and those to subject sets, finding the relation once.
    pub fn direct(
        &self,
        resource: &ObjectRef,
        relation: &str,
        exact: Option<&SubjectRef>,
        wildcard: Option<&SubjectRef>,
        at: ReadAt,
    ) -> DirectRelationships {
        let entries = self.entries(resource, relation);
        let find = |subject: Option<&SubjectRef>| {
            let subject = Packed::subject(subject?);
            let found = entries
                .list
                .binary_search_by(|(packed, ..)| packed.cmp(&subject))
                .ok()?;
            live_version(&entries.list[found].2, at).map(|v| v.relationship.clone())
        };
        DirectRelationships {
            exact: find(exact),
            wildcard: find(wildcard),
            subject_sets: live_entries(entries, at, true),
        }
    }

    /// `change` with its relationship shared with the index's equal version, when it holds one
    /// (recovered data reads each copy separately).
    pub fn share(&self, change: Change) -> Change {
        let r = change.relationship();
        let Some(kept) = self
            .versions(&r.resource, &r.relation, &r.subject)
            .and_then(|versions| versions.iter().find(|v| *v.relationship == *r))
            .map(|v| v.relationship.clone())
        else {
            return change;
        };
        match change {
            Change::Touch(_) => Change::Touch(kept),
            Change::Delete(_) => Change::Delete(kept),
        }
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
            let r = change.relationship();
            let versions = updated.entry(key_of(r)).or_insert_with(|| {
                self.versions(&r.resource, &r.relation, &r.subject)
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
                    relationship: r.clone(),
                });
            }
        }
        updated.into_iter().collect()
    }

    /// Installs version lists computed by [`Self::updated_versions`] (or recovered from disk).
    pub fn install(&mut self, updated: &[(RelationshipKey, Vec<Version>)]) {
        for (key, versions) in updated {
            self.remove(key);
            if !versions.is_empty() {
                self.insert(versions.as_slice().into());
            }
        }
    }

    /// Removes `key` from every view.
    fn remove(&mut self, (resource, relation, subject): &RelationshipKey) {
        let Entry::Occupied(mut slot) = self
            .by_relation
            .entry(Packed::resource_relation(resource, relation))
        else {
            return;
        };
        let entries = slot.get_mut();
        let subject = Packed::subject(subject);
        let Ok(found) = entries
            .list
            .binary_search_by(|(packed, ..)| packed.cmp(&subject))
        else {
            return;
        };
        let (_, key, versions) = entries.list.remove(found);
        entries.subject_sets -= usize::from(key.subject.relation.is_some());
        self.expiring_subject_sets -= count_expiring_subject_sets(&versions);
        for at in versions.iter().filter_map(|v| v.relationship.expires_at) {
            self.expirations.remove(&(at, ByResource(key.clone())));
        }
        if entries.list.is_empty() {
            slot.remove();
        }
        self.by_resource.remove(&ByResource(key.clone()));
        self.by_subject.remove(&Packed::by_subject(&key));
    }

    /// Adds a key absent from every view, with its (non-empty) versions; the oldest version's
    /// relationship stands for the key.
    fn insert(&mut self, versions: Versions) {
        let key = versions[0].relationship.clone();
        self.expiring_subject_sets += count_expiring_subject_sets(&versions);
        for at in versions.iter().filter_map(|v| v.relationship.expires_at) {
            self.expirations.insert((at, ByResource(key.clone())));
        }
        let entries = self
            .by_relation
            .entry(Packed::resource_relation(&key.resource, &key.relation))
            .or_default();
        let subject = Packed::subject(&key.subject);
        let position = entries
            .list
            .binary_search_by(|(packed, ..)| packed.cmp(&subject))
            .unwrap_or_else(|i| i);
        entries.subject_sets += usize::from(key.subject.relation.is_some());
        entries
            .list
            .insert(position, (subject, key.clone(), versions.clone()));
        self.by_resource
            .insert(ByResource(key.clone()), versions.clone());
        self.by_subject.insert(Packed::by_subject(&key), versions);
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
    ///
    /// Looks only at the keys in `ended` and at those with a passed expiration, never at every
    /// key. The caller names in `ended` every key written after the previous collection up to
    /// `horizon` (a version ends in the write that replaces or deletes it; versions that ended
    /// by the previous collection's horizon are gone already).
    pub fn collect_garbage(
        &mut self,
        horizon: Revision,
        horizon_time: SystemTime,
        ended: impl IntoIterator<Item = Arc<Relationship>>,
    ) -> Vec<(RelationshipKey, Option<Vec<Version>>)> {
        let keep = |v: &Version| {
            v.deleted.is_none_or(|d| d > horizon) && !v.relationship.is_expired_at(horizon_time)
        };
        // Expired before `horizon_time`: sorted first, up to the earliest entry at that time.
        let first_kept = (
            horizon_time,
            ByResource(probe(lowest_object(), "", lowest_subject())),
        );
        let later = self.expirations.split_off(&first_kept);
        let expired = std::mem::replace(&mut self.expirations, later);
        let candidates: BTreeSet<ByResource> = ended
            .into_iter()
            .map(ByResource)
            .chain(expired.into_iter().map(|(_, key)| key))
            .collect();
        let changed: Vec<(RelationshipKey, Option<Vec<Version>>)> = candidates
            .iter()
            .filter_map(|key| Some((key, self.by_resource.get(key)?)))
            .filter(|(_, versions)| !versions.iter().all(keep))
            .map(|(key, versions)| {
                let remaining: Vec<Version> =
                    versions.iter().filter(|v| keep(v)).cloned().collect();
                (key_of(&key.0), (!remaining.is_empty()).then_some(remaining))
            })
            .collect();
        for (key, remaining) in &changed {
            self.remove(key);
            if let Some(remaining) = remaining {
                self.insert(remaining.as_slice().into());
            }
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
        live_entries(self.entries(resource, relation), at, false)
    }

    /// Relationships of `resource#relation` live at `at` whose subject is a subject set, in
    /// subject order.
    pub fn subject_sets(
        &self,
        resource: &ObjectRef,
        relation: &str,
        at: ReadAt,
    ) -> Vec<Arc<Relationship>> {
        live_entries(self.entries(resource, relation), at, true)
    }

    /// Relationships whose subject object is `subject`, live at `at`, in resource order; at most
    /// `limit` of them.
    pub fn resources_of(
        &self,
        subject: &ObjectRef,
        at: ReadAt,
        limit: usize,
    ) -> Vec<Arc<Relationship>> {
        let start = Packed::subject_object(subject);
        self.by_subject
            .range(&start..)
            .take_while(|(key, _)| key.has_object_prefix(&start))
            .filter_map(|(_, versions)| live_version(versions, at))
            .map(|v| v.relationship.clone())
            .take(limit)
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
            (Some(t), Some(id)) => {
                probe(ObjectRef::new(t.clone(), id.clone()), "", lowest_subject())
            }
            (Some(t), None) => probe(
                ObjectRef::new(t.clone(), String::new()),
                "",
                lowest_subject(),
            ),
            _ => probe(lowest_object(), "", lowest_subject()),
        };
        let start = match after {
            Some(after) if cmp_to_key(&start, after) != Ordering::Greater => {
                probe(after.0.clone(), &after.1, after.2.clone())
            }
            _ => start,
        };
        let in_type_range = |key: &Relationship| {
            filter
                .resource_type
                .as_ref()
                .is_none_or(|t| key.resource.object_type == *t)
                && filter
                    .resource_id
                    .as_ref()
                    .is_none_or(|id| key.resource.object_id == *id)
        };
        self.by_resource
            .range(ByResource(start)..)
            .filter(|(key, _)| {
                after.is_none_or(|after| cmp_to_key(&key.0, after) != Ordering::Equal)
            })
            .take_while(|(key, _)| in_type_range(&key.0))
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
        let start = probe(
            ObjectRef::new(resource_type.unwrap_or_default(), ""),
            "",
            lowest_subject(),
        );
        self.by_resource
            .range(ByResource(start)..)
            .take_while(|(key, _)| resource_type.is_none_or(|t| key.0.resource.object_type == t))
            .filter_map(|(_, vs)| live_version(vs, at))
            .map(|v| v.relationship.as_ref())
            .find(|r| predicate(r))
            .cloned()
    }
}

/// The relationships of `entries` live at `at` (only those with a subject set, if
/// `subject_sets_only`), in subject order.
fn live_entries(
    entries: &RelationEntries,
    at: ReadAt,
    subject_sets_only: bool,
) -> Vec<Arc<Relationship>> {
    if subject_sets_only && entries.subject_sets == 0 {
        return Vec::new();
    }
    entries
        .list
        .iter()
        .filter(|(_, key, _)| !subject_sets_only || key.subject.relation.is_some())
        .filter_map(|(.., versions)| live_version(versions, at))
        .map(|v| v.relationship.clone())
        .collect()
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
        index.apply(
            1,
            &[Change::Touch(Arc::new(rel("doc:one#viewer@user:tom")))],
        );
        index.apply(
            2,
            &[Change::Touch(Arc::new(rel("doc:one#viewer@user:sam")))],
        );
        index.apply(
            3,
            &[Change::Delete(Arc::new(rel("doc:one#viewer@user:tom")))],
        );
        assert_eq!(subjects(&index, at(0)), Vec::<String>::new());
        assert_eq!(subjects(&index, at(1)), ["user:tom"]);
        assert_eq!(subjects(&index, at(2)), ["user:sam", "user:tom"]);
        assert_eq!(subjects(&index, at(3)), ["user:sam"]);
        assert_eq!(
            index
                .resources_of(&ObjectRef::new("user", "tom"), at(2), usize::MAX)
                .len(),
            1
        );
        assert!(index
            .resources_of(&ObjectRef::new("user", "tom"), at(3), usize::MAX)
            .is_empty());
    }

    #[test]
    fn garbage_collection_keeps_what_reads_after_the_horizon_need() {
        let mut index = RelationshipIndex::default();
        index.apply(
            1,
            &[Change::Touch(Arc::new(rel("doc:one#viewer@user:tom")))],
        );
        index.apply(
            2,
            &[
                Change::Delete(Arc::new(rel("doc:one#viewer@user:tom"))),
                Change::Touch(Arc::new(rel("doc:one#viewer@user:sam"))),
            ],
        );
        let tom = Arc::new(rel("doc:one#viewer@user:tom"));
        let sam = Arc::new(rel("doc:one#viewer@user:sam"));
        // Written up to revision 1: tom.
        let changed = index.collect_garbage(1, SystemTime::UNIX_EPOCH, [tom.clone()]);
        assert!(
            changed.is_empty(),
            "tom's version ended at 2, after the horizon"
        );
        // Written after 1, up to 2: tom and sam.
        let changed = index.collect_garbage(2, SystemTime::UNIX_EPOCH, [tom, sam]);
        assert_eq!(changed.len(), 1);
        assert_eq!(changed[0].1, None);
        assert_eq!(subjects(&index, at(2)), ["user:sam"]);
        assert!(index
            .resources_of(&ObjectRef::new("user", "tom"), at(1), usize::MAX)
            .is_empty());
    }

    #[test]
    fn recovered_changes_share_the_index_relationships() {
        let mut index = RelationshipIndex::default();
        index.apply(
            1,
            &[Change::Touch(Arc::new(rel("doc:one#viewer@user:tom")))],
        );
        let copy = Change::Touch(Arc::new(rel("doc:one#viewer@user:tom")));
        let Change::Touch(shared) = index.share(copy) else {
            panic!("a touch stays a touch");
        };
        let kept = index
            .live(
                &ObjectRef::new("doc", "one"),
                "viewer",
                &SubjectRef::object("user", "tom"),
                at(1),
            )
            .unwrap();
        assert!(Arc::ptr_eq(&shared, kept));
        let other = Change::Delete(Arc::new(rel("doc:two#viewer@user:tom")));
        assert_eq!(index.share(other.clone()), other);
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
        index.apply(1, &all.map(|r| Change::Touch(Arc::new(rel(r)))));
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
