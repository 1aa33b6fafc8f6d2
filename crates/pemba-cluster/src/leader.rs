//! Calls that only the leader answers: writes and read indexes. A follower passes them to the
//! node it takes for the leader; a node that does not lead refuses, naming the leader it knows,
//! and the caller aims there next. Every call retries until its deadline.

use std::time::Duration;

use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};
use openraft::raft::ClientWriteResponse;
use pemba_proto::pemba::cluster::v1 as proto;
use pemba_proto::pemba::cluster::v1::cluster_client::ClusterClient;
use pemba_raft::{NodeId, Proposal, Request, TypeConfig, WriteOutcome, Written};
use pemba_store::WriteCommand;
use tokio::time::{sleep, timeout_at, Instant};
use tonic::transport::Channel;

use crate::error::{ClusterError, LeaderError, LeaderRefusal, WriteFailure};
use crate::freshness::Confirmation;
use crate::network::{decode, encode};
use crate::replica::Replica;

/// How long to pause between attempts to reach a leader.
pub(crate) const RETRY_PAUSE: Duration = Duration::from_millis(50);

/// The node a call is passed to: this node, or a peer at an address.
enum Target {
    Here,
    Peer { id: NodeId, addr: String },
}

impl Replica {
    /// Where to send a call for the leader: the leader named by the last refusal (`hint`) if
    /// its address is known, else the leader this node knows of.
    fn leader_target(&self, hint: Option<NodeId>) -> Result<Target, LeaderError> {
        let metrics = self.metrics();
        let leader = hint
            .or(metrics.current_leader)
            .ok_or(LeaderError::NoLeader)?;
        if leader == self.node_id {
            return Ok(Target::Here);
        }
        let membership = metrics.membership_config.membership();
        let node = membership.get_node(&leader).ok_or(LeaderError::NoLeader)?;
        Ok(Target::Peer {
            id: leader,
            addr: node.addr.clone(),
        })
    }

    /// A client for the peer at `addr`, and the time left until `deadline`.
    pub(crate) fn peer_client(
        &self,
        id: NodeId,
        addr: &str,
        deadline: Instant,
    ) -> Result<(ClusterClient<Channel>, Duration), LeaderError> {
        let client = self
            .peers
            .client(addr)
            .map_err(|status| self.unreachable(id, addr, status))?;
        Ok((client, deadline.saturating_duration_since(Instant::now())))
    }

    /// A failed call to the peer `id`: its channel is dropped, so the next call dials again.
    pub(crate) fn unreachable(&self, id: NodeId, addr: &str, status: tonic::Status) -> LeaderError {
        self.peers.forget(addr);
        LeaderError::Unreachable {
            leader: id,
            addr: addr.to_string(),
            status: Box::new(status),
        }
    }

    /// Writes `command` through the leader: returns once it is committed on a majority and
    /// applied on the leader (and, unless the deadline passes first, on this node). Retries keep
    /// one request id, so the command is applied at most once however often it is retried.
    pub async fn write(
        &self,
        command: WriteCommand,
        deadline: Instant,
    ) -> Result<Written, WriteFailure> {
        self.serving().map_err(WriteFailure::Unconfirmed)?;
        let request_id = self.next_request_id();
        let mut last = LeaderError::NoLeader;
        let mut hint = None;
        while Instant::now() < deadline {
            let attempt = self.write_once(&request_id, &command, hint, deadline);
            match timeout_at(deadline, attempt).await {
                Err(_) => break,
                Ok(Ok(Ok(written))) => {
                    // Read-your-writes through this node: wait until it has applied the write
                    // too (the write is committed either way).
                    let _ = self.wait_applied(written.revision, deadline).await;
                    return Ok(written);
                }
                Ok(Ok(Err(refusal))) => return Err(WriteFailure::Refused(refusal)),
                Ok(Err(error)) => {
                    self.serving().map_err(WriteFailure::Unconfirmed)?;
                    hint = next_aim(hint, &error).await;
                    last = error;
                }
            }
        }
        Err(WriteFailure::Unconfirmed(ClusterError::NoLeaderAnswered {
            last,
        }))
    }

    async fn write_once(
        &self,
        request_id: &str,
        command: &WriteCommand,
        hint: Option<NodeId>,
        deadline: Instant,
    ) -> Result<WriteOutcome, LeaderError> {
        match self.leader_target(hint)? {
            Target::Here => Ok(self
                .propose(request_id.to_string(), command.clone())
                .await?),
            Target::Peer { id, addr } => {
                let payload = proto::RaftPayload {
                    data: encode(&(request_id, command))
                        .map_err(|status| self.unreachable(id, &addr, status))?,
                };
                let (mut client, remaining) = self.peer_client(id, &addr, deadline)?;
                let attempt = remaining.min(self.attempt_timeout);
                let answer = client
                    .forward_write(self.peers.request(payload, attempt))
                    .await
                    .map_err(|status| self.unreachable(id, &addr, status))?;
                let outcome: Result<WriteOutcome, LeaderRefusal> =
                    decode(&answer.into_inner().data)
                        .map_err(|status| self.unreachable(id, &addr, status))?;
                Ok(outcome?)
            }
        }
    }

    /// Proposes a write on this node, which must be the leader: it goes into the log with the
    /// writes proposed alongside it (see [`crate::group_commit`]).
    pub(crate) async fn propose(
        &self,
        request_id: String,
        command: WriteCommand,
    ) -> Result<WriteOutcome, LeaderRefusal> {
        let proposal = Proposal {
            request_id,
            command,
        };
        self.group_commit.propose(self.node_id, proposal).await
    }

    /// Appends `request` to the log through this node, which must be the leader; returns once it
    /// is committed and applied here.
    pub(crate) async fn append_as_leader(
        &self,
        request: Request,
    ) -> Result<ClientWriteResponse<TypeConfig>, LeaderRefusal> {
        match self.raft.client_write(request).await {
            Ok(response) => Ok(response),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => {
                Err(LeaderRefusal::NotLeader {
                    node: self.node_id,
                    leader: forward.leader_id.filter(|l| *l != self.node_id),
                })
            }
            // A membership error cannot come of a normal entry; a fatal one stops this node.
            Err(_) => Err(LeaderRefusal::Stopped { node: self.node_id }),
        }
    }

    /// A read index from the leader: a revision confirmed by a quorum to include every write
    /// acknowledged before this call. Reading at or after it (once applied here) is linearizable.
    /// Each read index is also this node's newest confirmation (see [`crate::freshness`]).
    pub async fn read_index(&self, deadline: Instant) -> Result<u64, ClusterError> {
        let asked = Instant::now();
        let index = self.read_index_by(deadline).await?;
        self.freshness.confirmed(Confirmation {
            revision: index,
            asked,
        });
        Ok(index)
    }

    async fn read_index_by(&self, deadline: Instant) -> Result<u64, ClusterError> {
        self.serving()?;
        let mut last = LeaderError::NoLeader;
        let mut hint = None;
        while Instant::now() < deadline {
            match timeout_at(deadline, self.read_index_once(hint, deadline)).await {
                Err(_) => break,
                Ok(Ok(index)) => return Ok(index),
                Ok(Err(error)) => {
                    self.serving()?;
                    hint = next_aim(hint, &error).await;
                    last = error;
                }
            }
        }
        Err(ClusterError::NoLeaderAnswered { last })
    }

    async fn read_index_once(
        &self,
        hint: Option<NodeId>,
        deadline: Instant,
    ) -> Result<u64, LeaderError> {
        match self.leader_target(hint)? {
            Target::Here => Ok(self.local_read_index().await?),
            Target::Peer { id, addr } => {
                let (mut client, remaining) = self.peer_client(id, &addr, deadline)?;
                let attempt = remaining.min(self.attempt_timeout);
                let answer = client
                    .read_index(self.peers.request(proto::ReadIndexRequest {}, attempt))
                    .await
                    .map_err(|status| self.unreachable(id, &addr, status))?
                    .into_inner();
                match answer.refusal {
                    Some(refusal) => Err(LeaderError::Refused(refusal_from_wire(&refusal))),
                    None => Ok(answer.index),
                }
            }
        }
    }

    /// The read index, on the leader: a revision at or after every write acknowledged before
    /// this call, recorded at a time within a clock tick of the call (reads evaluate
    /// expirations at their revision's time).
    ///
    /// When the leader's head is that recent, heartbeats to a quorum confirm it is still the
    /// leader. Otherwise a tick is recorded, and its revision is the read index: proposed after
    /// this call began and committed by a quorum, it follows every write acknowledged before
    /// (one round trip to the followers either way, which matters on slow links).
    pub(crate) async fn local_read_index(&self) -> Result<u64, LeaderRefusal> {
        // A skewed leader confirms nothing: every heartbeat round would keep its followers
        // from electing a leader with a good clock.
        if self.clock_bound.skewed() {
            return Err(LeaderRefusal::ClockSkewed { node: self.node_id });
        }
        if let Some(tick) = self.tick_if_head_is_old().await? {
            return Ok(tick);
        }
        match self.raft.get_read_log_id().await {
            Ok((read_log_id, _)) => {
                let index = read_log_id.map_or(0, |id| id.index);
                Ok(index.max(self.applied()))
            }
            Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(forward))) => {
                Err(LeaderRefusal::NotLeader {
                    node: self.node_id,
                    leader: forward.leader_id.filter(|l| *l != self.node_id),
                })
            }
            Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(_))) => {
                Err(LeaderRefusal::NoQuorum { node: self.node_id })
            }
            Err(RaftError::Fatal(_)) => Err(LeaderRefusal::Stopped { node: self.node_id }),
        }
    }
}

impl Replica {
    /// On the leader: `None` when the leader's head (applied, so committed) was recorded within a
    /// clock tick of now; otherwise (after an election, whose first entry records no time, or a
    /// quiet spell) the revision of a tick recorded now, once committed and applied.
    async fn tick_if_head_is_old(&self) -> Result<Option<u64>, LeaderRefusal> {
        let Some(now) = self.clock_bound.stamp((self.clock)()) else {
            return Err(LeaderRefusal::ClockSkewed { node: self.node_id });
        };
        let lag = now
            .duration_since(self.datastore.head_time())
            .unwrap_or_default();
        if lag <= self.clock_tick {
            return Ok(None);
        }
        let tick = self
            .append_as_leader(Request::Tick { timestamp: now })
            .await?;
        Ok(Some(tick.log_id.index))
    }
}

/// The leader to aim at after `error`: the one a refusal names, at once; otherwise (or when
/// the refusal names the leader just tried, whose view is stale) the known one, after a pause.
async fn next_aim(tried: Option<NodeId>, error: &LeaderError) -> Option<NodeId> {
    let named = redirect(error);
    if named.is_none() || named == tried {
        sleep(RETRY_PAUSE).await;
        return None;
    }
    named
}

/// The leader to aim at next, when a refusal names one.
fn redirect(error: &LeaderError) -> Option<NodeId> {
    match error {
        LeaderError::Refused(LeaderRefusal::NotLeader { leader, .. }) => *leader,
        _ => None,
    }
}

/// A refusal as the cluster port carries it.
pub(crate) fn refusal_to_wire(refusal: &LeaderRefusal) -> proto::LeaderRefusal {
    use proto::leader_refusal::Reason;
    let (reason, node_id, leader_id) = match refusal {
        LeaderRefusal::NotLeader { node, leader } => {
            (Reason::NotLeader, *node, leader.unwrap_or(0))
        }
        LeaderRefusal::NoQuorum { node } => (Reason::NoQuorum, *node, 0),
        LeaderRefusal::Stopped { node } => (Reason::Stopped, *node, 0),
        LeaderRefusal::ClockSkewed { node } => (Reason::ClockSkewed, *node, 0),
    };
    proto::LeaderRefusal {
        reason: reason as i32,
        node_id,
        leader_id,
    }
}

/// A refusal read from the cluster port (an unknown reason counts as "not the leader").
pub(crate) fn refusal_from_wire(refusal: &proto::LeaderRefusal) -> LeaderRefusal {
    use proto::leader_refusal::Reason;
    let node = refusal.node_id;
    match Reason::try_from(refusal.reason) {
        Ok(Reason::NoQuorum) => LeaderRefusal::NoQuorum { node },
        Ok(Reason::Stopped) => LeaderRefusal::Stopped { node },
        Ok(Reason::ClockSkewed) => LeaderRefusal::ClockSkewed { node },
        _ => LeaderRefusal::NotLeader {
            node,
            leader: (refusal.leader_id != 0).then_some(refusal.leader_id),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_cross_the_wire_unchanged() {
        for refusal in [
            LeaderRefusal::NotLeader {
                node: 2,
                leader: Some(3),
            },
            LeaderRefusal::NotLeader {
                node: 2,
                leader: None,
            },
            LeaderRefusal::NoQuorum { node: 1 },
            LeaderRefusal::Stopped { node: 4 },
            LeaderRefusal::ClockSkewed { node: 5 },
        ] {
            assert_eq!(refusal_from_wire(&refusal_to_wire(&refusal)), refusal);
        }
    }

    #[test]
    fn only_a_refusal_naming_a_leader_redirects() {
        let named = LeaderError::Refused(LeaderRefusal::NotLeader {
            node: 2,
            leader: Some(3),
        });
        assert_eq!(redirect(&named), Some(3));
        assert_eq!(redirect(&LeaderError::NoLeader), None);
        let quorum = LeaderError::Refused(LeaderRefusal::NoQuorum { node: 1 });
        assert_eq!(redirect(&quorum), None);
        assert_eq!(named.to_string(), "node 2 is not the leader (node 3 is)");
    }
}
