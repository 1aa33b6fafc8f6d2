//! One node of a cluster: its Raft, its standing, and what the API server asks of it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use openraft::error::Fatal;
use openraft::{Config, ServerState, SnapshotPolicy, Vote};
use pemba_proto::pemba::cluster::v1 as proto;
use pemba_raft::{
    Compute, LogBackend, LogStore, NodeId, Raft, RaftMetrics, SeededRng, StateMachine, SyncCount,
    NEWEST_LOG_FORMAT,
};
use pemba_store::Datastore;
use rand::Rng;
use tokio::time::{timeout_at, Instant};

use crate::auth::ClusterSecret;
use crate::background;
use crate::clock_bound::ClockBound;
use crate::dialer::Dialer;
use crate::error::ClusterError;
use crate::freshness::Freshness;
use crate::group_commit::{self, GroupCommit};
use crate::identity::{Identity, IdentityRefusal, Standing};
use crate::network::{PeerNetwork, Peers};
use crate::{log_format, log_purge};

/// Log entries per replication message. An entry is one client request (at most a few MiB; an
/// import commits in parts of that size) or a group of them no heavier than about
/// [`crate::group_commit::GROUP_WEIGHT`] relationships, so a message stays below
/// [`PEER_MESSAGE_LIMIT`].
const MAX_ENTRIES_PER_APPEND: u64 = 16;

/// The largest message between peers, in bytes.
pub(crate) const PEER_MESSAGE_LIMIT: usize = 256 * 1024 * 1024;

/// How a replica joins and runs its cluster.
#[derive(Debug, Clone)]
pub struct ReplicaConfig {
    /// This node's id, unique in the cluster and never reused.
    pub node_id: NodeId,
    /// The members (id → peer address) of a new cluster, and the peers a new node asks about
    /// its place (see [`crate::identity`]). The member with the lowest id founds the cluster
    /// once every member answers with empty storage and this same list.
    pub initial_members: BTreeMap<NodeId, String>,
    /// Shared by every node; required on every peer call.
    pub cluster_secret: String,
    /// How often the leader sends heartbeats. It must exceed the round trip between nodes:
    /// Raft messages that take longer are abandoned.
    pub heartbeat_interval: Duration,
    /// The shortest election timeout; each election waits a random time up to twice this.
    pub election_timeout: Duration,
    /// Log entries between snapshots.
    pub snapshot_every: u64,
    /// How many entries before its newest snapshot the leader may keep for a follower that has
    /// yet to receive them (one installing a snapshot, or behind), so that it goes on from the
    /// log instead of needing another snapshot. Costs disk, not memory. 0 keeps no more than
    /// any node keeps (see [`crate::log_purge`]).
    pub catch_up_entries: u64,
    /// How far the log's time may lag the leader's clock before the leader appends a tick.
    /// Expirations take effect at most about this late (see [`pemba_raft::Request::Tick`]).
    pub clock_tick: Duration,
    /// How stale a read without a token may be: it is answered at a revision that includes
    /// every write the cluster committed this long before the read arrived, or not at all
    /// (see [`crate::freshness`]).
    pub max_staleness: Duration,
    /// How far this node's wall clock may stray from the other voters' before it stops leading
    /// (see [`crate::clock_bound`]).
    pub max_clock_offset: Duration,
    /// How often the leader appends its state digest for the replicas to compare with theirs
    /// (see [`pemba_raft::Request::Checkpoint`]).
    pub digest_every: Duration,
    /// The newest log format this node reads: [`pemba_raft::NEWEST_LOG_FORMAT`], or an older
    /// one to act as an older build in upgrade tests (see [`crate::log_format`]).
    pub newest_log_format: u32,
}

/// A wall clock (injected, so simulations control it).
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// Raft figures for metrics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReplicaStatus {
    /// The current Raft term.
    pub term: u64,
    /// The leader this node knows of.
    pub leader_id: Option<NodeId>,
    /// Whether this node leads.
    pub is_leader: bool,
    /// The index of the last entry in this node's log.
    pub last_log_index: u64,
    /// The index of the last entry applied (the revision served).
    pub applied_index: u64,
    /// The last entry the newest snapshot covers.
    pub snapshot_index: u64,
    /// Entries each follower is behind the leader's log (reported by the leader only).
    pub replication_lag: Vec<(NodeId, u64)>,
    /// Snapshots this node built since it started.
    pub snapshots_built: u64,
    /// Snapshots this node received and installed since it started.
    pub snapshots_installed: u64,
    /// How old this node's newest confirmation by a leader's quorum is: the staleness of a read
    /// served now (none before the first).
    pub staleness: Option<Duration>,
    /// This node's wall clock minus the cluster's, in seconds, as last measured.
    pub clock_offset: Option<f64>,
    /// Whether this node's clock is out of the clock bound (it does not lead).
    pub clock_skewed: bool,
    /// How the leader's state digests compared with this replica's.
    pub digest_checks: pemba_raft::DigestChecks,
    /// Whether this replica's state diverged from the leader's (it then serves nothing).
    pub diverged: bool,
    /// Syncs (fsyncs) of this node's Raft log since it started.
    pub log_syncs: u64,
    /// Log entries of client writes this node proposed as leader since it started.
    pub write_groups: u64,
    /// The writes in them (several per entry once writes are grouped).
    pub grouped_writes: u64,
    /// The cluster's log format as applied here.
    pub log_format: u32,
}

/// One node of a cluster.
pub struct Replica {
    pub(crate) node_id: NodeId,
    pub(crate) raft: Raft,
    pub(crate) state_machine: StateMachine,
    pub(crate) datastore: Arc<Datastore>,
    pub(crate) peers: Arc<Peers>,
    pub(crate) clock: Clock,
    pub(crate) freshness: Freshness,
    pub(crate) clock_bound: ClockBound,
    /// How far the log's time may lag the leader's clock (see [`ReplicaConfig::clock_tick`]).
    pub(crate) clock_tick: Duration,
    /// How long one attempt to reach the leader may take before it is retried (a connection
    /// that silently lost data must not use up a request's whole deadline).
    pub(crate) attempt_timeout: Duration,
    /// Switches the log's syncs off (a deliberately broken build).
    #[cfg(feature = "fault-injection")]
    skip_log_syncs: pemba_raft::SkipSyncs,
    pub(crate) identity: Arc<Identity>,
    /// The queue of writes this node proposes when it leads.
    pub(crate) group_commit: GroupCommit,
    log_syncs: SyncCount,
    /// Unique to this process: request ids are `<prefix>-<counter>`.
    request_prefix: String,
    request_counter: AtomicU64,
}

/// How long one part of a snapshot may take to reach a follower and be written, in ms. The last
/// part's call also carries the install (decoding the image, writing it to disk, building the
/// index), which at millions of relationships takes tens of seconds: a budget too short for it
/// makes the leader send the whole snapshot again, and again. A follower that dies during a
/// transfer delays only its own replication by this much: commits wait for a quorum, not for it.
const SNAPSHOT_PART_TIMEOUT_MS: u64 = 300_000;

fn raft_config(config: &ReplicaConfig) -> Result<Config, ClusterError> {
    let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1);
    Config {
        cluster_name: "pemba".into(),
        heartbeat_interval: millis(config.heartbeat_interval),
        election_timeout_min: millis(config.election_timeout),
        election_timeout_max: millis(config.election_timeout) * 2,
        install_snapshot_timeout: SNAPSHOT_PART_TIMEOUT_MS,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_every.max(1)),
        // The log is purged by `log_purge`, never by openraft's own rule.
        max_in_snapshot_log_to_keep: u64::MAX,
        snapshot_max_chunk_size: 1024 * 1024,
        // With requests of at most a few MiB (imports commit in parts of that size), a
        // replication message stays well below the peers' message limit.
        max_payload_entries: MAX_ENTRIES_PER_APPEND,
        ..Config::default()
    }
    .validate()
    .map_err(|e| ClusterError::Config(Box::new(e)))
}

impl Replica {
    /// Starts this node's Raft over `log` and `datastore`. A node with empty storage first
    /// settles its standing with its peers (see [`crate::identity`]): it joins, founds the
    /// cluster, or is refused ([`Replica::refused`]).
    pub(crate) async fn start<B: LogBackend>(
        config: ReplicaConfig,
        log: B,
        datastore: Arc<Datastore>,
        dialer: Arc<dyn Dialer>,
        clock: Clock,
    ) -> Result<Arc<Replica>, ClusterError> {
        let raft_config = raft_config(&config)?;
        let newest_format = config.newest_log_format.min(NEWEST_LOG_FORMAT);
        let state_machine = StateMachine::reading_formats_up_to(datastore.clone(), newest_format)?
            .building_snapshots(Compute::for_storage(log.blocks()));
        let log = LogStore::new(log).map_err(ClusterError::Log)?;
        let log_syncs = log.sync_count();
        #[cfg(feature = "fault-injection")]
        let skip_log_syncs = log.skip_syncs();
        let backend: Arc<dyn LogBackend> = log.backend();
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
            log,
            state_machine.clone(),
        )
        .await
        .map_err(|e| ClusterError::Start(Box::new(e)))?;
        let holds_state = raft_initialized(&raft.metrics().borrow()) || datastore.head() > 0;
        let identity = Identity::open(
            config.node_id,
            config.initial_members.clone(),
            backend,
            holds_state,
        )?;
        let nonce: u64 = SeededRng.gen();
        let (group_commit, queue) = GroupCommit::new();
        let group_counts = group_commit.counter();
        let replica = Arc::new(Replica {
            node_id: config.node_id,
            raft,
            state_machine,
            datastore,
            peers,
            clock,
            freshness: Freshness::new(config.max_staleness),
            clock_bound: ClockBound::new(config.max_clock_offset),
            clock_tick: config.clock_tick,
            attempt_timeout: (config.heartbeat_interval * 4)
                .clamp(Duration::from_millis(500), Duration::from_secs(5)),
            identity: Arc::new(identity),
            group_commit,
            log_syncs,
            request_prefix: format!("{}-{nonce:016x}", config.node_id),
            request_counter: AtomicU64::new(0),
            #[cfg(feature = "fault-injection")]
            skip_log_syncs,
        });
        replica
            .peers
            .set_cluster_id_source(Arc::downgrade(&replica));
        background::spawn_all(&replica, config.clock_tick, config.digest_every);
        tokio::spawn(log_format::raise_when_all_read(Arc::downgrade(&replica)));
        tokio::spawn(log_purge::purge(
            Arc::downgrade(&replica),
            config.snapshot_every.min(1000),
            config.catch_up_entries,
        ));
        tokio::spawn(group_commit::run(
            Arc::downgrade(&replica),
            queue,
            group_counts,
        ));
        Ok(replica)
    }

    pub(crate) fn raft(&self) -> &Raft {
        &self.raft
    }

    pub(crate) fn metrics(&self) -> RaftMetrics {
        self.raft.metrics().borrow().clone()
    }

    /// The cluster address of member `id` (voter or learner), if this node knows it.
    pub(crate) fn member_addr(&self, id: NodeId) -> Option<String> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        let membership = metrics.membership_config.membership();
        membership.get_node(&id).map(|node| node.addr.clone())
    }

    pub(crate) fn next_request_id(&self) -> String {
        let n = self.request_counter.fetch_add(1, Ordering::Relaxed);
        format!("{}-{n}", self.request_prefix)
    }

    /// The cluster's id, once named (shortly after the first leader is elected).
    pub fn cluster_id(&self) -> Option<String> {
        self.state_machine.cluster_id()
    }

    /// The cluster this node belongs to, was founded in, or is about to join: what it sends
    /// with its peer calls, and what it checks theirs against.
    pub(crate) fn known_cluster_id(&self) -> Option<String> {
        self.cluster_id().or_else(|| self.identity.cluster_id())
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
                return self.cluster_id().ok_or(ClusterError::NotJoined);
            }
        }
    }

    /// The newest revision this node has applied.
    pub fn applied(&self) -> u64 {
        self.datastore.head()
    }

    /// Waits until this node must not run, and says why (its storage is empty while the
    /// cluster lists it, or the founding members disagree): the process should exit.
    pub async fn refused(&self) -> IdentityRefusal {
        self.identity.refused().await
    }

    /// Switches on deliberate bugs (see [`Faults`]); only in builds with the `fault-injection`
    /// feature.
    #[cfg(feature = "fault-injection")]
    pub fn inject(&self, faults: Faults) {
        use std::sync::atomic::Ordering::Relaxed;
        self.clock_bound
            .ignored
            .store(faults.ignore_clock_bound, Relaxed);
        if faults.skip_empty_storage_guard {
            self.identity.skip_guard();
        }
        if faults.skip_log_syncs {
            self.skip_log_syncs.engage();
        }
    }

    /// Stops Raft (on shutdown).
    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "stopping Raft");
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
            false => Err(ClusterError::NotApplied {
                applied: self.applied(),
                revision,
            }),
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

    /// The fatal error this node's Raft stopped on, if it did.
    pub fn stopped(&self) -> Option<Fatal<NodeId>> {
        self.metrics().running_state.err()
    }

    /// The replica behind `replica` while it runs: `None` once it is dropped or its Raft
    /// stopped, which ends the background loops that hold it weakly.
    pub(crate) fn running(replica: &Weak<Replica>) -> Option<Arc<Replica>> {
        replica.upgrade().filter(|r| r.stopped().is_none())
    }

    /// Fails if this node's Raft stopped (nothing may be answered from its frozen state) or its
    /// state diverged from the leader's (its answers may be wrong).
    pub fn serving(&self) -> Result<(), ClusterError> {
        if let Some(fatal) = self.stopped() {
            return Err(ClusterError::Stopped(Box::new(fatal)));
        }
        match self.state_machine.divergence() {
            Some(divergence) => Err(ClusterError::Diverged(divergence)),
            None => Ok(()),
        }
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

    /// Whether this node serves now, and if not, why: it stopped on a fatal error, its standing
    /// is not settled, it has not joined a named cluster, or its state is not confirmed within
    /// the staleness bound (it is cut off from the leader, or it leads without a quorum).
    pub fn readiness(&self) -> Result<(), ClusterError> {
        self.serving()?;
        match self.identity.standing() {
            Standing::Member => {}
            Standing::Unconfirmed => return Err(ClusterError::Unconfirmed),
            Standing::Refused(why) => return Err(ClusterError::Refused(why)),
        }
        if self.cluster_id().is_none() {
            return Err(ClusterError::NotJoined);
        }
        self.still_fresh()
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
        let founding = self.identity.founding();
        let initialized = raft_initialized(&metrics) || self.applied() > 0;
        // The cluster this node belongs to: named in its log, or recorded at its founding (not
        // the one a new node expects to join: it belongs to none until it is added).
        let cluster_id = self
            .cluster_id()
            .or_else(|| founding.as_ref().map(|f| f.cluster_id.clone()));
        proto::StatusResponse {
            node_id: self.node_id,
            cluster_id: cluster_id.unwrap_or_default(),
            term: metrics.current_term,
            leader_id: metrics.current_leader.unwrap_or(0),
            state: format!("{:?}", metrics.state),
            last_log_index: metrics.last_log_index.unwrap_or(0),
            applied_index: metrics.last_applied.map_or(0, |l| l.index),
            snapshot_index: metrics.snapshot.map_or(0, |l| l.index),
            members,
            storage_empty: self.identity.storage_empty() && !initialized,
            initial_members: self
                .identity
                .initial_members()
                .clone()
                .into_iter()
                .collect(),
            initialized,
            founding_members: founding
                .map(|f| f.members.into_iter().collect())
                .unwrap_or_default(),
            newest_log_format: self.state_machine.newest_format(),
            log_format: self.state_machine.log_format(),
        }
    }

    /// Raft figures for metrics.
    pub fn status(&self) -> ReplicaStatus {
        let metrics = self.metrics();
        let last_log_index = metrics.last_log_index.unwrap_or(0);
        let counts = self.state_machine.snapshot_counts();
        let (write_groups, grouped_writes) = self.group_commit.counts();
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
            clock_offset: self.clock_bound.offset_seconds(),
            clock_skewed: self.clock_bound.skewed(),
            digest_checks: self.state_machine.digest_checks(),
            diverged: self.state_machine.divergence().is_some(),
            log_syncs: self.log_syncs.get(),
            write_groups,
            grouped_writes,
            log_format: self.state_machine.log_format(),
        }
    }

    /// The state machine's view of digests, for simulations.
    pub fn divergence(&self) -> Option<pemba_raft::Divergence> {
        self.state_machine.divergence()
    }
}

/// Deliberate bugs, for proving that the simulation's checker catches them.
#[cfg(feature = "fault-injection")]
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    /// Lead and stamp entries whatever this node's clock says.
    pub ignore_clock_bound: bool,
    /// Take part in Raft with empty storage, without asking the peers first.
    pub skip_empty_storage_guard: bool,
    /// Report votes and log entries durable without syncing them.
    pub skip_log_syncs: bool,
}

/// Whether Raft state exists: a vote, or a log (or a snapshot).
pub(crate) fn raft_initialized(metrics: &RaftMetrics) -> bool {
    metrics.vote != Vote::default()
        || metrics.last_log_index.is_some()
        || metrics.snapshot.is_some()
}
