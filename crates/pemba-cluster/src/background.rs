//! What a replica does on its own: settle its standing, name the cluster, keep the log's time
//! and its staleness confirmation current, and say loudly when its Raft stops. Every task ends
//! when the replica is dropped or its Raft stops.

use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use openraft::error::Fatal;
use openraft::ServerState;
use pemba_proto::pemba::cluster::v1 as proto;
use pemba_raft::{NodeId, RaftMetrics, Request, SeededRng};
use rand::Rng;
use tokio::time::{sleep, sleep_until, timeout, Instant};

use crate::clock_bound::{Change, Sample};
use crate::founding;
use crate::leader::RETRY_PAUSE;
use crate::replica::Replica;

/// Starts every background task of `replica`.
pub fn spawn_all(replica: &Arc<Replica>, clock_tick: Duration, digest_every: Duration) {
    tokio::spawn(founding::settle(Arc::downgrade(replica)));
    tokio::spawn(name_cluster(Arc::downgrade(replica)));
    tokio::spawn(advance_clock(Arc::downgrade(replica), clock_tick));
    tokio::spawn(keep_fresh(Arc::downgrade(replica)));
    tokio::spawn(watch_clocks(Arc::downgrade(replica)));
    tokio::spawn(checkpoint_digests(Arc::downgrade(replica), digest_every));
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
            if leads && !replica.clock_bound.skewed() {
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
/// revision's time lags its clock by half a `tick` or more, it appends a [`Request::Tick`].
/// Busy clusters need none (every write carries the leader's time). Half a tick, checked every
/// quarter, leaves room for the tick's own round trip to the followers, so that a read index
/// (which needs a revision recorded within a tick of the read) seldom has to record a tick itself.
async fn advance_clock(replica: Weak<Replica>, tick: Duration) {
    let tick = tick.max(Duration::from_millis(10));
    loop {
        sleep(tick / 4).await;
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
        let Some(now) = replica.clock_bound.stamp((replica.clock)()) else {
            continue;
        };
        let lag = now
            .duration_since(replica.datastore.head_time())
            .unwrap_or_default();
        if leads && lag >= tick / 2 && !replica.clock_bound.skewed() {
            let ticked = replica.raft.client_write(Request::Tick { timestamp: now });
            if let Err(e) = ticked.await {
                tracing::debug!(error = %e, "advancing the log's clock");
            }
        }
    }
}

/// While this node leads, appends its state digest at its newest applied revision every
/// `every` (when that revision moved since the last one), so that every replica compares it
/// with its own digest of that revision (see [`Request::Checkpoint`]).
async fn checkpoint_digests(replica: Weak<Replica>, every: Duration) {
    let every = every.max(Duration::from_millis(10));
    let mut last = 0;
    loop {
        sleep(every).await;
        let Some(replica) = Replica::running(&replica) else {
            return;
        };
        let leads = replica.raft.metrics().borrow().state == ServerState::Leader;
        let Some((revision, digest)) = replica.datastore.digest() else {
            continue;
        };
        if leads && revision > last && replica.divergence().is_none() {
            let checkpoint = Request::Checkpoint { revision, digest };
            match replica.raft.client_write(checkpoint).await {
                Ok(_) => last = revision,
                Err(e) => tracing::debug!(error = %e, "appending a state digest"),
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
        let Some(replica) = Replica::running(&replica) else {
            return;
        };
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

/// How often a node measures the other voters' clocks.
const CLOCK_CHECK_EVERY: Duration = Duration::from_millis(500);
/// How long a peer may take to tell its time.
const CLOCK_PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Measures the other voters' clocks (see [`crate::clock_bound`]) and keeps a skewed node from
/// leading: it neither elects itself nor sends heartbeats (a skewed leader also refuses writes
/// and read indexes), so the others elect a leader with a good clock and it steps down.
async fn watch_clocks(replica: Weak<Replica>) {
    loop {
        let Some(replica) = Replica::running(&replica) else {
            return;
        };
        let (voters, samples, at, own) = measure_clocks(&replica).await;
        let change = replica.clock_bound.record(at, own, &samples, voters);
        let skewed = replica.clock_bound.skewed();
        let offset = replica.clock_bound.offset_seconds().unwrap_or_default();
        match change {
            Change::Skewed => tracing::error!(
                offset_seconds = offset,
                max_offset = ?replica.clock_bound.max_offset(),
                "this node's wall clock is off the other voters' by more than --max-clock-offset: it will not lead until its clock is corrected (check NTP)"
            ),
            Change::Recovered => tracing::info!(
                offset_seconds = offset,
                "this node's wall clock is back within --max-clock-offset of the other voters'"
            ),
            Change::None => {}
        }
        let runtime = replica.raft.runtime_config();
        runtime.elect(!skewed);
        runtime.heartbeat(!skewed);
        drop(replica);
        sleep(CLOCK_CHECK_EVERY).await;
    }
}

/// The other voters' clocks as samples, with the voter count, and this node's monotonic and
/// wall clocks at the middle of the measurement.
async fn measure_clocks(replica: &Replica) -> (usize, Vec<Sample>, Instant, SystemTime) {
    let metrics = replica.metrics();
    let membership = metrics.membership_config.membership();
    let voters: Vec<(NodeId, String)> = membership
        .voter_ids()
        .filter_map(|id| membership.get_node(&id).map(|n| (id, n.addr.clone())))
        .collect();
    let mut probes = tokio::task::JoinSet::new();
    for (id, addr) in voters.iter().filter(|(id, _)| *id != replica.node_id) {
        let Ok(mut client) = replica.peers.client(addr) else {
            continue;
        };
        let request = replica
            .peers
            .request(proto::TimeRequest {}, CLOCK_PROBE_TIMEOUT);
        let (clock, id) = (replica.clock.clone(), *id);
        probes.spawn(async move {
            let (sent, sent_wall) = (Instant::now(), clock());
            let answer = timeout(CLOCK_PROBE_TIMEOUT, client.time(request)).await;
            let received = Instant::now();
            match answer {
                Ok(Ok(time)) => {
                    let nanos = time.into_inner().unix_nanos;
                    let peer = match u64::try_from(nanos) {
                        Ok(after) => UNIX_EPOCH + Duration::from_nanos(after),
                        Err(_) => UNIX_EPOCH,
                    };
                    Some(Sample::measure(sent, sent_wall, received, peer))
                }
                _ => {
                    tracing::debug!(peer = id, "no clock reading");
                    None
                }
            }
        });
    }
    let at = Instant::now();
    let own = (replica.clock)();
    let mut samples = Vec::new();
    while let Some(answer) = probes.join_next().await {
        samples.extend(answer.ok().flatten());
    }
    (voters.len(), samples, at, own)
}
