//! `pemba-bench catch-up`: a learner added to a node that holds many relationships catches up
//! through a snapshot. Measured: how long until it has applied what the leader had when it
//! was added, both nodes' resident memory, the leader's write latency before and during the
//! transfer, and whether the learner's state digest then equals the leader's.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use pemba_benches::{document_sharing, DOCUMENT_SHARING_SCHEMA};

use crate::process::{free_port, resident_bytes, Server};
use crate::scrape::scrape;
use crate::systems::{pemba_args, Setup};
use crate::target::Target;
use crate::workload::{self, Load, Shape, Workload};

const SECRET: &str = "pemba-bench-catch-up";

/// What to measure with.
pub struct CatchUpOptions {
    pub relationships: usize,
    /// The write load run before the learner is added and again from the moment it is.
    pub writes: Load,
    /// How long the learner may take.
    pub within: Duration,
}

/// One node of the two: its process, metrics address and cluster address.
struct Node {
    server: Server,
    metrics: String,
    cluster_addr: String,
}

fn start_node(setup: &Setup, id: u64, founder_addr: Option<&str>) -> anyhow::Result<Node> {
    let (port, metrics_port, cluster_port) = (free_port()?, free_port()?, free_port()?);
    let cluster_addr = format!("127.0.0.1:{cluster_port}");
    // The learner is not among the initial members: it waits to be added.
    let members = format!("1={}", founder_addr.unwrap_or(&cluster_addr));
    let extra = [
        "--node-id",
        &id.to_string(),
        "--cluster-addr",
        &cluster_addr,
        "--initial-members",
        &members,
        "--cluster-secret",
        SECRET,
        // Snapshots every 200 entries (the import takes one per 5,000 relationships), and the
        // log before them purged: the learner must catch up through a snapshot.
        "--snapshot-every",
        "200",
        "--digest-interval",
        "2s",
    ]
    .map(String::from);
    let dir = setup.scratch.join(format!("catch-up-{id}"));
    std::fs::create_dir_all(&dir)?;
    let log = setup.scratch.join(format!("catch-up-{id}.log"));
    let args = pemba_args(port, &dir, Some(metrics_port), &extra);
    let server = Server::start(&setup.pemba, &args, port, &log, &setup.pinning)?;
    Ok(Node {
        server,
        metrics: format!("127.0.0.1:{metrics_port}"),
        cluster_addr,
    })
}

async fn metric(addr: &str, name: &str) -> f64 {
    let counters = scrape(addr).await.unwrap_or_default();
    counters.get(name).copied().unwrap_or(0.0)
}

/// `pemba cluster add 2 <addr>` through the leader.
fn add_learner(pemba: &Path, leader: &Node, learner: &Node) -> anyhow::Result<()> {
    let output = std::process::Command::new(pemba)
        .args(["cluster", "--endpoint", &leader.cluster_addr])
        .args(["add", "2", &learner.cluster_addr])
        .env("PEMBA_CLUSTER_SECRET", SECRET)
        .output()
        .context("running pemba cluster add")?;
    if !output.status.success() {
        bail!(
            "pemba cluster add: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

const MIB: f64 = 1024.0 * 1024.0;

/// Runs the measurement; a paragraph saying what it found.
pub async fn catch_up(options: &CatchUpOptions, setup: &Setup) -> anyhow::Result<String> {
    let leader = start_node(setup, 1, None)?;
    let target = Target::grpc(&leader.server.url(), crate::systems::KEY).await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Err(e) = target.write_schema(DOCUMENT_SHARING_SCHEMA).await {
        if Instant::now() > deadline {
            return Err(e.context("the node elected itself no leader"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let dataset = document_sharing(options.relationships, options.writes.seed);
    let began = Instant::now();
    target.import(&dataset.relationships, 1000).await?;
    let imported_in = began.elapsed();
    let shape = Shape::from(&dataset);
    drop(dataset);
    tokio::time::sleep(Duration::from_secs(2)).await;

    let before = workload::run(&target, Workload::Write, shape, options.writes).await;
    let leader_before = resident_bytes(leader.server.pid());
    let learner = start_node(setup, 2, Some(&leader.cluster_addr))?;
    let goal = metric(&leader.metrics, "pemba_raft_applied_index").await;
    let added = Instant::now();
    add_learner(&setup.pemba, &leader, &learner)?;
    let during = tokio::spawn({
        let (target, writes) = (target.clone(), options.writes);
        async move { workload::run(&target, Workload::Write, shape, writes).await }
    });
    let mut leader_peak = leader_before;
    let caught_up = loop {
        leader_peak = leader_peak.max(resident_bytes(leader.server.pid()));
        if metric(&learner.metrics, "pemba_raft_applied_index").await >= goal {
            break added.elapsed();
        }
        if added.elapsed() > options.within {
            bail!("the learner did not catch up within {:?}", options.within);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let during = during.await?;
    let digests = digests_compared(&learner.metrics).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let learner_final = resident_bytes(learner.server.pid());
    let installed = metric(&learner.metrics, "pemba_raft_snapshots_installed_total").await;
    let learner_peak = learner.server.usage().peak_rss_bytes;
    let (p99_before, p99_during) = (before.quantile_ms(0.99), during.quantile_ms(0.99));
    Ok(format!(
        "Learner catch-up, {} relationships (imported in {:.0?}): the learner applied the \
         leader's index {goal:.0} {:.1?} after `pemba cluster add`, having installed \
         {installed:.0} snapshot(s). Learner RSS: peak {:.0} MiB, \
         final {:.0} MiB (peak - final {:.0} MiB). Leader RSS: {:.0} MiB before, at most {:.0} \
         MiB during (+{:.0} MiB). Single writes ({} clients): p99 {p99_before:.1} ms before, \
         {p99_during:.1} ms from the add on ({:.1}x), {} errors. Digests: {digests}.",
        options.relationships,
        imported_in,
        caught_up,
        learner_peak as f64 / MIB,
        learner_final as f64 / MIB,
        (learner_peak as f64 - learner_final as f64) / MIB,
        leader_before as f64 / MIB,
        leader_peak as f64 / MIB,
        (leader_peak as f64 - leader_before as f64) / MIB,
        options.writes.concurrency,
        p99_during / p99_before.max(f64::MIN_POSITIVE),
        during.errors,
    ))
}

/// Waits until the learner compared at least one of the leader's digests with its own; fails
/// on a mismatch.
async fn digests_compared(learner_metrics: &str) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let counters = scrape(learner_metrics).await.unwrap_or_default();
        let counter = |name: &str| counters.get(name).copied().unwrap_or(0.0);
        let matched = counter("pemba_raft_digest_matches_total");
        let mismatched = counter("pemba_raft_digest_mismatches_total");
        if mismatched > 0.0 {
            bail!("the learner's state digest differs from the leader's");
        }
        if matched > 0.0 {
            return Ok(format!(
                "{matched:.0} of the leader's equal to the learner's"
            ));
        }
        if Instant::now() > deadline {
            bail!("the learner compared no digest within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
