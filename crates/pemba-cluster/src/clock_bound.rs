//! The clock bound: how far a node's wall clock may stray from its cluster's.
//!
//! The log's time, which decides expirations, comes from the leader's wall clock. So every node
//! measures the other voters' clocks (a round trip each, half of which is the uncertainty) and
//! keeps two things:
//! - whether its own clock differs from a majority of them by more than the bound
//!   (`--max-clock-offset`). Such a node is *skewed*: it does not lead, and steps down if it
//!   leads;
//! - the cluster's clock: the median of the voters' clocks (its own included) at a monotonic
//!   instant, carried forward on the monotonic clock. A leader stamps entries with its own clock
//!   held within the bound of that, so that even a jump of its clock between two measurements
//!   moves the log's time at most the bound past the majority's clocks.
//!
//! With clocks right to within the bound, expirations then take effect within the bound plus one
//! clock tick of real time.

use std::time::{Duration, SystemTime};

use parking_lot::Mutex;
use tokio::time::Instant;

/// One peer's clock as measured from here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// The peer's clock minus this node's, in nanoseconds.
    pub offset_nanos: i128,
    /// Half the round trip: the peer read its clock somewhere within it.
    pub uncertainty: Duration,
}

impl Sample {
    /// A sample from a call sent at `sent` (this node's wall clock `sent_wall`) and answered at
    /// `received`, in which the peer read `peer_wall`.
    pub fn measure(
        sent: Instant,
        sent_wall: SystemTime,
        received: Instant,
        peer_wall: SystemTime,
    ) -> Sample {
        let half = received.saturating_duration_since(sent) / 2;
        let midpoint = sent_wall + half;
        Sample {
            offset_nanos: signed_nanos(peer_wall, midpoint),
            uncertainty: half,
        }
    }
}

/// `a − b` in nanoseconds.
fn signed_nanos(a: SystemTime, b: SystemTime) -> i128 {
    match a.duration_since(b) {
        Ok(ahead) => ahead.as_nanos() as i128,
        Err(behind) => -(behind.duration().as_nanos() as i128),
    }
}

fn shifted(time: SystemTime, nanos: i128) -> SystemTime {
    let magnitude = Duration::from_nanos(nanos.unsigned_abs().min(u64::MAX as u128) as u64);
    match nanos >= 0 {
        true => time + magnitude,
        false => time
            .checked_sub(magnitude)
            .unwrap_or(SystemTime::UNIX_EPOCH),
    }
}

#[derive(Debug, Default)]
struct State {
    /// The cluster's clock at a monotonic instant.
    reference: Option<(Instant, SystemTime)>,
    /// This node's clock minus the cluster's, as last measured.
    offset_nanos: Option<i128>,
    skewed: bool,
}

/// This node's standing against its cluster's clocks.
pub struct ClockBound {
    max_offset: Duration,
    state: Mutex<State>,
    /// The deliberate bug: never skewed, stamps with the node's own clock.
    #[cfg(feature = "fault-injection")]
    pub(crate) ignored: std::sync::atomic::AtomicBool,
}

/// What a measurement changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    None,
    /// This node's clock went out of bounds.
    Skewed,
    /// It came back within them.
    Recovered,
}

impl ClockBound {
    pub fn new(max_offset: Duration) -> Self {
        Self {
            max_offset,
            state: Mutex::new(State::default()),
            #[cfg(feature = "fault-injection")]
            ignored: std::sync::atomic::AtomicBool::new(false),
        }
    }

    pub fn max_offset(&self) -> Duration {
        self.max_offset
    }

    /// Takes the samples of the peers that answered, measured at `at` when this node's clock
    /// read `own`. Nothing changes unless they and this node make a majority of `voters`. This
    /// node is skewed when its clock is beyond the bound (uncertainty allowed for) from a strict
    /// majority of the peers that answered.
    pub fn record(
        &self,
        at: Instant,
        own: SystemTime,
        samples: &[Sample],
        voters: usize,
    ) -> Change {
        if voters == 0 || samples.len() < voters / 2 {
            return Change::None;
        }
        let bound = self.max_offset.as_nanos() as i128;
        let beyond = samples
            .iter()
            .filter(|s| s.offset_nanos.abs() - s.uncertainty.as_nanos() as i128 > bound)
            .count();
        let skewed = !samples.is_empty() && beyond * 2 > samples.len();
        let mut offsets: Vec<i128> = samples.iter().map(|s| s.offset_nanos).collect();
        offsets.push(0);
        offsets.sort_unstable();
        let median = match offsets.len() % 2 {
            1 => offsets[offsets.len() / 2],
            _ => (offsets[offsets.len() / 2 - 1] + offsets[offsets.len() / 2]) / 2,
        };
        let mut state = self.state.lock();
        state.reference = Some((at, shifted(own, median)));
        state.offset_nanos = Some(-median);
        let change = match (state.skewed, skewed) {
            (false, true) => Change::Skewed,
            (true, false) => Change::Recovered,
            _ => Change::None,
        };
        state.skewed = skewed;
        change
    }

    /// Whether this node's clock is out of bounds (as last measured).
    pub fn skewed(&self) -> bool {
        #[cfg(feature = "fault-injection")]
        if self.ignored.load(std::sync::atomic::Ordering::Relaxed) {
            return false;
        }
        self.state.lock().skewed
    }

    /// This node's clock minus the cluster's, in seconds, as last measured.
    pub fn offset_seconds(&self) -> Option<f64> {
        self.state
            .lock()
            .offset_nanos
            .map(|n| n as f64 / 1_000_000_000.0)
    }

    /// The time a leader records for an entry: its clock `own`, held within the bound of the
    /// cluster's clock carried forward from the last measurement. None before the first
    /// measurement (a leader then records no time at all: its clock is not yet known to be
    /// right).
    pub fn stamp(&self, own: SystemTime) -> Option<SystemTime> {
        #[cfg(feature = "fault-injection")]
        if self.ignored.load(std::sync::atomic::Ordering::Relaxed) {
            return Some(own);
        }
        let (at, cluster) = self.state.lock().reference?;
        let now = cluster + at.elapsed();
        let earliest = now
            .checked_sub(self.max_offset)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        Some(own.clamp(earliest, now + self.max_offset))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: i128 = 1_000_000_000;

    fn sample(offset_seconds: i128) -> Sample {
        Sample {
            offset_nanos: offset_seconds * SECOND,
            uncertainty: Duration::from_millis(1),
        }
    }

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
    }

    #[tokio::test(start_paused = true)]
    async fn a_node_behind_or_ahead_of_the_majority_is_skewed_and_the_others_are_not() {
        let bound = ClockBound::new(Duration::from_millis(500));
        // 120 s behind both peers.
        let change = bound.record(Instant::now(), at(1000), &[sample(120), sample(120)], 3);
        assert_eq!(change, Change::Skewed);
        assert_eq!(bound.offset_seconds(), Some(-120.0));
        // A peer 120 s behind: this node is right with the majority.
        let healthy = ClockBound::new(Duration::from_millis(500));
        let change = healthy.record(Instant::now(), at(1000), &[sample(-120), sample(0)], 3);
        assert_eq!(change, Change::None);
        assert!(!healthy.skewed());
        // Back within the bound.
        let change = bound.record(Instant::now(), at(1000), &[sample(0), sample(0)], 3);
        assert_eq!(change, Change::Recovered);
    }

    #[tokio::test(start_paused = true)]
    async fn too_few_answers_change_nothing_and_uncertainty_is_allowed_for() {
        let bound = ClockBound::new(Duration::from_millis(500));
        assert_eq!(bound.record(Instant::now(), at(1000), &[], 3), Change::None);
        assert_eq!(
            bound.record(Instant::now(), at(1000), &[sample(120)], 5),
            Change::None
        );
        assert_eq!(bound.record(Instant::now(), at(1000), &[], 0), Change::None);
        assert_eq!(bound.stamp(at(1000)), None);
        // One voter alone: its own clock is the cluster's.
        assert_eq!(bound.record(Instant::now(), at(1000), &[], 1), Change::None);
        assert_eq!(bound.stamp(at(1000)), Some(at(1000)));
        assert!(!bound.skewed());
        let vague = Sample {
            offset_nanos: 700_000_000,
            uncertainty: Duration::from_millis(300),
        };
        assert_eq!(
            bound.record(Instant::now(), at(1000), &[vague, vague], 3),
            Change::None
        );
    }

    #[tokio::test(start_paused = true)]
    async fn stamps_stay_within_the_bound_of_the_cluster_clock_after_a_jump() {
        let bound = ClockBound::new(Duration::from_millis(500));
        assert_eq!(bound.stamp(at(7)), None, "no time before any measurement");
        bound.record(Instant::now(), at(1000), &[sample(0), sample(0)], 3);
        tokio::time::sleep(Duration::from_secs(10)).await;
        // This node's clock jumped 120 s ahead since: the stamp moves at most the bound past.
        assert_eq!(
            bound.stamp(at(1130)),
            Some(at(1010) + Duration::from_millis(500))
        );
        assert_eq!(
            bound.stamp(at(890)),
            Some(at(1010) - Duration::from_millis(500))
        );
        assert_eq!(bound.stamp(at(1010)), Some(at(1010)));
    }

    #[test]
    fn a_sample_takes_the_midpoint_of_the_round_trip() {
        let sent = Instant::now();
        let received = sent + Duration::from_millis(200);
        let sample = Sample::measure(
            sent,
            at(1000),
            received,
            at(1000) + Duration::from_millis(300),
        );
        assert_eq!(sample.uncertainty, Duration::from_millis(100));
        assert_eq!(sample.offset_nanos, 200_000_000);
    }
}
