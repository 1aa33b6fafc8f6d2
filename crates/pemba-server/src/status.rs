//! The gRPC status for each error, as SpiceDB gives it.

use pemba_cluster::{ClusterError, WriteFailure};
use pemba_engine::{EngineError, SnapshotError};
use pemba_schema::SchemaError;
use pemba_store::{ReadError, RefusalKind};
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

/// A write's failure, classified as SpiceDB does: unknown names, failed preconditions and
/// schema changes that contradict stored data are FAILED_PRECONDITION, malformed writes and
/// schemas INVALID_ARGUMENT, creating an existing relationship ALREADY_EXISTS, and a caveat
/// context with an unknown parameter or a wrong-typed value UNKNOWN (SpiceDB's error carries no
/// status).
pub fn write(e: WriteFailure) -> Status {
    match e {
        WriteFailure::Refused(refusal) => {
            let message = refusal.message;
            match refusal.kind {
                RefusalKind::UnknownName
                | RefusalKind::PreconditionFailed
                | RefusalKind::SchemaInconsistent => Status::failed_precondition(message),
                RefusalKind::Invalid | RefusalKind::SchemaInvalid => {
                    Status::invalid_argument(message)
                }
                RefusalKind::AlreadyExists => Status::already_exists(message),
                RefusalKind::CaveatContext => Status::unknown(message),
                RefusalKind::Internal => Status::internal(message),
            }
        }
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
