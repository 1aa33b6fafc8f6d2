//! Membership changes, run by the leader (other nodes pass them on): add a learner, promote it
//! to voter once it has caught up, remove a node.

use std::collections::BTreeSet;
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers};
use pemba_proto::pemba::cluster::v1 as proto;
use pemba_raft::NodeId;
use tokio::time::Instant;

use crate::error::{ClusterError, LeaderError, MembershipRefusal};
use crate::log_format::reads_up_to;
use crate::replica::Replica;

/// A learner is caught up when it lacks at most this many of the leader's entries: promoting
/// it then stalls no write for long.
pub const CAUGHT_UP_LAG: u64 = 64;

/// How long the leader waits for a node it is about to add to say which cluster it holds.
const ADD_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
enum MembershipChange {
    AddLearner(NodeId, String),
    Promote(NodeId),
    Remove(NodeId),
}

impl Replica {
    /// Adds a node as a learner: it receives the log (or a snapshot) but does not vote. A node
    /// that holds another cluster's data is refused.
    pub async fn add_learner(
        &self,
        id: NodeId,
        addr: String,
        deadline: Instant,
    ) -> Result<u64, ClusterError> {
        self.change_membership(MembershipChange::AddLearner(id, addr), deadline)
            .await
    }

    /// Makes a learner a voter, once it has caught up with the leader's log (see
    /// [`CAUGHT_UP_LAG`]); one still behind (receiving a snapshot, say) is refused, saying how
    /// far behind it is.
    pub async fn promote(&self, id: NodeId, deadline: Instant) -> Result<u64, ClusterError> {
        self.change_membership(MembershipChange::Promote(id), deadline)
            .await
    }

    /// Removes a voter or learner from the cluster.
    pub async fn remove(&self, id: NodeId, deadline: Instant) -> Result<u64, ClusterError> {
        self.change_membership(MembershipChange::Remove(id), deadline)
            .await
    }

    /// Runs `change` here if this node leads, else passes it to the leader.
    async fn change_membership(
        &self,
        change: MembershipChange,
        deadline: Instant,
    ) -> Result<u64, ClusterError> {
        self.serving()?;
        let metrics = self.metrics();
        let leader = metrics
            .current_leader
            .ok_or(ClusterError::NoLeaderAnswered {
                last: LeaderError::NoLeader,
            })?;
        if leader == self.node_id {
            return self.change_here(change).await;
        }
        let membership = metrics.membership_config.membership();
        let addr = membership.get_node(&leader).map(|n| n.addr.clone()).ok_or(
            ClusterError::NoLeaderAnswered {
                last: LeaderError::NoLeader,
            },
        )?;
        let unanswered = |last| ClusterError::NoLeaderAnswered { last };
        let (mut client, remaining) = self
            .peer_client(leader, &addr, deadline)
            .map_err(unanswered)?;
        let answer = match change {
            MembershipChange::AddLearner(id, addr) => {
                let request = proto::AddLearnerRequest { id, addr };
                client
                    .add_learner(self.peers.request(request, remaining))
                    .await
            }
            MembershipChange::Promote(id) => {
                let request = proto::PromoteRequest { id };
                client.promote(self.peers.request(request, remaining)).await
            }
            MembershipChange::Remove(id) => {
                let request = proto::RemoveRequest { id };
                client.remove(self.peers.request(request, remaining)).await
            }
        };
        answer
            .map(|a| a.into_inner().log_index)
            .map_err(|status| match status.code() {
                tonic::Code::FailedPrecondition | tonic::Code::InvalidArgument => {
                    MembershipRefusal::ByLeader(Box::new(status)).into()
                }
                _ => unanswered(self.unreachable(leader, &addr, status)),
            })
    }

    /// Runs `change` on this node, the leader.
    async fn change_here(&self, change: MembershipChange) -> Result<u64, ClusterError> {
        let membership = self.metrics().membership_config.membership().clone();
        let result = match change {
            MembershipChange::AddLearner(id, addr) => {
                if membership.get_node(&id).is_some() {
                    return Err(MembershipRefusal::AlreadyMember(id).into());
                }
                self.check_joiner(id, &addr).await?;
                self.raft.add_learner(id, BasicNode::new(addr), false).await
            }
            MembershipChange::Promote(id) => {
                if membership.get_node(&id).is_none() {
                    return Err(MembershipRefusal::NotALearner(id).into());
                }
                self.check_caught_up(id)?;
                self.raft
                    .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
                    .await
            }
            MembershipChange::Remove(id) => {
                let is_voter = membership.voter_ids().any(|v| v == id);
                let change = match (is_voter, membership.get_node(&id)) {
                    (true, _) => ChangeMembers::RemoveVoters(BTreeSet::from([id])),
                    (false, Some(_)) => ChangeMembers::RemoveNodes(BTreeSet::from([id])),
                    (false, None) => return Err(MembershipRefusal::NotMember(id).into()),
                };
                self.raft.change_membership(change, false).await
            }
        };
        match result {
            Ok(response) => Ok(response.log_id.index),
            Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e))) => {
                Err(MembershipRefusal::Raft(Box::new(e)).into())
            }
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => {
                Err(ClusterError::NoLeaderAnswered {
                    last: LeaderError::NoLeader,
                })
            }
            Err(RaftError::Fatal(fatal)) => Err(ClusterError::Stopped(Box::new(fatal))),
        }
    }

    /// Refuses to add a node that says it holds another cluster's data, or that reads only
    /// older log formats than the cluster writes. A node that does not answer is added: it
    /// refuses this cluster's messages itself if it holds another's.
    async fn check_joiner(&self, id: NodeId, addr: &str) -> Result<(), ClusterError> {
        let Some(ours) = self.known_cluster_id() else {
            return Ok(());
        };
        let status = match self.peers.status(addr, ADD_PROBE_TIMEOUT).await {
            Some(Ok(status)) => status,
            // It refused the call as another cluster's: its refusal names that cluster.
            Some(Err(refusal)) => match crate::auth::refusing_cluster(&refusal) {
                Some(theirs) if theirs != ours => return Err(other_cluster(id, addr, theirs)),
                _ => return Ok(()),
            },
            None => return Ok(()),
        };
        if !status.cluster_id.is_empty() && status.cluster_id != ours {
            return Err(other_cluster(id, addr, status.cluster_id));
        }
        let (reads, cluster) = (reads_up_to(&status), self.state_machine.log_format());
        if reads < cluster {
            return Err(MembershipRefusal::ReadsOlderFormat {
                id,
                addr: addr.to_string(),
                reads,
                cluster,
            }
            .into());
        }
        Ok(())
    }

    /// Refuses to promote a learner that lacks more than [`CAUGHT_UP_LAG`] of the leader's
    /// entries.
    fn check_caught_up(&self, id: NodeId) -> Result<(), ClusterError> {
        let metrics = self.metrics();
        let last = metrics.last_log_index.unwrap_or(0);
        let matched = metrics
            .replication
            .as_ref()
            .and_then(|r| r.get(&id).cloned())
            .flatten()
            .map(|l| l.index);
        if matched.is_some_and(|m| m + CAUGHT_UP_LAG >= last) {
            return Ok(());
        }
        // Entries the leader no longer has in its log reach a learner only by snapshot.
        let purged = metrics.purged.map(|l| l.index);
        let installing = purged.is_some_and(|p| matched.is_none_or(|m| m < p));
        Err(MembershipRefusal::NotCaughtUp {
            id,
            matched,
            last,
            installing,
        }
        .into())
    }
}

fn other_cluster(id: NodeId, addr: &str, cluster_id: String) -> ClusterError {
    MembershipRefusal::OtherCluster {
        id,
        addr: addr.to_string(),
        cluster_id,
    }
    .into()
}
