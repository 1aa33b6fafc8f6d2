//! The datastore's write and read contract, over in-memory persistence.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use pemba_engine::{Engine, Permissionship, RelationshipSnapshot, SnapshotError};
use pemba_store::{
    Change, Datastore, MemoryPersistence, Precondition, ReadError, RelationshipFilter,
    SidecarUpdate, SubjectFilter, UpdateOperation, WriteCommand, WriteError,
};
use pemba_types::{ObjectRef, Relationship, SubjectRef};

const SCHEMA: &str = "definition user {}\n\ndefinition document {\n    relation viewer: user\n    relation editor: user\n    permission view = viewer + editor\n}\n";

fn rel(text: &str) -> Relationship {
    Relationship::parse(text).expect("the test setup holds")
}

fn at(seconds: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
}

fn touch(texts: &[&str]) -> WriteCommand {
    WriteCommand::Relationships {
        updates: texts
            .iter()
            .map(|t| (UpdateOperation::Touch, rel(t)))
            .collect(),
        preconditions: Vec::new(),
    }
}

fn open_with_schema() -> (Datastore, MemoryPersistence) {
    let disk = MemoryPersistence::default();
    let store = Datastore::open(Box::new(disk.clone())).expect("the test setup holds");
    store
        .apply(
            1,
            at(1),
            &WriteCommand::Schema {
                text: SCHEMA.to_string(),
            },
        )
        .expect("the test setup holds");
    (store, disk)
}

fn viewers(store: &Datastore, revision: u64) -> Vec<String> {
    let filter = RelationshipFilter {
        resource_type: Some("document".into()),
        ..Default::default()
    };
    store
        .snapshot(revision)
        .expect("the test setup holds")
        .query(&filter, None, 100)
        .expect("the test setup holds")
        .iter()
        .map(|r| r.to_string())
        .collect()
}

#[test]
fn every_revision_reads_exactly_its_state() {
    let (store, _) = open_with_schema();
    store
        .apply(2, at(2), &touch(&["document:a#viewer@user:tom"]))
        .unwrap();
    store
        .apply(
            3,
            at(3),
            &WriteCommand::Relationships {
                updates: vec![
                    (UpdateOperation::Delete, rel("document:a#viewer@user:tom")),
                    (UpdateOperation::Create, rel("document:a#editor@user:sam")),
                ],
                preconditions: vec![],
            },
        )
        .unwrap();
    assert_eq!(viewers(&store, 1), Vec::<String>::new());
    assert_eq!(viewers(&store, 2), ["document:a#viewer@user:tom"]);
    assert_eq!(viewers(&store, 3), ["document:a#editor@user:sam"]);
    let snapshot = store.snapshot(2).unwrap();
    let engine = Engine::new(snapshot.compiled_schema(), &snapshot);
    let tom = SubjectRef::object("user", "tom");
    assert_eq!(
        engine.check(&ObjectRef::new("document", "a"), "view", &tom),
        Ok(Permissionship::HasPermission)
    );
    assert_eq!(
        store.snapshot(4).err(),
        Some(ReadError::RevisionNotYetAvailable {
            revision: 4,
            head: 3
        })
    );
}

#[test]
fn refused_writes_change_nothing() {
    let (store, _) = open_with_schema();
    store
        .apply(2, at(2), &touch(&["document:a#viewer@user:tom"]))
        .unwrap();
    let create_existing = WriteCommand::Relationships {
        updates: vec![
            (UpdateOperation::Touch, rel("document:b#viewer@user:x")),
            (UpdateOperation::Create, rel("document:a#viewer@user:tom")),
        ],
        preconditions: vec![],
    };
    assert!(matches!(
        store.apply(3, at(3), &create_existing),
        Err(WriteError::AlreadyExists(_))
    ));
    let unknown = touch(&["document:b#owner@user:x"]);
    let err = store.apply(3, at(3), &unknown).unwrap_err();
    assert_eq!(
        err.to_string(),
        "relation/permission `owner` not found under definition `document`"
    );
    let duplicate = touch(&["document:b#viewer@user:x", "document:b#viewer@user:x"]);
    assert!(matches!(
        store.apply(3, at(3), &duplicate),
        Err(WriteError::DuplicateUpdate(_))
    ));
    assert_eq!(store.head(), 2);
    assert_eq!(viewers(&store, 2), ["document:a#viewer@user:tom"]);
}

#[test]
fn touching_an_unchanged_relationship_is_no_change() {
    let (store, _) = open_with_schema();
    store
        .apply(2, at(2), &touch(&["document:a#viewer@user:tom"]))
        .unwrap();
    store
        .apply(
            3,
            at(3),
            &touch(&["document:a#viewer@user:tom", "document:b#viewer@user:tom"]),
        )
        .unwrap();
    let changes: Vec<(u64, Vec<Change>)> = store
        .changes_after(1)
        .unwrap()
        .into_iter()
        .map(|(revision, changes)| (revision, changes.to_vec()))
        .collect();
    assert_eq!(
        changes,
        [
            (
                2,
                vec![Change::Touch(Arc::new(rel("document:a#viewer@user:tom")))]
            ),
            (
                3,
                vec![Change::Touch(Arc::new(rel("document:b#viewer@user:tom")))]
            ),
        ]
    );
    assert_eq!(
        viewers(&store, 3),
        ["document:a#viewer@user:tom", "document:b#viewer@user:tom"]
    );
}

#[test]
fn preconditions_are_compare_and_set() {
    let (store, _) = open_with_schema();
    let tom_is_viewer = RelationshipFilter {
        resource_type: Some("document".into()),
        resource_id: Some("a".into()),
        relation: Some("viewer".into()),
        subject: Some(SubjectFilter {
            subject_type: "user".into(),
            subject_id: Some("tom".into()),
            relation: Some(None),
        }),
        ..Default::default()
    };
    let guarded = |must_match| WriteCommand::Relationships {
        updates: vec![(UpdateOperation::Touch, rel("document:a#editor@user:sam"))],
        preconditions: vec![Precondition {
            must_match,
            filter: tom_is_viewer.clone(),
        }],
    };
    let err = store.apply(2, at(2), &guarded(true)).unwrap_err();
    assert!(matches!(err, WriteError::PreconditionFailed(_)));
    assert_eq!(
        err.to_string(),
        "unable to satisfy write precondition: MUST_MATCH {resource_type=document, resource_id=a, relation=viewer, subject_type=user, subject_id=tom, subject_relation=...}"
    );
    store.apply(2, at(2), &guarded(false)).unwrap();
    store
        .apply(3, at(3), &touch(&["document:a#viewer@user:tom"]))
        .unwrap();
    assert!(store.apply(4, at(4), &guarded(false)).is_err());
    store.apply(4, at(4), &guarded(true)).unwrap();
}

#[test]
fn delete_by_filter_respects_its_limit() {
    let (store, _) = open_with_schema();
    store
        .apply(
            2,
            at(2),
            &touch(&[
                "document:a#viewer@user:x",
                "document:b#viewer@user:x",
                "document:c#viewer@user:x",
            ]),
        )
        .unwrap();
    let delete = |limit, allow_partial| WriteCommand::DeleteByFilter {
        filter: RelationshipFilter {
            resource_type: Some("document".into()),
            ..Default::default()
        },
        preconditions: vec![],
        limit,
        allow_partial,
    };
    let err = store.apply(3, at(3), &delete(Some(2), false)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "found more than 2 relationships to be deleted and partial deletion was not requested"
    );
    let result = store.apply(3, at(3), &delete(Some(2), true)).unwrap();
    assert_eq!((result.count, result.partial), (2, true));
    let result = store.apply(4, at(4), &delete(None, false)).unwrap();
    assert_eq!((result.count, result.partial), (1, false));
    assert!(viewers(&store, 4).is_empty());
}

#[test]
fn schema_changes_may_not_orphan_relationships() {
    let (store, _) = open_with_schema();
    store
        .apply(2, at(2), &touch(&["document:a#editor@user:tom"]))
        .unwrap();
    let without_editor = "definition user {}\n\ndefinition document {\n    relation viewer: user\n    permission view = viewer\n}\n";
    let err = store
        .apply(
            3,
            at(3),
            &WriteCommand::Schema {
                text: without_editor.into(),
            },
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot delete relation `editor` in object definition `document`, as at least one relationship exists under it: document:a#editor@user:tom"
    );
    let err = store
        .apply(
            3,
            at(3),
            &WriteCommand::Schema {
                text: "definition user {}".into(),
            },
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot delete object definition `document`, as at least one relationship exists under it: document:a#editor@user:tom"
    );
    let editor_is_group = SCHEMA.replace("relation editor: user", "relation editor: document");
    let err = store
        .apply(
            3,
            at(3),
            &WriteCommand::Schema {
                text: editor_is_group,
            },
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot remove allowed type `user` from relation `editor` in object definition `document`, as a relationship exists with it: document:a#editor@user:tom"
    );
    store.apply(3, at(3), &touch(&[])).unwrap();
    store
        .apply(
            4,
            at(4),
            &WriteCommand::Relationships {
                updates: vec![(UpdateOperation::Delete, rel("document:a#editor@user:tom"))],
                preconditions: vec![],
            },
        )
        .unwrap();
    store
        .apply(
            5,
            at(5),
            &WriteCommand::Schema {
                text: without_editor.into(),
            },
        )
        .unwrap();
    assert_eq!(
        store.snapshot(5).unwrap().schema().unwrap().text,
        without_editor
    );
    assert_eq!(store.snapshot(4).unwrap().schema().unwrap().text, SCHEMA);
}

#[test]
fn reopening_recovers_every_acknowledged_write() {
    let (store, disk) = open_with_schema();
    store
        .apply(2, at(2), &touch(&["document:a#viewer@user:tom"]))
        .unwrap();
    store
        .apply(3, at(3), &touch(&["document:a#viewer@user:sam"]))
        .unwrap();
    drop(store);
    let reopened = Datastore::open(Box::new(disk)).unwrap();
    assert_eq!(reopened.head(), 3);
    assert_eq!(viewers(&reopened, 2), ["document:a#viewer@user:tom"]);
    assert_eq!(
        viewers(&reopened, 3),
        ["document:a#viewer@user:sam", "document:a#viewer@user:tom"]
    );
    assert_eq!(reopened.changes_after(1).unwrap().len(), 2);
    assert_eq!(reopened.snapshot(3).unwrap().schema().unwrap().text, SCHEMA);
}

#[test]
fn garbage_collection_ends_old_reads_but_keeps_current_state() {
    let (store, disk) = open_with_schema();
    store
        .apply(2, at(100), &touch(&["document:a#viewer@user:tom"]))
        .unwrap();
    store
        .apply(
            3,
            at(200),
            &WriteCommand::Relationships {
                updates: vec![(UpdateOperation::Delete, rel("document:a#viewer@user:tom"))],
                preconditions: vec![],
            },
        )
        .unwrap();
    store
        .apply(4, at(300), &touch(&["document:b#viewer@user:sam"]))
        .unwrap();
    // A snapshot taken before the collection, still in use after it (a paginated read).
    let in_use = store.snapshot(2).unwrap();
    let horizon = store
        .collect_garbage(at(260), Duration::from_secs(50))
        .unwrap();
    assert_eq!(horizon, 3);
    let collected = SnapshotError::RevisionCollected {
        revision: 2,
        horizon: 3,
    };
    let filter = RelationshipFilter::default();
    assert_eq!(
        in_use.query(&filter, None, 10).err(),
        Some(collected.clone())
    );
    let tom = SubjectRef::parse("user:tom").unwrap();
    let document = ObjectRef::parse("document:a").unwrap();
    assert_eq!(
        in_use.relationship(&document, "viewer", &tom).err(),
        Some(collected.clone())
    );
    assert_eq!(in_use.subjects(&document, "viewer").err(), Some(collected));
    assert_eq!(
        store.snapshot(2).err(),
        Some(ReadError::RevisionTooOld {
            revision: 2,
            horizon: 3
        })
    );
    assert_eq!(viewers(&store, 3), Vec::<String>::new());
    assert_eq!(viewers(&store, 4), ["document:b#viewer@user:sam"]);
    assert!(store.changes_after(2).is_err());
    assert_eq!(store.changes_after(3).unwrap().len(), 1);
    let reopened = Datastore::open(Box::new(disk)).unwrap();
    assert_eq!(viewers(&reopened, 4), ["document:b#viewer@user:sam"]);
    assert!(reopened.snapshot(2).is_err());
}

#[test]
fn replicated_entries_consume_their_revision_and_keep_the_sidecar() {
    let (store, disk) = open_with_schema();
    let note = |value: &str| {
        vec![SidecarUpdate {
            key: b"applied".to_vec(),
            value: Some(value.as_bytes().to_vec()),
        }]
    };
    // A refused write still consumes its log entry's revision, and its sidecar is kept.
    let create_twice = WriteCommand::Relationships {
        updates: vec![
            (UpdateOperation::Create, rel("document:a#viewer@user:tom")),
            (UpdateOperation::Create, rel("document:a#viewer@user:tom")),
        ],
        preconditions: Vec::new(),
    };
    let refused = store
        .apply_entry(2, at(2), &[&create_twice], |outcomes| {
            assert!(outcomes[0].is_err());
            Ok(note("2"))
        })
        .unwrap();
    assert!(matches!(refused[..], [Err(WriteError::DuplicateUpdate(_))]));
    assert_eq!(store.head(), 2);
    // An entry without a write only moves the head.
    store.apply_entry(3, at(3), &[], |_| Ok(note("3"))).unwrap();
    store
        .apply_entry(4, at(4), &[&touch(&["document:a#viewer@user:tom"])], |_| {
            Ok(note("4"))
        })
        .unwrap();
    assert_eq!(store.head(), 4);
    assert_eq!(viewers(&store, 4), ["document:a#viewer@user:tom"]);
    // Only real writes are in the change log.
    let changed: Vec<u64> = store
        .changes_after(1)
        .unwrap()
        .iter()
        .map(|(r, _)| *r)
        .collect();
    assert_eq!(changed, [4]);
    let reopened = Datastore::open(Box::new(disk)).unwrap();
    assert_eq!(reopened.head(), 4);
    assert_eq!(reopened.sidecar().get(b"applied".as_slice()).unwrap(), b"4");
}

/// Installs `image` into `store` as a replication snapshot carries it: encoded, received, committed.
fn install(store: &Datastore, image: &pemba_store::Recovered) {
    let encoded = pemba_codec::encode(pemba_codec::Format::Snapshot, image).expect("encodes");
    let received = store.receive(encoded.as_slice()).expect("received");
    received.commit().expect("installed");
}

#[test]
fn an_exported_image_installs_as_an_identical_datastore() {
    let (store, _) = open_with_schema();
    store
        .apply(2, at(2), &touch(&["document:a#viewer@user:tom"]))
        .unwrap();
    store
        .apply_entry(3, at(3), &[&touch(&["document:b#viewer@user:sam"])], |_| {
            Ok(vec![SidecarUpdate {
                key: b"k".to_vec(),
                value: Some(b"v".to_vec()),
            }])
        })
        .unwrap();
    let image = store.export();

    // Installed over a datastore with other contents, which it replaces entirely.
    let (other, other_disk) = open_with_schema();
    other
        .apply(2, at(2), &touch(&["document:z#viewer@user:zed"]))
        .unwrap();
    let encoded = pemba_codec::encode(pemba_codec::Format::Snapshot, &image).unwrap();
    let received = other.receive(encoded.as_slice()).unwrap();
    assert_eq!(received.head(), 3);
    assert_eq!(received.sidecar().get(&b"k"[..]), Some(&b"v".to_vec()));
    // Until committed, the datastore is as it was.
    drop(received);
    assert_eq!(viewers(&other, 2), ["document:z#viewer@user:zed"]);
    install(&other, &image);
    assert_eq!(other.export(), image);
    assert_eq!(viewers(&other, 2), ["document:a#viewer@user:tom"]);
    assert_eq!(viewers(&other, 3).len(), 2);
    assert_eq!(other.changes_after(1).unwrap().len(), 2);
    // The replacement is durable.
    let reopened = Datastore::open(Box::new(other_disk)).unwrap();
    assert_eq!(reopened.export(), image);
}

const EXPIRING_SCHEMA: &str = "use expiration\n\ndefinition user {}\n\ndefinition document {\n    relation viewer: user | user with expiration\n    permission view = viewer\n}\n";

/// A store whose viewers may expire; the schema is written at revision 1, time 1 s.
fn open_expiring() -> (Datastore, MemoryPersistence) {
    let disk = MemoryPersistence::default();
    let store = Datastore::open(Box::new(disk.clone())).expect("the test setup holds");
    let schema = WriteCommand::Schema {
        text: EXPIRING_SCHEMA.to_string(),
    };
    store
        .apply(1, at(1), &schema)
        .expect("the test setup holds");
    (store, disk)
}

/// An entry that carries no write, only its time (a replication log's tick).
fn tick(store: &Datastore, revision: u64, seconds: u64) {
    store
        .apply_entry(revision, at(seconds), &[], |_| Ok(Vec::new()))
        .expect("the test setup holds");
}

fn seconds_of(store: &Datastore, revision: u64) -> u64 {
    let time = store
        .snapshot(revision)
        .expect("the test setup holds")
        .time();
    time.duration_since(SystemTime::UNIX_EPOCH)
        .expect("the test setup holds")
        .as_secs()
}

fn tom_may_view(store: &Datastore, revision: u64) -> Permissionship {
    let snapshot = store.snapshot(revision).expect("the test setup holds");
    let engine = Engine::new(snapshot.compiled_schema(), &snapshot);
    let tom = SubjectRef::object("user", "tom");
    engine
        .check(&ObjectRef::new("document", "a"), "view", &tom)
        .expect("the test setup holds")
}

#[test]
fn a_revision_judges_expirations_at_its_own_time_everywhere() {
    let (store, disk) = open_expiring();
    store
        .apply(
            2,
            at(2),
            &touch(&["document:a#viewer@user:tom[expiration:1970-01-01T00:00:10Z]"]),
        )
        .unwrap();
    tick(&store, 3, 10);
    tick(&store, 4, 11);
    // An older time does not move the clock back.
    tick(&store, 5, 5);
    let times: Vec<u64> = (1..=5).map(|r| seconds_of(&store, r)).collect();
    assert_eq!(times, [1, 2, 10, 11, 11]);
    let answers: Vec<Permissionship> = (2..=5).map(|r| tom_may_view(&store, r)).collect();
    use Permissionship::{HasPermission as Has, NoPermission as No};
    // Expiring exactly at a revision's time still counts (as in SpiceDB).
    assert_eq!(answers, [Has, Has, No, No]);
    assert_eq!(viewers(&store, 3).len(), 1);
    assert_eq!(viewers(&store, 4), Vec::<String>::new());

    // After a restart, and on a replica that installed an image, every revision keeps its time.
    let reopened = Datastore::open(Box::new(disk)).unwrap();
    let replica = Datastore::open(Box::new(MemoryPersistence::default())).unwrap();
    install(&replica, &store.export());
    for other in [&reopened, &replica] {
        let theirs: Vec<u64> = (1..=5).map(|r| seconds_of(other, r)).collect();
        assert_eq!(theirs, times);
        let answers: Vec<Permissionship> = (2..=5).map(|r| tom_may_view(other, r)).collect();
        assert_eq!(answers, [Has, Has, No, No]);
    }
}

#[test]
fn writes_treat_relationships_expired_at_their_time_as_absent() {
    let (store, _) = open_expiring();
    let tom = "document:a#viewer@user:tom[expiration:1970-01-01T00:00:10Z]";
    store.apply(2, at(2), &touch(&[tom])).unwrap();
    // Before it expires, tom exists: CREATE conflicts.
    let create_tom = WriteCommand::Relationships {
        updates: vec![(UpdateOperation::Create, rel("document:a#viewer@user:tom"))],
        preconditions: vec![],
    };
    assert!(matches!(
        store.apply(3, at(9), &create_tom),
        Err(WriteError::AlreadyExists(_))
    ));
    // At 20 s it has expired: a MUST_MATCH precondition on it fails ...
    let must_match = WriteCommand::Relationships {
        updates: vec![(UpdateOperation::Touch, rel("document:b#viewer@user:sam"))],
        preconditions: vec![Precondition {
            must_match: true,
            filter: RelationshipFilter {
                resource_type: Some("document".into()),
                resource_id: Some("a".into()),
                ..Default::default()
            },
        }],
    };
    assert!(matches!(
        store.apply(3, at(20), &must_match),
        Err(WriteError::PreconditionFailed(_))
    ));
    // ... deleting it changes nothing (so Watch reports nothing) ...
    let delete_tom = WriteCommand::Relationships {
        updates: vec![(UpdateOperation::Delete, rel("document:a#viewer@user:tom"))],
        preconditions: vec![],
    };
    store.apply(3, at(20), &delete_tom).unwrap();
    let delete_all = WriteCommand::DeleteByFilter {
        filter: RelationshipFilter {
            resource_type: Some("document".into()),
            ..Default::default()
        },
        preconditions: vec![],
        limit: None,
        allow_partial: false,
    };
    assert_eq!(store.apply(4, at(20), &delete_all).unwrap().count, 0);
    let changes = store.changes_after(2).unwrap();
    assert!(changes.iter().all(|(_, c)| c.is_empty()), "{changes:?}");
    // ... and CREATE succeeds.
    store.apply(5, at(21), &create_tom).unwrap();
    assert_eq!(viewers(&store, 5), ["document:a#viewer@user:tom"]);
}

#[test]
fn garbage_collection_drops_relationships_expired_before_the_horizon() {
    let (store, disk) = open_expiring();
    store
        .apply(
            2,
            at(2),
            &touch(&[
                "document:a#viewer@user:tom[expiration:1970-01-01T00:00:10Z]",
                "document:a#viewer@user:sam",
            ]),
        )
        .unwrap();
    store
        .apply(3, at(20), &touch(&["document:b#viewer@user:ann"]))
        .unwrap();
    assert_eq!(store.stats().versions, 3);
    let horizon = store
        .collect_garbage(at(30), Duration::from_secs(10))
        .unwrap();
    assert_eq!(horizon, 3);
    assert_eq!(
        store.stats().versions,
        2,
        "tom expired at 10 s, before 20 s"
    );
    let live = ["document:a#viewer@user:sam", "document:b#viewer@user:ann"];
    assert_eq!(viewers(&store, 3), live);
    assert_eq!(seconds_of(&store, 3), 20);
    let reopened = Datastore::open(Box::new(disk)).unwrap();
    assert_eq!(reopened.stats().versions, 2);
    assert_eq!(seconds_of(&reopened, 3), 20, "the horizon keeps its time");
    assert_eq!(viewers(&reopened, 3), live);
}

/// Checks through nested groups are decided from flattened subject sets shared between reads;
/// a write that changes a subject set, or the schema, starts a new epoch, and reads at older
/// revisions still see their own nesting.
#[test]
fn flattened_subject_sets_follow_every_write() {
    const NESTED: &str = "definition user {}\n\ndefinition group {\n    relation member: user | group#member\n}\n\ndefinition document {\n    relation viewer: group#member\n    permission view = viewer\n}\n";
    let store = Datastore::open(Box::new(MemoryPersistence::default())).unwrap();
    let mut revision = 0;
    let mut write = |command: WriteCommand| {
        revision += 1;
        store.apply(revision, at(revision), &command).unwrap();
        revision
    };
    write(WriteCommand::Schema {
        text: NESTED.to_string(),
    });
    let apart = write(touch(&[
        "group:leads#member@user:tom",
        "document:plan#viewer@group:eng#member",
    ]));
    let view = |revision: u64| {
        let snapshot = store.snapshot(revision).unwrap();
        assert!(
            snapshot.closures().is_some(),
            "revision {revision} has an epoch"
        );
        Engine::new(snapshot.compiled_schema(), &snapshot)
            .check(
                &ObjectRef::new("document", "plan"),
                "view",
                &SubjectRef::object("user", "tom"),
            )
            .unwrap()
    };
    assert_eq!(view(apart), Permissionship::NoPermission);
    let nested = write(touch(&["group:eng#member@group:leads#member"]));
    assert_eq!(view(nested), Permissionship::HasPermission);
    assert_eq!(view(apart), Permissionship::NoPermission);
    let epoch = |revision: u64| store.snapshot(revision).unwrap().closures().map(|(_, e)| e);
    assert_eq!(
        epoch(nested),
        Some(nested),
        "a nested group starts an epoch"
    );
    // Neither a user's membership nor a document's subject set changes what a group reaches.
    let unrelated = write(touch(&[
        "group:ops#member@user:ann",
        "document:spec#viewer@group:leads#member",
    ]));
    assert_eq!(epoch(unrelated), Some(nested));
    assert_eq!(view(unrelated), Permissionship::HasPermission);
    let removed = write(WriteCommand::Relationships {
        updates: vec![(
            UpdateOperation::Delete,
            rel("group:eng#member@group:leads#member"),
        )],
        preconditions: Vec::new(),
    });
    assert_eq!(view(removed), Permissionship::NoPermission);
    assert_eq!(view(nested), Permissionship::HasPermission);
}
