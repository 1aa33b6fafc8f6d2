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
    /// WriteRelationships: creates, touches and deletes, if every precondition holds.
    Relationships {
        /// Each relationship at most once.
        updates: Vec<(UpdateOperation, Relationship)>,
        /// Checked against the state before the write.
        preconditions: Vec<Precondition>,
    },
    /// DeleteRelationships: every relationship matching a filter, if every precondition holds.
    DeleteByFilter {
        /// What to delete.
        filter: RelationshipFilter,
        /// Checked against the state before the write.
        preconditions: Vec<Precondition>,
        /// At most this many are deleted.
        limit: Option<u64>,
        /// With more than `limit` matching: delete `limit` of them (else refuse).
        allow_partial: bool,
    },
    /// Bulk import: every relationship is created; any that exists fails the whole import.
    Import {
        /// The relationships to create.
        relationships: Vec<Relationship>,
    },
    /// WriteSchema: a new schema, if no stored relationship is left without its definition,
    /// relation or allowed type.
    Schema {
        /// The schema's text.
        text: String,
    },
}

/// What an applied write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteResult {
    /// The revision the write was applied at.
    pub revision: Revision,
    /// Relationships removed (DeleteByFilter) or written (Import).
    pub count: u64,
    /// DeleteByFilter stopped at its limit with more left to delete.
    pub partial: bool,
}

/// Why a write was refused. A refused write changes nothing.
#[derive(Debug, Error)]
pub enum WriteError {
    /// A relationship does not fit the schema.
    #[error(transparent)]
    InvalidRelationship(#[from] RelationshipError),
    /// The same relationship is updated twice in one request.
    #[error("found more than one update with relationship `{0}` in this request; a relationship can only be specified in an update once per overall WriteRelationships request")]
    DuplicateUpdate(String),
    /// CREATE of a relationship that exists.
    #[error("could not CREATE relationship `{0}`, as it already existed. If this is persistent, please switch to TOUCH operations or specify a precondition")]
    AlreadyExists(String),
    /// A precondition does not hold.
    #[error("unable to satisfy write precondition: {}", describe_precondition(.0))]
    PreconditionFailed(Box<Precondition>),
    /// More relationships match a delete than its limit, and partial deletion was not asked for.
    #[error(
        "found more than {0} relationships to be deleted and partial deletion was not requested"
    )]
    TooManyToDelete(u64),
    /// The schema does not compile.
    #[error(transparent)]
    Schema(Box<SchemaError>),
    /// The new schema would leave stored relationships without a definition, relation or type.
    #[error(transparent)]
    SchemaOrphans(SchemaOrphan),
    /// A log entry at a revision not newer than the head: the log and the datastore disagree.
    #[error("revision {revision} is not newer than the datastore's head {head}")]
    RevisionNotNewer {
        /// The revision the entry was to be applied at.
        revision: Revision,
        /// The datastore's head.
        head: Revision,
    },
    /// Storage failed: the write is not made.
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
