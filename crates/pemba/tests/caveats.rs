//! Caveats and expiring relationships through the gRPC API of a `pemba serve` process: schema
//! compile errors, written and request contexts, conditional answers with the missing context,
//! wrong context types, and relationships that expire (on time, with no writes to move the log's
//! clock, and never at a revision whose time precedes the expiry).

mod support;

use std::time::{Duration, Instant};

use pemba_proto::authzed::api::v1 as api;
use pemba_proto::authzed::api::v1::permissions_service_client::PermissionsServiceClient;
use pemba_proto::authzed::api::v1::schema_service_client::SchemaServiceClient;
use pemba_proto::convert::{json_to_struct, relationship_to_api};
use pemba_types::Relationship;
use serde_json::{json, Value};
use support::{authorized, Server};
use tonic::transport::Channel;
use tonic::Code;

const SCHEMA: &str = r#"use expiration

caveat on_network(ip ipaddress, allowed string) {
    ip.in_cidr(allowed)
}

definition user {}

definition document {
    relation viewer: user with on_network | user with expiration
    permission view = viewer
}
"#;

fn context(value: Value) -> Option<pemba_proto::prost_types::Struct> {
    Some(json_to_struct(value.as_object().expect("an object")))
}

fn touch(text: &str) -> api::WriteRelationshipsRequest {
    let relationship = Relationship::parse(text).expect("a relationship");
    api::WriteRelationshipsRequest {
        updates: vec![api::RelationshipUpdate {
            operation: api::relationship_update::Operation::Touch as i32,
            relationship: Some(relationship_to_api(&relationship)),
        }],
        ..Default::default()
    }
}

fn full() -> Option<api::Consistency> {
    Some(api::Consistency {
        requirement: Some(api::consistency::Requirement::FullyConsistent(true)),
    })
}

async fn check(
    client: &mut PermissionsServiceClient<Channel>,
    user: &str,
    request_context: Value,
) -> Result<(api::check_permission_response::Permissionship, Vec<String>), tonic::Status> {
    check_with(client, full(), user, request_context).await
}

/// Whether `user` may view `document:plan`, with `consistency`; with any missing context.
async fn check_with(
    client: &mut PermissionsServiceClient<Channel>,
    consistency: Option<api::Consistency>,
    user: &str,
    request_context: Value,
) -> Result<(api::check_permission_response::Permissionship, Vec<String>), tonic::Status> {
    let response = client
        .check_permission(authorized(api::CheckPermissionRequest {
            consistency,
            resource: Some(api::ObjectReference {
                object_type: "document".into(),
                object_id: "plan".into(),
            }),
            permission: "view".into(),
            subject: Some(api::SubjectReference {
                object: Some(api::ObjectReference {
                    object_type: "user".into(),
                    object_id: user.into(),
                }),
                optional_relation: String::new(),
            }),
            context: context(request_context),
            ..Default::default()
        }))
        .await?
        .into_inner();
    let permissionship = response.permissionship();
    let missing = response
        .partial_caveat_info
        .map(|info| info.missing_required_context)
        .unwrap_or_default();
    Ok((permissionship, missing))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caveats_and_expiration_over_the_api() {
    use api::check_permission_response::Permissionship::*;
    let data = tempfile::tempdir().expect("a temp dir");
    let server = Server::start(data.path());
    let channel = server.channel().await;
    let mut schema = SchemaServiceClient::new(channel.clone());
    let mut client = PermissionsServiceClient::new(channel);

    // A caveat expression that does not type-check is refused with cel-go's report, placed where
    // the expression sits in the schema.
    let bad = SCHEMA.replace("ip.in_cidr(allowed)", "ip.in_cidr(allowed) == 'yes'");
    let error = schema
        .write_schema(authorized(api::WriteSchemaRequest { schema: bad }))
        .await
        .expect_err("a bool compared with a string");
    assert_eq!(error.code(), Code::InvalidArgument);
    assert!(
        error.message().ends_with(
            "invalid expression for caveat `on_network`: ERROR: on_network:4:25: found no matching overload for '_==_' applied to '(bool, string)'"
        ),
        "{}",
        error.message()
    );
    schema
        .write_schema(authorized(api::WriteSchemaRequest {
            schema: SCHEMA.into(),
        }))
        .await
        .expect("the schema is written");

    // Written contexts are checked against the parameters.
    let error = client
        .write_relationships(authorized(touch(
            r#"document:plan#viewer@user:tom[on_network:{"allowed":7}]"#,
        )))
        .await
        .expect_err("a number for a string");
    // SpiceDB's status for this error (it attaches none, so gRPC says UNKNOWN).
    assert_eq!(error.code(), Code::Unknown);
    assert_eq!(
        error.message(),
        "could not convert context parameter `allowed`: for string: a string value is required, but found float64 `7`"
    );
    for text in [
        r#"document:plan#viewer@user:tom[on_network:{"allowed":"10.0.0.0/8"}]"#,
        "document:plan#viewer@user:old[expiration:2001-01-01T00:00:00Z]",
        "document:plan#viewer@user:new[expiration:2300-01-01T00:00:00Z]",
    ] {
        client
            .write_relationships(authorized(touch(text)))
            .await
            .unwrap_or_else(|e| panic!("{text}: {e}"));
    }

    // Without the request's part of the context the answer is conditional.
    assert_eq!(
        check(&mut client, "tom", json!({})).await.unwrap(),
        (ConditionalPermission, vec!["ip".to_string()])
    );
    assert_eq!(
        check(&mut client, "tom", json!({"ip": "10.1.2.3"}))
            .await
            .unwrap(),
        (HasPermission, vec![])
    );
    // The written context wins over the request's.
    assert_eq!(
        check(
            &mut client,
            "tom",
            json!({"ip": "192.168.0.1", "allowed": "0.0.0.0/0"})
        )
        .await
        .unwrap(),
        (NoPermission, vec![])
    );
    let error = check(&mut client, "tom", json!({"ip": 12}))
        .await
        .expect_err("a number for an address");
    assert_eq!(error.code(), Code::InvalidArgument);
    assert_eq!(
        error.message(),
        "type error for parameters for caveat `on_network`: could not convert context parameter `ip`: for ipaddress: ipaddress requires an ipaddress string, found: float64 `12`"
    );

    // A request context over SpiceDB's 4096-byte limit is refused (SpiceDB counts 5013 too).
    let error = check(&mut client, "tom", json!({"ip": "x".repeat(5000)}))
        .await
        .expect_err("an oversized context");
    assert_eq!(error.code(), Code::InvalidArgument);
    assert_eq!(
        error.message(),
        "request caveat context should have less than 4096 bytes but had 5013"
    );

    // Expired relationships grant nothing; those expiring later do.
    assert_eq!(
        check(&mut client, "old", json!({})).await.unwrap(),
        (NoPermission, vec![])
    );
    assert_eq!(
        check(&mut client, "new", json!({})).await.unwrap(),
        (HasPermission, vec![])
    );

    // ReadRelationships shows the live relationships only, with their caveats and expirations.
    let mut stream = client
        .read_relationships(authorized(api::ReadRelationshipsRequest {
            consistency: full(),
            relationship_filter: Some(api::RelationshipFilter {
                resource_type: "document".into(),
                ..Default::default()
            }),
            ..Default::default()
        }))
        .await
        .expect("read")
        .into_inner();
    let mut read = Vec::new();
    while let Some(item) = stream.message().await.expect("ok") {
        let relationship = item.relationship.expect("a relationship");
        let subject = relationship
            .subject
            .expect("a subject")
            .object
            .expect("an object");
        read.push((
            subject.object_id,
            relationship.optional_caveat.map(|c| c.caveat_name),
            relationship.optional_expires_at.map(|t| t.seconds),
        ));
    }
    assert_eq!(
        read,
        [
            ("new".to_string(), None, Some(10_413_792_000)),
            ("tom".to_string(), Some("on_network".to_string()), None),
        ]
    );

    // Nor does the export show the expired one.
    let mut stream = client
        .export_bulk_relationships(authorized(api::ExportBulkRelationshipsRequest::default()))
        .await
        .expect("export")
        .into_inner();
    let mut exported = Vec::new();
    while let Some(batch) = stream.message().await.expect("ok") {
        for relationship in batch.relationships {
            let subject = relationship
                .subject
                .expect("a subject")
                .object
                .expect("an object");
            exported.push(subject.object_id);
        }
    }
    assert_eq!(exported, ["new", "tom"]);

    // LookupResources reports the conditional resource with what it is missing.
    let mut stream = client
        .lookup_resources(authorized(api::LookupResourcesRequest {
            consistency: full(),
            resource_object_type: "document".into(),
            permission: "view".into(),
            subject: Some(api::SubjectReference {
                object: Some(api::ObjectReference {
                    object_type: "user".into(),
                    object_id: "tom".into(),
                }),
                optional_relation: String::new(),
            }),
            ..Default::default()
        }))
        .await
        .expect("lookup")
        .into_inner();
    let found = stream.message().await.expect("ok").expect("one resource");
    assert_eq!(found.resource_object_id, "plan");
    assert_eq!(
        found.permissionship(),
        api::LookupPermissionship::ConditionalPermission
    );
    assert_eq!(
        found
            .partial_caveat_info
            .expect("info")
            .missing_required_context,
        ["ip"]
    );
    assert!(stream.message().await.expect("ok").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relationship_expires_on_time_but_never_at_an_earlier_revision() {
    use api::check_permission_response::Permissionship::*;
    let data = tempfile::tempdir().expect("a temp dir");
    let args = ["--clock-tick".to_string(), "200ms".to_string()];
    let server = Server::start_with_args(data.path(), "off", support::free_port(), &args);
    let channel = server.channel().await;
    let mut client = PermissionsServiceClient::new(channel.clone());
    SchemaServiceClient::new(channel)
        .write_schema(authorized(api::WriteSchemaRequest {
            schema: SCHEMA.into(),
        }))
        .await
        .expect("the schema is written");

    let expires = std::time::SystemTime::now() + Duration::from_secs(2);
    let mut relationship = Relationship::parse("document:plan#viewer@user:temp").expect("valid");
    relationship.expires_at = Some(expires);
    let mut write = touch("document:plan#viewer@user:temp");
    write.updates[0].relationship = Some(relationship_to_api(&relationship));
    let token = client
        .write_relationships(authorized(write))
        .await
        .expect("written")
        .into_inner()
        .written_at;
    let at_write = || {
        Some(api::Consistency {
            requirement: Some(api::consistency::Requirement::AtExactSnapshot(
                token.clone().expect("a token"),
            )),
        })
    };
    assert_eq!(
        check_with(&mut client, at_write(), "temp", json!({}))
            .await
            .unwrap(),
        (HasPermission, vec![])
    );

    // Nothing else is written: the leader's ticks alone move the log's time past the expiry.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (answer, _) = check(&mut client, "temp", json!({})).await.unwrap();
        if answer == NoPermission {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still granted 13 s after the expiry"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        std::time::SystemTime::now() >= expires,
        "expired before its time"
    );
    // The write's revision is still read at the write's time, before the expiry.
    assert_eq!(
        check_with(&mut client, at_write(), "temp", json!({}))
            .await
            .unwrap(),
        (HasPermission, vec![])
    );
}
