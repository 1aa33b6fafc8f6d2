//! What the log carries and what applying it answers.

use std::time::SystemTime;

use pemba_store::{StateDigest, WriteCommand, WriteRefusal};
use serde::{Deserialize, Serialize};

/// A log entry's payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Request {
    /// Names the cluster. The first one applied wins; later ones change nothing.
    InitCluster { cluster_id: String },
    /// A datastore write. `request_id` is unique per client request and is kept by every retry,
    /// so the state machine applies it at most once. `timestamp` is the leader's clock when it
    /// proposed the entry: the write's time on every replica.
    Write {
        request_id: String,
        timestamp: SystemTime,
        command: Box<WriteCommand>,
    },
    /// Advances the cluster's clock to the leader's `timestamp` (never backwards). Revisions
    /// take their time from the log, so every replica judges expirations alike at a revision;
    /// the leader appends a tick whenever the log's time would otherwise lag its clock.
    Tick { timestamp: SystemTime },
    /// The leader's digest of its state at `revision` (an earlier entry): every replica that
    /// remembers its own digest at `revision` compares them, and one that differs stops serving
    /// (see [`crate::Divergence`]). New variants go last: entries are stored.
    Checkpoint { revision: u64, digest: StateDigest },
}

/// What an applied write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Written {
    /// The revision of the write: its log index.
    pub revision: u64,
    /// Relationships removed (delete by filter) or written (import).
    pub count: u64,
    /// A delete by filter stopped at its limit with more left to delete.
    pub partial: bool,
}

/// The outcome of applying one entry: a refused write changed nothing.
pub type WriteOutcome = Result<Written, WriteRefusal>;
