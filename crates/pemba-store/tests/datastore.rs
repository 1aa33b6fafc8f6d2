//! The datastore's write and read contract, over in-memory persistence.

use std::time::{Duration, SystemTime};

use pemba_engine::{Engine, Permissionship};
use pemba_store::{
    Change, Datastore, MemoryPersistence, Precondition, ReadError, RelationshipFilter,
    SidecarUpdate, SubjectFilter, UpdateOperation, WriteCommand, WriteError,
};
use pemba_types::{ObjectRef, Relationship, SubjectRef};

const SCHEMA: &str = "definition user {}\n\ndefinition document {\n    relation viewer: user\n    relation editor: user\n    permission view = viewer + editor\n}\n";

fn rel(text: &str) -> Relationship {
    Relationship::parse(text).unwrap()
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
    let store = Datastore::open(Box::new(disk.clone())).unwrap();
    store
        .apply(
            1,
            at(1),
            &WriteCommand::Schema {
                text: SCHEMA.to_string(),
            },
        )
        .unwrap();
    (store, disk)
}

fn viewers(store: &Datastore, revision: u64) -> Vec<String> {
    let filter = RelationshipFilter {
        resource_type: Some("document".into()),
        ..Default::default()
    };
    store
        .snapshot(revision)
        .unwrap()
        .query(&filter, None, 100)
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
            (2, vec![Change::Touch(rel("document:a#viewer@user:tom"))]),
            (3, vec![Change::Touch(rel("document:b#viewer@user:tom"))]),
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
    let horizon = store
        .collect_garbage(at(260), Duration::from_secs(50))
        .unwrap();
    assert_eq!(horizon, 3);
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
        .apply_entry(2, at(2), Some(&create_twice), |outcome| {
            assert!(outcome.is_err());
            note("2")
        })
        .unwrap();
    assert!(matches!(refused, Err(WriteError::DuplicateUpdate(_))));
    assert_eq!(store.head(), 2);
    // An entry without a write only moves the head.
    store
        .apply_entry(3, at(3), None, |_| note("3"))
        .unwrap()
        .unwrap();
    store
        .apply_entry(
            4,
            at(4),
            Some(&touch(&["document:a#viewer@user:tom"])),
            |_| note("4"),
        )
        .unwrap()
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

#[test]
fn an_exported_image_installs_as_an_identical_datastore() {
    let (store, _) = open_with_schema();
    store
        .apply(2, at(2), &touch(&["document:a#viewer@user:tom"]))
        .unwrap();
    store
        .apply_entry(
            3,
            at(3),
            Some(&touch(&["document:b#viewer@user:sam"])),
            |_| {
                vec![SidecarUpdate {
                    key: b"k".to_vec(),
                    value: Some(b"v".to_vec()),
                }]
            },
        )
        .unwrap()
        .unwrap();
    let image = store.export();

    // Installed over a datastore with other contents, which it replaces entirely.
    let (other, other_disk) = open_with_schema();
    other
        .apply(2, at(2), &touch(&["document:z#viewer@user:zed"]))
        .unwrap();
    other.install(image.clone()).unwrap();
    assert_eq!(other.export(), image);
    assert_eq!(viewers(&other, 2), ["document:a#viewer@user:tom"]);
    assert_eq!(viewers(&other, 3).len(), 2);
    assert_eq!(other.changes_after(1).unwrap().len(), 2);
    // The replacement is durable.
    let reopened = Datastore::open(Box::new(other_disk)).unwrap();
    assert_eq!(reopened.export(), image);
}
