//! Validating requests and converting between the wire types and Pemba's own, with the messages
//! SpiceDB gives for invalid fields (`validation error: resource.object_id: …`).

use std::time::{Duration, SystemTime};

use pemba_engine::RelationshipError;
use pemba_proto::authzed::api::v1 as api;
pub use pemba_proto::convert::{
    object_to_api, relationship_to_api, struct_to_json, subject_to_api,
};
use pemba_proto::prost_types;
use pemba_schema::CompiledSchema;
use pemba_store::{Precondition, RelationshipFilter, SubjectFilter};
use pemba_types::{
    validate_caveat_name, validate_object_id, validate_object_type, validate_relation_name,
    CaveatRef, ObjectRef, Relationship, SubjectRef, WILDCARD_ID,
};
use tonic::Status;

const TYPE_PATTERN: &str = "^([a-z][a-z0-9_]{1,61}[a-z0-9]/)*[a-z][a-z0-9_]{1,62}[a-z0-9]$";
const ID_PATTERN: &str = r"^(([a-zA-Z0-9/_|\-=+]{1,})|\*)$";
const RELATION_PATTERN: &str = "^[a-z][a-z0-9_]{1,62}[a-z0-9]$";
const OPTIONAL_RELATION_PATTERN: &str = "^([a-z][a-z0-9_]{1,62}[a-z0-9])?$";

fn invalid(path: &str, problem: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!("validation error: {path}: {problem}"))
}

fn pattern_error(path: &str, pattern: &str) -> Status {
    invalid(path, format!("does not match regex pattern `{pattern}`"))
}

fn check_length(path: &str, value: &str, max: usize) -> Result<(), Status> {
    if value.len() > max {
        return Err(invalid(path, format!("must be at most {max} bytes")));
    }
    Ok(())
}

fn object_type(path: &str, value: &str) -> Result<String, Status> {
    check_length(path, value, 128)?;
    validate_object_type(value).map_err(|_| pattern_error(path, TYPE_PATTERN))?;
    Ok(value.to_string())
}

/// SpiceDB's proto pattern for caveat names.
const CAVEAT_NAME_PATTERN: &str = "^([a-zA-Z0-9_][a-zA-Z0-9/_|-]{0,127})$";

fn caveat_name(path: &str, value: &str) -> Result<String, Status> {
    validate_caveat_name(value).map_err(|_| pattern_error(path, CAVEAT_NAME_PATTERN))?;
    Ok(value.to_string())
}

fn object_id(path: &str, value: &str, allow_wildcard: bool) -> Result<String, Status> {
    check_length(path, value, 1024)?;
    if value == WILDCARD_ID {
        if allow_wildcard {
            return Ok(value.to_string());
        }
        return Err(Status::invalid_argument(
            "invalid ObjectReference.ObjectId: alphanumeric value is required",
        ));
    }
    validate_object_id(value).map_err(|_| pattern_error(path, ID_PATTERN))?;
    Ok(value.to_string())
}

/// A relation name that must be present (`Relationship.relation`).
pub fn relation(path: &str, value: &str) -> Result<String, Status> {
    check_length(path, value, 64)?;
    validate_relation_name(value).map_err(|_| pattern_error(path, RELATION_PATTERN))?;
    Ok(value.to_string())
}

/// A relation or permission name that may be empty on the wire (`permission`, optional relations).
fn optional_relation(path: &str, value: &str) -> Result<Option<String>, Status> {
    if value.is_empty() {
        return Ok(None);
    }
    check_length(path, value, 64)?;
    validate_relation_name(value).map_err(|_| pattern_error(path, OPTIONAL_RELATION_PATTERN))?;
    Ok(Some(value.to_string()))
}

/// A permission name as asked for: empty is let through so that the engine reports it unknown,
/// as SpiceDB does.
pub fn permission(path: &str, value: &str) -> Result<String, Status> {
    Ok(optional_relation(path, value)?.unwrap_or_default())
}

fn required<'a, T>(path: &str, value: Option<&'a T>) -> Result<&'a T, Status> {
    value.ok_or_else(|| invalid(path, "value is required"))
}

/// A resource: a type and an id that is not the wildcard.
pub fn resource(path: &str, value: Option<&api::ObjectReference>) -> Result<ObjectRef, Status> {
    let value = required(path, value)?;
    Ok(ObjectRef::new(
        object_type(&format!("{path}.object_type"), &value.object_type)?,
        object_id(&format!("{path}.object_id"), &value.object_id, false)?,
    ))
}

/// A subject: an object (whose id may be the wildcard) and an optional relation.
pub fn subject(path: &str, value: Option<&api::SubjectReference>) -> Result<SubjectRef, Status> {
    let value = required(path, value)?;
    let object = required(&format!("{path}.object"), value.object.as_ref())?;
    let object = ObjectRef::new(
        object_type(&format!("{path}.object.object_type"), &object.object_type)?,
        object_id(&format!("{path}.object.object_id"), &object.object_id, true)?,
    );
    let relation = optional_relation(
        &format!("{path}.optional_relation"),
        &value.optional_relation,
    )?;
    if object.object_id == WILDCARD_ID && relation.is_some() {
        return Err(Status::invalid_argument(
            "invalid SubjectReference.OptionalRelation: optionalrelation must be empty on subject if object ID is a wildcard",
        ));
    }
    Ok(SubjectRef::new(object, relation))
}

/// A relationship from the wire, every field validated.
pub fn relationship(path: &str, value: Option<&api::Relationship>) -> Result<Relationship, Status> {
    let value = required(path, value)?;
    let mut r = Relationship::new(
        resource(&format!("{path}.resource"), value.resource.as_ref())?,
        relation(&format!("{path}.relation"), &value.relation)?,
        subject(&format!("{path}.subject"), value.subject.as_ref())?,
    );
    if let Some(caveat) = &value.optional_caveat {
        let name_path = format!("{path}.optional_caveat.caveat_name");
        let name = caveat_name(&name_path, &caveat.caveat_name)?;
        let context = caveat
            .context
            .as_ref()
            .map(struct_to_json)
            .unwrap_or_default();
        r.caveat = Some(CaveatRef { name, context });
    }
    if let Some(at) = &value.optional_expires_at {
        r.expires_at = Some(timestamp_to_time(
            &format!("{path}.optional_expires_at"),
            at,
        )?);
    }
    Ok(r)
}

fn invalid_filter(reason: &str) -> Status {
    Status::invalid_argument(format!(
        "the relationship filter provided is not valid: {reason}"
    ))
}

/// Checks that the types and relations a filter names exist in `schema`, as SpiceDB does before
/// reading, deleting or testing a precondition.
pub fn filter_in_schema(
    schema: &CompiledSchema,
    filter: &RelationshipFilter,
) -> Result<(), Status> {
    let known = |object_type: &str, relation: Option<&str>| -> Result<(), RelationshipError> {
        let definition = schema
            .definition(object_type)
            .ok_or_else(|| RelationshipError::UnknownDefinition(object_type.to_string()))?;
        match relation {
            Some(r) if definition.member(r).is_none() => Err(RelationshipError::UnknownRelation {
                definition: object_type.to_string(),
                relation: r.to_string(),
            }),
            _ => Ok(()),
        }
    };
    if let Some(resource_type) = &filter.resource_type {
        known(resource_type, filter.relation.as_deref())
            .map_err(|e| Status::failed_precondition(e.to_string()))?;
    }
    if let Some(subject) = &filter.subject {
        let relation = subject.relation.as_ref().and_then(|r| r.as_deref());
        known(&subject.subject_type, relation)
            .map_err(|e| Status::failed_precondition(e.to_string()))?;
    }
    Ok(())
}

/// A relationship filter; `resource_type` may be empty (any type).
pub fn filter(
    path: &str,
    value: Option<&api::RelationshipFilter>,
) -> Result<RelationshipFilter, Status> {
    let value = required(path, value)?;
    let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_string());
    let resource_type = match non_empty(&value.resource_type) {
        Some(t) => Some(object_type(&format!("{path}.resource_type"), &t)?),
        None => None,
    };
    let resource_id = match non_empty(&value.optional_resource_id) {
        Some(id) => Some(object_id(
            &format!("{path}.optional_resource_id"),
            &id,
            false,
        )?),
        None => None,
    };
    let resource_id_prefix = non_empty(&value.optional_resource_id_prefix);
    if resource_id.is_some() && resource_id_prefix.is_some() {
        return Err(invalid_filter(
            "resource_id and resource_id_prefix cannot be set at the same time",
        ));
    }
    let relation = optional_relation(
        &format!("{path}.optional_relation"),
        &value.optional_relation,
    )?;
    let subject = match &value.optional_subject_filter {
        None => None,
        Some(s) => {
            let sub_path = format!("{path}.optional_subject_filter");
            let subject_type = object_type(&format!("{sub_path}.subject_type"), &s.subject_type)?;
            let subject_id = match non_empty(&s.optional_subject_id) {
                Some(id) => Some(object_id(
                    &format!("{sub_path}.optional_subject_id"),
                    &id,
                    true,
                )?),
                None => None,
            };
            let relation = match &s.optional_relation {
                None => None,
                Some(r) => Some(optional_relation(
                    &format!("{sub_path}.optional_relation.relation"),
                    &r.relation,
                )?),
            };
            Some(SubjectFilter {
                subject_type,
                subject_id,
                relation,
            })
        }
    };
    if resource_type.is_none()
        && resource_id.is_none()
        && resource_id_prefix.is_none()
        && relation.is_none()
        && subject.is_none()
    {
        return Err(invalid_filter("at least one field must be set"));
    }
    Ok(RelationshipFilter {
        resource_type,
        resource_id,
        resource_id_prefix,
        relation,
        subject,
    })
}

pub fn preconditions(
    path: &str,
    values: &[api::Precondition],
) -> Result<Vec<Precondition>, Status> {
    values
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let must_match = match api::precondition::Operation::try_from(p.operation) {
                Ok(api::precondition::Operation::MustMatch) => true,
                Ok(api::precondition::Operation::MustNotMatch) => false,
                _ => {
                    return Err(invalid(
                        &format!("{path}[{i}].operation"),
                        "value must be one of the defined enum values and not UNSPECIFIED",
                    ))
                }
            };
            Ok(Precondition {
                must_match,
                filter: filter(&format!("{path}[{i}].filter"), p.filter.as_ref())?,
            })
        })
        .collect()
}

pub fn timestamp_to_time(path: &str, t: &prost_types::Timestamp) -> Result<SystemTime, Status> {
    let seconds =
        u64::try_from(t.seconds).map_err(|_| invalid(path, "must be after 1970-01-01"))?;
    let nanos = u32::try_from(t.nanos).map_err(|_| invalid(path, "nanos out of range"))?;
    SystemTime::UNIX_EPOCH
        .checked_add(Duration::new(seconds, nanos))
        .ok_or_else(|| invalid(path, "out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(t: &str, id: &str) -> api::ObjectReference {
        api::ObjectReference {
            object_type: t.into(),
            object_id: id.into(),
        }
    }

    #[test]
    fn invalid_fields_name_their_path_and_rule() {
        let message = |r: Result<ObjectRef, Status>| r.unwrap_err().message().to_string();
        assert_eq!(
            message(resource("resource", Some(&obj("document", "a b")))),
            r"validation error: resource.object_id: does not match regex pattern `^(([a-zA-Z0-9/_|\-=+]{1,})|\*)$`"
        );
        assert_eq!(
            message(resource(
                "resource",
                Some(&obj("document", &"x".repeat(1025)))
            )),
            "validation error: resource.object_id: must be at most 1024 bytes"
        );
        assert_eq!(
            message(resource("resource", Some(&obj("Document", "a")))),
            "validation error: resource.object_type: does not match regex pattern `^([a-z][a-z0-9_]{1,61}[a-z0-9]/)*[a-z][a-z0-9_]{1,62}[a-z0-9]$`"
        );
        assert_eq!(
            message(resource("resource", None)),
            "validation error: resource: value is required"
        );
        assert_eq!(
            message(resource("resource", Some(&obj("document", "*")))),
            "invalid ObjectReference.ObjectId: alphanumeric value is required"
        );
        let wildcard_with_relation = api::SubjectReference {
            object: Some(obj("user", "*")),
            optional_relation: "member".into(),
        };
        assert!(subject("subject", Some(&wildcard_with_relation)).is_err());
    }

    #[test]
    fn filters_must_name_types_and_relations_of_the_schema() {
        let schema = pemba_schema::compile(
            "schema",
            "definition user {}\ndefinition group {\n  relation member: user | group#member\n}",
        )
        .unwrap();
        let problem = |filter: RelationshipFilter| {
            filter_in_schema(&schema, &filter)
                .err()
                .map(|s| (s.code(), s.message().to_string()))
        };
        let subject = |subject_type: &str, relation: Option<Option<&str>>| SubjectFilter {
            subject_type: subject_type.into(),
            subject_id: None,
            relation: relation.map(|r| r.map(String::from)),
        };
        let by = |resource_type: &str, relation: Option<&str>, subject: Option<SubjectFilter>| {
            RelationshipFilter {
                resource_type: Some(resource_type.into()),
                relation: relation.map(String::from),
                subject,
                ..Default::default()
            }
        };
        assert_eq!(problem(by("group", Some("member"), None)), None);
        assert_eq!(
            problem(by(
                "group",
                None,
                Some(subject("group", Some(Some("member"))))
            )),
            None
        );
        assert_eq!(
            problem(by("group", None, Some(subject("user", Some(None))))),
            None
        );
        let failed = |message: &str| Some((tonic::Code::FailedPrecondition, message.to_string()));
        assert_eq!(
            problem(by("folder", None, None)),
            failed("object definition `folder` not found")
        );
        assert_eq!(
            problem(by("group", Some("owner"), None)),
            failed("relation/permission `owner` not found under definition `group`")
        );
        assert_eq!(
            problem(by("group", None, Some(subject("team", None)))),
            failed("object definition `team` not found")
        );
        assert_eq!(
            problem(by(
                "group",
                None,
                Some(subject("user", Some(Some("member"))))
            )),
            failed("relation/permission `member` not found under definition `user`")
        );
    }
}
