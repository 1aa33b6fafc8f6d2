//! Garbage collection looks only at the keys written since the previous collection and at the
//! keys whose expirations passed, never at every key, yet leaves exactly what the rule asks:
//! random histories of touches (with and without expirations) and deletes, collected at random
//! horizons, compared with every version the rule itself keeps.

mod support;

use std::time::{Duration, SystemTime};

use pemba_store::{Datastore, MemoryPersistence, UpdateOperation, Version, WriteCommand};
use pemba_types::Relationship;
use support::Draw;

const SCHEMA: &str = "use expiration\n\ndefinition user {}\n\ndefinition document {\n    relation viewer: user | user with expiration\n}\n";

impl Draw {
    /// A viewer relationship among 3 x 4 keys, expiring 1-120 s after `now` half the time.
    fn relationship(&mut self, now: SystemTime) -> Relationship {
        let text = format!("document:d{}#viewer@user:u{}", self.below(3), self.below(4));
        let mut relationship = Relationship::parse(&text).expect("generated relationships parse");
        if self.below(2) == 0 {
            relationship.expires_at = Some(now + Duration::from_secs(1 + self.below(120)));
        }
        relationship
    }

    fn command(&mut self, now: SystemTime) -> WriteCommand {
        let operations = [UpdateOperation::Touch, UpdateOperation::Delete];
        WriteCommand::Relationships {
            updates: (0..=self.below(3))
                .map(|_| (operations[self.below(2) as usize], self.relationship(now)))
                .collect(),
            preconditions: Vec::new(),
        }
    }
}

/// Revision `revision` is written at 1,000 s + `revision` s.
fn time_of(revision: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_000 + revision)
}

/// Every kept version, comparable: (created, deleted, relationship).
fn versions(store: &Datastore) -> Vec<Vec<(u64, Option<u64>, String)>> {
    store
        .export()
        .versions
        .iter()
        .map(|list| described(list))
        .collect()
}

fn described(list: &[Version]) -> Vec<(u64, Option<u64>, String)> {
    list.iter()
        .map(|v| (v.created, v.deleted, format!("{:?}", v.relationship)))
        .collect()
}

/// What the rule keeps of `before` at `horizon`: versions that had not ended by it and had not
/// expired before its time.
fn kept(before: &[Vec<Version>], horizon: u64) -> Vec<Vec<(u64, Option<u64>, String)>> {
    let time = time_of(horizon);
    before
        .iter()
        .map(|list| {
            let kept: Vec<Version> = list
                .iter()
                .filter(|v| v.deleted.is_none_or(|d| d > horizon))
                .filter(|v| !v.relationship.is_expired_at(time))
                .cloned()
                .collect();
            described(&kept)
        })
        .filter(|list| !list.is_empty())
        .collect()
}

fn run(seed: u64) {
    let mut draw = Draw(seed);
    let store = Datastore::open(Box::new(MemoryPersistence::default())).expect("opens");
    let schema = WriteCommand::Schema {
        text: SCHEMA.to_string(),
    };
    store
        .apply(1, time_of(1), &schema)
        .expect("the schema applies");
    let mut collections = 0;
    for revision in 2..=300 {
        let now = time_of(revision);
        let _ = store.apply(revision, now, &draw.command(now));
        if draw.below(20) != 0 {
            continue;
        }
        let before = store.export().versions;
        let window = Duration::from_secs(draw.below(60));
        let horizon = store.collect_garbage(now, window).expect("collected");
        assert_eq!(
            versions(&store),
            kept(&before, horizon),
            "seed {seed}: collected at revision {revision} to horizon {horizon}"
        );
        collections += 1;
    }
    assert!(
        collections > 5,
        "seed {seed}: only {collections} collections"
    );
}

#[test]
fn collecting_only_written_and_expired_keys_leaves_what_the_rule_keeps() {
    for seed in 1..=100 {
        run(seed * 7919);
    }
}
