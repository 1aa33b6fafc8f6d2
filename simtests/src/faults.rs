//! The faults a run injects, on a schedule drawn from its seed.

use std::time::Duration;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::storage::SimStorage;
use crate::ClockOffset;

/// What faults act on besides the network: each node's host name, clock, disk, whether its disk
/// is failing, and the nodes gone for good (wiped or removed: the verifier no longer expects
/// them to serve).
pub struct Controls {
    pub hosts: Vec<String>,
    pub clocks: Vec<Arc<ClockOffset>>,
    pub storage: Vec<SimStorage>,
    pub failing: Vec<AtomicBool>,
    pub gone: Arc<Mutex<BTreeSet<usize>>>,
    /// At most one wipe a run: a second wiped voter could leave no majority for good.
    pub wiped: AtomicBool,
    /// The follower [`Fault::StallFollower`] stopped, if any.
    pub stalled: Mutex<Option<usize>>,
    /// How many nodes were voters from the start.
    pub initial_voters: usize,
    /// Draws how much of a crashed node's unsynced log survives.
    pub losses: Mutex<ChaCha8Rng>,
    /// Armed by [`Fault::CrashInstallingSnapshot`]: each node's count of datastore replacements
    /// when it was armed.
    pub installs_armed: Mutex<Option<Vec<u64>>>,
}

impl Controls {
    /// Stops a node as a power cut would: of its log's steps not yet synced, only some first
    /// part (drawn from the run's seed) survives.
    fn crash(&self, sim: &mut turmoil::Sim<'_>, node: usize) {
        sim.crash(self.hosts[node].as_str());
        let mut losses = self.losses.lock();
        self.storage[node]
            .log
            .crash(|unsynced| losses.gen_range(0..=unsynced));
    }

    /// If armed and a node has installed a snapshot since, crashes it there and then (before
    /// anything else it would do next) and disarms; returns what was done.
    pub fn crash_installing(&self, sim: &mut turmoil::Sim<'_>) -> Option<String> {
        let mut armed = self.installs_armed.lock();
        let counts = armed.as_ref()?;
        let node = (0..self.hosts.len())
            .find(|n| self.storage[*n].persistence.replacements() != counts[*n])?;
        *armed = None;
        drop(armed);
        self.crash(sim, node);
        Some(format!(
            "crash {} as it installs a snapshot",
            self.hosts[node]
        ))
    }
}

/// One fault, healed by a later [`Fault::Heal`].
#[derive(Debug, Clone)]
pub enum Fault {
    /// Cut a node off from every other node.
    Partition(usize),
    /// Drop everything one node sends to another.
    OneWay(usize, usize),
    /// Stop a node (its storage survives).
    Crash(usize),
    /// Cut the current leader off, whichever node it is.
    IsolateLeader,
    /// Slow every link down.
    Latency(Duration),
    /// Links between nodes flap: each drops for a while at random (rate per tick).
    Flaky(f64),
    /// A node's wall clock jumps by this many milliseconds (forward or back) from real time.
    ClockJump(usize, i64),
    /// The current leader's wall clock jumps, whichever node it is.
    LeaderClockJump(i64),
    /// Every write to a node's log fails from now on (a full or failing disk); it stops, and
    /// is restarted with a good disk when healed.
    StorageFails(usize),
    /// A node is restarted on an empty disk (a new volume).
    Wipe(usize),
    /// The dangerous sequence for a wiped voter, in two steps: a follower stops (so writes are
    /// acknowledged without it)...
    StallFollower,
    /// ...then the other follower is restarted on a wiped disk, the leader stops and the stalled
    /// follower comes back. Until the heal restarts the leader, only the wiped node and the
    /// stalled one are up: if the wiped node voted, the stalled one would lead without the
    /// writes acknowledged meanwhile.
    WipeFollowerAndStopLeader,
    /// Crash the next node that installs a snapshot, as it does (armed until one does or the
    /// faults end: heals do not disarm it).
    CrashInstallingSnapshot,
    /// Undo everything: repair links, restart stopped nodes, restore latency.
    Heal,
}

/// Faults with the time each starts, each healed before the next; a quarter of them with a
/// second fault on top before the heal.
pub fn schedule(seed: u64, nodes: usize, until: Duration) -> Vec<(Duration, Fault)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_fa17);
    let mut schedule = Vec::new();
    let mut at = Duration::from_millis(rng.gen_range(1500..3000));
    // A third of the runs start with the wiped-voter sequence (while the initial voters are
    // the only ones).
    if rng.gen_bool(1.0 / 3.0) {
        schedule.push((at, Fault::StallFollower));
        at += Duration::from_millis(rng.gen_range(300..800));
        schedule.push((at, Fault::WipeFollowerAndStopLeader));
        // Long enough for the stalled follower to stand for election.
        at += Duration::from_millis(rng.gen_range(2500..4000));
        schedule.push((at, Fault::Heal));
        at += Duration::from_millis(rng.gen_range(300..1500));
    }
    while at + Duration::from_secs(1) < until {
        schedule.push((at, any_fault(&mut rng, nodes)));
        if rng.gen_bool(0.25) {
            at += Duration::from_millis(rng.gen_range(100..800));
            schedule.push((at, any_fault(&mut rng, nodes)));
        }
        at += Duration::from_millis(rng.gen_range(500..2500));
        schedule.push((at, Fault::Heal));
        at += Duration::from_millis(rng.gen_range(300..1500));
    }
    schedule.push((until, Fault::Heal));
    schedule
}

/// One fault of any kind.
fn any_fault(rng: &mut ChaCha8Rng, nodes: usize) -> Fault {
    match rng.gen_range(0..11) {
        0 => Fault::Partition(rng.gen_range(0..nodes)),
        10 => Fault::CrashInstallingSnapshot,
        8 => Fault::StorageFails(rng.gen_range(0..nodes)),
        9 => Fault::Wipe(rng.gen_range(0..nodes)),
        6 => Fault::ClockJump(rng.gen_range(0..nodes), clock_jump(rng)),
        7 => Fault::LeaderClockJump(clock_jump(rng)),
        1 => {
            let from = rng.gen_range(0..nodes);
            let to = (from + rng.gen_range(1..nodes)) % nodes;
            Fault::OneWay(from, to)
        }
        2 => Fault::Crash(rng.gen_range(0..nodes)),
        3 => Fault::IsolateLeader,
        4 => Fault::Flaky(rng.gen_range(0.001..0.01)),
        _ => Fault::Latency(Duration::from_millis(rng.gen_range(50..300))),
    }
}

/// A clock jump: within the clock bound as often as beyond it, forward or back, up to 120 s.
fn clock_jump(rng: &mut ChaCha8Rng) -> i64 {
    let millis = match rng.gen_bool(0.5) {
        true => rng.gen_range(50..450),
        false => rng.gen_range(1_000..120_000),
    };
    match rng.gen_bool(0.5) {
        true => millis,
        false => -millis,
    }
}

impl Fault {
    /// Injects the fault; returns what was done.
    pub fn inject(
        &self,
        sim: &mut turmoil::Sim<'_>,
        controls: &Controls,
        leader: Option<usize>,
    ) -> String {
        let (nodes, clocks) = (&controls.hosts, &controls.clocks);
        match self {
            Fault::Partition(node) => {
                for other in nodes.iter().filter(|n| *n != &nodes[*node]) {
                    sim.partition(nodes[*node].as_str(), other.as_str());
                }
                format!("partition {}", nodes[*node])
            }
            Fault::OneWay(from, to) => {
                sim.partition_oneway(nodes[*from].as_str(), nodes[*to].as_str());
                format!("drop {} → {}", nodes[*from], nodes[*to])
            }
            Fault::Crash(node) => {
                controls.crash(sim, *node);
                format!("crash {}", nodes[*node])
            }
            Fault::IsolateLeader => match leader {
                Some(leader) => Fault::Partition(leader).inject(sim, controls, None),
                None => "isolate the leader: none known".into(),
            },
            Fault::ClockJump(node, millis) => {
                clocks[*node].set(*millis);
                format!("clock of {} off by {millis} ms", nodes[*node])
            }
            Fault::LeaderClockJump(millis) => match leader {
                Some(leader) => Fault::ClockJump(leader, *millis).inject(sim, controls, None),
                None => "leader's clock jump: no leader known".into(),
            },
            Fault::Latency(latency) => {
                sim.set_max_message_latency(*latency);
                format!("latency up to {latency:?}")
            }
            Fault::Flaky(rate) => {
                for a in nodes {
                    for b in nodes.iter().filter(|b| *b != a) {
                        sim.set_link_fail_rate(a.as_str(), b.as_str(), *rate);
                    }
                }
                format!("flaky links between nodes ({rate:.4} per tick)")
            }
            Fault::StorageFails(node) => {
                controls.storage[*node].log.set_failing(true);
                controls.failing[*node].store(true, Ordering::SeqCst);
                format!("the disk of {} fails", nodes[*node])
            }
            Fault::Wipe(node) => {
                if controls.wiped.swap(true, Ordering::SeqCst) {
                    return format!("wipe {}: one wipe a run already done", nodes[*node]);
                }
                sim.crash(nodes[*node].as_str());
                controls.storage[*node].wipe();
                controls.gone.lock().insert(*node);
                sim.bounce(nodes[*node].as_str());
                format!("restart {} on a wiped disk", nodes[*node])
            }
            Fault::StallFollower => {
                let Some(leader) = leader else {
                    return "stall a follower: no leader known".into();
                };
                let follower = (leader + 1) % controls.initial_voters;
                *controls.stalled.lock() = Some(follower);
                Fault::Crash(follower).inject(sim, controls, None)
            }
            Fault::WipeFollowerAndStopLeader => {
                let stalled = controls.stalled.lock().take();
                let (Some(leader), Some(stalled)) = (leader, stalled) else {
                    return "wipe a follower: no leader or no stalled follower".into();
                };
                let Some(other) =
                    (0..controls.initial_voters).find(|n| *n != leader && *n != stalled)
                else {
                    return "wipe a follower: none left".into();
                };
                let wiped = Fault::Wipe(other).inject(sim, controls, None);
                let stopped = Fault::Crash(leader).inject(sim, controls, None);
                sim.bounce(controls.hosts[stalled].as_str());
                format!("{wiped}; {stopped}; restart {}", controls.hosts[stalled])
            }
            Fault::CrashInstallingSnapshot => {
                let counts = controls
                    .storage
                    .iter()
                    .map(|s| s.persistence.replacements())
                    .collect();
                *controls.installs_armed.lock() = Some(counts);
                "crash the next node to install a snapshot, as it does".into()
            }
            Fault::Heal => {
                heal(sim, controls);
                "heal".into()
            }
        }
    }
}

/// Repairs every link, gives failing disks back (restarting their nodes), restarts every
/// stopped node, sets every clock right and restores latency.
pub fn heal(sim: &mut turmoil::Sim<'_>, controls: &Controls) {
    let nodes = &controls.hosts;
    for (node, failing) in controls.failing.iter().enumerate() {
        if failing.swap(false, Ordering::SeqCst) {
            controls.storage[node].log.set_failing(false);
            controls.crash(sim, node);
        }
    }
    for clock in &controls.clocks {
        clock.set(0);
    }
    for a in nodes {
        for b in nodes {
            if a != b {
                sim.set_link_fail_rate(a.as_str(), b.as_str(), 0.0);
                sim.repair(a.as_str(), b.as_str());
            }
        }
    }
    for node in nodes {
        if !sim.is_host_running(node.as_str()) {
            sim.bounce(node.as_str());
        }
    }
    sim.set_max_message_latency(Duration::from_millis(10));
}
