//! What can go wrong in a cluster: one type per failure, each saying what it means for the
//! caller.

use openraft::error::{ChangeMembershipError, Fatal, InitializeError};
use openraft::{BasicNode, ConfigError};
use pemba_raft::NodeId;
use pemba_store::WriteRefusal;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::freshness::Stale;
use crate::identity::IdentityRefusal;

/// Why the node taken for the leader did not carry out a call passed to it. Crosses the
/// cluster port, so the caller knows where to go next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Error)]
pub enum LeaderRefusal {
    /// The node asked does not lead; `leader` is the leader it knows of, if any.
    #[error("node {node} is not the leader ({})", leader.map_or_else(|| "it knows no leader".to_string(), |l| format!("node {l} is")))]
    NotLeader {
        /// The node asked.
        node: NodeId,
        /// The leader it knows of, if any.
        leader: Option<NodeId>,
    },
    /// The leader could not confirm with a quorum that it still leads.
    #[error("node {node} could not confirm with a quorum that it still leads")]
    NoQuorum {
        /// The node asked.
        node: NodeId,
    },
    /// The node's Raft stopped on a fatal error.
    #[error("node {node} stopped after a fatal error")]
    Stopped {
        /// The node asked.
        node: NodeId,
    },
    /// The node's wall clock is off the cluster's by more than the clock bound (it steps down),
    /// or not yet measured against the other voters' (it records no time until it is).
    #[error("node {node}'s clock is off the cluster's by more than --max-clock-offset, or not yet measured: it records no time in the log")]
    ClockSkewed {
        /// The node asked.
        node: NodeId,
    },
}

/// Why one attempt to reach the leader failed. Calls retry (aiming at the leader named by a
/// refusal, if any) until their deadline.
#[derive(Debug, Error)]
pub enum LeaderError {
    /// This node knows no leader.
    #[error("no leader is known")]
    NoLeader,
    /// The node taken for the leader refused the call.
    #[error(transparent)]
    Refused(#[from] LeaderRefusal),
    /// The leader could not be reached, or its answer could not be read.
    #[error("leader {leader} at {addr} did not answer: {}", .status.message())]
    Unreachable {
        /// The leader called.
        leader: NodeId,
        /// Its cluster address.
        addr: String,
        /// The call's status.
        status: Box<tonic::Status>,
    },
}

/// Why a membership change was refused (it changed nothing).
#[derive(Debug, Error)]
pub enum MembershipRefusal {
    /// Adding a node whose id is a member's.
    #[error("node {0} is already a member; remove it first or choose a new id")]
    AlreadyMember(NodeId),
    /// Removing a node that is no member.
    #[error("node {0} is not a member")]
    NotMember(NodeId),
    /// Promoting a node that was never added.
    #[error("node {0} is not a member: add it as a learner first")]
    NotALearner(NodeId),
    /// Promoting a learner that lags would stall writes until it caught up.
    #[error("node {id} has not caught up: it holds the log up to index {}, the leader's reaches {last}, {} entries behind{}", .matched.map_or_else(|| "none".to_string(), |m| m.to_string()), .last.saturating_sub(.matched.unwrap_or(0)), if *.installing { " (it is still receiving a snapshot)" } else { "" })]
    NotCaughtUp {
        /// The learner.
        id: NodeId,
        /// The last entry it is known to hold.
        matched: Option<u64>,
        /// The leader's last entry.
        last: u64,
        /// Whether it is receiving a snapshot.
        installing: bool,
    },
    /// The node to add holds another cluster's data.
    #[error("node {id} at {addr} belongs to another cluster ({cluster_id}); give it an empty data directory")]
    OtherCluster {
        /// The node to add.
        id: NodeId,
        /// Its cluster address.
        addr: String,
        /// The cluster it belongs to.
        cluster_id: String,
    },
    /// The node to add reads only older log formats than the cluster writes: it would stop at
    /// the first entry it cannot read.
    #[error("node {id} at {addr} reads Raft log formats up to {reads}, but the cluster writes format {cluster}: run a newer Pemba build on it")]
    ReadsOlderFormat {
        /// The node to add.
        id: NodeId,
        /// Its cluster address.
        addr: String,
        /// The newest log format it reads.
        reads: u32,
        /// The cluster's log format.
        cluster: u32,
    },
    /// openraft refused the change.
    #[error(transparent)]
    Raft(Box<ChangeMembershipError<NodeId>>),
    /// The leader refused it (the change was passed on to the leader, which said why).
    #[error("{}", .0.message())]
    ByLeader(Box<tonic::Status>),
}

/// Why a cluster operation (starting a node, a call through it, a membership change) failed.
#[derive(Debug, Error)]
pub enum ClusterError {
    /// A peer's address is not a usable URI.
    #[error("peer address `{addr}` is not usable: {source}")]
    BadAddress {
        /// The address.
        addr: String,
        /// Why it is unusable.
        source: tonic::transport::Error,
    },
    /// A connection to a peer (or, for a one-off client, to the node asked) failed; the
    /// message carries every cause (a refused connection, a certificate not accepted).
    #[error("connecting to {addr}: {}", causes(.source))]
    Connect {
        /// The address dialed.
        addr: String,
        /// Why the connection failed.
        source: tonic::transport::Error,
    },
    /// The Raft configuration the node's flags make is invalid.
    #[error("invalid Raft configuration: {0}")]
    Config(Box<ConfigError>),
    /// Raft did not start.
    #[error("starting Raft: {0}")]
    Start(Box<Fatal<NodeId>>),
    /// The founder could not initialize the cluster.
    #[error("initializing the cluster: {0}")]
    Initialize(Box<openraft::error::RaftError<NodeId, InitializeError<NodeId, BasicNode>>>),
    /// The state machine could not start over the datastore.
    #[error("state machine: {0}")]
    StateMachine(#[from] pemba_raft::StateMachineError),
    /// No leader answered before the request deadline.
    #[error("no leader answered before the request deadline ({last})")]
    NoLeaderAnswered {
        /// Why the last attempt failed.
        last: LeaderError,
    },
    /// This node did not apply `revision` before the request deadline.
    #[error("this node has applied revision {applied}, and did not reach revision {revision} before the request deadline")]
    NotApplied {
        /// The newest revision this node applied.
        applied: u64,
        /// The revision waited for.
        revision: u64,
    },
    /// This node has not joined a cluster that has a name (its first leader names it).
    #[error("this node has not joined a cluster with an elected leader yet")]
    NotJoined,
    /// This node's storage is empty and no peer has yet confirmed its place in the cluster.
    #[error("this node has empty storage and no peer has yet confirmed its place in the cluster (it waits for one of --initial-members to answer)")]
    Unconfirmed,
    /// This node must not run.
    #[error(transparent)]
    Refused(IdentityRefusal),
    /// This node's founding record could not be read or written.
    #[error("reading this node's founding record: {0}")]
    Storage(#[from] pemba_raft::LogBackendError),
    /// The Raft log could not be opened.
    #[error("opening the Raft log: {0}")]
    Log(pemba_raft::LogBackendError),
    /// The datastore could not be opened.
    #[error("opening the datastore: {0}")]
    Datastore(#[from] pemba_store::PersistenceError),
    /// This node's Raft stopped on a fatal error (a storage failure, say): it serves nothing
    /// until it is restarted.
    #[error("this node stopped serving after a fatal error ({0}); the other nodes keep serving: fix the cause (free disk space, replace the disk) and restart it")]
    Stopped(Box<Fatal<NodeId>>),
    /// This node's state differs from the leader's at the same revision: it serves nothing.
    #[error("this node's state diverged from the leader's ({0}); it serves nothing: replace it with a node that has an empty data directory")]
    Diverged(pemba_raft::Divergence),
    /// This node cannot show that its state is within the staleness bound.
    #[error("{0}")]
    Stale(Stale),
    /// A membership change was refused.
    #[error(transparent)]
    Membership(Box<MembershipRefusal>),
    /// The cluster port stopped serving.
    #[error("the cluster port failed: {0}")]
    Serve(tonic::transport::Error),
}

/// Why a write was not applied.
#[derive(Debug, Error)]
pub enum WriteFailure {
    /// The state machine refused it; nothing changed.
    #[error("{}", .0.message)]
    Refused(WriteRefusal),
    /// Its fate is unknown to this node: it was not confirmed before the deadline, or this node
    /// stopped. It may still be applied (once at most).
    #[error("the write was not confirmed ({0}); it may still be applied, once at most")]
    Unconfirmed(ClusterError),
}

impl From<MembershipRefusal> for ClusterError {
    fn from(refusal: MembershipRefusal) -> Self {
        ClusterError::Membership(Box::new(refusal))
    }
}

/// `error` and its causes, outermost first, joined by `: ` (a transport error's own message
/// says only that the transport failed).
fn causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}
