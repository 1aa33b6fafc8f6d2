//! The faults a run injects, on a schedule drawn from its seed.

use std::time::Duration;

use std::sync::Arc;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::ClockOffset;

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
    /// Undo everything: repair links, restart stopped nodes, restore latency.
    Heal,
}

/// Faults with the time each starts: one at a time, each healed before the next.
pub fn schedule(seed: u64, nodes: usize, until: Duration) -> Vec<(Duration, Fault)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_fa17);
    let mut schedule = Vec::new();
    let mut at = Duration::from_millis(rng.gen_range(1500..3000));
    while at + Duration::from_secs(1) < until {
        let fault = match rng.gen_range(0..8) {
            0 => Fault::Partition(rng.gen_range(0..nodes)),
            6 => Fault::ClockJump(rng.gen_range(0..nodes), clock_jump(&mut rng)),
            7 => Fault::LeaderClockJump(clock_jump(&mut rng)),
            1 => {
                let from = rng.gen_range(0..nodes);
                let to = (from + rng.gen_range(1..nodes)) % nodes;
                Fault::OneWay(from, to)
            }
            2 => Fault::Crash(rng.gen_range(0..nodes)),
            3 => Fault::IsolateLeader,
            4 => Fault::Flaky(rng.gen_range(0.001..0.01)),
            _ => Fault::Latency(Duration::from_millis(rng.gen_range(50..300))),
        };
        schedule.push((at, fault));
        at += Duration::from_millis(rng.gen_range(500..2500));
        schedule.push((at, Fault::Heal));
        at += Duration::from_millis(rng.gen_range(300..1500));
    }
    schedule.push((until, Fault::Heal));
    schedule
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
        nodes: &[String],
        clocks: &[Arc<ClockOffset>],
        leader: Option<usize>,
    ) -> String {
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
                sim.crash(nodes[*node].as_str());
                format!("crash {}", nodes[*node])
            }
            Fault::IsolateLeader => match leader {
                Some(leader) => Fault::Partition(leader).inject(sim, nodes, clocks, None),
                None => "isolate the leader: none known".into(),
            },
            Fault::ClockJump(node, millis) => {
                clocks[*node].set(*millis);
                format!("clock of {} off by {millis} ms", nodes[*node])
            }
            Fault::LeaderClockJump(millis) => match leader {
                Some(leader) => Fault::ClockJump(leader, *millis).inject(sim, nodes, clocks, None),
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
            Fault::Heal => {
                heal(sim, nodes);
                for clock in clocks {
                    clock.set(0);
                }
                "heal".into()
            }
        }
    }
}

/// Repairs every link, restarts every stopped node and restores latency.
pub fn heal(sim: &mut turmoil::Sim<'_>, nodes: &[String]) {
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
