//! What the log carries and what applying it answers.

use std::time::SystemTime;

use pemba_engine::RelationshipError;
use pemba_store::{WriteCommand, WriteError};
use serde::{Deserialize, Serialize};

/// A log entry's payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Request {
    /// Names the cluster. The first one applied wins; later ones change nothing.
    InitCluster { cluster_id: String },
    /// A datastore write. `request_id` is unique per client request and is kept by every retry,
    /// so the state machine applies it at most once. `timestamp` is the leader's clock when it
    /// proposed the entry: the write's time on every replica.
    Write {
        request_id: String,
        timestamp: SystemTime,
        command: Box<WriteCommand>,
    },
    /// Advances the cluster's clock to the leader's `timestamp` (never backwards). Revisions
    /// take their time from the log, so every replica judges expirations alike at a revision;
    /// the leader appends a tick whenever the log's time would otherwise lag its clock.
    /// New variants go last: entries are stored.
    Tick { timestamp: SystemTime },
}

/// What an applied write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Written {
    /// The revision of the write: its log index.
    pub revision: u64,
    /// Relationships removed (delete by filter) or written (import).
    pub count: u64,
    /// A delete by filter stopped at its limit with more left to delete.
    pub partial: bool,
}

/// Why the state machine refused a write (which then changed nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RejectionKind {
    InvalidArgument,
    FailedPrecondition,
    AlreadyExists,
    Internal,
    /// SpiceDB's answer to a caveat context written with an unknown parameter or a value of the
    /// wrong type (its error carries no status). New kinds go last: rejections are stored.
    Unknown,
}

/// A refused write, with the message the client sees.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    pub kind: RejectionKind,
    pub message: String,
}

/// The outcome of applying one entry.
pub type WriteOutcome = Result<Written, Rejection>;

impl From<&WriteError> for Rejection {
    /// Classifies as SpiceDB does: unknown names and failed preconditions are FAILED_PRECONDITION,
    /// malformed writes INVALID_ARGUMENT, creating an existing relationship ALREADY_EXISTS.
    fn from(e: &WriteError) -> Self {
        let kind = match e {
            WriteError::InvalidRelationship(RelationshipError::CaveatContext(_)) => {
                RejectionKind::Unknown
            }
            WriteError::InvalidRelationship(
                RelationshipError::UnknownDefinition(_) | RelationshipError::UnknownRelation { .. },
            )
            | WriteError::PreconditionFailed(_) => RejectionKind::FailedPrecondition,
            WriteError::InvalidRelationship(_)
            | WriteError::DuplicateUpdate(_)
            | WriteError::SchemaOrphans(_)
            | WriteError::TooManyToDelete(_) => RejectionKind::InvalidArgument,
            WriteError::AlreadyExists(_) => RejectionKind::AlreadyExists,
            WriteError::Schema(schema_error) if schema_error.is_inconsistency() => {
                RejectionKind::FailedPrecondition
            }
            WriteError::Schema(_) => RejectionKind::InvalidArgument,
            WriteError::RevisionNotNewer { .. } | WriteError::Persistence(_) => {
                RejectionKind::Internal
            }
        };
        Rejection {
            kind,
            message: e.to_string(),
        }
    }
}
