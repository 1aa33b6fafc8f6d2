//! What a replica does on its own: settle its standing, name the cluster, keep the log's time
//! and its staleness confirmation current, and say loudly when its Raft stops. Every task ends
//! when the replica is dropped or its Raft stops.

use std::sync::{Arc, Weak};
use std::time::Duration;

use openraft::error::Fatal;
use openraft::ServerState;
use pemba_raft::{RaftMetrics, Request, SeededRng};
use rand::Rng;
use tokio::time::{sleep, sleep_until, timeout, Instant};

use crate::founding;
use crate::leader::RETRY_PAUSE;
use crate::replica::Replica;

/// Starts every background task of `replica`.
pub fn spawn_all(replica: &Arc<Replica>, clock_tick: Duration) {
    tokio::spawn(founding::settle(Arc::downgrade(replica)));
    tokio::spawn(name_cluster(Arc::downgrade(replica)));
    tokio::spawn(advance_clock(Arc::downgrade(replica), clock_tick));
    tokio::spawn(keep_fresh(Arc::downgrade(replica)));
    tokio::spawn(report_fatal(replica.raft.metrics()));
}

/// Names the cluster: whenever this node leads a cluster that has no id yet, it proposes the
/// id recorded at the founding (or, for a cluster founded before founding records, a new one).
async fn name_cluster(replica: Weak<Replica>) {
    let Some(mut metrics) = replica.upgrade().map(|r| r.raft.metrics()) else {
        return;
    };
    loop {
        {
            let Some(replica) = replica.upgrade() else {
                return;
            };
            if replica.cluster_id().is_some() || replica.stopped().is_some() {
                return;
            }
            let leads = metrics.borrow().state == ServerState::Leader;
            if leads {
                let cluster_id = replica
                    .identity
                    .founding()
                    .map(|f| f.cluster_id)
                    .unwrap_or_else(|| format!("{:032x}", SeededRng.gen::<u128>()));
                let named = replica
                    .raft
                    .client_write(Request::InitCluster { cluster_id });
                if let Err(e) = named.await {
                    tracing::debug!(error = %e, "naming the cluster");
                }
            }
        }
        let _ = timeout(Duration::from_secs(1), metrics.changed()).await;
    }
}

/// Keeps the log's time close to the clock: while this node leads, whenever the newest applied
/// revision's time lags its clock by `tick` or more, it appends a [`Request::Tick`]. Busy clusters
/// need none (every write carries the leader's time).
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
            let ticked = replica.raft.client_write(Request::Tick { timestamp: now });
            if let Err(e) = ticked.await {
                tracing::debug!(error = %e, "advancing the log's clock");
            }
        }
    }
}

/// Keeps this node's confirmation (see [`crate::freshness`]) within the staleness bound: renews
/// it a third of the bound after the last one, and after a failure again at once.
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
