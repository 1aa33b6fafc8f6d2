//! What one request has already worked out: Check's sub-problems, so that a group or folder
//! reached along several paths is walked once.

use std::cell::RefCell;
use std::collections::hash_map::Entry as Slot;
use std::hash::BuildHasher;

use pemba_caveats::Truth;
use pemba_types::{ObjectRef, SubjectRef};
use rustc_hash::{FxBuildHasher, FxHashMap};

/// One remembered answer: the question (the subject as its place in [`Memo::subjects`], the
/// member's name borrowed from the schema), the dispatch depth it was found with, the answer.
#[derive(Debug)]
struct Entry<'a> {
    resource: ObjectRef,
    name: &'a str,
    subject: usize,
    depth: u32,
    truth: Truth,
}

/// Answers to "is `subject` in `resource#name`?" with the dispatch depth each was found with.
/// An answer found with `d` dispatches left is also the answer with more left (the walk is the
/// same and did not run out); with fewer it might not be (the walk could run out), so it is
/// reused only then. Errors are never remembered. Valid for one snapshot, schema, request
/// context and hint: one engine's lifetime.
///
/// Entries are found by a hash of the question and compared in full, so a hash collision never
/// returns another question's answer; of two questions with one hash, the first is remembered
/// (the second is walked each time, as without a memo).
#[derive(Debug, Default)]
pub(crate) struct Memo<'a> {
    /// The subjects questions were asked about: a check asks about one, a lookup about a few.
    subjects: RefCell<Vec<SubjectRef>>,
    entries: RefCell<FxHashMap<u64, Entry<'a>>>,
}

/// The hash of "is `subject` in `resource#name`?": computed once per question and passed to
/// both [`Memo::recall`] and [`Memo::remember`].
pub(crate) fn hash_of(resource: &ObjectRef, name: &str, subject: &SubjectRef) -> u64 {
    FxBuildHasher.hash_one((resource, name, subject))
}

/// The hash of the userset `object#relation`: closures are sorted and cached by it.
pub(crate) fn hash_userset(object: &ObjectRef, relation: &str) -> u64 {
    FxBuildHasher.hash_one((object, relation))
}

impl<'a> Memo<'a> {
    fn is_question(
        &self,
        entry: &Entry,
        resource: &ObjectRef,
        name: &str,
        subject: &SubjectRef,
    ) -> bool {
        entry.name == name
            && entry.resource == *resource
            && self.subjects.borrow()[entry.subject] == *subject
    }

    pub(crate) fn recall(
        &self,
        hash: u64,
        resource: &ObjectRef,
        name: &str,
        subject: &SubjectRef,
        depth: u32,
    ) -> Option<Truth> {
        let entries = self.entries.borrow();
        let entry = entries.get(&hash)?;
        (depth >= entry.depth && self.is_question(entry, resource, name, subject))
            .then(|| entry.truth.clone())
    }

    pub(crate) fn remember(
        &self,
        hash: u64,
        resource: &ObjectRef,
        name: &'a str,
        subject: &SubjectRef,
        depth: u32,
        truth: Truth,
    ) {
        match self.entries.borrow_mut().entry(hash) {
            Slot::Occupied(mut slot) => {
                let entry = slot.get_mut();
                if depth < entry.depth && self.is_question(entry, resource, name, subject) {
                    entry.depth = depth;
                    entry.truth = truth;
                }
            }
            Slot::Vacant(slot) => {
                let mut subjects = self.subjects.borrow_mut();
                let index = subjects
                    .iter()
                    .position(|s| s == subject)
                    .unwrap_or_else(|| {
                        subjects.push(subject.clone());
                        subjects.len() - 1
                    });
                slot.insert(Entry {
                    resource: resource.clone(),
                    name,
                    subject: index,
                    depth,
                    truth,
                });
            }
        }
    }
}
