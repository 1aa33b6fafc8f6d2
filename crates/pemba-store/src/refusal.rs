//! A refused write as it is replicated and remembered: the kind of refusal and the message the
//! client sees. [`WriteError`] holds the engine's and the schema's own errors, which are
//! neither stored nor sent to peers; a [`WriteRefusal`] is, so that a retried request gets the
//! same answer from the record of its first attempt on every replica.

use serde::{Deserialize, Serialize};

use crate::command::WriteError;
use pemba_engine::RelationshipError;

/// What kind of refusal a write met. The API layer maps each kind to one gRPC status.
///
/// Refusals are stored (de-duplication records) and replicated: new kinds go last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RefusalKind {
    /// A relationship names a definition or relation the schema does not have.
    UnknownName,
    /// A precondition of the request did not hold.
    PreconditionFailed,
    /// The request is malformed: an invalid relationship, an update given twice, more to
    /// delete than allowed without partial deletion, a schema that would orphan relationships.
    Invalid,
    /// A relationship to create already exists.
    AlreadyExists,
    /// A schema change contradicts itself or the stored relationships.
    SchemaInconsistent,
    /// The new schema does not parse or compile.
    SchemaInvalid,
    /// A caveat context names an unknown parameter or gives a value of the wrong type.
    CaveatContext,
    /// The datastore failed, not the request.
    Internal,
}

/// A refused write: its kind and the message the client sees.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteRefusal {
    /// What kind of refusal (it decides the gRPC status).
    pub kind: RefusalKind,
    /// What the client is told.
    pub message: String,
}

impl RefusalKind {
    /// The kind of `e`.
    pub fn of(e: &WriteError) -> Self {
        match e {
            WriteError::InvalidRelationship(RelationshipError::CaveatContext(_)) => {
                RefusalKind::CaveatContext
            }
            WriteError::InvalidRelationship(
                RelationshipError::UnknownDefinition(_) | RelationshipError::UnknownRelation { .. },
            ) => RefusalKind::UnknownName,
            WriteError::PreconditionFailed(_) => RefusalKind::PreconditionFailed,
            WriteError::InvalidRelationship(_)
            | WriteError::DuplicateUpdate(_)
            | WriteError::SchemaOrphans(_)
            | WriteError::TooManyToDelete(_) => RefusalKind::Invalid,
            WriteError::AlreadyExists(_) => RefusalKind::AlreadyExists,
            WriteError::Schema(schema_error) if schema_error.is_inconsistency() => {
                RefusalKind::SchemaInconsistent
            }
            WriteError::Schema(_) => RefusalKind::SchemaInvalid,
            WriteError::RevisionNotNewer { .. } | WriteError::Persistence(_) => {
                RefusalKind::Internal
            }
        }
    }
}

impl From<&WriteError> for WriteRefusal {
    fn from(e: &WriteError) -> Self {
        WriteRefusal {
            kind: RefusalKind::of(e),
            message: e.to_string(),
        }
    }
}
