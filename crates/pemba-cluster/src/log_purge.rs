//! When a node forgets the log a snapshot covers.
//!
//! openraft purges the log behind each new snapshot, keeping a fixed number of entries. A
//! follower that needs a snapshot (a new learner, one long down) takes a while to install it
//! (seconds at millions of relationships); with writes going on, the leader meanwhile builds
//! newer snapshots and, purging behind them, forgets the entries that follow the one being
//! installed, so the follower needs yet another snapshot (and the install after it holds two
//! states in memory at once). So the leader here keeps the log a follower still needs, up to
//! a bound (as TiKV's log GC does): what it purges is decided below, and openraft's own purge
//! is switched off (see `replica::raft_config`).

use std::sync::Weak;
use std::time::Duration;

use crate::replica::Replica;

/// How often the purge is reconsidered.
const PURGE_EVERY: Duration = Duration::from_secs(1);

/// What the purge rule needs to know about this node's log and its followers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogPosition {
    /// The last entry the newest snapshot covers, if there is a snapshot.
    pub snapshot: Option<u64>,
    /// The last entry purged, if any.
    pub purged: Option<u64>,
    /// When this node leads: each follower's (and learner's) last entry known to match the
    /// leader's log (`None`: none yet, as for a follower still installing its first snapshot).
    pub followers: Option<Vec<Option<u64>>>,
}

/// The last entry this node may purge now, if that is more than it has.
///
/// Never past the snapshot, and always keeps `keep` entries before it (so that a follower a
/// little behind catches up from the log). A leader also keeps what its slowest follower has
/// yet to receive, but never more than `catch_up` entries before the snapshot: a follower
/// dead for good must not make the log grow without end.
pub(crate) fn purge_upto(position: &LogPosition, keep: u64, catch_up: u64) -> Option<u64> {
    let snapshot = position.snapshot?;
    let kept_back = |entries: u64| snapshot.checked_sub(entries);
    let mut upto = kept_back(keep);
    let slowest = position.followers.iter().flatten().min();
    if let Some(&slowest) = slowest {
        upto = upto.min(slowest).max(kept_back(catch_up.max(keep)));
    }
    let upto = upto?;
    (position.purged < Some(upto)).then_some(upto)
}

/// Purges this node's log by [`purge_upto`] every [`PURGE_EVERY`], until the replica stops.
pub(crate) async fn purge(replica: Weak<Replica>, keep: u64, catch_up: u64) {
    loop {
        tokio::time::sleep(PURGE_EVERY).await;
        let Some(replica) = Replica::running(&replica) else {
            return;
        };
        let position = {
            let metrics = replica.raft.metrics();
            let metrics = metrics.borrow();
            LogPosition {
                snapshot: metrics.snapshot.map(|id| id.index),
                purged: metrics.purged.map(|id| id.index),
                followers: metrics.replication.as_ref().map(|matched| {
                    matched
                        .iter()
                        .filter(|(id, _)| **id != replica.node_id)
                        .map(|(_, id)| id.map(|id| id.index))
                        .collect()
                }),
            }
        };
        if let Some(upto) = purge_upto(&position, keep, catch_up) {
            if let Err(e) = replica.raft.trigger().purge_log(upto).await {
                tracing::debug!(error = %e, upto, "purging the log");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn position(
        snapshot: u64,
        purged: Option<u64>,
        followers: Option<&[Option<u64>]>,
    ) -> LogPosition {
        LogPosition {
            snapshot: Some(snapshot),
            purged,
            followers: followers.map(|f| f.to_vec()),
        }
    }

    #[test]
    fn a_follower_keeps_a_fixed_number_of_entries_behind_the_snapshot() {
        assert_eq!(
            purge_upto(&position(5_000, None, None), 1_000, 100_000),
            Some(4_000)
        );
        assert_eq!(
            purge_upto(&position(5_000, Some(4_000), None), 1_000, 100_000),
            None
        );
        assert_eq!(purge_upto(&position(500, None, None), 1_000, 100_000), None);
        let no_snapshot = LogPosition {
            snapshot: None,
            purged: None,
            followers: None,
        };
        assert_eq!(purge_upto(&no_snapshot, 1_000, 100_000), None);
    }

    #[test]
    fn a_leader_keeps_what_its_slowest_follower_still_needs() {
        let caught_up = [Some(9_000), Some(9_500)];
        assert_eq!(
            purge_upto(&position(9_000, None, Some(&caught_up)), 1_000, 100_000),
            Some(8_000)
        );
        let behind = [Some(9_000), Some(2_000)];
        assert_eq!(
            purge_upto(&position(9_000, None, Some(&behind)), 1_000, 100_000),
            Some(2_000)
        );
        // A learner installing its first snapshot has received nothing: nothing is purged
        // until the bound.
        let installing = [Some(9_000), None];
        assert_eq!(
            purge_upto(&position(9_000, None, Some(&installing)), 1_000, 100_000),
            None
        );
        assert_eq!(
            purge_upto(&position(150_000, None, Some(&installing)), 1_000, 100_000),
            Some(50_000)
        );
        // A leader without followers keeps what any node keeps.
        assert_eq!(
            purge_upto(&position(9_000, None, Some(&[])), 1_000, 100_000),
            Some(8_000)
        );
        // With a bound no larger than what is always kept, followers change nothing.
        assert_eq!(
            purge_upto(&position(9_000, None, Some(&installing)), 1_000, 0),
            Some(8_000)
        );
    }
}
