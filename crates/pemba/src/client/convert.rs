//! Conversions between the command line's text syntax, Pemba's relationship types and the API's
//! messages.

use std::time::{Duration, SystemTime};

use anyhow::{bail, Context};
use pemba_proto::authzed::api::v1 as api;
pub use pemba_proto::convert::{
    json_to_struct, object_to_api, relationship_to_api, struct_to_json, subject_to_api,
};
use pemba_proto::prost_types;
use pemba_types::{
    validate_object_id, validate_object_type, validate_relation_name, validate_subject_id,
    CaveatRef, ObjectRef, Relationship, SubjectRef, ELLIPSIS,
};
use serde_json::{Map, Value};

fn object_from_api(o: Option<&api::ObjectReference>) -> ObjectRef {
    o.map(|o| ObjectRef::new(&o.object_type, &o.object_id))
        .unwrap_or_else(|| ObjectRef::new("", ""))
}

pub fn subject_from_api(s: Option<&api::SubjectReference>) -> SubjectRef {
    let relation = s
        .map(|s| s.optional_relation.as_str())
        .filter(|r| !r.is_empty() && *r != ELLIPSIS);
    SubjectRef::new(
        object_from_api(s.and_then(|s| s.object.as_ref())),
        relation.map(str::to_string),
    )
}

/// A relationship as the server sent it, for printing (not validated).
pub fn relationship_from_api(r: &api::Relationship) -> Relationship {
    Relationship {
        resource: object_from_api(r.resource.as_ref()),
        relation: r.relation.clone(),
        subject: subject_from_api(r.subject.as_ref()),
        caveat: r.optional_caveat.as_ref().map(|c| CaveatRef {
            name: c.caveat_name.clone(),
            context: c.context.as_ref().map(struct_to_json).unwrap_or_default(),
        }),
        expires_at: r.optional_expires_at.as_ref().map(timestamp_to_time),
    }
}

pub fn timestamp_to_time(t: &prost_types::Timestamp) -> SystemTime {
    let seconds = u64::try_from(t.seconds).unwrap_or_default();
    let nanos = u32::try_from(t.nanos).unwrap_or_default();
    SystemTime::UNIX_EPOCH + Duration::new(seconds, nanos)
}

/// A caveat context given on the command line as a JSON object.
pub fn caveat_context(text: Option<&str>) -> anyhow::Result<Option<prost_types::Struct>> {
    text.map(|text| {
        serde_json::from_str::<Map<String, Value>>(text)
            .map(|m| json_to_struct(&m))
            .context("the caveat context must be a JSON object")
    })
    .transpose()
}

/// A relationship given as `RESOURCE RELATION SUBJECT` or as one `resource#relation@subject`.
pub fn relationship_from_args(args: &[String]) -> anyhow::Result<Relationship> {
    let text = match args {
        [relationship] => relationship.clone(),
        [resource, relation, subject] => format!("{resource}#{relation}@{subject}"),
        _ => bail!(
            "expected RESOURCE RELATION SUBJECT, or one relationship `type:id#relation@type:id`"
        ),
    };
    Ok(Relationship::parse(&text)?)
}

/// A permission or relation name.
pub fn permission(name: &str) -> anyhow::Result<String> {
    validate_relation_name(name)?;
    Ok(name.to_string())
}

/// `SUBJECT_TYPE[#RELATION]`, as LookupSubjects takes it: the type and the relation (or empty).
pub fn subject_type(text: &str) -> anyhow::Result<(String, String)> {
    let (object_type, relation) = text.split_once('#').unwrap_or((text, ""));
    validate_object_type(object_type)?;
    if !relation.is_empty() && relation != ELLIPSIS {
        validate_relation_name(relation)?;
    }
    Ok((object_type.to_string(), relation.to_string()))
}

/// A relationship filter from `RESOURCE_TYPE[:ID]` (`ID%` for an id prefix), an optional relation
/// and an optional subject filter `SUBJECT_TYPE[:ID][#RELATION]`.
pub fn filter(
    resource: Option<&str>,
    relation: Option<&str>,
    subject: Option<&str>,
) -> anyhow::Result<api::RelationshipFilter> {
    let mut filter = api::RelationshipFilter::default();
    if let Some(resource) = resource {
        let (object_type, id) = resource.split_once(':').unwrap_or((resource, ""));
        validate_object_type(object_type)?;
        filter.resource_type = object_type.to_string();
        match id.strip_suffix('%') {
            Some(prefix) => filter.optional_resource_id_prefix = prefix.to_string(),
            None if id.is_empty() => {}
            None => {
                validate_object_id(id)?;
                filter.optional_resource_id = id.to_string();
            }
        }
    }
    if let Some(relation) = relation {
        filter.optional_relation = permission(relation)?;
    }
    filter.optional_subject_filter = subject.map(subject_filter).transpose()?;
    Ok(filter)
}

fn subject_filter(text: &str) -> anyhow::Result<api::SubjectFilter> {
    let (object, relation) = match text.split_once('#') {
        Some((object, relation)) => (object, Some(relation)),
        None => (text, None),
    };
    let (object_type, id) = object.split_once(':').unwrap_or((object, ""));
    validate_object_type(object_type)?;
    if !id.is_empty() {
        validate_subject_id(id)?;
    }
    let relation = relation.map(|r| match r {
        ELLIPSIS => Ok(String::new()),
        r => permission(r),
    });
    Ok(api::SubjectFilter {
        subject_type: object_type.to_string(),
        optional_subject_id: id.to_string(),
        optional_relation: relation
            .transpose()?
            .map(|relation| api::subject_filter::RelationFilter { relation }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn relationships_come_as_three_words_or_one() {
        let three =
            relationship_from_args(&strings(&["document:plan", "viewer", "group:eng#member"]));
        let one = relationship_from_args(&strings(&["document:plan#viewer@group:eng#member"]));
        assert_eq!(three.unwrap(), one.unwrap());
        assert!(relationship_from_args(&strings(&["document:plan", "viewer"])).is_err());
        assert!(relationship_from_args(&strings(&["document", "viewer", "user:tom"])).is_err());
    }

    #[test]
    fn relationships_round_trip_through_the_api() {
        let text = r#"document:plan#viewer@user:tom[only_on:{"day":"monday"}][expiration:2030-01-01T00:00:00Z]"#;
        let relationship = Relationship::parse(text).unwrap();
        let back = relationship_from_api(&relationship_to_api(&relationship));
        assert_eq!(back, relationship);
        assert_eq!(back.to_string(), text);
    }

    #[test]
    fn filters_take_types_ids_prefixes_and_subject_relations() {
        let f = filter(
            Some("document:pl%"),
            Some("viewer"),
            Some("group:eng#member"),
        )
        .unwrap();
        assert_eq!(f.resource_type, "document");
        assert_eq!(f.optional_resource_id_prefix, "pl");
        assert_eq!(f.optional_relation, "viewer");
        let s = f.optional_subject_filter.unwrap();
        assert_eq!(
            (s.subject_type.as_str(), s.optional_subject_id.as_str()),
            ("group", "eng")
        );
        assert_eq!(s.optional_relation.unwrap().relation, "member");
        let f = filter(Some("document:plan"), None, Some("user")).unwrap();
        assert_eq!(f.optional_resource_id, "plan");
        assert!(f
            .optional_subject_filter
            .unwrap()
            .optional_relation
            .is_none());
        assert!(filter(Some("Document"), None, None).is_err());
        assert!(filter(Some("document"), None, Some("user:a b")).is_err());
    }
}
