//! A node's standing: whether its storage may take part in Raft.
//!
//! Raft's safety rests on every voter remembering its vote and the entries it acknowledged. A
//! voter restarted on an empty disk (a wiped data directory, a pod rescheduled onto a new
//! volume) remembers neither: it would vote for a candidate missing acknowledged writes, and
//! the cluster would lose them. So a node with empty storage takes no part in Raft (it refuses
//! votes and Raft messages, and has no membership to start an election with) until a peer has
//! answered it:
//! - a peer whose cluster lists this node as a voter: the node lost its data. It is refused,
//!   and the operator removes it and adds it back under a new id (a learner casts no vote:
//!   one listed with empty storage just receives a snapshot);
//! - a peer whose cluster does not list it: it is a new node, waiting to be added;
//! - every other initial member answers with empty storage and the same member list: a new
//!   cluster is founded. The member with the lowest id records the cluster's id and members on
//!   every member ([`Founding`], before Raft starts anywhere), then initializes Raft. A founding
//!   record is not empty storage: a founding member that has not yet received any entry is not
//!   mistaken for a wiped one, while a wiped founding member has lost its record too;
//! - a peer with other initial members: the node is refused, so that two clusters are never
//!   founded from mismatched lists;
//! - nobody answers: it waits, not ready.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;
use pemba_codec::Format;
use pemba_raft::{LogBackend, NodeId};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use tokio::sync::watch;

/// Where the founding record is kept, beside the Raft log's own metadata.
const FOUNDING_KEY: &str = "founding";

/// What every founding member records before the cluster's Raft starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Founding {
    pub cluster_id: String,
    pub members: BTreeMap<NodeId, String>,
}

/// Why a node refuses to run. It exits, saying this.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IdentityRefusal {
    /// This node lost its data, yet the cluster counts it as a voter.
    #[error("this node (id {node}) has empty storage, but cluster {cluster_id} lists node {node} as a voter (node {peer} says so): its data is lost. A node id must never come back with an empty data directory: remove it (`pemba cluster remove {node}`), then add this node back under a new id (`pemba cluster add <new id> <address>`, then `pemba cluster promote <new id>`)")]
    Wiped {
        /// This node.
        node: NodeId,
        /// The peer that knows it as a voter.
        peer: NodeId,
        /// The cluster's id.
        cluster_id: String,
    },
    /// Founding members were started with different member lists.
    #[error("--initial-members differ: this node has {ours}, node {peer} has {theirs}; start every founding member with the same list")]
    MembersDiffer {
        /// The peer whose list differs.
        peer: NodeId,
        /// This node's list.
        ours: String,
        /// The peer's.
        theirs: String,
    },
    /// A founding member refused to found the cluster.
    #[error("node {peer} refused to found the cluster: {reason}")]
    FoundingRefused {
        /// The member.
        peer: NodeId,
        /// Why.
        reason: String,
    },
}

/// Why this node refused a founding request.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FoundingRefusal {
    #[error("node {node} already founded cluster {cluster_id}")]
    FoundedAnother { node: NodeId, cluster_id: String },
    #[error("node {node} already holds data")]
    NotEmpty { node: NodeId },
    #[error("node {node} was started with other --initial-members ({ours})")]
    MembersDiffer { node: NodeId, ours: String },
    #[error("node {node} could not record the founding: {reason}")]
    Storage { node: NodeId, reason: String },
}

/// Whether this node takes part in Raft.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// Its storage holds its state, or a founding record: it takes part.
    Member,
    /// Empty storage, not yet confirmed by a peer: it refuses votes and Raft messages.
    Unconfirmed,
    /// It must not run (see [`IdentityRefusal`]).
    Refused(IdentityRefusal),
}

/// `id=addr,…`, as `--initial-members` takes it.
pub fn members_text(members: &BTreeMap<NodeId, String>) -> String {
    let items: Vec<String> = members
        .iter()
        .map(|(id, addr)| format!("{id}={addr}"))
        .collect();
    items.join(",")
}

/// This node's standing and what it knows of its cluster before the log names it.
pub struct Identity {
    node_id: NodeId,
    initial_members: BTreeMap<NodeId, String>,
    backend: Arc<dyn LogBackend>,
    standing: watch::Sender<Standing>,
    /// Whether storage held nothing when the node started (no state, no founding record).
    started_empty: bool,
    founding: Mutex<Option<Founding>>,
    /// The cluster a new node found it is to join, before it receives the log.
    expected_cluster: Mutex<Option<String>>,
    #[cfg(feature = "fault-injection")]
    guard_skipped: std::sync::atomic::AtomicBool,
}

impl Identity {
    /// Reads the founding record; `holds_state` says whether Raft or the datastore hold anything.
    pub fn open(
        node_id: NodeId,
        initial_members: BTreeMap<NodeId, String>,
        backend: Arc<dyn LogBackend>,
        holds_state: bool,
    ) -> Result<Identity, pemba_raft::LogBackendError> {
        let founding = match backend.read_meta(FOUNDING_KEY)? {
            Some(bytes) => Some(decode(&bytes)?),
            None => None,
        };
        let started_empty = !holds_state && founding.is_none();
        let standing = match started_empty {
            false => Standing::Member,
            true => Standing::Unconfirmed,
        };
        Ok(Identity {
            node_id,
            initial_members,
            backend,
            standing: watch::Sender::new(standing),
            started_empty,
            founding: Mutex::new(founding),
            expected_cluster: Mutex::new(None),
            #[cfg(feature = "fault-injection")]
            guard_skipped: Default::default(),
        })
    }

    pub fn initial_members(&self) -> &BTreeMap<NodeId, String> {
        &self.initial_members
    }

    pub fn standing(&self) -> Standing {
        self.standing.borrow().clone()
    }

    /// Waits until this node is refused, and says why.
    pub async fn refused(&self) -> IdentityRefusal {
        let mut standing = self.standing.subscribe();
        loop {
            if let Standing::Refused(why) = standing.borrow_and_update().clone() {
                return why;
            }
            if standing.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }

    pub fn founding(&self) -> Option<Founding> {
        self.founding.lock().clone()
    }

    /// The cluster this node was founded in or expects to join, before the log names it.
    pub fn cluster_id(&self) -> Option<String> {
        self.founding()
            .map(|f| f.cluster_id)
            .or_else(|| self.expected_cluster.lock().clone())
    }

    /// Whether this node started with nothing stored and has recorded no founding since (the
    /// caller also checks that Raft holds nothing yet).
    pub fn storage_empty(&self) -> bool {
        self.started_empty && self.founding.lock().is_none()
    }

    /// A peer confirmed that this node is new to `cluster_id`: it takes part from now on.
    pub fn confirm_new(&self, cluster_id: String) {
        *self.expected_cluster.lock() = Some(cluster_id);
        self.set(Standing::Member);
    }

    /// Drops the empty-storage guard: the deliberate bug of taking Raft messages with empty
    /// storage before a peer answered, and of joining even when the cluster lists this node as
    /// a voter (fault injection only).
    #[cfg(feature = "fault-injection")]
    pub fn skip_guard(&self) {
        self.guard_skipped
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether the guard was dropped (always false without fault injection).
    pub fn guard_skipped(&self) -> bool {
        #[cfg(feature = "fault-injection")]
        return self
            .guard_skipped
            .load(std::sync::atomic::Ordering::Relaxed);
        #[cfg(not(feature = "fault-injection"))]
        false
    }

    pub fn refuse(&self, why: IdentityRefusal) {
        tracing::error!(error = %why, "this node refuses to run");
        self.set(Standing::Refused(why));
    }

    fn set(&self, standing: Standing) {
        self.standing.send_if_modified(|held| {
            let changed = *held != standing && !matches!(held, Standing::Refused(_));
            if changed {
                *held = standing;
            }
            changed
        });
    }

    /// Records `founding` (durably) if this node may be a founding member of it: its storage is
    /// empty (or it recorded the same founding before) and its initial members are the same.
    pub fn record_founding(&self, founding: &Founding) -> Result<(), FoundingRefusal> {
        let node = self.node_id;
        let mut held = self.founding.lock();
        match held.as_ref() {
            Some(f) if f == founding => return Ok(()),
            Some(f) => {
                return Err(FoundingRefusal::FoundedAnother {
                    node,
                    cluster_id: f.cluster_id.clone(),
                })
            }
            None if !self.started_empty => return Err(FoundingRefusal::NotEmpty { node }),
            None => {}
        }
        if founding.members != self.initial_members {
            return Err(FoundingRefusal::MembersDiffer {
                node,
                ours: members_text(&self.initial_members),
            });
        }
        let storage = |reason: String| FoundingRefusal::Storage { node, reason };
        let bytes = encode(founding).map_err(|e| storage(e.to_string()))?;
        self.backend
            .write_meta(FOUNDING_KEY, &bytes)
            .and_then(|()| self.backend.sync())
            .map_err(|e| storage(e.to_string()))?;
        *held = Some(founding.clone());
        drop(held);
        self.set(Standing::Member);
        Ok(())
    }
}

fn encode(founding: &Founding) -> Result<Vec<u8>, pemba_raft::LogBackendError> {
    Ok(pemba_codec::encode(Format::Founding, founding)?)
}

fn decode(bytes: &[u8]) -> Result<Founding, pemba_raft::LogBackendError> {
    Ok(pemba_codec::decode(Format::Founding, bytes)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pemba_raft::MemoryLog;

    /// The founding record's golden fixture (see `pemba_codec::golden`).
    #[test]
    fn founding_record_golden_fixture() {
        let record = founding("c0ffee00-1234", &[1, 2, 3]);
        pemba_codec::golden::assert_fixture(
            env!("CARGO_MANIFEST_DIR"),
            "founding",
            Format::Founding,
            &record,
        );
    }

    fn members(ids: &[NodeId]) -> BTreeMap<NodeId, String> {
        ids.iter()
            .map(|id| (*id, format!("10.0.0.{id}:50061")))
            .collect()
    }

    fn founding(cluster_id: &str, ids: &[NodeId]) -> Founding {
        Founding {
            cluster_id: cluster_id.into(),
            members: members(ids),
        }
    }

    #[test]
    fn an_empty_node_records_one_founding_and_keeps_it_across_restarts() {
        let disk = MemoryLog::default();
        let identity =
            Identity::open(2, members(&[1, 2, 3]), Arc::new(disk.clone()), false).expect("opens");
        assert_eq!(identity.standing(), Standing::Unconfirmed);
        assert!(identity.storage_empty());
        let ours = founding("c1", &[1, 2, 3]);
        identity.record_founding(&ours).expect("recorded");
        assert_eq!(identity.standing(), Standing::Member);
        // The same founding again is fine (a retried request); another is refused.
        identity.record_founding(&ours).expect("idempotent");
        assert_eq!(
            identity.record_founding(&founding("c2", &[1, 2, 3])),
            Err(FoundingRefusal::FoundedAnother {
                node: 2,
                cluster_id: "c1".into()
            })
        );
        let reopened =
            Identity::open(2, members(&[1, 2, 3]), Arc::new(disk), false).expect("reopens");
        assert_eq!(reopened.standing(), Standing::Member);
        assert_eq!(reopened.cluster_id().as_deref(), Some("c1"));
    }

    #[test]
    fn a_founding_with_other_members_or_over_existing_data_is_refused() {
        let identity = Identity::open(
            2,
            members(&[1, 2, 3]),
            Arc::new(MemoryLog::default()),
            false,
        )
        .expect("opens");
        let refused = identity
            .record_founding(&founding("c1", &[1, 2, 4]))
            .unwrap_err();
        assert!(matches!(
            refused,
            FoundingRefusal::MembersDiffer { node: 2, .. }
        ));
        assert!(identity.storage_empty());
        let holding = Identity::open(2, members(&[1, 2, 3]), Arc::new(MemoryLog::default()), true)
            .expect("opens");
        assert_eq!(
            holding.record_founding(&founding("c1", &[1, 2, 3])),
            Err(FoundingRefusal::NotEmpty { node: 2 })
        );
    }

    #[tokio::test]
    async fn a_refusal_is_final_and_awaitable() {
        let identity = Arc::new(
            Identity::open(
                3,
                members(&[1, 2, 3]),
                Arc::new(MemoryLog::default()),
                false,
            )
            .expect("opens"),
        );
        let waiting = tokio::spawn({
            let identity = identity.clone();
            async move { identity.refused().await }
        });
        let why = IdentityRefusal::Wiped {
            node: 3,
            peer: 1,
            cluster_id: "c1".into(),
        };
        identity.refuse(why.clone());
        identity.confirm_new("c1".into());
        assert_eq!(waiting.await.expect("joined"), why);
        assert_eq!(identity.standing(), Standing::Refused(why));
        assert!(identity.standing() != Standing::Member);
    }
}
