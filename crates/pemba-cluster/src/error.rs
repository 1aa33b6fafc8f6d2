//! What can go wrong in a cluster.

use openraft::error::Fatal;
use pemba_raft::{NodeId, Rejection};
use thiserror::Error;

use crate::freshness::Stale;

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
    /// This node's Raft stopped on a fatal error (a storage failure, say): it serves nothing
    /// until it is restarted.
    #[error("this node stopped serving after a fatal error ({0}); the other nodes keep serving: fix the cause (free disk space, replace the disk) and restart it")]
    Stopped(Box<Fatal<NodeId>>),
    /// This node cannot show that its state is within the staleness bound.
    #[error("{0}")]
    Stale(Stale),
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
