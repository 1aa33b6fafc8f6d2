//! Writes: the commands the datastore applies, what an applied one did, and why one is refused.

use pemba_engine::RelationshipError;
use pemba_schema::SchemaError;
use pemba_types::{Relationship, Revision};
use thiserror::Error;

use crate::filter::{Precondition, RelationshipFilter};
use crate::persistence::PersistenceError;
use crate::schema_change::SchemaOrphan;

/// How a relationship update changes the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum UpdateOperation {
    /// Insert; the whole write fails if the relationship exists.
    Create,
    /// Insert or replace.
    Touch,
    /// Remove if present.
    Delete,
}

/// One write, applied atomically at one revision (which later commands may share: see
/// [`crate::Datastore::apply_entry`]). Everything that depends on stored state
/// (schema validation, preconditions, conflicts) is decided when it is applied, so applying the
/// same command to the same state always has the same effect.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum WriteCommand {
    Relationships {
        updates: Vec<(UpdateOperation, Relationship)>,
        preconditions: Vec<Precondition>,
    },
    DeleteByFilter {
        filter: RelationshipFilter,
        preconditions: Vec<Precondition>,
        limit: Option<u64>,
        allow_partial: bool,
    },
    /// Bulk import: every relationship is created; any that exists fails the whole import.
    Import {
        relationships: Vec<Relationship>,
    },
    Schema {
        text: String,
    },
}

/// What an applied write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteResult {
    pub revision: Revision,
    /// Relationships removed (DeleteByFilter) or written (Import).
    pub count: u64,
    /// DeleteByFilter stopped at its limit with more left to delete.
    pub partial: bool,
}

/// Why a write was refused. A refused write changes nothing.
#[derive(Debug, Error)]
pub enum WriteError {
    #[error(transparent)]
    InvalidRelationship(#[from] RelationshipError),
    #[error("found more than one update with relationship `{0}` in this request; a relationship can only be specified in an update once per overall WriteRelationships request")]
    DuplicateUpdate(String),
    #[error("could not CREATE relationship `{0}`, as it already existed. If this is persistent, please switch to TOUCH operations or specify a precondition")]
    AlreadyExists(String),
    #[error("unable to satisfy write precondition: {}", describe_precondition(.0))]
    PreconditionFailed(Box<Precondition>),
    #[error(
        "found more than {0} relationships to be deleted and partial deletion was not requested"
    )]
    TooManyToDelete(u64),
    #[error(transparent)]
    Schema(Box<SchemaError>),
    /// The new schema would leave stored relationships without a definition, relation or type.
    #[error(transparent)]
    SchemaOrphans(SchemaOrphan),
    #[error("revision {revision} is not newer than the datastore's head {head}")]
    RevisionNotNewer { revision: Revision, head: Revision },
    #[error(transparent)]
    Persistence(#[from] PersistenceError),
}

fn describe_precondition(p: &Precondition) -> String {
    let f = &p.filter;
    let mut parts = Vec::new();
    if let Some(t) = &f.resource_type {
        parts.push(format!("resource_type={t}"));
    }
    if let Some(id) = &f.resource_id {
        parts.push(format!("resource_id={id}"));
    }
    if let Some(prefix) = &f.resource_id_prefix {
        parts.push(format!("resource_id_prefix={prefix}"));
    }
    if let Some(r) = &f.relation {
        parts.push(format!("relation={r}"));
    }
    if let Some(s) = &f.subject {
        parts.push(format!("subject_type={}", s.subject_type));
        if let Some(id) = &s.subject_id {
            parts.push(format!("subject_id={id}"));
        }
        if let Some(r) = &s.relation {
            parts.push(format!(
                "subject_relation={}",
                r.as_deref().unwrap_or("...")
            ));
        }
    }
    let operation = if p.must_match {
        "MUST_MATCH"
    } else {
        "MUST_NOT_MATCH"
    };
    format!("{operation} {{{}}}", parts.join(", "))
}
