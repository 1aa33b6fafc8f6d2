//! Deterministic simulation of a Pemba cluster.
//!
//! [`run`] starts `nodes` Pemba nodes as turmoil hosts (the real Raft, state machine, datastore
//! and gRPC services over simulated TCP, storage in memory that survives crashes), runs clients
//! against them while injecting faults from a seeded schedule (partitions, one-way partitions,
//! crashes and restarts, leader isolation, latency), heals everything, checks that the cluster
//! makes progress again, and checks the recorded history ([`checker`]). Everything random comes
//! from the seed: the same seed gives the same history.

// Not every public item is documented yet: `missing_docs` (see the workspace's lints) is
// allowed here until it is.
#![allow(missing_docs)]

mod checker;
mod faults;
mod history;
mod membership;
mod net;
mod storage;
mod workload;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;
use pemba_cluster::{GcSchedule, NodeBuilder, Replica, ReplicaConfig, StartedNode};
use pemba_server::{Compute, Limits, Node, ServeOptions};
use pemba_store::Datastore;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

pub use faults::Fault;
pub use history::Event;

const API_PORT: u16 = 50051;
const CLUSTER_PORT: u16 = 50053;
const SECRET: &str = "simulation-secret";
/// The nodes' staleness bound, clock bound and clock tick (the checker holds them to these).
pub const MAX_STALENESS: Duration = Duration::from_secs(2);
pub const MAX_CLOCK_OFFSET: Duration = Duration::from_millis(500);
pub const CLOCK_TICK: Duration = Duration::from_millis(500);
/// Garbage collection keeps this much history (by the log's time), every second: runs last
/// long enough for reads and Watch resumptions at collected revisions.
const GC_WINDOW: Duration = Duration::from_secs(3);
const GC_INTERVAL: Duration = Duration::from_secs(1);

/// A deliberate bug a run may be built with, to prove the checker catches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Broken {
    #[default]
    None,
    /// Followers serve `at_least_as_fresh` without waiting for the token (New Enemy).
    IgnoreTokens,
    /// Nodes lead and stamp the log with their own clock, however far off.
    IgnoreClockBound,
    /// A node restarted on a wiped disk takes part in Raft at once.
    SkipEmptyStorageGuard,
    /// The Raft log reports votes and entries durable without syncing them.
    SkipLogSyncs,
    /// Reads (and Watch) at revisions garbage collection passed are answered from what is left.
    IgnoreGcHorizon,
    /// The third node's datastore silently drops one key of every write (its change log, and
    /// the other nodes' states, stay right).
    CorruptOneReplicasApply,
}

/// One simulation run.
#[derive(Debug, Clone)]
pub struct Config {
    pub seed: u64,
    pub nodes: usize,
    /// Nodes started outside the initial members, added as learners and promoted to voters
    /// while faults go on.
    pub spare_nodes: usize,
    pub clients: usize,
    /// How long clients work while faults are injected (simulated time).
    pub faulty: Duration,
    /// How long after healing the cluster has to make progress again.
    pub healing: Duration,
    /// Inject faults (off: a calm run).
    pub faults: bool,
    /// The deliberate bug to run with, if any (to prove the checker catches it).
    pub broken: Broken,
}

impl Config {
    pub fn new(seed: u64) -> Config {
        Config {
            seed,
            nodes: 3,
            spare_nodes: 1,
            clients: 3,
            faulty: Duration::from_secs(12),
            healing: Duration::from_secs(10),
            faults: true,
            broken: Broken::None,
        }
    }
}

/// What a run recorded and what the checker found.
pub struct Outcome {
    pub events: Vec<Event>,
    pub faults: Vec<String>,
    pub violations: Vec<String>,
}

/// How much a run did: enough for its checks to mean something.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub acknowledged_writes: usize,
    pub failed_writes: usize,
    pub answered_checks: usize,
    pub failed_checks: usize,
    /// Answered checks that carried a token (at_least_as_fresh or at_exact_snapshot).
    pub checks_with_tokens: usize,
    /// Revisions received by the watcher.
    pub watched_revisions: usize,
}

impl Outcome {
    pub fn stats(&self) -> Stats {
        let mut stats = Stats::default();
        for event in &self.events {
            match event {
                Event::Write { result: Ok(_), .. } => stats.acknowledged_writes += 1,
                Event::Write { .. } => stats.failed_writes += 1,
                Event::Check {
                    result: Ok(_),
                    consistency,
                    ..
                } => {
                    stats.answered_checks += 1;
                    if matches!(
                        consistency,
                        history::Consistency::AtLeastAsFresh(_)
                            | history::Consistency::AtExactSnapshot(_)
                    ) {
                        stats.checks_with_tokens += 1;
                    }
                }
                Event::Check { .. } => stats.failed_checks += 1,
                Event::Watched { .. } => stats.watched_revisions += 1,
                Event::WatchStarted { .. } => {}
            }
        }
        stats
    }

    /// The run as text: faults and events in order (equal for equal seeds).
    pub fn trace(&self) -> Vec<String> {
        self.faults
            .iter()
            .cloned()
            .chain(self.events.iter().map(ToString::to_string))
            .collect()
    }
}

/// A node's durable storage, which outlives crashes, its wall clock's offset from real
/// (simulated) time, and its current incarnation.
#[derive(Default)]
struct NodeState {
    storage: storage::SimStorage,
    /// Every revision the node applied, across its restarts (garbage collection drops history
    /// from the node itself).
    observed: Arc<Mutex<checker::Observed>>,
    clock_offset: Arc<ClockOffset>,
    current: Mutex<Option<(Arc<Datastore>, Arc<Replica>)>>,
}

/// How far a node's wall clock is off real time, in milliseconds (a fault sets it).
#[derive(Debug, Default)]
pub struct ClockOffset(std::sync::atomic::AtomicI64);

impl ClockOffset {
    pub fn set(&self, millis: i64) {
        self.0.store(millis, std::sync::atomic::Ordering::SeqCst);
    }

    fn millis(&self) -> i64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

fn host(index: usize) -> String {
    format!("node{}", index + 1)
}

/// Real (simulated) wall time: a fixed epoch plus simulated time elapsed.
fn simulated_now() -> SystemTime {
    real_time(turmoil::sim_elapsed().unwrap_or_default())
}

/// The real wall time `elapsed` into the simulation.
pub fn real_time(elapsed: Duration) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000) + elapsed
}

/// A node's wall clock: real time, off by its offset.
fn clock(offset: Arc<ClockOffset>) -> pemba_cluster::Clock {
    Arc::new(move || {
        let millis = offset.millis();
        let shift = Duration::from_millis(millis.unsigned_abs());
        match millis >= 0 {
            true => simulated_now() + shift,
            false => simulated_now() - shift,
        }
    })
}

async fn run_node(
    index: usize,
    state: Arc<NodeState>,
    members: BTreeMap<u64, String>,
    broken: Broken,
) -> turmoil::Result {
    let observed = state.observed.clone();
    let config = ReplicaConfig {
        node_id: index as u64 + 1,
        initial_members: members,
        cluster_secret: SECRET.into(),
        heartbeat_interval: Duration::from_millis(100),
        election_timeout: Duration::from_millis(500),
        // Small, so that a node down for a second or two catches up by a snapshot.
        snapshot_every: 25,
        // None kept beyond that: catching up by a snapshot stays common.
        catch_up_entries: 0,
        clock_tick: CLOCK_TICK,
        max_staleness: MAX_STALENESS,
        max_clock_offset: MAX_CLOCK_OFFSET,
        digest_every: Duration::from_secs(1),
        newest_log_format: pemba_raft::NEWEST_LOG_FORMAT,
    };
    let persistence = Box::new(state.storage.persistence.clone());
    let gc = GcSchedule {
        window: GC_WINDOW,
        interval: GC_INTERVAL,
    };
    let StartedNode { datastore, replica } =
        NodeBuilder::new(config, persistence, state.storage.log.clone())
            .dialer(Arc::new(net::TurmoilDialer))
            .clock(clock(state.clock_offset.clone()))
            .collect_garbage(gc)
            .observe(Box::new(move |revision, time, changes| {
                observed.lock().push((revision, time, changes.to_vec()));
            }))
            .start()
            .await?;
    if broken == Broken::IgnoreGcHorizon {
        pemba_store::faults::ignore_gc_horizon();
    }
    if broken == Broken::CorruptOneReplicasApply && index == 2 {
        datastore.corrupt_writes();
    }
    replica.inject(pemba_cluster::Faults {
        ignore_clock_bound: broken == Broken::IgnoreClockBound,
        skip_empty_storage_guard: broken == Broken::SkipEmptyStorageGuard,
        skip_log_syncs: broken == Broken::SkipLogSyncs,
    });
    *state.current.lock() = Some((datastore.clone(), replica.clone()));
    let peers = turmoil::net::TcpListener::bind(("0.0.0.0", CLUSTER_PORT)).await?;
    let api = turmoil::net::TcpListener::bind(("0.0.0.0", API_PORT)).await?;
    let serving = replica.clone();
    tokio::spawn(async move {
        let incoming = net::incoming(peers);
        let forever = std::future::pending();
        let _ = pemba_cluster::serve_peers(serving, SECRET, None, incoming, forever).await;
    });
    let mut node = Node::new(datastore, replica.clone(), Limits::default());
    // The simulated runtime cannot wait for blocking threads: lookups run on their task.
    node.compute = Compute::Inline;
    node.faults.ignore_consistency_tokens = broken == Broken::IgnoreTokens;
    let options = ServeOptions {
        preshared_keys: vec![workload::KEY.into()],
        tls: None,
        max_message_bytes: 4 * 1024 * 1024,
    };
    let serving = pemba_server::serve(
        Arc::new(node),
        net::incoming(api),
        None,
        options,
        std::future::pending(),
    );
    tokio::select! {
        biased;
        served = serving => served?,
        // A node that must not run (restarted on a wiped disk while the cluster lists it)
        // stops, as `pemba serve` exits; it stays down.
        _ = replica.refused() => {
            replica.shutdown().await;
            std::future::pending::<()>().await;
        }
    }
    Ok(())
}

/// After healing: a write through every node still in the cluster must succeed, and a fully
/// consistent check through each must see the last of them.
async fn verify_progress(
    nodes: Vec<String>,
    until: Duration,
    shared: Arc<workload::Shared>,
    removed: Arc<Mutex<std::collections::BTreeSet<usize>>>,
    progress: Arc<Mutex<Vec<String>>>,
) -> turmoil::Result {
    let mut client = workload::Client::connect(usize::MAX, &nodes);
    let members: Vec<usize> = (0..nodes.len())
        .filter(|n| !removed.lock().contains(n))
        .collect();
    let Some(&last_member) = members.last() else {
        return Ok(());
    };
    for &node in &members {
        let relationship =
            pemba_types::Relationship::parse(&format!("document:healed#viewer@user:n{node}"))?;
        loop {
            let written = client
                .write(
                    &shared,
                    node,
                    history::Update::Touch,
                    relationship.clone(),
                    None,
                )
                .await;
            if written.is_ok() {
                break;
            }
            if turmoil::elapsed() >= until {
                progress.lock().push(format!(
                    "no progress after healing: no write through node {node}"
                ));
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    for &node in &members {
        let last = format!("n{last_member}");
        let seen = client
            .check(
                &shared,
                node,
                (history::Consistency::FullyConsistent, None),
                "healed",
                &last,
            )
            .await;
        if seen != Ok((true, seen.map(|(_, r)| r).unwrap_or(0))) {
            progress.lock().push(format!(
                "no progress after healing: node {node} answered {seen:?}"
            ));
        }
    }
    Ok(())
}

/// Runs one simulation and checks it. A panic anywhere in it (a node's code included) is a
/// violation, reported with its message.
///
/// A run replays exactly from its seed in a fresh process; runs after others in one process
/// may not (state below the simulation, shared by the whole process, is left behind by the
/// runs before), so the tests run each seed in a process of its own.
pub fn run(config: &Config) -> Outcome {
    let run = std::panic::AssertUnwindSafe(|| run_unguarded(config));
    std::panic::catch_unwind(run).unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        Outcome {
            events: Vec::new(),
            faults: Vec::new(),
            violations: vec![format!("the simulation panicked: {message}")],
        }
    })
}

fn run_unguarded(config: &Config) -> Outcome {
    pemba_raft::seed_randomness(config.seed);
    let total = config.faulty + config.healing;
    let mut sim = turmoil::Builder::new()
        .rng_seed(config.seed)
        .simulation_duration(total + Duration::from_secs(30))
        .repair_rate(0.05)
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(Duration::from_millis(10))
        .build();

    let nodes: Vec<String> = (0..config.nodes).map(host).collect();
    let members: BTreeMap<u64, String> = (0..config.nodes)
        .map(|i| (i as u64 + 1, format!("{}:{CLUSTER_PORT}", host(i))))
        .collect();
    let all = config.nodes + config.spare_nodes;
    let states: Vec<Arc<NodeState>> = (0..all).map(|_| Arc::default()).collect();
    for (index, state) in states.iter().enumerate() {
        let (state, members, broken) = (state.clone(), members.clone(), config.broken);
        sim.host(host(index), move || {
            run_node(index, state.clone(), members.clone(), broken)
        });
    }
    let shared = Arc::new(workload::Shared::default());
    for id in 0..config.clients {
        let (nodes, shared, seed, until) =
            (nodes.clone(), shared.clone(), config.seed, config.faulty);
        sim.client(format!("client{}", id + 1), async move {
            workload::run_client(id, seed, nodes, until, shared).await
        });
    }
    {
        let (nodes, shared, seed, until) =
            (nodes.clone(), shared.clone(), config.seed, config.faulty);
        sim.client("watcher", async move {
            workload::run_watcher(seed, nodes, until, shared).await
        });
    }
    let membership = Arc::new(Mutex::new(Vec::new()));
    let removed = Arc::new(Mutex::new(std::collections::BTreeSet::new()));
    {
        let (nodes, log, seed) = (nodes.clone(), membership.clone(), config.seed);
        let removed = removed.clone();
        let spares: Vec<usize> = (config.nodes..all).collect();
        let until = config.faulty;
        sim.client("admin", async move {
            membership::change(seed, nodes, spares, until, log, removed).await
        });
    }
    let progress = Arc::new(Mutex::new(Vec::new()));
    {
        let (nodes, shared, progress) = (nodes.clone(), shared.clone(), progress.clone());
        let removed = removed.clone();
        let (start, until) = (config.faulty + Duration::from_secs(1), total);
        sim.client("verifier", async move {
            tokio::time::sleep(start).await;
            verify_progress(nodes, until, shared, removed, progress).await
        });
    }

    let schedule = if config.faults {
        faults::schedule(config.seed, all, config.faulty)
    } else {
        Vec::new()
    };
    let controls = faults::Controls {
        hosts: (0..all).map(host).collect(),
        clocks: states.iter().map(|s| s.clock_offset.clone()).collect(),
        storage: states.iter().map(|s| s.storage.clone()).collect(),
        failing: (0..all).map(|_| Default::default()).collect(),
        gone: removed.clone(),
        wiped: Default::default(),
        stalled: Default::default(),
        initial_voters: config.nodes,
        losses: Mutex::new(ChaCha8Rng::seed_from_u64(config.seed ^ 0x10_55e5)),
        installs_armed: Mutex::new(None),
    };
    let mut injected = Vec::new();
    let mut violations = Vec::new();
    let mut pending = schedule.into_iter().peekable();
    loop {
        while let Some((at, _)) = pending.peek() {
            if *at > sim.elapsed() {
                break;
            }
            let (at, fault) = pending.next().expect("peeked");
            let leader = states.iter().position(|s| {
                s.current
                    .lock()
                    .as_ref()
                    .is_some_and(|(_, r)| r.status().is_leader)
            });
            injected.push(format!(
                "[{at:?}] {}",
                fault.inject(&mut sim, &controls, leader)
            ));
        }
        match sim.step() {
            Ok(true) => break,
            Ok(false) => {
                if sim.elapsed() < config.faulty {
                    if let Some(done) = controls.crash_installing(&mut sim) {
                        injected.push(format!("[{:?}] {done}", sim.elapsed()));
                    }
                } else {
                    *controls.installs_armed.lock() = None;
                }
            }
            Err(e) => {
                violations.push(format!("the simulation failed: {e}"));
                break;
            }
        }
    }

    injected.extend(membership.lock().iter().cloned());
    let events = shared.events.lock().clone();
    let observed: Vec<(usize, checker::Observed)> = states
        .iter()
        .enumerate()
        .map(|(i, s)| (i, s.observed.lock().clone()))
        .collect();
    violations.extend(progress.lock().iter().cloned());
    violations.extend(checker::check(&events, &observed));
    let replicas: Vec<checker::ReplicaDigests> = states
        .iter()
        .enumerate()
        .filter_map(|(node, s)| {
            let current = s.current.lock();
            let (datastore, replica) = current.as_ref()?;
            Some(checker::ReplicaDigests {
                node: node + 1,
                digests: datastore.recent_digests(),
                divergence: replica.divergence(),
            })
        })
        .collect();
    violations.extend(checker::replicas_agree(&replicas));
    Outcome {
        events,
        faults: injected,
        violations,
    }
}
