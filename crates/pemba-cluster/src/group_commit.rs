//! Group commit: the leader proposes the writes that arrive while earlier ones are in flight
//! together, as one log entry ([`Request::Writes`]). They share one log append, one fsync on
//! each replica and one round of replication, and take one revision; each keeps its own
//! request id and outcome.
//!
//! A cluster whose log format predates grouped entries (a rolling upgrade not yet finished; see
//! [`crate::log_format`]) gets each write of a group in an entry of its own.
//!
//! At most [`GROUPS_IN_FLIGHT`] entries of writes are proposed and not yet applied at a time
//! (one that takes longer than an attempt to reach the leader stops counting): writes that
//! arrive meanwhile queue, and the next group takes all of them (up to [`GROUP_WEIGHT`]). A lone
//! write on an idle leader goes at once, in a group of one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::SystemTime;

use pemba_raft::{Proposal, Request, WriteOutcome, GROUPED_WRITES_FORMAT};
use pemba_store::WriteCommand;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::task::JoinSet;

use crate::error::LeaderRefusal;
use crate::replica::Replica;

/// How many groups may be proposed and not yet applied at once: enough that the leader's log
/// appends while the previous group replicates, few enough that groups stay large.
pub(crate) const GROUPS_IN_FLIGHT: usize = 2;

/// How much one group may carry, in relationships and preconditions (see [`weight`]): a group
/// stays far below a peer message's limit. One write heavier than this goes alone.
pub(crate) const GROUP_WEIGHT: usize = 2_000;

/// A write waiting for its group, with where its outcome goes.
pub(crate) struct Queued {
    proposal: Proposal,
    answer: oneshot::Sender<Result<WriteOutcome, LeaderRefusal>>,
}

/// The queue of writes the leader proposes in groups, and how many groups it proposed.
pub(crate) struct GroupCommit {
    queue: mpsc::UnboundedSender<Queued>,
    counts: Arc<GroupCounts>,
}

/// Writes proposed through group commit, and the log entries they went in.
#[derive(Debug, Default)]
pub(crate) struct GroupCounts {
    entries: AtomicU64,
    writes: AtomicU64,
}

impl GroupCommit {
    /// A queue, and its receiving end for [`run`].
    pub(crate) fn new() -> (GroupCommit, mpsc::UnboundedReceiver<Queued>) {
        let (queue, receiver) = mpsc::unbounded_channel();
        let commit = GroupCommit {
            queue,
            counts: Arc::default(),
        };
        (commit, receiver)
    }

    /// Queues `proposal` and waits for its outcome. A write whose group was lost with the
    /// proposing task (the node shut down) is answered as a stopped node's.
    pub(crate) async fn propose(
        &self,
        node: u64,
        proposal: Proposal,
    ) -> Result<WriteOutcome, LeaderRefusal> {
        let (answer, outcome) = oneshot::channel();
        let queued = Queued { proposal, answer };
        if self.queue.send(queued).is_err() {
            return Err(LeaderRefusal::Stopped { node });
        }
        outcome
            .await
            .unwrap_or(Err(LeaderRefusal::Stopped { node }))
    }

    /// Log entries of writes proposed so far, and the writes in them.
    pub(crate) fn counts(&self) -> (u64, u64) {
        (
            self.counts.entries.load(Ordering::Relaxed),
            self.counts.writes.load(Ordering::Relaxed),
        )
    }

    pub(crate) fn counter(&self) -> Arc<GroupCounts> {
        self.counts.clone()
    }
}

/// Proposes queued writes in groups until the replica is gone.
pub(crate) async fn run(
    replica: Weak<Replica>,
    mut queue: mpsc::UnboundedReceiver<Queued>,
    counts: Arc<GroupCounts>,
) {
    let in_flight = Arc::new(Semaphore::new(GROUPS_IN_FLIGHT));
    while let Some(first) = queue.recv().await {
        // Waiting for a slot is what lets a group grow: writes queue meanwhile.
        let Ok(slot) = in_flight.clone().acquire_owned().await else {
            return;
        };
        let group = gather(first, &mut queue);
        let Some(replica) = replica.upgrade() else {
            return;
        };
        let counts = counts.clone();
        let hold = replica.attempt_timeout;
        let proposing = tokio::spawn(async move { propose_group(replica, group, &counts).await });
        // A group holds its slot until it is applied, or for one attempt's time at most: a
        // leader cut off from its quorum answers its proposals only once it rejoins, and must not
        // stop proposing meanwhile (should it lead again). The proposal goes on either way.
        tokio::spawn(async move {
            let _ = tokio::time::timeout(hold, proposing).await;
            drop(slot);
        });
    }
}

/// `first` and the writes queued behind it, up to [`GROUP_WEIGHT`].
fn gather(first: Queued, queue: &mut mpsc::UnboundedReceiver<Queued>) -> Vec<Queued> {
    let mut load = weight(&first.proposal.command);
    let mut group = vec![first];
    while load < GROUP_WEIGHT {
        let Ok(next) = queue.try_recv() else {
            break;
        };
        load += weight(&next.proposal.command);
        group.push(next);
    }
    group
}

/// A command's share of a group: about how many relationships and filters it carries.
fn weight(command: &WriteCommand) -> usize {
    match command {
        WriteCommand::Relationships {
            updates,
            preconditions,
        } => 1 + updates.len() + preconditions.len(),
        WriteCommand::DeleteByFilter { preconditions, .. } => 1 + preconditions.len(),
        WriteCommand::Import { relationships } => 1 + relationships.len(),
        WriteCommand::Schema { text } => 1 + text.len() / 64,
    }
}

/// Proposes `group` through `replica`, which must be the leader, and answers each write: its
/// outcome, or the refusal that kept it from the log. Until every member reads grouped entries
/// (see [`crate::log_format`]), each write goes in an entry of its own.
async fn propose_group(replica: Arc<Replica>, group: Vec<Queued>, counts: &GroupCounts) {
    let timestamp = replica.clock_bound.stamp((replica.clock)());
    let Some(timestamp) = timestamp.filter(|_| !replica.clock_bound.skewed()) else {
        let refusal = LeaderRefusal::ClockSkewed {
            node: replica.node_id,
        };
        for queued in group {
            let _ = queued.answer.send(Err(refusal.clone()));
        }
        return;
    };
    let grouped = replica.state_machine.log_format() >= GROUPED_WRITES_FORMAT;
    let entries = if grouped { 1 } else { group.len() as u64 };
    counts.entries.fetch_add(entries, Ordering::Relaxed);
    counts
        .writes
        .fetch_add(group.len() as u64, Ordering::Relaxed);
    if !grouped {
        return propose_one_by_one(replica, timestamp, group).await;
    }
    let (writes, answers): (Vec<Proposal>, Vec<_>) =
        group.into_iter().map(|q| (q.proposal, q.answer)).unzip();
    match replica
        .append_as_leader(Request::Writes { timestamp, writes })
        .await
    {
        // One outcome per write (the state machine answers each); an answer missing for any
        // reason drops its sender, which the write reads as a stopped node.
        Ok(response) => {
            for (answer, outcome) in answers.into_iter().zip(response.data) {
                let _ = answer.send(Ok(outcome));
            }
        }
        Err(refusal) => {
            for answer in answers {
                let _ = answer.send(Err(refusal.clone()));
            }
        }
    }
}

/// Proposes each write of `group` as an entry of its own (log format 1), all at once.
async fn propose_one_by_one(replica: Arc<Replica>, timestamp: SystemTime, group: Vec<Queued>) {
    let mut proposals = JoinSet::new();
    for Queued { proposal, answer } in group {
        let replica = replica.clone();
        proposals.spawn(async move {
            let request = Request::Write {
                request_id: proposal.request_id,
                timestamp,
                command: Box::new(proposal.command),
            };
            match replica.append_as_leader(request).await {
                Ok(response) => {
                    if let Some(outcome) = response.data.into_iter().next() {
                        let _ = answer.send(Ok(outcome));
                    }
                }
                Err(refusal) => {
                    let _ = answer.send(Err(refusal));
                }
            }
        });
    }
    while proposals.join_next().await.is_some() {}
}
