//! Bad input never panics the server and never changes stored data: each gets its status, and
//! the server keeps serving.

mod support;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use pemba_proto::authzed::api::v1 as api;
use pemba_proto::authzed::api::v1::permissions_service_client::PermissionsServiceClient;
use pemba_proto::authzed::api::v1::schema_service_client::SchemaServiceClient;
use support::{authorized, stored_documents, Server};
use tonic::Code;

const SCHEMA: &str = "definition user {}\n\ndefinition document {\n    relation viewer: user\n    permission view = viewer\n}\n";

fn object(object_type: &str, object_id: &str) -> Option<api::ObjectReference> {
    Some(api::ObjectReference {
        object_type: object_type.into(),
        object_id: object_id.into(),
    })
}

fn subject(object_type: &str, object_id: &str, relation: &str) -> Option<api::SubjectReference> {
    Some(api::SubjectReference {
        object: object(object_type, object_id),
        optional_relation: relation.into(),
    })
}

fn touch(
    resource: (&str, &str),
    relation: &str,
    subject_ref: Option<api::SubjectReference>,
) -> api::WriteRelationshipsRequest {
    api::WriteRelationshipsRequest {
        updates: vec![api::RelationshipUpdate {
            operation: api::relationship_update::Operation::Touch as i32,
            relationship: Some(api::Relationship {
                resource: object(resource.0, resource.1),
                relation: relation.into(),
                subject: subject_ref,
                optional_caveat: None,
                optional_expires_at: None,
            }),
        }],
        ..Default::default()
    }
}

/// The same update as a DELETE (SpiceDB validates deletes too).
fn delete(mut request: api::WriteRelationshipsRequest) -> api::WriteRelationshipsRequest {
    request.updates[0].operation = api::relationship_update::Operation::Delete as i32;
    request
}

fn at_exact(token: &str) -> Option<api::Consistency> {
    Some(api::Consistency {
        requirement: Some(api::consistency::Requirement::AtExactSnapshot(
            api::ZedToken {
                token: token.into(),
            },
        )),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_its_status_and_changes_nothing() {
    let data = tempfile::tempdir().expect("a temp dir");
    let server = Server::start(data.path());
    let channel = server.channel().await;
    let mut schema = SchemaServiceClient::new(channel.clone());
    let mut client =
        PermissionsServiceClient::new(channel).max_encoding_message_size(64 * 1024 * 1024);
    schema
        .write_schema(authorized(api::WriteSchemaRequest {
            schema: SCHEMA.into(),
        }))
        .await
        .expect("schema");
    let written = client
        .write_relationships(authorized(touch(
            ("document", "plan"),
            "viewer",
            subject("user", "tom", ""),
        )))
        .await
        .expect("a valid write")
        .into_inner()
        .written_at
        .expect("a token");
    let before = stored_documents(&mut client).await;

    let writes: Vec<(&str, api::WriteRelationshipsRequest, Code)> = vec![
        (
            "space in id",
            touch(("document", "a b"), "viewer", subject("user", "tom", "")),
            Code::InvalidArgument,
        ),
        (
            "empty id",
            touch(("document", ""), "viewer", subject("user", "tom", "")),
            Code::InvalidArgument,
        ),
        (
            "id too long",
            touch(
                ("document", &"x".repeat(1025)),
                "viewer",
                subject("user", "tom", ""),
            ),
            Code::InvalidArgument,
        ),
        (
            "unicode id",
            touch(("document", "é"), "viewer", subject("user", "tom", "")),
            Code::InvalidArgument,
        ),
        (
            "uppercase type",
            touch(("Document", "a"), "viewer", subject("user", "tom", "")),
            Code::InvalidArgument,
        ),
        (
            "unknown type",
            touch(("folder", "a"), "viewer", subject("user", "tom", "")),
            Code::FailedPrecondition,
        ),
        (
            "unknown relation",
            touch(("document", "a"), "owner", subject("user", "tom", "")),
            Code::FailedPrecondition,
        ),
        (
            "write to a permission",
            touch(("document", "a"), "view", subject("user", "tom", "")),
            Code::InvalidArgument,
        ),
        (
            "wildcard not allowed",
            touch(("document", "a"), "viewer", subject("user", "*", "")),
            Code::InvalidArgument,
        ),
        (
            "unknown subject relation",
            touch(
                ("document", "a"),
                "viewer",
                subject("user", "tom", "member"),
            ),
            Code::FailedPrecondition,
        ),
        (
            "missing subject",
            touch(("document", "a"), "viewer", None),
            Code::InvalidArgument,
        ),
        (
            "unspecified operation",
            {
                let mut r = touch(("document", "a"), "viewer", subject("user", "tom", ""));
                r.updates[0].operation = 0;
                r
            },
            Code::InvalidArgument,
        ),
        (
            "delete of an unknown type",
            delete(touch(("folder", "a"), "viewer", subject("user", "tom", ""))),
            Code::FailedPrecondition,
        ),
        (
            "delete of a subject type the relation does not allow",
            delete(touch(
                ("document", "a"),
                "viewer",
                subject("document", "b", ""),
            )),
            Code::InvalidArgument,
        ),
        (
            "too many updates",
            {
                let mut r = touch(("document", "a"), "viewer", subject("user", "tom", ""));
                let update = r.updates[0].clone();
                r.updates = (0..1001)
                    .map(|i| {
                        let mut u = update.clone();
                        if let Some(rel) = u.relationship.as_mut() {
                            rel.resource = object("document", &format!("d{i}"));
                        }
                        u
                    })
                    .collect();
                r
            },
            Code::InvalidArgument,
        ),
    ];
    for (what, request, code) in writes {
        let status = client
            .write_relationships(authorized(request))
            .await
            .expect_err(what);
        assert_eq!(status.code(), code, "{what}: {}", status.message());
    }

    let oversized = api::WriteSchemaRequest {
        schema: format!("// {}\n{SCHEMA}", "x".repeat(5 * 1024 * 1024)),
    };
    let status = schema
        .write_schema(authorized(oversized))
        .await
        .expect_err("oversized message");
    assert_eq!(status.code(), Code::OutOfRange, "{}", status.message());

    let checks: Vec<(&str, api::CheckPermissionRequest, Code)> = vec![
        (
            "garbled token",
            api::CheckPermissionRequest {
                consistency: at_exact("not-a-token"),
                resource: object("document", "plan"),
                permission: "view".into(),
                subject: subject("user", "tom", ""),
                ..Default::default()
            },
            Code::InvalidArgument,
        ),
        (
            "unknown permission",
            api::CheckPermissionRequest {
                resource: object("document", "plan"),
                permission: "edit".into(),
                subject: subject("user", "tom", ""),
                ..Default::default()
            },
            Code::FailedPrecondition,
        ),
        (
            "wildcard subject",
            api::CheckPermissionRequest {
                resource: object("document", "plan"),
                permission: "view".into(),
                subject: subject("user", "*", ""),
                ..Default::default()
            },
            Code::InvalidArgument,
        ),
    ];
    for (what, request, code) in checks {
        let status = client
            .check_permission(authorized(request))
            .await
            .expect_err(what);
        assert_eq!(status.code(), code, "{what}: {}", status.message());
    }

    // Garbage on the wire: a connection that is not HTTP/2 at all, then one that breaks the
    // HTTP/2 preface. The server drops them and keeps serving.
    for garbage in [
        &b"\x00\xffnot a grpc request at all\r\n\r\n"[..],
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\xff\xff\xff\xff\xff\xff\xff\xff\xff",
    ] {
        let mut raw = TcpStream::connect(server.addr).expect("raw connect");
        raw.set_write_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let _ = raw.write_all(garbage);
    }

    let answer = client
        .check_permission(authorized(api::CheckPermissionRequest {
            consistency: at_exact(&written.token),
            resource: object("document", "plan"),
            permission: "view".into(),
            subject: subject("user", "tom", ""),
            ..Default::default()
        }))
        .await
        .expect("still serving")
        .into_inner();
    assert_eq!(
        answer.permissionship,
        api::check_permission_response::Permissionship::HasPermission as i32
    );
    assert_eq!(
        stored_documents(&mut client).await,
        before,
        "nothing stored changed"
    );
}

/// A client that cancels an import before ending its stream commits none of the part the server
/// was still collecting (tonic reports the cancellation to the handler as an ordinary end), and
/// the same import ended by the client commits it all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_import_commits_nothing_it_was_collecting() {
    use tokio_stream::wrappers::ReceiverStream;

    let data = tempfile::tempdir().expect("a temp dir");
    let server = Server::start(data.path());
    let channel = server.channel().await;
    SchemaServiceClient::new(channel.clone())
        .write_schema(authorized(api::WriteSchemaRequest {
            schema: SCHEMA.into(),
        }))
        .await
        .expect("schema");
    let client = PermissionsServiceClient::new(channel);
    let batch = |range: std::ops::Range<usize>| api::ImportBulkRelationshipsRequest {
        relationships: range
            .map(|i| support::viewer(&format!("d{i}"), &format!("u{i}")))
            .collect(),
    };

    // Starts an import and sends it 2,000 relationships, leaving its stream open.
    let start_import = || async {
        let (messages, stream) = tokio::sync::mpsc::channel(4);
        let mut importer = client.clone();
        let call = tokio::spawn(async move {
            importer
                .import_bulk_relationships(authorized(ReceiverStream::new(stream)))
                .await
        });
        for part in [0..1_000, 1_000..2_000] {
            messages.send(batch(part)).await.expect("the call is open");
        }
        (messages, call)
    };

    let (messages, call) = start_import().await;
    // Give the server time to read both messages, then cancel with the stream still open.
    tokio::time::sleep(Duration::from_millis(500)).await;
    call.abort();
    let _ = call.await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut reader = client.clone();
    assert_eq!(
        stored_documents(&mut reader).await.len(),
        0,
        "a cancelled import committed what it had received"
    );
    drop(messages);

    let (messages, call) = start_import().await;
    drop(messages);
    let loaded = call
        .await
        .expect("the call ran")
        .expect("an ended import succeeds")
        .into_inner()
        .num_loaded;
    assert_eq!(loaded, 2_000);
    assert_eq!(stored_documents(&mut reader).await.len(), 2_000);
}
