//! Seeded datasets for Pemba's benchmarks.
//!
//! The document-sharing dataset: users in groups nested five deep, folders in a hierarchy,
//! documents in folders, shared with groups and users, some users banned. The same seed always
//! gives the same relationships and the same questions.

// Not every public item is documented yet: `missing_docs` (see the workspace's lints) is
// allowed here until it is.
#![allow(missing_docs)]

use std::collections::HashSet;

use pemba_types::{ObjectRef, Relationship, SubjectRef};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The schema every document-sharing dataset is written for.
pub const DOCUMENT_SHARING_SCHEMA: &str = r#"
definition user {}

definition group {
    relation member: user | group#member
}

definition folder {
    relation parent: folder
    relation viewer: user | group#member
    permission view = viewer + parent->view
}

definition document {
    relation parent: folder
    relation viewer: user | user:* | group#member
    relation banned: user
    permission view = (viewer + parent->view) - banned
}
"#;

/// How many groups deep membership nests.
pub const GROUP_DEPTH: usize = 5;

/// A generated dataset and a stream of check questions over it.
pub struct Dataset {
    pub relationships: Vec<Relationship>,
    pub users: usize,
    pub documents: usize,
}

/// Relationships without duplicates, in the order first added.
#[derive(Default)]
struct Relationships {
    list: Vec<Relationship>,
    seen: HashSet<String>,
}

impl Relationships {
    fn add(&mut self, r: Relationship) {
        if self.seen.insert(r.to_string()) {
            self.list.push(r);
        }
    }

    fn len(&self) -> usize {
        self.list.len()
    }
}

fn rel(resource: ObjectRef, relation: &str, subject: SubjectRef) -> Relationship {
    Relationship::new(resource, relation, subject)
}

fn group_member(id: usize) -> SubjectRef {
    SubjectRef::new(
        ObjectRef::new("group", format!("g{id}")),
        Some("member".to_string()),
    )
}

/// Builds a document-sharing dataset of about `target` relationships (at least a few thousand).
pub fn document_sharing(target: usize, seed: u64) -> Dataset {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let users = (target / 10).max(100);
    let groups_per_level = (target / 100).max(10);
    let folders = (target / 50).max(10);
    let mut relationships = Relationships::default();
    let user = |i: usize| SubjectRef::object("user", format!("u{i}"));

    // Level 0 groups hold users; level k groups hold four level k-1 groups.
    for g in 0..groups_per_level {
        for _ in 0..20 {
            relationships.add(rel(
                ObjectRef::new("group", format!("g{g}")),
                "member",
                user(rng.gen_range(0..users)),
            ));
        }
    }
    for level in 1..GROUP_DEPTH {
        for g in 0..groups_per_level {
            let id = level * groups_per_level + g;
            for _ in 0..4 {
                let child = (level - 1) * groups_per_level + rng.gen_range(0..groups_per_level);
                relationships.add(rel(
                    ObjectRef::new("group", format!("g{id}")),
                    "member",
                    group_member(child),
                ));
            }
        }
    }
    let any_group = |rng: &mut ChaCha8Rng| rng.gen_range(0..groups_per_level * GROUP_DEPTH);

    // Folders form a forest: each folder's parent has a smaller id.
    for f in 1..folders {
        let folder = ObjectRef::new("folder", format!("f{f}"));
        relationships.add(rel(
            folder.clone(),
            "parent",
            SubjectRef::object("folder", format!("f{}", rng.gen_range(0..f))),
        ));
        if rng.gen_bool(0.3) {
            relationships.add(rel(folder, "viewer", group_member(any_group(&mut rng))));
        }
    }

    let mut documents = 0;
    while relationships.len() < target {
        let document = ObjectRef::new("document", format!("d{documents}"));
        documents += 1;
        relationships.add(rel(
            document.clone(),
            "parent",
            SubjectRef::object("folder", format!("f{}", rng.gen_range(0..folders))),
        ));
        relationships.add(rel(
            document.clone(),
            "viewer",
            group_member(any_group(&mut rng)),
        ));
        if rng.gen_bool(0.5) {
            relationships.add(rel(
                document.clone(),
                "viewer",
                user(rng.gen_range(0..users)),
            ));
        }
        if rng.gen_bool(0.1) {
            relationships.add(rel(
                document.clone(),
                "banned",
                user(rng.gen_range(0..users)),
            ));
        }
        if rng.gen_bool(0.01) {
            relationships.add(rel(document, "viewer", SubjectRef::object("user", "*")));
        }
    }
    let mut relationships = relationships.list;
    relationships.shuffle(&mut rng);
    Dataset {
        relationships,
        users,
        documents,
    }
}

impl Dataset {
    /// `count` random (document, `view`, user) questions, seeded.
    pub fn check_questions(&self, count: usize, seed: u64) -> Vec<(ObjectRef, SubjectRef)> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..count)
            .map(|_| {
                (
                    ObjectRef::new("document", format!("d{}", rng.gen_range(0..self.documents))),
                    SubjectRef::object("user", format!("u{}", rng.gen_range(0..self.users))),
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_dataset() {
        let a = document_sharing(5_000, 7);
        let b = document_sharing(5_000, 7);
        assert_eq!(a.relationships, b.relationships);
        let unique: HashSet<String> = a.relationships.iter().map(|r| r.to_string()).collect();
        assert_eq!(unique.len(), a.relationships.len(), "no duplicates");
        assert!(a.relationships.len() >= 5_000);
        assert_ne!(a.relationships, document_sharing(5_000, 8).relationships);
    }
}
