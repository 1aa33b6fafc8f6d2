//! Pemba's replication core. A Raft log (openraft) carries every write; the state machine applies
//! each entry to the datastore at a revision equal to the entry's log index, so a ZedToken names
//! the same state on every replica.
//!
//! - [`LogStore`] keeps the log and the vote over any [`LogBackend`] (RocksDB in production,
//!   [`MemoryLog`] in tests and simulations);
//! - [`StateMachine`] applies entries to a [`pemba_store::Datastore`], de-duplicates retried
//!   writes by request id, and builds and installs snapshots of the whole datastore;
//! - [`PembaRuntime`] is tokio with a seedable random source for election timeouts.

mod compute;
mod log_store;
mod log_thread;
mod request;
mod runtime;
mod snapshot_bytes;
mod state_machine;

pub use compute::Compute;
#[cfg(feature = "fault-injection")]
pub use log_store::SkipSyncs;
pub use log_store::{LogBackend, LogBackendError, LogStore, MemoryLog, SyncCount};
pub use request::{
    EntryOutcomes, Proposal, Request, WriteOutcome, Written, FIRST_LOG_FORMAT,
    GROUPED_WRITES_FORMAT, NEWEST_LOG_FORMAT,
};
pub use runtime::{seed_randomness, PembaRuntime, SeededRng};
pub use snapshot_bytes::SnapshotBytes;
pub use state_machine::{
    DigestChecks, Divergence, SnapshotCounts, StateMachine, StateMachineError,
    DEDUPLICATION_ENTRIES, DEDUPLICATION_WINDOW,
};

openraft::declare_raft_types!(
    /// Pemba's Raft types: requests are writes, responses their outcomes, nodes are addressed by
    /// their peer address.
    pub TypeConfig:
        D = Request,
        R = EntryOutcomes,
        NodeId = u64,
        Node = openraft::BasicNode,
        SnapshotData = SnapshotBytes,
        AsyncRuntime = PembaRuntime,
);

/// A node's id in the cluster.
pub type NodeId = u64;
/// A Raft instance with Pemba's types.
pub type Raft = openraft::Raft<TypeConfig>;
/// Metrics of a Raft instance.
pub type RaftMetrics = openraft::RaftMetrics<NodeId, openraft::BasicNode>;
