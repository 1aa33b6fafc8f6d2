//! What one request has already worked out: Check's sub-problems, so that a group or folder
//! reached along several paths is walked once.

use std::cell::RefCell;
use std::hash::BuildHasher;

use pemba_caveats::Truth;
use pemba_types::{ObjectRef, SubjectRef};
use rustc_hash::{FxBuildHasher, FxHashMap};

/// One remembered answer: the question, the dispatch depth it was found with, and the answer.
type Entry = (ObjectRef, String, SubjectRef, u32, Truth);

/// Answers to "is `subject` in `resource#name`?" with the dispatch depth each was found with.
/// An answer found with `d` dispatches left is also the answer with more left (the walk is the
/// same and did not run out); with fewer it might not be (the walk could run out), so it is
/// reused only then. Errors are never remembered. Valid for one snapshot, schema, request
/// context and hint: one engine's lifetime.
///
/// Entries are bucketed by a hash of the question, so a lookup copies nothing; a bucket's
/// entries are compared in full, so a hash collision never returns another question's answer.
#[derive(Debug, Default)]
pub(crate) struct Memo {
    buckets: RefCell<FxHashMap<u64, Vec<Entry>>>,
}

/// The bucket of "is `subject` in `resource#name`?": computed once per question and passed to
/// both [`Memo::recall`] and [`Memo::remember`].
pub(crate) fn hash_of(resource: &ObjectRef, name: &str, subject: &SubjectRef) -> u64 {
    FxBuildHasher.hash_one((resource, name, subject))
}

/// The hash of the userset `object#relation`: closures are sorted and cached by it.
pub(crate) fn hash_userset(object: &ObjectRef, relation: &str) -> u64 {
    FxBuildHasher.hash_one((object, relation))
}

fn is_question(entry: &Entry, resource: &ObjectRef, name: &str, subject: &SubjectRef) -> bool {
    entry.0 == *resource && entry.1 == name && entry.2 == *subject
}

impl Memo {
    pub(crate) fn recall(
        &self,
        hash: u64,
        resource: &ObjectRef,
        name: &str,
        subject: &SubjectRef,
        depth: u32,
    ) -> Option<Truth> {
        let buckets = self.buckets.borrow();
        let bucket = buckets.get(&hash)?;
        bucket
            .iter()
            .find(|e| is_question(e, resource, name, subject) && depth >= e.3)
            .map(|e| e.4.clone())
    }

    pub(crate) fn remember(
        &self,
        hash: u64,
        resource: &ObjectRef,
        name: &str,
        subject: &SubjectRef,
        depth: u32,
        truth: Truth,
    ) {
        let mut buckets = self.buckets.borrow_mut();
        let bucket = buckets.entry(hash).or_default();
        match bucket
            .iter_mut()
            .find(|e| is_question(e, resource, name, subject))
        {
            Some(entry) if depth < entry.3 => {
                entry.3 = depth;
                entry.4 = truth;
            }
            Some(_) => {}
            None => bucket.push((
                resource.clone(),
                name.to_string(),
                subject.clone(),
                depth,
                truth,
            )),
        }
    }
}
