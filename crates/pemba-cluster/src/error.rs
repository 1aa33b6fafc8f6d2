//! What can go wrong in a cluster.

use pemba_raft::Rejection;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ClusterError {
    #[error("peer address `{0}` is not usable: {1}")]
    BadAddress(String, String),
    #[error("invalid Raft configuration: {0}")]
    Config(String),
    #[error("starting Raft: {0}")]
    Start(String),
    #[error("state machine: {0}")]
    StateMachine(#[from] pemba_raft::StateMachineError),
    /// No leader could be reached, or it did not answer, within the deadline.
    #[error("{0}")]
    Unavailable(String),
    /// The request cannot be carried out as asked (unknown node, bad membership change).
    #[error("{0}")]
    Refused(String),
}

/// Why a write was not applied.
#[derive(Debug, Error)]
pub enum WriteFailure {
    /// The state machine refused it; nothing changed.
    #[error("{}", .0.message)]
    Rejected(Rejection),
    /// Its fate is unknown to this node: no leader answered within the deadline. It may still
    /// be applied (once at most).
    #[error("{0}")]
    Unavailable(String),
}
