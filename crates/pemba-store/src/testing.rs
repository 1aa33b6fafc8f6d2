//! A test suite every [`Persistence`] backend runs against itself (as openraft's storage suite
//! is run against every log): what a replacement (a snapshot's install) leaves stored, after a
//! commit, after one abandoned half way, and after a restart.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use pemba_types::{Relationship, Revision};

use crate::index::{key_of, Change, Version};
use crate::persistence::{AppliedWrite, Durability, Persistence, Recovered};

/// Opens the storage under test: the same storage each call, as a restarted process finds it.
/// The suite drops what a call returned before it calls again.
pub type Reopen<'a> = &'a dyn Fn() -> Box<dyn Persistence>;

/// Runs every case against fresh storage from `fresh`, each opened again by its `Reopen`.
/// Panics, naming the case, on the first failure.
pub fn persistence_suite(fresh: &dyn Fn() -> Box<dyn Fn() -> Box<dyn Persistence>>) {
    a_committed_replacement_is_the_whole_state(&*fresh());
    an_abandoned_replacement_leaves_the_state_as_it_was(&*fresh());
    replacements_in_a_row_each_replace_the_last(&*fresh());
    an_image_is_what_was_stored_when_it_was_taken(&*fresh());
}

fn version(text: &str, created: Revision) -> Version {
    Version {
        created,
        deleted: None,
        relationship: Arc::new(Relationship::parse(text).expect("a valid relationship")),
    }
}

fn at(seconds: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
}

/// A write at `revision` touching `text`.
fn touch(revision: Revision, text: &str) -> AppliedWrite {
    let created = version(text, revision);
    AppliedWrite {
        revision,
        timestamp: at(revision),
        schema: None,
        changes: vec![Change::Touch(created.relationship.clone())],
        versions: vec![(key_of(&created.relationship), vec![created])],
        is_write: true,
        advances_clock: true,
        sidecar: Vec::new(),
    }
}

/// The relationships stored, as text, sorted.
fn stored(recovered: &Recovered) -> Vec<String> {
    let mut texts: Vec<String> = recovered
        .versions
        .iter()
        .flatten()
        .map(|v| v.relationship.to_string())
        .collect();
    texts.sort();
    texts
}

/// An image at `head` holding `texts` (created at 2), with a schema and a sidecar entry.
fn image_of(head: Revision, texts: &[&str]) -> Recovered {
    Recovered {
        head,
        horizon: 2,
        versions: texts.iter().map(|t| vec![version(t, 2)]).collect(),
        schemas: vec![(1, format!("definition user {{}} // {head}"))],
        writes: vec![AppliedWrite {
            versions: Vec::new(),
            ..touch(
                2,
                texts.first().copied().unwrap_or("document:x#viewer@user:x"),
            )
        }],
        sidecar: BTreeMap::from([(b"image".to_vec(), head.to_be_bytes().to_vec())]),
    }
}

/// Storage holding `document:old#viewer@user:a` (at revision 3), with a replacement begun
/// that staged `staged`.
fn stored_then_staged(reopen: Reopen, staged: &str) -> Box<dyn Persistence> {
    let mut storage = reopen();
    storage
        .persist(&touch(3, "document:old#viewer@user:a"), Durability::Synced)
        .expect("persisted");
    storage.begin_replacement().expect("begun");
    storage
        .stage_versions(&[vec![version(staged, 2)]])
        .expect("staged");
    storage
}

fn a_committed_replacement_is_the_whole_state(reopen: Reopen) {
    let mut storage = stored_then_staged(reopen, "document:staged#viewer@user:b");
    let replacement = image_of(7, &["document:image#viewer@user:c"]);
    storage.commit_replacement(&replacement).expect("committed");
    let expected = [
        "document:image#viewer@user:c",
        "document:staged#viewer@user:b",
    ];
    let recovered = storage.recover().expect("recovers");
    assert_eq!(stored(&recovered), expected, "committed replacement");
    drop(storage);

    let mut storage = reopen();
    let recovered = storage.recover().expect("recovers");
    assert_eq!(
        stored(&recovered),
        expected,
        "committed replacement, reopened"
    );
    assert_eq!((recovered.head, recovered.horizon), (7, 2));
    assert_eq!(recovered.schemas, replacement.schemas);
    assert_eq!(recovered.sidecar, replacement.sidecar);
    assert_eq!(
        recovered
            .writes
            .iter()
            .map(|w| w.revision)
            .collect::<Vec<_>>(),
        [2]
    );
    // Writes after the replacement go where the replacement is.
    storage
        .persist(
            &touch(8, "document:after#viewer@user:d"),
            Durability::Synced,
        )
        .expect("persisted");
    drop(storage);
    let recovered = reopen().recover().expect("recovers");
    assert_eq!(
        stored(&recovered),
        [
            "document:after#viewer@user:d",
            "document:image#viewer@user:c",
            "document:staged#viewer@user:b",
        ],
        "a write after a replacement, reopened"
    );
    assert_eq!(recovered.head, 8);
}

fn an_abandoned_replacement_leaves_the_state_as_it_was(reopen: Reopen) {
    let storage = stored_then_staged(reopen, "document:abandoned#viewer@user:b");
    // The process stops here, as a crash during an install stops it.
    drop(storage);

    let mut storage = reopen();
    let recovered = storage.recover().expect("recovers");
    assert_eq!(
        stored(&recovered),
        ["document:old#viewer@user:a"],
        "abandoned"
    );
    assert_eq!(recovered.head, 3);
    // A later replacement holds nothing the abandoned one staged.
    storage.begin_replacement().expect("begun");
    storage
        .commit_replacement(&image_of(9, &["document:image#viewer@user:c"]))
        .expect("committed");
    drop(storage);
    let recovered = reopen().recover().expect("recovers");
    assert_eq!(
        stored(&recovered),
        ["document:image#viewer@user:c"],
        "replaced after an abandoned replacement"
    );
}

/// A write at `revision` touching `count` relationships with long ids: several MiB, so that
/// writing an image of it out takes a while.
fn touch_many(revision: Revision, count: usize) -> AppliedWrite {
    let pad = "x".repeat(200);
    let mut write = touch(revision, "document:first#viewer@user:a");
    for i in 0..count {
        let more = touch(revision, &format!("document:{pad}{i}#viewer@user:a"));
        write.changes.extend(more.changes);
        write.versions.extend(more.versions);
    }
    write
}

fn an_image_is_what_was_stored_when_it_was_taken(reopen: Reopen) {
    let mut storage = reopen();
    storage
        .persist(&touch_many(3, 30_000), Durability::Synced)
        .expect("persisted");
    storage
        .persist(&touch(4, "document:b#viewer@user:b"), Durability::Deferred)
        .expect("persisted");
    let stored = storage.recover().expect("recovers");
    let then = pemba_codec::encode(pemba_codec::Format::Snapshot, &stored).expect("encodes");
    let image = storage.image().expect("an image is taken");
    // Neither a write nor a replacement after it is in the image (which, at several MiB, is
    // still being read when they are made, if storage reads it as it is written out).
    storage
        .persist(&touch(5, "document:c#viewer@user:c"), Durability::Synced)
        .expect("persisted");
    storage.begin_replacement().expect("begun");
    storage
        .commit_replacement(&image_of(9, &["document:image#viewer@user:d"]))
        .expect("committed");
    let mut written = Vec::new();
    image.write_to(&mut written).expect("written out");
    assert_eq!(
        written, then,
        "the image taken before a write and a replacement"
    );
}

fn replacements_in_a_row_each_replace_the_last(reopen: Reopen) {
    for round in 0..3u64 {
        let text = format!("document:round{round}#viewer@user:a");
        let mut storage = reopen();
        storage.begin_replacement().expect("begun");
        storage
            .stage_versions(&[vec![version(&text, 2)]])
            .expect("staged");
        storage
            .commit_replacement(&image_of(10 + round, &[]))
            .expect("committed");
        drop(storage);
        let recovered = reopen().recover().expect("recovers");
        assert_eq!(stored(&recovered), [text], "round {round}");
        assert_eq!(recovered.head, 10 + round);
    }
}
