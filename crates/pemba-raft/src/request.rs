//! What the log carries and what applying it answers.

use std::time::SystemTime;

use pemba_store::{StateDigest, WriteCommand, WriteRefusal};
use serde::{Deserialize, Serialize};

/// The newest log format this build reads and writes. A cluster's log format is raised by a
/// replicated [`Request::RaiseFormat`] only once every member reads the new one, so a rolling
/// upgrade never sends a node an entry it cannot read:
/// - 1: every write is an entry of its own ([`Request::Write`]);
/// - 2: the leader groups concurrent writes into one entry ([`Request::Writes`]).
pub const NEWEST_LOG_FORMAT: u32 = 2;

/// The log format of a cluster whose log never raised it.
pub const FIRST_LOG_FORMAT: u32 = 1;

/// The first log format with [`Request::Writes`].
pub const GROUPED_WRITES_FORMAT: u32 = 2;

/// A log entry's payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Request {
    /// Names the cluster. The first one applied wins; later ones change nothing.
    InitCluster {
        /// The cluster's id, as its founder recorded it.
        cluster_id: String,
    },
    /// A datastore write, alone in its entry (what builds before [`Request::Writes`] proposed;
    /// applied as a group of one). `request_id` is unique per client request and is kept by
    /// every retry, so the state machine applies it at most once. `timestamp` is the leader's
    /// clock when it proposed the entry: the write's time on every replica.
    Write {
        /// Kept by every retry of the request.
        request_id: String,
        /// The leader's clock when it proposed the entry.
        timestamp: SystemTime,
        /// The write.
        command: Box<WriteCommand>,
    },
    /// Advances the cluster's clock to the leader's `timestamp` (never backwards). Revisions
    /// take their time from the log, so every replica judges expirations alike at a revision;
    /// the leader appends a tick whenever the log's time would otherwise lag its clock.
    Tick {
        /// The leader's clock when it proposed the entry.
        timestamp: SystemTime,
    },
    /// The leader's digest of its state at `revision` (an earlier entry): every replica that
    /// remembers its own digest at `revision` compares them, and one that differs stops serving
    /// (see [`crate::Divergence`]). New variants go last: entries are stored.
    Checkpoint {
        /// The revision the digest is of.
        revision: u64,
        /// The leader's digest of its state there.
        digest: StateDigest,
    },
    /// Concurrent datastore writes the leader groups into one entry, so they share one log
    /// append, one fsync and one round of replication. All of them take this entry's index as
    /// their revision and `timestamp` as their time; they are applied in order, each planned
    /// against the effects of those before it, and each has its own outcome (a refused one
    /// changes nothing; see `pemba_store::Datastore::apply_entry`).
    Writes {
        /// The leader's clock when it proposed the entry: every write's time.
        timestamp: SystemTime,
        /// The writes, in the order they are applied.
        writes: Vec<Proposal>,
    },
    /// Raises the cluster's log format to `version` (never lowers it): from the next entry on,
    /// the leader may append entries of that format. The leader appends it once every member
    /// said it reads `version`; a replica that does not stops rather than misread the log.
    RaiseFormat {
        /// The format the log is raised to.
        version: u32,
    },
}

/// One client write in a [`Request::Writes`]: its command and the request id every retry of it
/// keeps, so the state machine applies it at most once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Proposal {
    /// Kept by every retry of the request.
    pub request_id: String,
    /// The write.
    pub command: WriteCommand,
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

/// The outcome of one write: a refused write changed nothing.
pub type WriteOutcome = Result<Written, WriteRefusal>;

/// What applying one entry answers: the outcome of each of its writes, in order (none for an
/// entry without writes).
pub type EntryOutcomes = Vec<WriteOutcome>;
