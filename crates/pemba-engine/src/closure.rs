//! Flattened subject sets: Zanzibar's Leopard index, computed on demand.
//!
//! A relation such as `group#member: user | group#member` nests: deciding that a user is *not* a
//! member of a group walks every group nested in it. When everything reachable from
//! `object#relation` through subject sets is a relation (not a permission) reached through
//! relationships without caveat or expiration, membership there is plain reachability, and the
//! set of reachable usersets (its closure) decides it: the subject is a member exactly if it is
//! directly in the root or in one of those usersets. A check then looks at the subject's own few
//! relationships instead of walking the nesting.
//!
//! Closures are shared between requests through a [`ClosureCache`] that holds the closures of one
//! *epoch*: a range of revisions over which no relationship with a subject set and no schema
//! changed, so that a closure computed at any revision of the epoch holds at all of them.

use std::collections::hash_map::Entry;
use std::sync::{Arc, Mutex};

use pemba_types::{ObjectRef, Relationship, Revision};
use rustc_hash::FxHashMap;

use crate::memo::hash_userset;

/// The usersets reachable from one root through subject sets.
#[derive(Debug)]
pub(crate) struct Closure {
    /// One relationship naming each reachable userset as its subject, sorted by the userset's
    /// hash; no userset twice.
    usersets: Vec<(u64, Arc<Relationship>)>,
    /// The distinct (object type, relation) of the usersets.
    kinds: Vec<(String, String)>,
    /// The longest chain of subject-set hops from the root (0: no subject sets).
    height: u32,
}

impl Closure {
    /// Builds a closure from the root's subject-set relationships, each with the closure of the
    /// userset it names.
    pub(crate) fn from_edges(edges: Vec<(Arc<Relationship>, Arc<Closure>)>) -> Closure {
        let mut usersets = Vec::new();
        let mut height = 0;
        for (edge, below) in &edges {
            let relation = edge.subject.relation.as_deref().unwrap_or_default();
            usersets.push((hash_userset(&edge.subject.object, relation), edge.clone()));
            usersets.extend(below.usersets.iter().cloned());
            height = height.max(below.height + 1);
        }
        usersets.sort_by(|(a, x), (b, y)| a.cmp(b).then_with(|| x.subject.cmp(&y.subject)));
        usersets.dedup_by(|(a, x), (b, y)| a == b && x.subject == y.subject);
        let mut kinds: Vec<(String, String)> = usersets
            .iter()
            .map(|(_, r)| {
                (
                    r.subject.object.object_type.clone(),
                    r.subject.relation.clone().unwrap_or_default(),
                )
            })
            .collect();
        kinds.sort();
        kinds.dedup();
        Closure {
            usersets,
            kinds,
            height,
        }
    }

    /// How many usersets are reachable.
    pub(crate) fn len(&self) -> usize {
        self.usersets.len()
    }

    pub(crate) fn height(&self) -> u32 {
        self.height
    }

    /// True if `object#relation` is reachable.
    pub(crate) fn contains(&self, object: &ObjectRef, relation: &str) -> bool {
        let hash = hash_userset(object, relation);
        let start = self.usersets.partition_point(|(h, _)| *h < hash);
        self.usersets[start..]
            .iter()
            .take_while(|(h, _)| *h == hash)
            .any(|(_, r)| {
                r.subject.object == *object && r.subject.relation.as_deref() == Some(relation)
            })
    }

    /// The reachable usersets, as (object, relation).
    pub(crate) fn usersets(&self) -> impl Iterator<Item = (&ObjectRef, &str)> {
        self.usersets.iter().map(|(_, r)| {
            (
                &r.subject.object,
                r.subject.relation.as_deref().unwrap_or_default(),
            )
        })
    }

    /// The distinct (object type, relation) of the reachable usersets.
    pub(crate) fn kinds(&self) -> &[(String, String)] {
        &self.kinds
    }
}

/// The most usersets one closure holds; a larger one is not flattened (the walk decides).
pub(crate) const MAX_CLOSURE: usize = 1 << 16;

/// The most usersets all cached closures hold together; past it the cache starts over.
const MAX_CACHED: usize = 1 << 26;

/// What is known of one root: its closure, or that it cannot be flattened.
type Known = Option<Arc<Closure>>;

/// Closures of one epoch, shared by the requests that read in it. An epoch is named by its
/// first revision; the cache keeps only the newest epoch it has been asked about, and requests
/// reading an older one compute without it.
#[derive(Debug, Default)]
pub struct ClosureCache {
    state: Mutex<CacheState>,
}

#[derive(Debug, Default)]
struct CacheState {
    epoch: Revision,
    /// By the root's hash: (root object, relation, what is known).
    known: FxHashMap<u64, Vec<(ObjectRef, String, Known)>>,
    usersets: usize,
}

impl CacheState {
    /// Usable for `epoch`: a newer epoch empties the cache; an older one cannot use it.
    fn usable_for(&mut self, epoch: Revision) -> bool {
        if epoch > self.epoch {
            *self = CacheState {
                epoch,
                ..CacheState::default()
            };
        }
        epoch == self.epoch
    }
}

impl ClosureCache {
    /// What is known of `object#relation` at `epoch`, if anything.
    pub(crate) fn get(&self, epoch: Revision, object: &ObjectRef, relation: &str) -> Option<Known> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if !state.usable_for(epoch) {
            return None;
        }
        state
            .known
            .get(&hash_userset(object, relation))?
            .iter()
            .find(|(o, r, _)| o == object && r == relation)
            .map(|(_, _, known)| known.clone())
    }

    /// Records what is known of `object#relation` at `epoch`.
    pub(crate) fn put(&self, epoch: Revision, object: &ObjectRef, relation: &str, known: Known) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if !state.usable_for(epoch) {
            return;
        }
        let size = known.as_ref().map_or(0, |c| c.len());
        if state.usersets + size > MAX_CACHED {
            state.known.clear();
            state.usersets = 0;
        }
        state.usersets += size;
        let slot = state.known.entry(hash_userset(object, relation));
        let entries = match slot {
            Entry::Occupied(entries) => entries.into_mut(),
            Entry::Vacant(vacant) => vacant.insert(Vec::new()),
        };
        if !entries.iter().any(|(o, r, _)| o == object && r == relation) {
            entries.push((object.clone(), relation.to_string(), known));
        }
    }
}
