//! The gRPC status for each error, as SpiceDB gives it.

use pemba_cluster::{ClusterError, WriteFailure};
use pemba_engine::{EngineError, SnapshotError};
use pemba_raft::RejectionKind;
use pemba_schema::SchemaError;
use pemba_store::ReadError;
use tonic::Status;

use crate::token::TokenError;

pub fn engine(e: EngineError) -> Status {
    match e {
        EngineError::WildcardSubject | EngineError::WildcardLookup => {
            Status::invalid_argument(format!("invalid argument: {e}"))
        }
        EngineError::UnknownDefinition(_)
        | EngineError::UnknownRelation { .. }
        | EngineError::MaxDepthExceeded => Status::failed_precondition(e.to_string()),
        EngineError::UnknownCaveat(name) => {
            Status::failed_precondition(format!("caveat with name `{name}` not found"))
        }
        EngineError::Caveat(_) => Status::invalid_argument(e.to_string()),
        EngineError::Snapshot(e) => snapshot(e),
    }
}

pub fn schema(e: &SchemaError) -> Status {
    if e.is_inconsistency() {
        Status::failed_precondition(e.to_string())
    } else {
        Status::invalid_argument(e.to_string())
    }
}

/// A node that cannot serve now: it stopped, it is stale, or no leader answered in time.
pub fn cluster(e: ClusterError) -> Status {
    Status::unavailable(e.to_string())
}

pub fn write(e: WriteFailure) -> Status {
    match e {
        WriteFailure::Rejected(rejection) => match rejection.kind {
            RejectionKind::InvalidArgument => Status::invalid_argument(rejection.message),
            RejectionKind::FailedPrecondition => Status::failed_precondition(rejection.message),
            RejectionKind::AlreadyExists => Status::already_exists(rejection.message),
            RejectionKind::Internal => Status::internal(rejection.message),
            RejectionKind::Unknown => Status::unknown(rejection.message),
        },
        WriteFailure::Unconfirmed(_) => Status::unavailable(e.to_string()),
    }
}

/// A revision this node no longer (or does not yet) hold: SpiceDB's invalid-revision answer.
pub fn read(e: ReadError) -> Status {
    Status::out_of_range(format!("invalid zedtoken: {e}"))
}

/// A snapshot whose revision garbage collection passed while it was read: as [`read`].
pub fn snapshot(e: SnapshotError) -> Status {
    Status::out_of_range(format!("invalid zedtoken: {e}"))
}

pub fn token(e: TokenError) -> Status {
    Status::invalid_argument(e.to_string())
}
