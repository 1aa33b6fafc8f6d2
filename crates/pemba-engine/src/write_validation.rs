//! Checking a relationship against the schema before it is written, with SpiceDB's rules and
//! messages.

use pemba_schema::{AllowedSubject, AllowedSubjectKind, CompiledSchema, Member};
use pemba_types::{Relationship, SubjectRef};
use thiserror::Error;

/// Why a relationship may not be written under a schema.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RelationshipError {
    #[error("object definition `{0}` not found")]
    UnknownDefinition(String),
    #[error("relation/permission `{relation}` not found under definition `{definition}`")]
    UnknownRelation {
        definition: String,
        relation: String,
    },
    #[error(
        "cannot write a relationship to permission `{permission}` under definition `{definition}`"
    )]
    WriteToPermission {
        definition: String,
        permission: String,
    },
    #[error("subjects of type `{subject_type}` are not allowed on relation `{definition}#{relation}`{}", suggestion_suffix(.suggestion))]
    SubjectTypeNotAllowed {
        subject_type: String,
        definition: String,
        relation: String,
        suggestion: Option<String>,
    },
    #[error("subjects of type `{subject_type}` are not allowed on relation `{definition}#{relation}` without one of the following caveats: {}", .caveats.join(","))]
    CaveatRequired {
        subject_type: String,
        definition: String,
        relation: String,
        caveats: Vec<String>,
    },
    /// The context written with a caveat has an unknown key or a value of the wrong type
    /// (SpiceDB's message, e.g. ``unknown parameter `k` ``).
    #[error(transparent)]
    CaveatContext(pemba_caveats::ContextError),
}

fn suggestion_suffix(suggestion: &Option<String>) -> String {
    suggestion
        .as_ref()
        .map(|s| format!("; did you mean `{s}`?"))
        .unwrap_or_default()
}

/// Checks that `relationship` may be stored under `schema`: its resource type and relation exist,
/// the relation is not a permission, and the subject (type, relation or wildcard, caveat and
/// expiration) is one the relation allows.
pub fn validate_relationship(
    schema: &CompiledSchema,
    relationship: &Relationship,
) -> Result<(), RelationshipError> {
    validate(schema, relationship, Operation::Write)
}

/// Checks a relationship named by a DELETE as SpiceDB does: like a write, except that without a
/// caveat any caveat and expiration the relation allows for the subject type will do (a delete
/// need not repeat how the relationship was written). A written context is still type-checked.
pub fn validate_deletion(
    schema: &CompiledSchema,
    relationship: &Relationship,
) -> Result<(), RelationshipError> {
    validate(schema, relationship, Operation::Delete)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    Write,
    Delete,
}

fn validate(
    schema: &CompiledSchema,
    relationship: &Relationship,
    operation: Operation,
) -> Result<(), RelationshipError> {
    let resource_type = &relationship.resource.object_type;
    let definition = schema
        .definition(resource_type)
        .ok_or_else(|| RelationshipError::UnknownDefinition(resource_type.clone()))?;
    let unknown_relation = |definition: &str, relation: &str| RelationshipError::UnknownRelation {
        definition: definition.to_string(),
        relation: relation.to_string(),
    };
    let member = definition
        .member(&relationship.relation)
        .ok_or_else(|| unknown_relation(resource_type, &relationship.relation))?;
    let subject = &relationship.subject;
    let subject_definition = schema
        .definition(&subject.object.object_type)
        .ok_or_else(|| RelationshipError::UnknownDefinition(subject.object.object_type.clone()))?;
    if let Some(subject_relation) = &subject.relation {
        if subject_definition.member(subject_relation).is_none() {
            return Err(unknown_relation(
                &subject.object.object_type,
                subject_relation,
            ));
        }
    }
    let relation = match member {
        Member::Relation(relation) => relation,
        Member::Permission(_) => {
            return Err(RelationshipError::WriteToPermission {
                definition: resource_type.clone(),
                permission: relationship.relation.clone(),
            })
        }
    };
    let written = subject_type_of(relationship);
    let allowed = relation.allowed.contains(&written)
        || (operation == Operation::Delete
            && written.caveat.is_none()
            && relation
                .allowed
                .iter()
                .any(|a| a.subject_type == written.subject_type && a.kind == written.kind));
    if allowed {
        return check_written_context(schema, relationship);
    }
    let written_source = allowed_subject_source(&written);
    if written.caveat.is_none() && written.kind != AllowedSubjectKind::Wildcard {
        let caveats: Vec<String> = relation
            .allowed
            .iter()
            .filter(|a| {
                a.subject_type == written.subject_type
                    && a.kind == written.kind
                    && a.expiration == written.expiration
            })
            .filter_map(|a| a.caveat.clone())
            .collect();
        if !caveats.is_empty() {
            return Err(RelationshipError::CaveatRequired {
                subject_type: written_source,
                definition: resource_type.clone(),
                relation: relation.name.clone(),
                caveats,
            });
        }
    }
    let suggestion = relation
        .allowed
        .iter()
        .map(allowed_subject_source)
        .filter(|candidate| is_subsequence(&written_source, candidate))
        .min_by_key(|candidate| levenshtein(&written_source, candidate));
    Err(RelationshipError::SubjectTypeNotAllowed {
        subject_type: written_source,
        definition: resource_type.clone(),
        relation: relation.name.clone(),
        suggestion,
    })
}

/// A caveat's written context must name its parameters only, with values of their types.
fn check_written_context(
    schema: &CompiledSchema,
    relationship: &Relationship,
) -> Result<(), RelationshipError> {
    let Some(caveat) = &relationship.caveat else {
        return Ok(());
    };
    if caveat.context.is_empty() {
        return Ok(());
    }
    // The caveat exists: the relation allows it, and a schema only allows defined caveats.
    let Some(definition) = schema.caveat(&caveat.name) else {
        return Ok(());
    };
    definition
        .compiled
        .0
        .check_written_context(&caveat.context)
        .map_err(RelationshipError::CaveatContext)
}

/// The subject type a relationship needs its relation to allow: the subject's type, its relation
/// or wildcard, its caveat and whether it expires.
pub fn subject_type_of(relationship: &Relationship) -> AllowedSubject {
    AllowedSubject {
        subject_type: relationship.subject.object.object_type.clone(),
        kind: kind_of(&relationship.subject),
        caveat: relationship.caveat.as_ref().map(|c| c.name.clone()),
        expiration: relationship.expires_at.is_some(),
    }
}

fn kind_of(subject: &SubjectRef) -> AllowedSubjectKind {
    match &subject.relation {
        _ if subject.is_wildcard() => AllowedSubjectKind::Wildcard,
        Some(relation) => AllowedSubjectKind::Relation(relation.clone()),
        None => AllowedSubjectKind::Object,
    }
}

/// How the schema language spells an allowed subject: `user`, `user:*`, `group#member`, with
/// ` with caveat`, ` with expiration` or ` with caveat and expiration`.
pub fn allowed_subject_source(allowed: &AllowedSubject) -> String {
    let mut source = allowed.subject_type.clone();
    match &allowed.kind {
        AllowedSubjectKind::Object => {}
        AllowedSubjectKind::Wildcard => source.push_str(":*"),
        AllowedSubjectKind::Relation(r) => {
            source.push('#');
            source.push_str(r);
        }
    }
    match (&allowed.caveat, allowed.expiration) {
        (Some(caveat), true) => source.push_str(&format!(" with {caveat} and expiration")),
        (Some(caveat), false) => source.push_str(&format!(" with {caveat}")),
        (None, true) => source.push_str(" with expiration"),
        (None, false) => {}
    }
    source
}

/// True if the characters of `needle` appear in order in `haystack` (fuzzy matching).
fn is_subsequence(needle: &str, haystack: &str) -> bool {
    let mut rest = haystack.chars();
    needle.chars().all(|c| rest.any(|h| h == c))
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: &str = r#"
        definition user {}
        definition group {
            relation member: user | group#member
        }
        caveat on_weekday(day string, hour int) { day != 'sunday' && hour > 8 }
        definition document {
            relation viewer: user | group#member
            relation public: user:*
            relation weekday_viewer: user with on_weekday
            permission view = viewer + public
        }
    "#;

    fn check(text: &str) -> Result<(), RelationshipError> {
        let schema = pemba_schema::compile("test.zed", SCHEMA).unwrap();
        validate_relationship(&schema, &Relationship::parse(text).unwrap())
    }

    #[test]
    fn allowed_relationships_pass() {
        assert_eq!(check("document:a#viewer@user:tom"), Ok(()));
        assert_eq!(check("document:a#viewer@group:eng#member"), Ok(()));
        assert_eq!(check("document:a#public@user:*"), Ok(()));
        assert_eq!(
            check("document:a#weekday_viewer@user:tom[on_weekday]"),
            Ok(())
        );
        assert_eq!(
            check(r#"document:a#weekday_viewer@user:tom[on_weekday:{"hour":"9"}]"#),
            Ok(()),
            "numeric strings convert"
        );
    }

    #[test]
    fn refused_relationships_say_why() {
        let cases = [
            ("folder:a#viewer@user:tom", "object definition `folder` not found"),
            ("document:a#editor@user:tom", "relation/permission `editor` not found under definition `document`"),
            ("document:a#viewer@robot:r2", "object definition `robot` not found"),
            ("document:a#viewer@group:eng#admin", "relation/permission `admin` not found under definition `group`"),
            ("document:a#view@user:tom", "cannot write a relationship to permission `view` under definition `document`"),
            ("document:a#viewer@user:*", "subjects of type `user:*` are not allowed on relation `document#viewer`"),
            ("document:a#public@user:tom", "subjects of type `user` are not allowed on relation `document#public`; did you mean `user:*`?"),
            ("document:a#viewer@group:eng", "subjects of type `group` are not allowed on relation `document#viewer`; did you mean `group#member`?"),
            ("document:a#viewer@user:tom[expiration:2030-01-01T00:00:00Z]", "subjects of type `user with expiration` are not allowed on relation `document#viewer`"),
            ("document:a#viewer@user:tom[somecaveat]", "subjects of type `user with somecaveat` are not allowed on relation `document#viewer`"),
            ("document:a#weekday_viewer@user:tom", "subjects of type `user` are not allowed on relation `document#weekday_viewer` without one of the following caveats: on_weekday"),
            (r#"document:a#weekday_viewer@user:tom[on_weekday:{"minute":1}]"#, "unknown parameter `minute`"),
            (r#"document:a#weekday_viewer@user:tom[on_weekday:{"hour":"nine"}]"#, "could not convert context parameter `hour`: for int: a int64 value is required, but found invalid string value `nine`"),
        ];
        for (input, expected) in cases {
            let refused = check(input).map_err(|e| e.to_string());
            assert_eq!(refused, Err(expected.to_string()), "{input}");
        }
    }

    /// A DELETE, as real SpiceDB (v1.54) judged each of these.
    #[test]
    fn deletes_need_the_subject_type_but_not_how_it_was_written() {
        let schema = pemba_schema::compile(
            "test.zed",
            r#"
            use expiration
            caveat c(a int) { a > 1 }
            definition user {}
            definition group {
                relation member: user
            }
            definition document {
                relation viewer: user with c | group#member | user:* with expiration
                relation owner: user
                permission view = viewer
            }
        "#,
        )
        .unwrap();
        let delete = |text: &str| {
            validate_deletion(&schema, &Relationship::parse(text).unwrap())
                .map_err(|e| e.to_string())
        };
        for accepted in [
            "document:plan#viewer@user:x",
            "document:plan#viewer@user:*",
            "document:plan#viewer@user:x[expiration:2030-01-01T00:00:00Z]",
            "document:plan#owner@user:x[expiration:2030-01-01T00:00:00Z]",
            "document:plan#viewer@user:*[expiration:2030-01-01T00:00:00Z]",
        ] {
            assert_eq!(delete(accepted), Ok(()), "{accepted}");
        }
        let refused = [
            ("document:plan#viewer@unknown:x", "object definition `unknown` not found"),
            ("document:plan#nope@user:x", "relation/permission `nope` not found under definition `document`"),
            ("document:plan#view@user:x", "cannot write a relationship to permission `view` under definition `document`"),
            ("document:plan#viewer@group:eng", "subjects of type `group` are not allowed on relation `document#viewer`; did you mean `group#member`?"),
            ("document:plan#owner@user:x[c]", "subjects of type `user with c` are not allowed on relation `document#owner`"),
            (r#"document:plan#viewer@user:x[c:{"a":"str"}]"#, "could not convert context parameter `a`: for int: a int64 value is required, but found invalid string value `str`"),
            (r#"document:plan#viewer@user:x[c:{"b":1}]"#, "unknown parameter `b`"),
            ("document:plan#viewer@group:eng#member[c]", "subjects of type `group#member with c` are not allowed on relation `document#viewer`"),
        ];
        for (input, expected) in refused {
            assert_eq!(delete(input), Err(expected.to_string()), "{input}");
        }
    }
}
