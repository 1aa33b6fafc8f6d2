//! Errors the engine reports for a request.

use thiserror::Error;

use pemba_caveats::EvaluationError;

use crate::snapshot::SnapshotError;

/// Why a request could not be answered. None of these is an authorization answer: callers must not
/// treat an error as "no permission" without saying so.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EngineError {
    #[error("object definition `{0}` not found")]
    UnknownDefinition(String),
    #[error("relation/permission `{relation}` not found under definition `{definition}`")]
    UnknownRelation {
        definition: String,
        relation: String,
    },
    #[error("cannot perform check on wildcard subject")]
    WildcardSubject,
    #[error("cannot perform lookup resources on wildcard")]
    WildcardLookup,
    #[error("max depth exceeded: this usually indicates a recursive or too deep data dependency")]
    MaxDepthExceeded,
    #[error("caveat `{0}` not found")]
    UnknownCaveat(String),
    #[error(transparent)]
    Caveat(#[from] EvaluationError),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
}
