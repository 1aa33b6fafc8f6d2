//! The gRPC status for each error, as SpiceDB gives it.

use pemba_engine::{EngineError, RelationshipError};
use pemba_schema::SchemaError;
use pemba_store::{ReadError, WriteError};
use tonic::Status;

use crate::token::TokenError;

pub fn engine(e: EngineError) -> Status {
    match e {
        EngineError::WildcardSubject | EngineError::WildcardLookup => {
            Status::invalid_argument(format!("invalid argument: {e}"))
        }
        EngineError::UnknownDefinition(_)
        | EngineError::UnknownRelation { .. }
        | EngineError::MaxDepthExceeded
        | EngineError::CaveatsUnsupported(_) => Status::failed_precondition(e.to_string()),
        EngineError::Snapshot(_) => Status::internal(e.to_string()),
    }
}

pub fn schema(e: &SchemaError) -> Status {
    if e.is_inconsistency() {
        Status::failed_precondition(e.to_string())
    } else {
        Status::invalid_argument(e.to_string())
    }
}

pub fn write(e: WriteError) -> Status {
    match &e {
        WriteError::InvalidRelationship(
            RelationshipError::UnknownDefinition(_) | RelationshipError::UnknownRelation { .. },
        ) => Status::failed_precondition(e.to_string()),
        WriteError::InvalidRelationship(_)
        | WriteError::DuplicateUpdate(_)
        | WriteError::SchemaOrphans(_)
        | WriteError::TooManyToDelete(_) => Status::invalid_argument(e.to_string()),
        WriteError::AlreadyExists(_) => Status::already_exists(e.to_string()),
        WriteError::PreconditionFailed(_) => Status::failed_precondition(e.to_string()),
        WriteError::Schema(schema_error) => schema(schema_error),
        WriteError::RevisionNotNewer { .. } => Status::aborted(e.to_string()),
        WriteError::Persistence(_) => Status::unavailable(e.to_string()),
    }
}

pub fn read(e: ReadError) -> Status {
    Status::failed_precondition(e.to_string())
}

pub fn token(e: TokenError) -> Status {
    Status::invalid_argument(e.to_string())
}
