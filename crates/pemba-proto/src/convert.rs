//! Pemba's core values on the wire: relationships, references and timestamps as `authzed.api.v1`
//! messages, and caveat contexts between `google.protobuf.Struct` and JSON. Only the directions
//! that cannot fail live here; reading requests (which must be validated) is the server's job.

use std::time::SystemTime;

use pemba_types::{ObjectRef, Relationship, SubjectRef};
use prost_types::value::Kind;
use serde_json::{Map, Number, Value};

use crate::authzed::api::v1 as api;

/// `o` as the API writes an object.
pub fn object_to_api(o: &ObjectRef) -> api::ObjectReference {
    api::ObjectReference {
        object_type: o.object_type.clone(),
        object_id: o.object_id.clone(),
    }
}

/// `s` as the API writes a subject.
pub fn subject_to_api(s: &SubjectRef) -> api::SubjectReference {
    api::SubjectReference {
        object: Some(object_to_api(&s.object)),
        optional_relation: s.relation.clone().unwrap_or_default(),
    }
}

/// A relationship as a message; an empty caveat context is sent as none.
pub fn relationship_to_api(r: &Relationship) -> api::Relationship {
    api::Relationship {
        resource: Some(object_to_api(&r.resource)),
        relation: r.relation.clone(),
        subject: Some(subject_to_api(&r.subject)),
        optional_caveat: r.caveat.as_ref().map(|c| api::ContextualizedCaveat {
            caveat_name: c.name.clone(),
            context: (!c.context.is_empty()).then(|| json_to_struct(&c.context)),
        }),
        optional_expires_at: r.expires_at.map(time_to_timestamp),
    }
}

/// A time as a timestamp; times before the epoch become the epoch.
pub fn time_to_timestamp(t: SystemTime) -> prost_types::Timestamp {
    let since_epoch = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    prost_types::Timestamp {
        seconds: i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(since_epoch.subsec_nanos()).unwrap_or_default(),
    }
}

/// A protobuf `Struct` as a JSON object.
pub fn struct_to_json(s: &prost_types::Struct) -> Map<String, Value> {
    s.fields
        .iter()
        .map(|(k, v)| (k.clone(), value_to_json(v)))
        .collect()
}

fn value_to_json(v: &prost_types::Value) -> Value {
    match &v.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::NumberValue(n)) => Number::from_f64(*n).map_or(Value::Null, Value::Number),
        Some(Kind::StringValue(s)) => Value::String(s.clone()),
        Some(Kind::BoolValue(b)) => Value::Bool(*b),
        Some(Kind::StructValue(s)) => Value::Object(struct_to_json(s)),
        Some(Kind::ListValue(l)) => Value::Array(l.values.iter().map(value_to_json).collect()),
    }
}

/// A JSON object as a protobuf `Struct`.
pub fn json_to_struct(m: &Map<String, Value>) -> prost_types::Struct {
    prost_types::Struct {
        fields: m
            .iter()
            .map(|(k, v)| (k.clone(), json_to_value(v)))
            .collect(),
    }
}

fn json_to_value(v: &Value) -> prost_types::Value {
    let kind = match v {
        Value::Null => Kind::NullValue(0),
        Value::Bool(b) => Kind::BoolValue(*b),
        Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        Value::String(s) => Kind::StringValue(s.clone()),
        Value::Array(a) => Kind::ListValue(prost_types::ListValue {
            values: a.iter().map(json_to_value).collect(),
        }),
        Value::Object(o) => Kind::StructValue(json_to_struct(o)),
    };
    prost_types::Value { kind: Some(kind) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contexts_round_trip_through_struct() {
        let json: Map<String, Value> =
            serde_json::from_str(r#"{"a":1.5,"b":[true,"x",null],"c":{"d":"e"}}"#).unwrap();
        assert_eq!(struct_to_json(&json_to_struct(&json)), json);
    }

    #[test]
    fn relationships_keep_every_field() {
        let r = Relationship::parse(
            r#"doc:a#viewer@group:eng#member[cav1:{"x":1.0}][expiration:2030-01-01T00:00:00Z]"#,
        )
        .unwrap();
        let wire = relationship_to_api(&r);
        assert_eq!(wire.subject.unwrap().optional_relation, "member");
        let caveat = wire.optional_caveat.unwrap();
        assert_eq!(
            struct_to_json(&caveat.context.unwrap()),
            r.caveat.unwrap().context
        );
        assert_eq!(wire.optional_expires_at.unwrap().seconds, 1_893_456_000);
        let plain = relationship_to_api(&Relationship::parse("doc:a#viewer@user:*[cav1]").unwrap());
        assert_eq!(
            plain.optional_caveat.unwrap().context,
            None,
            "an empty context is sent as none"
        );
    }
}
