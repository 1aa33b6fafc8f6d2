//! Answers to a case, in the oracle's wire format, computed by Pemba or read from SpiceDB.

use std::collections::BTreeSet;

use pemba_engine::{
    validate_relationship, Engine, EngineError, FixedSnapshot, Permissionship, RelationshipError,
};
use pemba_types::{ObjectRef, Relationship, SubjectRef};
use serde::{Deserialize, Serialize};

use crate::generate::Case;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorInfo {
    pub code: String,
    pub message: String,
}

/// A query's answer or its error.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Answer<T> {
    Error { error: ErrorInfo },
    Value(T),
}

impl<T: PartialEq> Answer<T> {
    /// Values must be equal; errors need only the same status code (messages are SpiceDB's own).
    pub fn agrees_with(&self, other: &Answer<T>) -> bool {
        match (self, other) {
            (Answer::Value(a), Answer::Value(b)) => a == b,
            (Answer::Error { error: a }, Answer::Error { error: b }) => a.code == b.code,
            _ => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FoundSubject {
    pub id: String,
    pub excluded: Vec<String>,
    /// The subject has the permission only depending on missing caveat context.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub conditional: bool,
}

/// A check's answer as the oracle writes it: the permissionship's name, and for a conditional
/// answer the missing context names (sorted, without duplicates): `CONDITIONAL_PERMISSION:a,b`.
fn check_answer(p: Permissionship) -> String {
    match p {
        Permissionship::HasPermission => "HAS_PERMISSION".to_string(),
        Permissionship::NoPermission => "NO_PERMISSION".to_string(),
        Permissionship::Conditional { missing_context } => {
            let names: BTreeSet<String> = missing_context.into_iter().collect();
            format!(
                "CONDITIONAL_PERMISSION:{}",
                names.into_iter().collect::<Vec<_>>().join(",")
            )
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Answers {
    pub setup_error: Option<ErrorInfo>,
    #[serde(default)]
    pub checks: Vec<Answer<String>>,
    #[serde(default)]
    pub lookup_resources: Vec<Answer<Vec<String>>>,
    #[serde(default)]
    pub lookup_subjects: Vec<Answer<Vec<FoundSubject>>>,
}

fn error(code: &str, message: impl ToString) -> ErrorInfo {
    ErrorInfo {
        code: code.to_string(),
        message: message.to_string(),
    }
}

/// The gRPC status SpiceDB gives each engine error.
fn engine_error(e: EngineError) -> ErrorInfo {
    let code = match e {
        EngineError::WildcardSubject | EngineError::WildcardLookup => "INVALID_ARGUMENT",
        EngineError::UnknownDefinition(_)
        | EngineError::UnknownRelation { .. }
        | EngineError::MaxDepthExceeded
        | EngineError::UnknownCaveat(_) => "FAILED_PRECONDITION",
        EngineError::Caveat(_) => "INVALID_ARGUMENT",
        EngineError::Snapshot(_) => "INTERNAL",
    };
    error(code, e)
}

fn answer<T>(result: Result<T, ErrorInfo>) -> Answer<T> {
    match result {
        Ok(value) => Answer::Value(value),
        Err(error) => Answer::Error { error },
    }
}

fn parse_object(text: &str) -> Result<ObjectRef, ErrorInfo> {
    ObjectRef::parse(text).map_err(|e| error("INVALID_ARGUMENT", e))
}

fn parse_subject(text: &str) -> Result<SubjectRef, ErrorInfo> {
    SubjectRef::parse(text).map_err(|e| error("INVALID_ARGUMENT", e))
}

/// Evaluates a case with Pemba's engine over an in-memory store.
pub fn evaluate(case: &Case) -> Answers {
    let schema = match pemba_schema::compile("schema", &case.schema) {
        Ok(schema) => schema,
        Err(e) => {
            let code = if e.is_inconsistency() {
                "FAILED_PRECONDITION"
            } else {
                "INVALID_ARGUMENT"
            };
            return Answers {
                setup_error: Some(error(code, e)),
                ..Answers::default()
            };
        }
    };
    let mut relationships = Vec::new();
    for text in &case.relationships {
        let parsed = Relationship::parse(text)
            .map_err(|e| error("INVALID_ARGUMENT", e))
            .and_then(|r| {
                validate_relationship(&schema, &r).map_err(|e| {
                    let code = match e {
                        RelationshipError::UnknownDefinition(_)
                        | RelationshipError::UnknownRelation { .. } => "FAILED_PRECONDITION",
                        RelationshipError::CaveatContext(_) => "UNKNOWN",
                        _ => "INVALID_ARGUMENT",
                    };
                    error(code, e)
                })?;
                Ok(r)
            });
        match parsed {
            Ok(r) => relationships.push(r),
            Err(e) => {
                return Answers {
                    setup_error: Some(e),
                    ..Answers::default()
                }
            }
        }
    }
    let snapshot = FixedSnapshot::new(relationships);
    let engine = |context: &Option<serde_json::Map<String, serde_json::Value>>| {
        Engine::new(&schema, &snapshot).with_context(context.clone().unwrap_or_default())
    };

    let checks = case
        .checks
        .iter()
        .map(|q| {
            answer((|| {
                let resource = parse_object(&q.resource)?;
                let subject = parse_subject(&q.subject)?;
                let result = engine(&q.context)
                    .check(&resource, &q.permission, &subject)
                    .map_err(engine_error)?;
                Ok(check_answer(result))
            })())
        })
        .collect();
    let lookup_resources = case
        .lookup_resources
        .iter()
        .map(|q| {
            answer((|| {
                let subject = parse_subject(&q.subject)?;
                let found = engine(&q.context)
                    .lookup_resources(&q.resource_type, &q.permission, &subject)
                    .map_err(engine_error)?;
                // A conditional resource is written `id?`, sorted as the oracle sorts.
                let mut ids: Vec<String> = found
                    .into_iter()
                    .map(|(id, p)| match p {
                        Permissionship::Conditional { .. } => format!("{id}?"),
                        _ => id,
                    })
                    .collect();
                ids.sort();
                Ok(ids)
            })())
        })
        .collect();
    let lookup_subjects = case
        .lookup_subjects
        .iter()
        .map(|q| {
            answer((|| {
                let resource = parse_object(&q.resource)?;
                let found = engine(&q.context)
                    .lookup_subjects(
                        &resource,
                        &q.permission,
                        &q.subject_type,
                        q.subject_relation.as_deref(),
                    )
                    .map_err(engine_error)?;
                let mut found: Vec<FoundSubject> = found
                    .into_iter()
                    .map(|f| FoundSubject {
                        conditional: matches!(f.permissionship, Permissionship::Conditional { .. }),
                        id: f.subject_id,
                        excluded: f
                            .excluded_subjects
                            .into_iter()
                            .map(|e| e.subject_id)
                            .collect::<BTreeSet<_>>()
                            .into_iter()
                            .collect(),
                    })
                    .collect();
                found.sort();
                Ok(found)
            })())
        })
        .collect();
    Answers {
        setup_error: None,
        checks,
        lookup_resources,
        lookup_subjects,
    }
}
