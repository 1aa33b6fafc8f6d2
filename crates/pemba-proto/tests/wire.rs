//! Wire compatibility with SpiceDB's `authzed.api.v1` as the official clients see it.
//!
//! - `descriptors_match_upstream`: every message, field (number, label, type, JSON
//!   name, oneof), enum value and RPC of our descriptors equals the rendering of the
//!   official Python client's descriptors in `upstream_descriptors.txt`.
//! - The `*_golden_bytes` tests: messages encoded by the official Python client
//!   (`authzed` 1.25.0, `SerializeToString(deterministic=True)`) decode to the
//!   expected values and re-encode to the same bytes.

use std::collections::BTreeSet;

use pemba_proto::authzed::api::v1 as api;
use pemba_proto::prost_types::{
    self, value::Kind, DescriptorProto, EnumDescriptorProto, FileDescriptorSet, Struct, Timestamp,
    Value,
};
use pemba_proto::FILE_DESCRIPTOR_SET;
use prost::Message;

const UPSTREAM: &str = include_str!("upstream_descriptors.txt");

/// Renders the wire-relevant facts of `fds` one per line, exactly as
/// `proto/check_wire_compat.py` does. The well-known types are left out.
fn render(fds: &FileDescriptorSet) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    // Pemba's own cluster protocol (`pemba.*`) has no upstream to match.
    let compared = |package: &str| package != "google.protobuf" && !package.starts_with("pemba.");
    for file in fds.file.iter().filter(|f| compared(f.package())) {
        let scope = format!(".{}", file.package());
        for m in &file.message_type {
            render_message(&scope, m, file.name(), &mut out);
        }
        for e in &file.enum_type {
            render_enum(&scope, e, file.name(), &mut out);
        }
        for s in &file.service {
            let service = format!("{scope}.{}", s.name());
            out.insert(format!("service {service} ({})", file.name()));
            for r in &s.method {
                let cs = if r.client_streaming() { "stream " } else { "" };
                let ss = if r.server_streaming() { "stream " } else { "" };
                out.insert(format!(
                    "rpc {service}.{}({cs}{}) returns ({ss}{})",
                    r.name(),
                    r.input_type(),
                    r.output_type()
                ));
            }
        }
    }
    out
}

fn render_message(scope: &str, m: &DescriptorProto, file: &str, out: &mut BTreeSet<String>) {
    let name = format!("{scope}.{}", m.name());
    out.insert(format!("message {name} ({file})"));
    for f in &m.field {
        let label = if f.proto3_optional() {
            "proto3_optional"
        } else {
            f.label().as_str_name()
        };
        let mut kind = f.r#type().as_str_name().to_owned();
        if let Some(type_name) = &f.type_name {
            kind = format!("{kind} {type_name}");
        }
        let oneof = f
            .oneof_index
            .map(|i| format!(" oneof {}", m.oneof_decl[i as usize].name()))
            .unwrap_or_default();
        out.insert(format!(
            "field {name}.{} = {} {label} {kind} json={}{oneof}",
            f.name(),
            f.number(),
            f.json_name()
        ));
    }
    for nested in &m.nested_type {
        render_message(&name, nested, file, out);
    }
    for e in &m.enum_type {
        render_enum(&name, e, file, out);
    }
}

fn render_enum(scope: &str, e: &EnumDescriptorProto, file: &str, out: &mut BTreeSet<String>) {
    let name = format!("{scope}.{}", e.name());
    out.insert(format!("enum {name} ({file})"));
    for v in &e.value {
        out.insert(format!("value {name}.{} = {}", v.name(), v.number()));
    }
}

#[test]
fn descriptors_match_upstream() {
    let fds = FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).expect("valid descriptor set");
    let ours = render(&fds);
    let upstream: BTreeSet<String> = UPSTREAM
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    let missing: Vec<_> = upstream.difference(&ours).collect();
    let extra: Vec<_> = ours.difference(&upstream).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "upstream only: {missing:#?}\npemba only: {extra:#?}"
    );
}

/// Writes `FILE_DESCRIPTOR_SET` to `$PEMBA_DUMP_FDS` when set, for
/// `proto/check_wire_compat.py`.
#[test]
fn dump_file_descriptor_set() {
    if let Some(path) = std::env::var_os("PEMBA_DUMP_FDS") {
        std::fs::write(path, FILE_DESCRIPTOR_SET).expect("write descriptor set");
    }
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// Asserts that `golden` (bytes from the official client) decodes to `msg` and
/// that `msg` encodes to `golden`.
fn assert_golden<M: Message + Default + PartialEq + std::fmt::Debug>(msg: M, golden: &str) {
    let golden = hex(golden);
    assert_eq!(M::decode(golden.as_slice()).expect("decodes"), msg);
    assert_eq!(msg.encode_to_vec(), golden);
}

fn object(object_type: &str, object_id: &str) -> Option<api::ObjectReference> {
    Some(api::ObjectReference {
        object_type: object_type.into(),
        object_id: object_id.into(),
    })
}

#[test]
fn check_permission_request_golden_bytes() {
    let request = api::CheckPermissionRequest {
        consistency: Some(api::Consistency {
            requirement: Some(api::consistency::Requirement::AtLeastAsFresh(
                api::ZedToken {
                    token: "GhUKEzE3MDAwMDAwMDAwMDAwMDAwMDA=".into(),
                },
            )),
        }),
        resource: object("document", "doc1"),
        permission: "view".into(),
        subject: Some(api::SubjectReference {
            object: object("user", "alice"),
            optional_relation: String::new(),
        }),
        context: None,
        with_tracing: true,
    };
    assert_golden(
        request,
        "0a2412220a204768554b457a45334d4441774d4441774d4441774d4441774d4441774d44413d12100a08646f63\
         756d656e741204646f63311a0476696577220f0a0d0a04757365721205616c6963653001",
    );
}

#[test]
fn write_relationships_request_golden_bytes() {
    let context = Struct {
        fields: [(
            "allowed_ip".to_owned(),
            Value {
                kind: Some(Kind::StringValue("10.0.0.1".into())),
            },
        )]
        .into(),
    };
    let relationship = api::Relationship {
        resource: object("document", "doc1"),
        relation: "viewer".into(),
        subject: Some(api::SubjectReference {
            object: object("group", "eng"),
            optional_relation: "member".into(),
        }),
        optional_caveat: Some(api::ContextualizedCaveat {
            caveat_name: "ip_allowed".into(),
            context: Some(context),
        }),
        optional_expires_at: Some(Timestamp {
            seconds: 1_767_225_600,
            nanos: 500,
        }),
    };
    let request = api::WriteRelationshipsRequest {
        updates: vec![api::RelationshipUpdate {
            operation: api::relationship_update::Operation::Touch.into(),
            relationship: Some(relationship),
        }],
        optional_preconditions: vec![api::Precondition {
            operation: api::precondition::Operation::MustMatch.into(),
            filter: Some(api::RelationshipFilter {
                resource_type: "document".into(),
                optional_resource_id_prefix: "doc".into(),
                ..Default::default()
            }),
        }],
        optional_transaction_metadata: None,
    };
    assert_golden(
        request,
        "0a6b080212670a100a08646f63756d656e741204646f633112067669657765721a160a0c0a0567726f757012\
         03656e6712066d656d62657222280a0a69705f616c6c6f776564121a0a180a0a616c6c6f7765645f6970120a\
         1a0831302e302e302e312a090880f2d6ca0610f40312130802120f0a08646f63756d656e742a03646f63",
    );
}

#[test]
fn lookup_subjects_response_golden_bytes() {
    let resolved = |id: &str, permissionship: api::LookupPermissionship| api::ResolvedSubject {
        subject_object_id: id.into(),
        permissionship: permissionship.into(),
        partial_caveat_info: None,
    };
    let response = api::LookupSubjectsResponse {
        looked_up_at: Some(api::ZedToken {
            token: "abc".into(),
        }),
        subject: Some(resolved("*", api::LookupPermissionship::HasPermission)),
        excluded_subjects: vec![
            resolved("bob", api::LookupPermissionship::HasPermission),
            api::ResolvedSubject {
                partial_caveat_info: Some(api::PartialCaveatInfo {
                    missing_required_context: vec!["ip".into()],
                }),
                ..resolved("carol", api::LookupPermissionship::ConditionalPermission)
            },
        ],
        after_result_cursor: Some(api::Cursor {
            token: "next".into(),
        }),
        ..Default::default()
    };
    assert_golden(
        response,
        "0a050a0361626332050a012a10013a070a03626f6210013a0f0a056361726f6c10021a040a0269704206\
         0a046e657874",
    );
}

#[test]
fn check_bulk_permissions_pair_error_golden_bytes() {
    let pair = api::CheckBulkPermissionsPair {
        request: None,
        response: Some(api::check_bulk_permissions_pair::Response::Error(
            pemba_proto::google::rpc::Status {
                code: 3,
                message: "bad".into(),
                details: vec![prost_types::Any {
                    type_url: "type.googleapis.com/google.rpc.ErrorInfo".into(),
                    value: b"\x0a\x01x".to_vec(),
                }],
            },
        )),
    };
    assert_golden(
        pair,
        "1a38080312036261641a2f0a28747970652e676f6f676c65617069732e636f6d2f676f6f676c652e727063\
         2e4572726f72496e666f12030a0178",
    );
}
