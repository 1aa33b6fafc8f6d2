//! The state machine's own contract beyond openraft's suite: revisions are log indexes, a write
//! request retried under the same id is applied once, refusals consume their entry, every
//! revision's time comes from the log, and all of it survives a snapshot into another replica.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};
use pemba_engine::RelationshipSnapshot;
use pemba_raft::{Proposal, Request, StateMachine, TypeConfig, WriteOutcome, Written};
use pemba_store::{Datastore, MemoryPersistence, RefusalKind, UpdateOperation, WriteCommand};
use pemba_types::Relationship;

const SCHEMA: &str = "definition user {}\ndefinition document {\n    relation viewer: user\n}";

fn new_machine() -> (StateMachine, Arc<Datastore>) {
    let datastore =
        Arc::new(Datastore::open(Box::new(MemoryPersistence::default())).expect("a datastore"));
    (
        StateMachine::new(datastore.clone()).expect("a state machine"),
        datastore,
    )
}

fn entry(index: u64, payload: EntryPayload<TypeConfig>) -> Entry<TypeConfig> {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
        payload,
    }
}

fn write(index: u64, request_id: &str, seconds: u64, command: WriteCommand) -> Entry<TypeConfig> {
    entry(
        index,
        EntryPayload::Normal(Request::Write {
            request_id: request_id.into(),
            timestamp: SystemTime::UNIX_EPOCH + Duration::from_secs(seconds),
            command: Box::new(command),
        }),
    )
}

fn create(text: &str) -> WriteCommand {
    WriteCommand::Relationships {
        updates: vec![(
            UpdateOperation::Create,
            Relationship::parse(text).expect("a relationship"),
        )],
        preconditions: Vec::new(),
    }
}

fn schema() -> WriteCommand {
    WriteCommand::Schema {
        text: SCHEMA.into(),
    }
}

fn written(revision: u64) -> WriteOutcome {
    Ok(Written {
        revision,
        count: 0,
        partial: false,
    })
}

#[tokio::test]
async fn a_retried_request_is_applied_once_even_after_a_snapshot() {
    let (mut machine, datastore) = new_machine();
    let outcomes = machine
        .apply([
            entry(1, EntryPayload::Blank),
            write(2, "n1-a", 10, schema()),
            write(3, "n1-b", 11, create("document:plan#viewer@user:tom")),
            // The same request again (a retry after a lost answer): answered from the record.
            write(4, "n1-b", 12, create("document:plan#viewer@user:tom")),
            // A different request doing the same: refused, and the refusal consumes index 5.
            write(5, "n1-c", 13, create("document:plan#viewer@user:tom")),
        ])
        .await
        .expect("applied");
    assert!(
        outcomes[0].is_empty(),
        "an entry without writes answers none"
    );
    assert_eq!(outcomes[1], [written(2)]);
    assert_eq!(outcomes[2], [written(3)]);
    assert_eq!(
        outcomes[3],
        [written(3)],
        "the retry reports the first application"
    );
    let refused = outcomes[4][0]
        .clone()
        .expect_err("a second create is refused");
    assert_eq!(refused.kind, RefusalKind::AlreadyExists);
    assert_eq!(datastore.head(), 5);
    assert_eq!(
        datastore.changes_after(0).expect("readable").len(),
        2,
        "only the schema and the first create changed anything"
    );

    // A replica installing a snapshot de-duplicates the same way.
    let snapshot = machine.build_snapshot().await.expect("a snapshot");
    assert_eq!(snapshot.meta.last_log_id.map(|l| l.index), Some(5));
    let (mut replica, replica_store) = new_machine();
    replica
        .install_snapshot(&snapshot.meta, snapshot.snapshot)
        .await
        .expect("installed");
    assert_eq!(replica_store.export(), datastore.export());
    let again = replica
        .apply([write(
            6,
            "n1-b",
            14,
            create("document:plan#viewer@user:tom"),
        )])
        .await
        .expect("applied");
    assert_eq!(again, [[written(3)]]);
    assert_eq!(replica.snapshot_counts().installed, 1);
}

#[tokio::test]
async fn request_records_expire_after_the_window_of_log_time_and_of_log_entries() {
    let (mut machine, _) = new_machine();
    let window = pemba_raft::DEDUPLICATION_WINDOW.as_secs();
    let entries = pemba_raft::DEDUPLICATION_ENTRIES;
    machine
        .apply([
            write(1, "old", 10, schema()),
            // Long after in both time and position: the old record is gone, so the same id is
            // a new request.
            write(1 + entries, "later", 10 + window + 1, schema()),
            write(2 + entries, "old", 10 + window + 2, schema()),
        ])
        .await
        .map(|outcomes| assert_eq!(outcomes[2], [written(2 + entries)]))
        .expect("applied");
}

#[tokio::test]
async fn a_retry_after_a_jump_of_the_log_time_is_still_applied_once() {
    let (mut machine, _) = new_machine();
    let window = pemba_raft::DEDUPLICATION_WINDOW.as_secs();
    let outcomes = machine
        .apply([
            write(1, "retried", 10, schema()),
            // A leader whose clock is far ahead: log time leaps past the window at once.
            write(2, "other", 10 + 10 * window, schema()),
            write(3, "retried", 10 + 10 * window, schema()),
        ])
        .await
        .expect("applied");
    assert_eq!(outcomes[2], [written(1)], "the retry was applied again");
}

fn tick(index: u64, seconds: u64) -> Entry<TypeConfig> {
    entry(
        index,
        EntryPayload::Normal(Request::Tick {
            timestamp: SystemTime::UNIX_EPOCH + Duration::from_secs(seconds),
        }),
    )
}

fn time_of(datastore: &Datastore, revision: u64) -> u64 {
    datastore
        .snapshot(revision)
        .expect("readable")
        .time()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("after the epoch")
        .as_secs()
}

#[tokio::test]
async fn every_revision_takes_its_time_from_the_log_and_time_never_goes_back() {
    let (mut machine, datastore) = new_machine();
    machine
        .apply([
            write(1, "n1-a", 10, schema()),
            tick(2, 20),
            entry(3, EntryPayload::Blank),
            // A new leader whose clock is behind: neither its tick nor its write moves time back.
            tick(4, 15),
            write(5, "n2-a", 16, create("document:plan#viewer@user:tom")),
            tick(6, 30),
        ])
        .await
        .expect("applied");
    let times: Vec<u64> = (1..=6).map(|r| time_of(&datastore, r)).collect();
    assert_eq!(times, [10, 20, 20, 20, 20, 30]);

    // A replica that installs a snapshot reads every revision at the same time.
    let snapshot = machine.build_snapshot().await.expect("a snapshot");
    let (mut replica, replica_store) = new_machine();
    replica
        .install_snapshot(&snapshot.meta, snapshot.snapshot)
        .await
        .expect("installed");
    let replica_times: Vec<u64> = (1..=6).map(|r| time_of(&replica_store, r)).collect();
    assert_eq!(replica_times, times);
    // And its next tick continues from there.
    replica.apply([tick(7, 25)]).await.expect("applied");
    assert_eq!(time_of(&replica_store, 7), 30);
}

fn checkpoint(index: u64, revision: u64, digest: pemba_store::StateDigest) -> Entry<TypeConfig> {
    entry(
        index,
        EntryPayload::Normal(Request::Checkpoint { revision, digest }),
    )
}

/// A replica compares the leader's digest of a revision with its own: equal is counted, unknown
/// skipped, different makes it diverged (and a replica that installed the same state by snapshot
/// has the same digest).
#[tokio::test]
async fn checkpoints_compare_the_leaders_digest_with_this_replicas() {
    let (mut machine, datastore) = new_machine();
    machine
        .apply([
            entry(1, EntryPayload::Blank),
            write(2, "n1-a", 10, schema()),
            write(3, "n1-b", 11, create("document:plan#viewer@user:tom")),
        ])
        .await
        .expect("applied");
    let ours = datastore.digest_at(3).expect("remembered");
    let before = datastore.digest_at(2).expect("remembered");
    assert_ne!(ours, before, "a write changes the digest");
    machine
        .apply([checkpoint(4, 3, ours), checkpoint(5, 1_000, ours)])
        .await
        .expect("applied");
    let checks = machine.digest_checks();
    assert_eq!(
        (checks.matched, checks.skipped, checks.mismatched),
        (1, 1, 0)
    );
    assert_eq!(machine.divergence(), None);

    // Another replica installs a snapshot of this state: its digest of the head is the same.
    let snapshot = machine.build_snapshot().await.expect("built");
    let (mut other, other_datastore) = new_machine();
    other
        .install_snapshot(&snapshot.meta, snapshot.snapshot)
        .await
        .expect("installed");
    assert_eq!(other_datastore.digest_at(5), datastore.digest_at(5));

    machine
        .apply([checkpoint(6, 3, before)])
        .await
        .expect("applied");
    let divergence = machine.divergence().expect("diverged");
    assert_eq!(
        (divergence.revision, divergence.ours, divergence.leaders),
        (3, ours, before)
    );
    assert_eq!(machine.digest_checks().mismatched, 1);
}

fn proposal(request_id: &str, command: WriteCommand) -> Proposal {
    Proposal {
        request_id: request_id.into(),
        command,
    }
}

#[tokio::test]
async fn grouped_writes_share_a_revision_and_each_has_its_own_outcome() {
    let (mut machine, datastore) = new_machine();
    let group = |index: u64, writes: Vec<Proposal>| {
        entry(
            index,
            EntryPayload::Normal(Request::Writes {
                timestamp: SystemTime::UNIX_EPOCH + Duration::from_secs(20),
                writes,
            }),
        )
    };
    let outcomes = machine
        .apply([
            write(1, "s", 10, schema()),
            group(
                2,
                vec![
                    proposal("a", create("document:plan#viewer@user:tom")),
                    // Planned after "a": the same create is refused, and changes nothing.
                    proposal("b", create("document:plan#viewer@user:tom")),
                    proposal("c", create("document:spec#viewer@user:tom")),
                    // A retry of "a" queued in the same group: answered as "a" was.
                    proposal("a", create("document:plan#viewer@user:tom")),
                    // A retry of a request applied in an earlier entry.
                    proposal("s", schema()),
                ],
            ),
            // A retry of "b" in a later group: its remembered refusal, not a new attempt.
            group(
                3,
                vec![proposal("b", create("document:plan#viewer@user:tom"))],
            ),
        ])
        .await
        .expect("applied");
    let group_outcomes = &outcomes[1];
    assert_eq!(group_outcomes.len(), 5);
    assert_eq!(group_outcomes[0], written(2));
    let refused = group_outcomes[1].clone().expect_err("a second create");
    assert_eq!(refused.kind, RefusalKind::AlreadyExists);
    assert_eq!(group_outcomes[2], written(2));
    assert_eq!(group_outcomes[3], written(2));
    assert_eq!(group_outcomes[4], written(1));
    assert_eq!(outcomes[2], [Err(refused)]);
    assert_eq!(datastore.head(), 3);
    let snapshot = datastore.snapshot(2).expect("readable");
    let tom = pemba_types::SubjectRef::parse("user:tom").expect("a subject");
    assert_eq!(
        snapshot.resources_of(&tom.object).expect("readable").len(),
        2
    );
}

fn raise(index: u64, version: u32) -> Entry<TypeConfig> {
    entry(
        index,
        EntryPayload::Normal(Request::RaiseFormat { version }),
    )
}

#[tokio::test]
async fn a_replica_refuses_a_log_format_newer_than_it_reads() {
    let reading_one = |datastore| StateMachine::reading_formats_up_to(datastore, 1);
    let (mut current, datastore) = new_machine();
    assert_eq!(current.log_format(), pemba_raft::FIRST_LOG_FORMAT);
    current
        .apply([raise(1, 2), raise(2, 1)])
        .await
        .expect("applied");
    assert_eq!(current.log_format(), 2, "a format is never lowered");
    let reopened = StateMachine::new(datastore.clone()).expect("reopens");
    assert_eq!(reopened.log_format(), 2, "the format is durable");

    // A build that reads format 1 only stops at the entry raising it to 2...
    let old_store =
        Arc::new(Datastore::open(Box::new(MemoryPersistence::default())).expect("a datastore"));
    let mut old = reading_one(old_store).expect("starts");
    old.apply([raise(1, 1)]).await.expect("format 1 it reads");
    let refused = old
        .apply([raise(2, 2)])
        .await
        .expect_err("format 2 it does not");
    assert!(
        format!("{refused:?}").contains("newer than this build reads"),
        "{refused:?}"
    );
    // ...refuses a snapshot of a format-2 cluster...
    let snapshot = current.build_snapshot().await.expect("a snapshot");
    let fresh =
        Arc::new(Datastore::open(Box::new(MemoryPersistence::default())).expect("a datastore"));
    let mut old = reading_one(fresh).expect("starts");
    old.install_snapshot(&snapshot.meta, snapshot.snapshot)
        .await
        .expect_err("the snapshot is of format 2");
    // ...and does not start over a format-2 replica's state.
    assert!(reading_one(datastore).is_err());
}
