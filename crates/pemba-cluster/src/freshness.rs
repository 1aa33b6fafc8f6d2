//! How recent a node's state is known to be: the bound on the staleness of its reads.
//!
//! A node cannot tell from its own state whether it is stale: a replica cut off from the cluster,
//! or a leader that lost its quorum, holds state that looks complete. What bounds staleness is a
//! *confirmation*: a read index from the leader, which a quorum confirmed to include every write
//! committed before the request for it was sent. If a confirmation asked for at instant `t`
//! returned revision `r`, then every write the cluster committed before `t` is at or below `r`.
//! A read arriving at `a` may be answered at a revision `≥ r` whenever `a − t ≤ bound`: it then
//! includes everything committed `bound` before it arrived.
//!
//! Every node renews its confirmation in the background (a third of the bound after the last
//! one, at once after a failure), so a healthy node always holds one within the bound and reads
//! wait for nothing. Instants come from the monotonic clock (tokio's, which a simulation drives):
//! wall-clock skew cannot stretch the bound.

use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::time::{timeout_at, Instant};

/// A revision confirmed by the leader's quorum to include every write committed before `asked`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Confirmation {
    pub revision: u64,
    /// When the confirmation was asked for (before the request left this node).
    pub asked: Instant,
}

/// Why no confirmation within the bound could be had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stale {
    /// How old the newest confirmation is, if there is one.
    pub age: Option<Duration>,
    /// The staleness bound.
    pub bound: Duration,
    /// Why the last attempt to renew it failed, if one did.
    pub problem: Option<String>,
}

impl std::fmt::Display for Stale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.age {
            Some(age) => write!(
                f,
                "this node's state may be stale: a leader with a quorum last confirmed it {:.1} s ago, longer than the staleness bound ({:.1} s)",
                age.as_secs_f64(),
                self.bound.as_secs_f64()
            )?,
            None => write!(
                f,
                "this node has not yet been confirmed current by a leader with a quorum (staleness bound {:.1} s)",
                self.bound.as_secs_f64()
            )?,
        }
        if let Some(problem) = &self.problem {
            write!(f, "; the last attempt failed: {problem}")?;
        }
        write!(f, "; retry on another node")
    }
}

/// The newest confirmation of one node, and the bound reads are held to.
pub struct Freshness {
    bound: Duration,
    newest: watch::Sender<Option<Confirmation>>,
    problem: Mutex<Option<String>>,
}

impl Freshness {
    pub fn new(bound: Duration) -> Self {
        Self {
            bound,
            newest: watch::Sender::new(None),
            problem: Mutex::new(None),
        }
    }

    /// The staleness bound.
    pub fn bound(&self) -> Duration {
        self.bound
    }

    /// Records a confirmation (kept only if newer than the one held).
    pub fn confirmed(&self, confirmation: Confirmation) {
        *self.problem.lock() = None;
        self.newest.send_if_modified(|held| match held {
            Some(h) if h.asked >= confirmation.asked => false,
            _ => {
                *held = Some(confirmation);
                true
            }
        });
    }

    /// Records why an attempt to renew the confirmation failed.
    pub fn failed(&self, problem: String) {
        *self.problem.lock() = Some(problem);
    }

    /// The newest confirmation.
    pub fn newest(&self) -> Option<Confirmation> {
        *self.newest.borrow()
    }

    /// How old the newest confirmation is now.
    pub fn age(&self) -> Option<Duration> {
        self.newest().map(|c| c.asked.elapsed())
    }

    /// Whether a read arriving now would be served without waiting.
    pub fn within_bound(&self) -> bool {
        self.age().is_some_and(|age| age <= self.bound)
    }

    /// When the next renewal is due: a third of the bound after the newest confirmation was
    /// asked for, or now if there is none.
    pub fn renewal_due(&self) -> Instant {
        self.newest()
            .map_or_else(Instant::now, |c| c.asked + self.bound / 3)
    }

    /// The newest confirmation good for a read that arrived at `arrived`: one asked for no more
    /// than the bound before it. Waits for one until `deadline`.
    pub async fn for_read(
        &self,
        arrived: Instant,
        deadline: Instant,
    ) -> Result<Confirmation, Stale> {
        // A process younger than the bound takes any confirmation: every one was asked for
        // after the process started, hence less than the bound before the read arrived.
        let oldest_usable = arrived.checked_sub(self.bound);
        let usable = |held: &Option<Confirmation>| {
            held.is_some_and(|c| oldest_usable.is_none_or(|oldest| c.asked >= oldest))
        };
        let mut newest = self.newest.subscribe();
        let found = timeout_at(deadline, newest.wait_for(usable)).await;
        match found {
            Ok(Ok(held)) => Ok(held.expect("usable confirmations exist")),
            _ => Err(self.stale()),
        }
    }

    /// Why reads are not served now.
    pub fn stale(&self) -> Stale {
        Stale {
            age: self.age(),
            bound: self.bound,
            problem: self.problem.lock().clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(asked: Instant, revision: u64) -> Confirmation {
        Confirmation { revision, asked }
    }

    #[tokio::test(start_paused = true)]
    async fn a_read_takes_a_confirmation_asked_for_within_the_bound_before_it_arrived() {
        let freshness = Freshness::new(Duration::from_secs(5));
        tokio::time::sleep(Duration::from_secs(10)).await;
        let start = Instant::now();
        freshness.confirmed(at(start, 7));
        tokio::time::sleep(Duration::from_secs(5)).await;
        let arrived = Instant::now();
        let deadline = arrived + Duration::from_secs(1);
        assert_eq!(
            freshness.for_read(arrived, deadline).await,
            Ok(at(start, 7))
        );
        // A millisecond later the same confirmation is too old: the read waits, then fails.
        tokio::time::sleep(Duration::from_millis(1)).await;
        let arrived = Instant::now();
        let stale = freshness
            .for_read(arrived, arrived + Duration::from_secs(1))
            .await
            .unwrap_err();
        assert_eq!(stale.age, Some(Duration::from_millis(6001)));
        assert!(stale.to_string().contains("6.0 s ago"), "{stale}");
        assert!(!freshness.within_bound());
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_read_is_served_by_a_renewal_and_older_confirmations_are_ignored() {
        let freshness = std::sync::Arc::new(Freshness::new(Duration::from_secs(5)));
        tokio::time::sleep(Duration::from_secs(10)).await;
        let old = Instant::now();
        freshness.confirmed(at(old, 3));
        tokio::time::sleep(Duration::from_secs(9)).await;
        freshness.failed("leader 2 at 10.0.0.2:50061: connection refused".into());
        let arrived = Instant::now();
        let renewing = freshness.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(2)).await;
            renewing.confirmed(at(Instant::now(), 9));
            // A late answer to an earlier request does not replace it.
            renewing.confirmed(at(arrived, 4));
        });
        let got = freshness
            .for_read(arrived, arrived + Duration::from_secs(3))
            .await
            .unwrap();
        assert_eq!(got.revision, 9);
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(freshness.newest().map(|c| c.revision), Some(9));
        assert_eq!(freshness.stale().problem, None);
    }

    #[tokio::test(start_paused = true)]
    async fn without_any_confirmation_reads_fail_at_their_deadline_saying_why() {
        let freshness = Freshness::new(Duration::from_secs(5));
        freshness.failed("no leader is known".into());
        let arrived = Instant::now();
        let stale = freshness
            .for_read(arrived, arrived + Duration::from_millis(500))
            .await
            .unwrap_err();
        assert_eq!(stale.age, None);
        let message = stale.to_string();
        assert!(message.contains("not yet been confirmed"), "{message}");
        assert!(message.contains("no leader is known"), "{message}");
    }
}
