//! What the clients saw: every request with when it started and ended (simulated time), where it
//! went and what came back.

use std::fmt;
use std::time::Duration;

use pemba_types::{Relationship, Revision};

/// A write's single update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Update {
    /// Insert, failing if present. The workload only creates relationships no other write
    /// names, so ALREADY_EXISTS can only mean the write was applied twice.
    Create,
    Touch,
    Delete,
}

/// The consistency a check asked for, with the token's revision where it carried one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consistency {
    MinimizeLatency,
    AtLeastAsFresh(Revision),
    AtExactSnapshot(Revision),
    FullyConsistent,
}

#[derive(Debug, Clone)]
pub enum Event {
    Write {
        client: usize,
        node: usize,
        start: Duration,
        end: Duration,
        update: Update,
        relationship: Relationship,
        /// A precondition: the relationship must (true) or must not (false) exist.
        precondition: Option<Box<(bool, Relationship)>>,
        /// The write's revision, or the status code of its failure.
        result: Result<Revision, tonic::Code>,
    },
    Check {
        client: usize,
        node: usize,
        start: Duration,
        end: Duration,
        consistency: Consistency,
        document: String,
        user: String,
        /// Whether the user may view the document, and the revision it was checked at.
        result: Result<(bool, Revision), tonic::Code>,
    },
    /// One Watch response: the changes of one revision.
    Watched {
        node: usize,
        at: Duration,
        revision: Revision,
        /// The updates, as `(update, relationship text)`, sorted.
        updates: Vec<(Update, String)>,
    },
    /// A Watch stream (re)started on a node after `after` (a revision, if it resumed).
    WatchStarted {
        node: usize,
        at: Duration,
        after: Option<Revision>,
        result: Result<(), tonic::Code>,
    },
}

impl Event {}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Write {
                client,
                node,
                start,
                end,
                update,
                relationship,
                precondition,
                result,
            } => {
                write!(
                    f,
                    "[{:?}..{:?}] client {client} → node {node}: {update:?} {relationship}",
                    start, end
                )?;
                if let Some((must, r)) = precondition.as_deref() {
                    let how = if *must { "exists" } else { "is absent" };
                    write!(f, " if {r} {how}")?;
                }
                write!(f, " = {result:?}")
            }
            Event::Check {
                client,
                node,
                start,
                end,
                consistency,
                document,
                user,
                result,
            } => write!(
                f,
                "[{:?}..{:?}] client {client} → node {node}: check document:{document} view user:{user} {consistency:?} = {result:?}",
                start, end
            ),
            Event::Watched {
                node,
                at,
                revision,
                updates,
            } => write!(f, "[{at:?}] watch on node {node}: revision {revision} {updates:?}"),
            Event::WatchStarted {
                node,
                at,
                after,
                result,
            } => write!(f, "[{at:?}] watch on node {node} after {after:?} = {result:?}"),
        }
    }
}
