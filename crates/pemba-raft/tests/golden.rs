//! Golden fixtures of what the Raft log stores and a snapshot carries (see `pemba_codec::golden`):
//! each value below must decode from, and encode to, its checked-in fixture. A failure means a
//! format changed: give it a new version in `pemba_codec` and keep the old fixture readable.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use openraft::{CommittedLeaderId, Entry, EntryPayload, LeaderId, LogId, Membership, Vote};
use pemba_codec::{golden, Format};
use pemba_raft::{NodeId, Proposal, Request, TypeConfig};
use pemba_store::{
    AppliedWrite, Change, Precondition, Recovered, RelationshipFilter, SubjectFilter,
    UpdateOperation, Version, WriteCommand,
};
use pemba_types::Relationship;

fn at(seconds: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::new(seconds, 123_456_789)
}

fn relationship(text: &str) -> Relationship {
    Relationship::parse(text).expect("a valid relationship")
}

fn log_id(index: u64) -> LogId<NodeId> {
    LogId::new(CommittedLeaderId::new(3, 1), index)
}

fn entry(index: u64, payload: EntryPayload<TypeConfig>) -> Entry<TypeConfig> {
    Entry {
        log_id: log_id(index),
        payload,
    }
}

fn write(command: WriteCommand) -> EntryPayload<TypeConfig> {
    EntryPayload::Normal(Request::Write {
        request_id: "node-1/7".into(),
        timestamp: at(1_700_000_000),
        command: Box::new(command),
    })
}

fn filter() -> RelationshipFilter {
    RelationshipFilter {
        resource_type: Some("document".into()),
        resource_id: None,
        resource_id_prefix: Some("doc-".into()),
        relation: Some("viewer".into()),
        subject: Some(SubjectFilter {
            subject_type: "group".into(),
            subject_id: Some("eng".into()),
            relation: Some(Some("member".into())),
        }),
    }
}

fn check<T: serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug>(
    name: &str,
    format: Format,
    value: &T,
) {
    golden::assert_fixture(env!("CARGO_MANIFEST_DIR"), name, format, value);
}

#[test]
fn log_entries() {
    let relationships = WriteCommand::Relationships {
        updates: vec![
            (
                UpdateOperation::Touch,
                relationship(
                    r#"document:doc-1#viewer@user:alice[on_weekdays:{"day":"mon","n":[1,2.5]}]"#,
                ),
            ),
            (
                UpdateOperation::Create,
                relationship(
                    "document:doc-1#viewer@group:eng#member[expiration:2030-01-02T03:04:05Z]",
                ),
            ),
            (
                UpdateOperation::Delete,
                relationship("document:doc-2#owner@user:*"),
            ),
        ],
        preconditions: vec![Precondition {
            must_match: false,
            filter: filter(),
        }],
    };
    check(
        "entry_write_relationships",
        Format::LogEntry,
        &entry(42, write(relationships)),
    );
    let delete = WriteCommand::DeleteByFilter {
        filter: filter(),
        preconditions: Vec::new(),
        limit: Some(1000),
        allow_partial: true,
    };
    check(
        "entry_write_delete_by_filter",
        Format::LogEntry,
        &entry(43, write(delete)),
    );
    let import = WriteCommand::Import {
        relationships: vec![relationship("folder:f#parent@folder:root")],
    };
    check(
        "entry_write_import",
        Format::LogEntry,
        &entry(44, write(import)),
    );
    let schema = WriteCommand::Schema {
        text: "definition user {}\ndefinition document {\n  relation viewer: user\n}\n".into(),
    };
    check(
        "entry_write_schema",
        Format::LogEntry,
        &entry(45, write(schema)),
    );
    let tick = EntryPayload::Normal(Request::Tick {
        timestamp: at(1_700_000_060),
    });
    check("entry_tick", Format::LogEntry, &entry(46, tick));
    let init = EntryPayload::Normal(Request::InitCluster {
        cluster_id: "c0ffee00-1234".into(),
    });
    check("entry_init_cluster", Format::LogEntry, &entry(1, init));
    check(
        "entry_blank",
        Format::LogEntry,
        &entry(2, EntryPayload::Blank),
    );
    let checkpoint = EntryPayload::Normal(Request::Checkpoint {
        revision: 40,
        digest: pemba_store::StateDigest(0x0123_4567_89ab_cdef_fedc_ba98_7654_3210),
    });
    check("entry_checkpoint", Format::LogEntry, &entry(47, checkpoint));
    let writes = EntryPayload::Normal(Request::Writes {
        timestamp: at(1_700_000_120),
        writes: vec![
            Proposal {
                request_id: "node-2/8".into(),
                command: WriteCommand::Import {
                    relationships: vec![relationship("folder:f#parent@folder:root")],
                },
            },
            Proposal {
                request_id: "node-3/9".into(),
                command: WriteCommand::Schema {
                    text: "definition user {}\n".into(),
                },
            },
        ],
    });
    check("entry_writes", Format::LogEntry, &entry(48, writes));
    let raise = EntryPayload::Normal(Request::RaiseFormat { version: 2 });
    check("entry_raise_format", Format::LogEntry, &entry(49, raise));
    let nodes: BTreeMap<NodeId, openraft::BasicNode> = [1, 2, 3, 4]
        .map(|id| (id, openraft::BasicNode::new(format!("10.0.0.{id}:50061"))))
        .into();
    let membership = Membership::new(vec![BTreeSet::from([1, 2, 3])], nodes);
    check(
        "entry_membership",
        Format::LogEntry,
        &entry(3, EntryPayload::Membership(membership)),
    );
}

#[test]
fn raft_metadata() {
    let vote = Vote {
        leader_id: LeaderId::new(3, 1),
        committed: true,
    };
    check("vote", Format::Vote, &vote);
    check("log_id", Format::LogId, &log_id(40));
    check("committed", Format::LogId, &Some(log_id(41)));
    check("committed_none", Format::LogId, &None::<LogId<NodeId>>);
}

#[test]
fn snapshot_image() {
    let alice = Arc::new(relationship("document:doc-1#viewer@user:alice"));
    let eng = Arc::new(relationship(
        r#"document:doc-1#viewer@group:eng#member[ip_allowed:{"cidr":"10.0.0.0/8"}]"#,
    ));
    let image = Recovered {
        head: 12,
        horizon: 5,
        versions: vec![
            vec![
                Version {
                    created: 6,
                    deleted: Some(9),
                    relationship: alice.clone(),
                },
                Version {
                    created: 11,
                    deleted: None,
                    relationship: alice.clone(),
                },
            ],
            vec![Version {
                created: 7,
                deleted: None,
                relationship: eng.clone(),
            }],
        ],
        schemas: vec![(5, "definition user {}".into())],
        writes: vec![AppliedWrite {
            revision: 11,
            timestamp: at(1_700_000_100),
            schema: None,
            changes: vec![Change::Touch(alice.clone()), Change::Delete(eng)],
            versions: Vec::new(),
            is_write: true,
            advances_clock: false,
            sidecar: Vec::new(),
        }],
        sidecar: BTreeMap::from([(b"raft/cluster-id".to_vec(), b"c0ffee00-1234".to_vec())]),
    };
    check("snapshot", Format::Snapshot, &image);
}
