//! One node of a cluster: its Raft, and the calls the API server makes on it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use openraft::error::{ClientWriteError, Fatal, InitializeError, RaftError};
use openraft::{BasicNode, ChangeMembers, Config, ServerState, SnapshotPolicy};
use pemba_proto::pemba::cluster::v1 as proto;
use pemba_proto::pemba::cluster::v1::cluster_client::ClusterClient;
use pemba_raft::{
    LogBackend, LogStore, NodeId, Raft, RaftMetrics, Request, SeededRng, StateMachine,
    WriteOutcome, Written,
};
use pemba_store::{Datastore, WriteCommand};
use rand::Rng;
use tokio::time::{sleep, sleep_until, timeout, timeout_at, Instant};
use tonic::transport::Channel;

use crate::auth::ClusterSecret;
use crate::dialer::Dialer;
use crate::error::{ClusterError, WriteFailure};
use crate::freshness::{Confirmation, Freshness};
use crate::network::{decode, encode, PeerNetwork, Peers};

/// How long to pause between attempts to reach a leader.
/// Log entries per replication message. An entry is one client request (at most a few MiB; an
/// import commits in parts of that size), so a message stays below [`PEER_MESSAGE_LIMIT`].
const MAX_ENTRIES_PER_APPEND: u64 = 16;

/// The largest message between peers, in bytes.
pub(crate) const PEER_MESSAGE_LIMIT: usize = 256 * 1024 * 1024;

const RETRY_PAUSE: Duration = Duration::from_millis(50);
/// How long a peer may take to say whether it already belongs to a cluster.
const STATUS_PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// How a replica joins and runs its cluster.
#[derive(Debug, Clone)]
pub struct ReplicaConfig {
    pub node_id: NodeId,
    /// The members (id → peer address) of a new cluster. The member with the lowest id
    /// initializes the cluster if no member already belongs to one; a node that is not a member
    /// waits to be added.
    pub initial_members: BTreeMap<NodeId, String>,
    /// Shared by every node; required on every peer call.
    pub cluster_secret: String,
    pub heartbeat_interval: Duration,
    /// The shortest election timeout; each election waits a random time up to twice this.
    pub election_timeout: Duration,
    /// Log entries between snapshots.
    pub snapshot_every: u64,
    /// How far the log's time may lag the leader's clock before the leader appends a tick.
    /// Expirations take effect at most about this late (see [`pemba_raft::Request::Tick`]).
    pub clock_tick: Duration,
    /// How stale a read without a token may be: it is answered at a revision that includes
    /// every write the cluster committed this long before the read arrived, or not at all
    /// (see [`crate::freshness`]).
    pub max_staleness: Duration,
}

/// A wall clock (injected, so simulations control it).
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// Raft figures for metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplicaStatus {
    pub term: u64,
    pub leader_id: Option<NodeId>,
    pub is_leader: bool,
    pub last_log_index: u64,
    pub applied_index: u64,
    pub snapshot_index: u64,
    /// Entries each follower is behind the leader's log (reported by the leader only).
    pub replication_lag: Vec<(NodeId, u64)>,
    pub snapshots_built: u64,
    pub snapshots_installed: u64,
    /// How old this node's newest confirmation by a leader's quorum is: the staleness of a read
    /// served now (none before the first).
    pub staleness: Option<Duration>,
}

/// One node of a cluster.
pub struct Replica {
    node_id: NodeId,
    raft: Raft,
    state_machine: StateMachine,
    datastore: Arc<Datastore>,
    peers: Arc<Peers>,
    clock: Clock,
    freshness: Freshness,
    /// Unique to this process: request ids are `<prefix>-<counter>`.
    request_prefix: String,
    request_counter: AtomicU64,
}

impl Replica {
    /// Starts this node's Raft over `log` and `datastore`; initializes the cluster if this node
    /// is the one to, and names it once a leader is elected.
    pub async fn start<B: LogBackend>(
        config: ReplicaConfig,
        log: B,
        datastore: Arc<Datastore>,
        dialer: Arc<dyn Dialer>,
        clock: Clock,
    ) -> Result<Arc<Replica>, ClusterError> {
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1);
        let raft_config = Config {
            cluster_name: "pemba".into(),
            heartbeat_interval: millis(config.heartbeat_interval),
            election_timeout_min: millis(config.election_timeout),
            election_timeout_max: millis(config.election_timeout) * 2,
            install_snapshot_timeout: 10_000,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_every.max(1)),
            max_in_snapshot_log_to_keep: config.snapshot_every.min(1000),
            snapshot_max_chunk_size: 1024 * 1024,
            // With requests of at most a few MiB (imports commit in parts of that size), a
            // replication message stays well below the peers' message limit.
            max_payload_entries: MAX_ENTRIES_PER_APPEND,
            ..Config::default()
        }
        .validate()
        .map_err(|e| ClusterError::Config(e.to_string()))?;
        let state_machine = StateMachine::new(datastore.clone())?;
        let peers = Arc::new(Peers::new(
            dialer,
            ClusterSecret::new(&config.cluster_secret),
        ));
        let raft = Raft::new(
            config.node_id,
            Arc::new(raft_config),
            PeerNetwork {
                peers: peers.clone(),
            },
            LogStore::new(log),
            state_machine.clone(),
        )
        .await
        .map_err(|e| ClusterError::Start(e.to_string()))?;
        let nonce: u64 = SeededRng.gen();
        let replica = Arc::new(Replica {
            node_id: config.node_id,
            raft,
            state_machine,
            datastore,
            peers,
            clock,
            freshness: Freshness::new(config.max_staleness),
            request_prefix: format!("{}-{nonce:016x}", config.node_id),
            request_counter: AtomicU64::new(0),
        });
        replica.initialize_if_first(&config.initial_members).await?;
        tokio::spawn(name_cluster(replica.clone()));
        tokio::spawn(advance_clock(Arc::downgrade(&replica), config.clock_tick));
        tokio::spawn(keep_fresh(Arc::downgrade(&replica)));
        tokio::spawn(report_fatal(replica.raft.metrics()));
        Ok(replica)
    }

    pub(crate) fn raft(&self) -> &Raft {
        &self.raft
    }

    /// The cluster's id, once named (shortly after the first leader is elected).
    pub fn cluster_id(&self) -> Option<String> {
        self.state_machine.cluster_id()
    }

    /// The cluster's id, waiting for it until `deadline` if the cluster is still forming.
    pub async fn cluster_id_by(&self, deadline: Instant) -> Result<String, ClusterError> {
        // The id arrives with an applied entry: look again whenever the head moves. (Nothing is
        // locked while the watch value is borrowed: the state machine publishes heads while
        // holding its own lock.)
        let mut head = self.datastore.watch_head();
        loop {
            if let Some(id) = self.cluster_id() {
                return Ok(id);
            }
            if !matches!(timeout_at(deadline, head.changed()).await, Ok(Ok(()))) {
                return self.cluster_id().ok_or_else(|| {
                    ClusterError::Unavailable(
                        "this node has not joined a cluster with an elected leader yet".into(),
                    )
                });
            }
        }
    }

    /// The newest revision this node has applied.
    pub fn applied(&self) -> u64 {
        self.datastore.head()
    }

    /// Stops Raft (on shutdown).
    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "stopping Raft");
        }
    }

    async fn initialize_if_first(
        &self,
        members: &BTreeMap<NodeId, String>,
    ) -> Result<(), ClusterError> {
        if members.keys().next() != Some(&self.node_id) {
            return Ok(());
        }
        let initialized = self
            .raft
            .is_initialized()
            .await
            .map_err(|e| ClusterError::Start(e.to_string()))?;
        if initialized {
            return Ok(());
        }
        for (id, addr) in members.iter().filter(|(id, _)| **id != self.node_id) {
            if self.peer_belongs_to_a_cluster(addr).await {
                tracing::warn!(
                    peer = id,
                    "a peer already belongs to a cluster: not initializing a new one; waiting to be contacted"
                );
                return Ok(());
            }
        }
        let nodes: BTreeMap<NodeId, BasicNode> = members
            .iter()
            .map(|(id, addr)| (*id, BasicNode::new(addr)))
            .collect();
        match self.raft.initialize(nodes).await {
            Ok(()) => {
                tracing::info!(members = ?members, "initialized a new cluster");
                Ok(())
            }
            Err(RaftError::APIError(InitializeError::NotAllowed(_))) => Ok(()),
            Err(e) => Err(ClusterError::Start(e.to_string())),
        }
    }

    async fn peer_belongs_to_a_cluster(&self, addr: &str) -> bool {
        let Ok(mut client) = self.peers.client(addr) else {
            return false;
        };
        let request = self
            .peers
            .request(proto::StatusRequest {}, STATUS_PROBE_TIMEOUT);
        match timeout(STATUS_PROBE_TIMEOUT, client.status(request)).await {
            Ok(Ok(status)) => {
                let status = status.into_inner();
                status.term > 0 || status.last_log_index > 0 || !status.cluster_id.is_empty()
            }
            _ => false,
        }
    }

    fn metrics(&self) -> RaftMetrics {
        self.raft.metrics().borrow().clone()
    }

    /// The leader this node knows of, with its peer address.
    fn leader(&self) -> Option<(NodeId, String)> {
        let metrics = self.metrics();
        let leader = metrics.current_leader?;
        let addr = metrics
            .membership_config
            .membership()
            .get_node(&leader)?
            .addr
            .clone();
        Some((leader, addr))
    }

    /// A client for the leader at `addr`, and the time left until `deadline`.
    fn leader_client(
        &self,
        addr: &str,
        deadline: Instant,
    ) -> Result<(ClusterClient<Channel>, Duration), tonic::Status> {
        let client = self.peers.client(addr)?;
        Ok((client, deadline.saturating_duration_since(Instant::now())))
    }

    fn next_request_id(&self) -> String {
        let n = self.request_counter.fetch_add(1, Ordering::Relaxed);
        format!("{}-{n}", self.request_prefix)
    }

    /// Writes `command` through the leader: returns once it is committed on a majority and
    /// applied on the leader (and, unless the deadline passes first, on this node). Retries keep
    /// one request id, so the command is applied at most once however often it is retried.
    pub async fn write(
        &self,
        command: WriteCommand,
        deadline: Instant,
    ) -> Result<Written, WriteFailure> {
        self.serving()
            .map_err(|e| WriteFailure::Unavailable(e.to_string()))?;
        let request_id = self.next_request_id();
        let mut problem = String::from("no leader is known");
        loop {
            if Instant::now() >= deadline {
                return Err(WriteFailure::Unavailable(format!(
                    "the write was not confirmed before the request deadline ({problem}); it may still be applied, once at most"
                )));
            }
            match timeout_at(deadline, self.write_once(&request_id, &command, deadline)).await {
                Err(_) => continue,
                Ok(Ok(Ok(written))) => {
                    // Read-your-writes through this node: wait until it has applied the write
                    // too (the write is committed either way).
                    let _ = self.wait_applied(written.revision, deadline).await;
                    return Ok(written);
                }
                Ok(Ok(Err(rejection))) => return Err(WriteFailure::Rejected(rejection)),
                Ok(Err(reason)) => {
                    self.serving()
                        .map_err(|e| WriteFailure::Unavailable(e.to_string()))?;
                    problem = reason;
                    sleep(RETRY_PAUSE).await;
                }
            }
        }
    }

    async fn write_once(
        &self,
        request_id: &str,
        command: &WriteCommand,
        deadline: Instant,
    ) -> Result<WriteOutcome, String> {
        match self.leader() {
            None => Err("no leader is known".into()),
            Some((leader, _)) if leader == self.node_id => {
                self.propose(request_id.to_string(), command.clone()).await
            }
            Some((leader, addr)) => {
                let payload = proto::RaftPayload {
                    data: encode(&(request_id, command)).map_err(|e| e.message().to_string())?,
                };
                let (mut client, remaining) = self
                    .leader_client(&addr, deadline)
                    .map_err(|e| e.message().to_string())?;
                let answer = client
                    .forward_write(self.peers.request(payload, remaining))
                    .await
                    .map_err(|e| {
                        self.peers.forget(&addr);
                        format!("leader {leader} at {addr}: {}", e.message())
                    })?;
                let outcome: Result<WriteOutcome, String> =
                    decode(&answer.into_inner().data).map_err(|e| e.message().to_string())?;
                outcome
            }
        }
    }

    /// Proposes a write on this node, which must be the leader.
    pub(crate) async fn propose(
        &self,
        request_id: String,
        command: WriteCommand,
    ) -> Result<WriteOutcome, String> {
        let request = Request::Write {
            request_id,
            timestamp: (self.clock)(),
            command: Box::new(command),
        };
        match self.raft.client_write(request).await {
            Ok(response) => Ok(response.data),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => {
                Err(format!("node {} is not the leader", self.node_id))
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// Waits until this node has applied `revision`, or fails at `deadline`.
    pub async fn wait_applied(&self, revision: u64, deadline: Instant) -> Result<(), ClusterError> {
        let mut head = self.datastore.watch_head();
        let reached = timeout_at(deadline, head.wait_for(|applied| *applied >= revision))
            .await
            .is_ok_and(|r| r.is_ok());
        match reached {
            true => Ok(()),
            false => Err(ClusterError::Unavailable(format!(
                "this node has applied revision {}, and did not reach revision {revision} before the request deadline",
                self.applied()
            ))),
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
        let mut problem = String::from("no leader is known");
        loop {
            if Instant::now() >= deadline {
                return Err(ClusterError::Unavailable(format!(
                    "no leader confirmed a read index before the request deadline ({problem})"
                )));
            }
            match timeout_at(deadline, self.read_index_once(deadline)).await {
                Err(_) => continue,
                Ok(Ok(index)) => return Ok(index),
                Ok(Err(reason)) => {
                    self.serving()?;
                    problem = reason;
                    sleep(RETRY_PAUSE).await;
                }
            }
        }
    }

    async fn read_index_once(&self, deadline: Instant) -> Result<u64, String> {
        match self.leader() {
            None => Err("no leader is known".into()),
            Some((leader, _)) if leader == self.node_id => self.local_read_index().await,
            Some((leader, addr)) => {
                let (mut client, remaining) = self
                    .leader_client(&addr, deadline)
                    .map_err(|e| e.message().to_string())?;
                let answer = client
                    .read_index(self.peers.request(proto::ReadIndexRequest {}, remaining))
                    .await
                    .map_err(|e| {
                        self.peers.forget(&addr);
                        format!("leader {leader} at {addr}: {}", e.message())
                    })?;
                Ok(answer.into_inner().index)
            }
        }
    }

    /// The read index, on the leader: confirmed by heartbeats to a quorum.
    pub(crate) async fn local_read_index(&self) -> Result<u64, String> {
        match self.raft.get_read_log_id().await {
            Ok((read_log_id, _)) => Ok(read_log_id.map_or(0, |id| id.index)),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Runs a membership change on the leader: here if this node leads, else passed on.
    async fn change_membership(
        &self,
        change: MembershipChange,
        deadline: Instant,
    ) -> Result<u64, ClusterError> {
        let leader = self
            .leader()
            .ok_or_else(|| ClusterError::Unavailable("no leader is known".into()))?;
        if leader.0 != self.node_id {
            let (mut client, remaining) = self
                .leader_client(&leader.1, deadline)
                .map_err(|e| ClusterError::Unavailable(e.message().to_string()))?;
            let answer = match change {
                MembershipChange::AddLearner(id, addr) => {
                    client
                        .add_learner(
                            self.peers
                                .request(proto::AddLearnerRequest { id, addr }, remaining),
                        )
                        .await
                }
                MembershipChange::Promote(id) => {
                    client
                        .promote(self.peers.request(proto::PromoteRequest { id }, remaining))
                        .await
                }
                MembershipChange::Remove(id) => {
                    client
                        .remove(self.peers.request(proto::RemoveRequest { id }, remaining))
                        .await
                }
            };
            return answer
                .map(|a| a.into_inner().log_index)
                .map_err(|e| match e.code() {
                    tonic::Code::FailedPrecondition | tonic::Code::InvalidArgument => {
                        ClusterError::Refused(e.message().to_string())
                    }
                    _ => ClusterError::Unavailable(e.message().to_string()),
                });
        }
        let membership = self.metrics().membership_config.membership().clone();
        let result = match change {
            MembershipChange::AddLearner(id, addr) => {
                if membership.get_node(&id).is_some() {
                    return Err(ClusterError::Refused(format!(
                        "node {id} is already a member; remove it first or choose a new id"
                    )));
                }
                self.raft.add_learner(id, BasicNode::new(addr), false).await
            }
            MembershipChange::Promote(id) => {
                if membership.get_node(&id).is_none() {
                    return Err(ClusterError::Refused(format!(
                        "node {id} is not a member: add it as a learner first"
                    )));
                }
                self.raft
                    .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
                    .await
            }
            MembershipChange::Remove(id) => {
                let is_voter = membership.voter_ids().any(|v| v == id);
                let change = match (is_voter, membership.get_node(&id)) {
                    (true, _) => ChangeMembers::RemoveVoters(BTreeSet::from([id])),
                    (false, Some(_)) => ChangeMembers::RemoveNodes(BTreeSet::from([id])),
                    (false, None) => {
                        return Err(ClusterError::Refused(format!("node {id} is not a member")))
                    }
                };
                self.raft.change_membership(change, false).await
            }
        };
        match result {
            Ok(response) => Ok(response.log_id.index),
            Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e))) => {
                Err(ClusterError::Refused(e.to_string()))
            }
            Err(e) => Err(ClusterError::Unavailable(e.to_string())),
        }
    }

    /// Adds a node as a learner: it receives the log (or a snapshot) but does not vote.
    pub async fn add_learner(
        &self,
        id: NodeId,
        addr: String,
        deadline: Instant,
    ) -> Result<u64, ClusterError> {
        self.change_membership(MembershipChange::AddLearner(id, addr), deadline)
            .await
    }

    /// Makes a learner a voter.
    pub async fn promote(&self, id: NodeId, deadline: Instant) -> Result<u64, ClusterError> {
        self.change_membership(MembershipChange::Promote(id), deadline)
            .await
    }

    /// Removes a voter or learner from the cluster.
    pub async fn remove(&self, id: NodeId, deadline: Instant) -> Result<u64, ClusterError> {
        self.change_membership(MembershipChange::Remove(id), deadline)
            .await
    }

    /// This node's view of the cluster, as the status RPC reports it.
    pub fn describe(&self) -> proto::StatusResponse {
        let metrics = self.metrics();
        let membership = metrics.membership_config.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let matched = metrics.replication.clone().unwrap_or_default();
        let members = membership
            .nodes()
            .map(|(id, node)| proto::Member {
                id: *id,
                addr: node.addr.clone(),
                voter: voters.contains(id),
                matched_index: matched.get(id).map(|m| m.map_or(0, |l| l.index)),
            })
            .collect();
        proto::StatusResponse {
            node_id: self.node_id,
            cluster_id: self.cluster_id().unwrap_or_default(),
            term: metrics.current_term,
            leader_id: metrics.current_leader.unwrap_or(0),
            state: format!("{:?}", metrics.state),
            last_log_index: metrics.last_log_index.unwrap_or(0),
            applied_index: metrics.last_applied.map_or(0, |l| l.index),
            snapshot_index: metrics.snapshot.map_or(0, |l| l.index),
            members,
        }
    }

    /// Raft figures for metrics.
    pub fn status(&self) -> ReplicaStatus {
        let metrics = self.metrics();
        let last_log_index = metrics.last_log_index.unwrap_or(0);
        let counts = self.state_machine.snapshot_counts();
        ReplicaStatus {
            term: metrics.current_term,
            leader_id: metrics.current_leader,
            is_leader: metrics.state == ServerState::Leader,
            last_log_index,
            applied_index: metrics.last_applied.map_or(0, |l| l.index),
            snapshot_index: metrics.snapshot.map_or(0, |l| l.index),
            replication_lag: metrics
                .replication
                .iter()
                .flatten()
                .filter(|(id, _)| **id != self.node_id)
                .map(|(id, matched)| {
                    let matched = matched.map_or(0, |l| l.index);
                    (*id, last_log_index.saturating_sub(matched))
                })
                .collect(),
            snapshots_built: counts.built,
            snapshots_installed: counts.installed,
            staleness: self.freshness.age(),
        }
    }

    /// The fatal error this node's Raft stopped on, if it did.
    pub fn stopped(&self) -> Option<Fatal<NodeId>> {
        self.metrics().running_state.err()
    }

    /// Fails if this node's Raft stopped: nothing may be answered from its frozen state.
    pub fn serving(&self) -> Result<(), ClusterError> {
        match self.stopped() {
            Some(fatal) => Err(ClusterError::Stopped(Box::new(fatal))),
            None => Ok(()),
        }
    }

    /// The revision a read without a token that arrived at `arrived` is answered at: this
    /// node's applied state, once it includes every write the cluster committed the staleness
    /// bound before `arrived`. Waits (for a confirmation, then for it to be applied) until
    /// `deadline`; never answers older.
    pub async fn fresh_revision(
        &self,
        arrived: Instant,
        deadline: Instant,
    ) -> Result<u64, ClusterError> {
        self.serving()?;
        let confirmation = self
            .freshness
            .for_read(arrived, deadline)
            .await
            .map_err(ClusterError::Stale)?;
        self.wait_applied(confirmation.revision, deadline).await?;
        self.serving()?;
        Ok(self.applied())
    }

    /// Fails if this node stopped, or if its state is not confirmed within the staleness bound
    /// now (a long-lived stream checks this as it goes).
    pub fn still_fresh(&self) -> Result<(), ClusterError> {
        self.serving()?;
        match self.freshness.within_bound() {
            true => Ok(()),
            false => Err(ClusterError::Stale(self.freshness.stale())),
        }
    }

    /// Whether this node serves now, and if not, why: it stopped on a fatal error, it has not
    /// joined a named cluster, or its state is not confirmed within the staleness bound (it is
    /// cut off from the leader, or it leads without a quorum).
    pub fn readiness(&self) -> Result<(), ClusterError> {
        self.serving()?;
        if self.cluster_id().is_none() {
            return Err(ClusterError::Unavailable(
                "this node has not joined a cluster with an elected leader yet".into(),
            ));
        }
        self.still_fresh()
    }
}

enum MembershipChange {
    AddLearner(NodeId, String),
    Promote(NodeId),
    Remove(NodeId),
}

/// Names the cluster: whenever this node leads a cluster that has no id yet, it proposes one.
async fn name_cluster(replica: Arc<Replica>) {
    let mut metrics = replica.raft.metrics();
    while replica.cluster_id().is_none() {
        let leads = metrics.borrow().state == ServerState::Leader;
        if leads {
            let cluster_id = format!("{:032x}", SeededRng.gen::<u128>());
            if let Err(e) = replica
                .raft
                .client_write(Request::InitCluster { cluster_id })
                .await
            {
                tracing::debug!(error = %e, "naming the cluster");
            }
        }
        let _ = timeout(Duration::from_secs(1), metrics.changed()).await;
    }
}

/// Keeps the log's time close to the clock: while this node leads, whenever the newest applied
/// revision's time lags its clock by `tick` or more, it appends a [`Request::Tick`]. Busy clusters
/// need none (every write carries the leader's time). Ends when the replica stops.
async fn advance_clock(replica: Weak<Replica>, tick: Duration) {
    let tick = tick.max(Duration::from_millis(10));
    loop {
        sleep(tick).await;
        let Some(replica) = replica.upgrade() else {
            return;
        };
        let (running, leads) = {
            let metrics = replica.raft.metrics();
            let metrics = metrics.borrow();
            (
                metrics.running_state.is_ok(),
                metrics.state == ServerState::Leader,
            )
        };
        if !running {
            return;
        }
        let now = (replica.clock)();
        let lag = now
            .duration_since(replica.datastore.head_time())
            .unwrap_or_default();
        if leads && lag >= tick {
            if let Err(e) = replica
                .raft
                .client_write(Request::Tick { timestamp: now })
                .await
            {
                tracing::debug!(error = %e, "advancing the log's clock");
            }
        }
    }
}

/// Keeps this node's confirmation (see [`crate::freshness`]) within the staleness bound: renews
/// it a third of the bound after the last one, and after a failure again at once. Ends when the
/// replica is dropped or its Raft stops.
async fn keep_fresh(replica: Weak<Replica>) {
    loop {
        let Some(due) = replica.upgrade().map(|r| r.freshness.renewal_due()) else {
            return;
        };
        sleep_until(due).await;
        let Some(replica) = replica.upgrade() else {
            return;
        };
        if replica.stopped().is_some() {
            return;
        }
        let deadline = Instant::now() + replica.freshness.bound() / 3;
        if let Err(e) = replica.read_index(deadline).await {
            tracing::debug!(error = %e, "renewing this node's confirmation");
            replica.freshness.failed(e.to_string());
            sleep(RETRY_PAUSE).await;
        }
    }
}

/// Says once, loudly, when this node's Raft stops on a fatal error, and what to do.
async fn report_fatal(mut metrics: tokio::sync::watch::Receiver<RaftMetrics>) {
    loop {
        let state = metrics.borrow_and_update().running_state.clone();
        match state {
            Err(Fatal::Stopped) => return,
            Err(fatal) => {
                tracing::error!(
                    error = %fatal,
                    "this node's Raft stopped on a fatal error: it now answers every read and write with UNAVAILABLE and reports not ready; the other nodes keep serving. Fix the cause (free disk space, replace a failing disk) and restart the node"
                );
                return;
            }
            Ok(()) => {}
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}
