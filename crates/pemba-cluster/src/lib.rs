//! Pemba's replicas talking to each other over the cluster port.
//!
//! A [`Replica`] runs one node's Raft (from `pemba-raft`) and is what the API server calls:
//! - writes go to the leader (proposed locally, or forwarded over the cluster port) with a request
//!   id that every retry keeps, and return once committed on a majority and applied here; the
//!   leader proposes concurrent writes together, one log entry per group ([`group_commit`]);
//! - reads wait until this node has applied the revision they need ([`Replica::wait_applied`]);
//!   reads without a token are held to a staleness bound ([`Replica::fresh_revision`], see
//!   [`freshness`]);
//!   [`Replica::read_index`] gets a quorum-confirmed commit index from the leader for
//!   fully consistent reads;
//! - membership is changed through the leader ([`Replica::add_learner`], [`Replica::promote`],
//!   [`Replica::remove`]);
//! - a node with empty storage takes no part in Raft until a peer confirms it is new; a voter
//!   that lost its data is refused, and only members that agree found a cluster
//!   ([`identity`]).
//!
//! The network is injected: [`Dialer`] opens channels to peers and [`serve_peers`] takes any
//! stream of connections, so a simulation runs this code over a simulated network.

mod auth;
mod background;
mod clock_bound;
mod dialer;
mod error;
mod founding;
mod freshness;
mod gc;
mod group_commit;
mod identity;
mod leader;
mod log_format;
mod log_purge;
mod membership;
mod network;
mod node_builder;
mod replica;
mod sender_check;
mod service;

pub use dialer::{peer_endpoint, Dialer, TcpDialer};
pub use error::{ClusterError, LeaderError, LeaderRefusal, MembershipRefusal, WriteFailure};
pub use freshness::Stale;
pub use identity::IdentityRefusal;
pub use membership::CAUGHT_UP_LAG;
pub use node_builder::{GcSchedule, NodeBuilder, StartedNode};
pub use pemba_raft::NEWEST_LOG_FORMAT;
#[cfg(feature = "fault-injection")]
pub use replica::Faults;
pub use replica::{Clock, Replica, ReplicaConfig, ReplicaStatus};
pub use sender_check::{SenderCheck, SenderRefusal};
pub use service::serve_peers;
