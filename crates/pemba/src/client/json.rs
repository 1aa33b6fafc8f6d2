//! JSON renderings of the API's messages for `--json`, with the field names of protobuf's JSON
//! mapping (camelCase; enums by name). Unset message fields are `null`.

use pemba_proto::authzed::api::v1 as api;
use serde_json::{json, Map, Value};

use super::convert::{struct_to_json, timestamp_to_time};

pub fn token(t: Option<&api::ZedToken>) -> Value {
    t.map_or(Value::Null, |t| json!({ "token": t.token }))
}

pub fn object(o: Option<&api::ObjectReference>) -> Value {
    o.map_or(
        Value::Null,
        |o| json!({ "objectType": o.object_type, "objectId": o.object_id }),
    )
}

pub fn subject(s: &api::SubjectReference) -> Value {
    json!({ "object": object(s.object.as_ref()), "optionalRelation": s.optional_relation })
}

pub fn relationship(r: Option<&api::Relationship>) -> Value {
    let Some(r) = r else { return Value::Null };
    let mut fields = Map::new();
    fields.insert("resource".into(), object(r.resource.as_ref()));
    fields.insert("relation".into(), json!(r.relation));
    fields.insert(
        "subject".into(),
        r.subject.as_ref().map_or(Value::Null, subject),
    );
    if let Some(caveat) = &r.optional_caveat {
        let context = caveat
            .context
            .as_ref()
            .map(struct_to_json)
            .unwrap_or_default();
        fields.insert(
            "optionalCaveat".into(),
            json!({ "caveatName": caveat.caveat_name, "context": context }),
        );
    }
    if let Some(at) = &r.optional_expires_at {
        let at = humantime::format_rfc3339(timestamp_to_time(at)).to_string();
        fields.insert("optionalExpiresAt".into(), json!(at));
    }
    Value::Object(fields)
}

/// The missing context of a conditional result, or `null`.
pub fn partial_caveat_info(info: Option<&api::PartialCaveatInfo>) -> Value {
    info.map_or(
        Value::Null,
        |i| json!({ "missingRequiredContext": i.missing_required_context }),
    )
}

pub fn tree(t: &api::PermissionRelationshipTree) -> Value {
    use api::permission_relationship_tree::TreeType;
    let mut fields = Map::new();
    fields.insert("expandedObject".into(), object(t.expanded_object.as_ref()));
    fields.insert("expandedRelation".into(), json!(t.expanded_relation));
    match &t.tree_type {
        Some(TreeType::Intermediate(set)) => {
            let operation = set.operation().as_str_name();
            let children: Vec<Value> = set.children.iter().map(tree).collect();
            fields.insert(
                "intermediate".into(),
                json!({ "operation": operation, "children": children }),
            );
        }
        Some(TreeType::Leaf(set)) => {
            let subjects: Vec<Value> = set.subjects.iter().map(subject).collect();
            fields.insert("leaf".into(), json!({ "subjects": subjects }));
        }
        None => {}
    }
    Value::Object(fields)
}
