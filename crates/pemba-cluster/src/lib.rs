//! Pemba's replicas talking to each other over the cluster port.
//!
//! A [`Replica`] runs one node's Raft (from `pemba-raft`) and is what the API server calls:
//! - writes go to the leader (proposed locally, or forwarded over the cluster port) with a request
//!   id that every retry keeps, and return once committed on a majority and applied here;
//! - reads wait until this node has applied the revision they need ([`Replica::wait_applied`]);
//!   reads without a token are held to a staleness bound ([`Replica::fresh_revision`], see
//!   [`freshness`]);
//!   [`Replica::read_index`] gets a quorum-confirmed commit index from the leader for
//!   fully consistent reads;
//! - membership is changed through the leader ([`Replica::add_learner`], [`Replica::promote`],
//!   [`Replica::remove`]).
//!
//! The network is injected: [`Dialer`] opens channels to peers and [`serve_peers`] takes any
//! stream of connections, so a simulation runs this code over a simulated network.

mod auth;
mod dialer;
mod error;
mod freshness;
mod network;
mod replica;
mod service;

pub use dialer::{Dialer, TcpDialer};
pub use error::{ClusterError, WriteFailure};
pub use freshness::Stale;
pub use replica::{Clock, Replica, ReplicaConfig, ReplicaStatus};
pub use service::serve_peers;
