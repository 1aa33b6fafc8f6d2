//! Settling the standing of a node with empty storage by asking its peers, and founding a new
//! cluster (see [`crate::identity`] for the rules).

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use openraft::error::{InitializeError, RaftError};
use openraft::BasicNode;
use pemba_proto::pemba::cluster::v1 as proto;
use pemba_raft::{NodeId, SeededRng};
use rand::Rng;
use tokio::time::{sleep, timeout};

use crate::identity::{members_text, Founding, IdentityRefusal, Standing};
use crate::replica::{raft_initialized, Replica};

/// How often a node with empty storage asks its peers again.
const PROBE_EVERY: Duration = Duration::from_millis(500);
/// How long a peer may take to answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// What a node with empty storage concludes from its peers' answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Not enough answers yet, or a founding under way: ask again.
    Wait,
    /// A cluster that does not list this node: it is new, and waits to be added.
    Join(String),
    /// Every other initial member answered with empty storage and the same members, and this
    /// node has the lowest id: it founds the cluster.
    Found,
    Refuse(IdentityRefusal),
}

/// The verdict for `node`, started with `ours` as its initial members, from the answers of
/// the peers that answered.
pub fn judge(
    node: NodeId,
    ours: &BTreeMap<NodeId, String>,
    answers: &BTreeMap<NodeId, proto::StatusResponse>,
) -> Verdict {
    let mut joinable = None;
    let mut all_empty = true;
    for (peer, status) in answers {
        if !status.cluster_id.is_empty() {
            all_empty = false;
            // Only a voter's lost state can break the cluster's guarantees: a learner listed
            // with empty storage (added before it settled) just receives a snapshot.
            let voter = status.members.iter().any(|m| m.id == node && m.voter);
            let founding_me = status.founding_members.contains_key(&node);
            if status.initialized && voter {
                return Verdict::Refuse(IdentityRefusal::Wiped {
                    node,
                    peer: *peer,
                    cluster_id: status.cluster_id.clone(),
                });
            }
            if !status.initialized && founding_me {
                continue; // Its founder is recording the founding on every member.
            }
            joinable = Some(status.cluster_id.clone());
        } else if status.storage_empty {
            let theirs: BTreeMap<NodeId, String> =
                status.initial_members.clone().into_iter().collect();
            if theirs != *ours {
                return Verdict::Refuse(IdentityRefusal::MembersDiffer {
                    peer: *peer,
                    ours: members_text(ours),
                    theirs: members_text(&theirs),
                });
            }
        } else {
            all_empty = false; // Raft state without a name: a cluster still forming.
        }
    }
    if let Some(cluster_id) = joinable {
        return Verdict::Join(cluster_id);
    }
    let founder = ours.keys().next() == Some(&node);
    let everyone_answered = ours
        .keys()
        .filter(|id| **id != node)
        .all(|id| answers.contains_key(id));
    match all_empty && founder && everyone_answered {
        true => Verdict::Found,
        false => Verdict::Wait,
    }
}

/// Settles the standing of `replica`: a node with empty storage asks its initial members until
/// it may join, founds the cluster, or is refused; a founder that stopped before starting Raft
/// finishes the founding.
pub async fn settle(replica: Weak<Replica>) {
    loop {
        let Some(r) = replica.upgrade() else {
            return;
        };
        match r.identity.standing() {
            Standing::Refused(_) => return,
            Standing::Member => {
                if let Some(founding) = r.identity.founding() {
                    let initialized = raft_initialized(&r.metrics()) || r.applied() > 0;
                    let founder = founding.members.keys().next() == Some(&r.node_id);
                    if founder && !initialized {
                        found(&r, &founding).await;
                    }
                }
                return;
            }
            Standing::Unconfirmed => {}
        }
        let answers = probe(&r).await;
        // A founder may have recorded the founding here while the peers were being asked: the
        // answers (which may now list this node) no longer say anything about it.
        if r.identity.standing() != Standing::Unconfirmed {
            continue;
        }
        match judge(r.node_id, r.identity.initial_members(), &answers) {
            Verdict::Wait => {}
            Verdict::Join(cluster_id) => {
                tracing::info!(%cluster_id, "a peer confirmed this node is new to its cluster: waiting to be added");
                r.identity.confirm_new(cluster_id);
                return;
            }
            Verdict::Refuse(IdentityRefusal::Wiped { cluster_id, .. })
                if r.identity.guard_skipped() =>
            {
                r.identity.confirm_new(cluster_id);
                return;
            }
            Verdict::Refuse(why) => {
                r.identity.refuse(why);
                return;
            }
            Verdict::Found => {
                let founding = Founding {
                    cluster_id: format!("{:032x}", SeededRng.gen::<u128>()),
                    members: r.identity.initial_members().clone(),
                };
                if let Err(e) = r.identity.record_founding(&founding) {
                    tracing::warn!(error = %e, "recording the founding");
                } else {
                    found(&r, &founding).await;
                    return;
                }
            }
        }
        drop(r);
        sleep(PROBE_EVERY).await;
    }
}

/// The status of every other initial member that answers.
async fn probe(replica: &Replica) -> BTreeMap<NodeId, proto::StatusResponse> {
    let mut answers = BTreeMap::new();
    for (id, addr) in replica.identity.initial_members() {
        if *id == replica.node_id {
            continue;
        }
        match replica.peers.status(addr, PROBE_TIMEOUT).await {
            Some(Ok(status)) => {
                answers.insert(*id, status);
            }
            _ => replica.peers.forget(addr),
        }
    }
    answers
}

/// Records `founding` on every other member (retrying those that do not answer), then starts
/// the cluster's Raft here. A member that refuses (it founded another cluster, or has other
/// initial members) refuses this node too.
async fn found(replica: &Arc<Replica>, founding: &Founding) {
    tracing::info!(cluster_id = %founding.cluster_id, members = %members_text(&founding.members), "founding a new cluster");
    for (id, addr) in &founding.members {
        if *id == replica.node_id {
            continue;
        }
        loop {
            let request = proto::BootstrapRequest {
                cluster_id: founding.cluster_id.clone(),
                members: founding.members.clone().into_iter().collect(),
            };
            let answer = match replica.peers.client(addr) {
                Ok(mut client) => {
                    let request = replica.peers.request(request, PROBE_TIMEOUT);
                    timeout(PROBE_TIMEOUT, client.bootstrap(request)).await
                }
                Err(status) => Ok(Err(status)),
            };
            match answer {
                Ok(Ok(_)) => break,
                Ok(Err(status)) if status.code() == tonic::Code::FailedPrecondition => {
                    replica.identity.refuse(IdentityRefusal::FoundingRefused {
                        peer: *id,
                        reason: status.message().to_string(),
                    });
                    return;
                }
                _ => {
                    replica.peers.forget(addr);
                    sleep(PROBE_EVERY).await;
                }
            }
        }
    }
    let nodes: BTreeMap<NodeId, BasicNode> = founding
        .members
        .iter()
        .map(|(id, addr)| (*id, BasicNode::new(addr)))
        .collect();
    match replica.raft.initialize(nodes).await {
        Ok(()) | Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {
            tracing::info!(cluster_id = %founding.cluster_id, "the cluster's Raft started");
        }
        Err(e) => tracing::error!(error = %e, "starting the founded cluster's Raft"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(ids: &[NodeId]) -> BTreeMap<NodeId, String> {
        ids.iter()
            .map(|id| (*id, format!("10.0.0.{id}:50061")))
            .collect()
    }

    fn empty(initial: &[NodeId]) -> proto::StatusResponse {
        proto::StatusResponse {
            storage_empty: true,
            initial_members: members(initial).into_iter().collect(),
            ..Default::default()
        }
    }

    fn running(cluster_id: &str, member_ids: &[NodeId]) -> proto::StatusResponse {
        proto::StatusResponse {
            cluster_id: cluster_id.into(),
            initialized: true,
            members: member_ids
                .iter()
                .map(|id| proto::Member {
                    id: *id,
                    voter: true,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    fn answers(
        list: &[(NodeId, proto::StatusResponse)],
    ) -> BTreeMap<NodeId, proto::StatusResponse> {
        list.iter().cloned().collect()
    }

    #[test]
    fn the_lowest_member_founds_once_every_member_answers_empty_and_agreeing() {
        let ours = members(&[1, 2, 3]);
        let all = answers(&[(2, empty(&[1, 2, 3])), (3, empty(&[1, 2, 3]))]);
        assert_eq!(judge(1, &ours, &all), Verdict::Found);
        assert_eq!(
            judge(
                2,
                &ours,
                &answers(&[(1, empty(&[1, 2, 3])), (3, empty(&[1, 2, 3]))])
            ),
            Verdict::Wait
        );
        let missing = answers(&[(2, empty(&[1, 2, 3]))]);
        assert_eq!(judge(1, &ours, &missing), Verdict::Wait);
        // A one-node cluster has nobody to ask.
        assert_eq!(judge(1, &members(&[1]), &BTreeMap::new()), Verdict::Found);
    }

    #[test]
    fn mismatched_initial_members_are_refused() {
        let ours = members(&[1, 2, 3]);
        let verdict = judge(1, &ours, &answers(&[(2, empty(&[1, 2, 4]))]));
        let Verdict::Refuse(IdentityRefusal::MembersDiffer { peer, ours, theirs }) = verdict else {
            panic!("{verdict:?}");
        };
        assert_eq!(peer, 2);
        assert!(ours.contains("3=10.0.0.3:50061"), "{ours}");
        assert!(theirs.contains("4=10.0.0.4:50061"), "{theirs}");
    }

    #[test]
    fn an_empty_node_the_cluster_lists_is_refused_and_a_new_one_joins() {
        let ours = members(&[1, 2, 3]);
        let verdict = judge(3, &ours, &answers(&[(1, running("c1", &[1, 2, 3]))]));
        assert_eq!(
            verdict,
            Verdict::Refuse(IdentityRefusal::Wiped {
                node: 3,
                peer: 1,
                cluster_id: "c1".into()
            })
        );
        assert_eq!(
            judge(4, &ours, &answers(&[(1, running("c1", &[1, 2, 3]))])),
            Verdict::Join("c1".into())
        );
        // Added as a learner before it settled: it joins (a learner casts no vote).
        let mut with_learner = running("c1", &[1, 2, 3]);
        with_learner.members.push(proto::Member {
            id: 4,
            voter: false,
            ..Default::default()
        });
        assert_eq!(
            judge(4, &ours, &answers(&[(1, with_learner)])),
            Verdict::Join("c1".into())
        );
    }

    #[test]
    fn a_member_of_a_founding_under_way_waits_for_it() {
        let founder = proto::StatusResponse {
            cluster_id: "c1".into(),
            founding_members: members(&[1, 2, 3]).into_iter().collect(),
            ..Default::default()
        };
        let ours = members(&[1, 2, 3]);
        assert_eq!(judge(2, &ours, &answers(&[(1, founder)])), Verdict::Wait);
    }
}
