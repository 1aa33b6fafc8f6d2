//! A rolling upgrade under write load: three nodes start as a build that reads log format 1 only
//! (`--newest-log-format 1`, the test build of "the previous release"), and are restarted one at
//! a time as the current build. The cluster keeps writing format 1 while any node reads only
//! that, raises the format by itself once the last node is upgraded, and then groups writes; no
//! acknowledged write is lost, no write fails, and every replica's state digest keeps matching
//! the leader's. A node of the old build is then refused as a new member.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use pemba_proto::authzed::api::v1::permissions_service_client::PermissionsServiceClient;
use support::cluster_node::{agreed_leader, cli_fails, local_cluster, touch, Node};
use support::{free_port, metric, stored_documents};
use tonic::transport::Channel;

const WRITERS: usize = 8;

/// What the writers did: the documents acknowledged, and the writes that never were.
#[derive(Default)]
struct Ledger {
    acknowledged: Vec<String>,
    failed: Vec<String>,
}

/// Writes `document:<writer>-<n>#viewer@user:tom` one after another, each through the first
/// node (in turn from `start`) that acknowledges it within 30 s; a node that is down is skipped.
async fn write_until_stopped(
    urls: Vec<String>,
    writer: usize,
    stop: Arc<AtomicBool>,
    ledger: Arc<Mutex<Ledger>>,
) {
    let mut clients: Vec<Option<PermissionsServiceClient<Channel>>> = vec![None; urls.len()];
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        let document = format!("w{writer}-{n}");
        n += 1;
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut at = writer + n;
        let written = loop {
            let i = at % urls.len();
            at += 1;
            if clients[i].is_none() {
                clients[i] = PermissionsServiceClient::connect(urls[i].clone())
                    .await
                    .ok();
            }
            if let Some(client) = clients[i].as_mut() {
                match touch(client, &document, "tom").await {
                    Ok(_) => break true,
                    Err(_) => clients[i] = None,
                }
            }
            if Instant::now() > deadline {
                break false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let mut ledger = ledger.lock();
        match written {
            true => ledger.acknowledged.push(document),
            false => ledger.failed.push(document),
        }
    }
}

/// Each running node's applied log format.
fn formats(nodes: &[Node]) -> Vec<Option<f64>> {
    nodes
        .iter()
        .map(|node| metric(&node.metrics_addr, "pemba_log_format"))
        .collect()
}

/// The log entries of writes the nodes proposed as leaders, and the writes in them.
fn grouping(nodes: &[Node]) -> (f64, f64) {
    let sum = |name: &str| -> f64 {
        nodes
            .iter()
            .filter_map(|n| metric(&n.metrics_addr, name))
            .sum()
    };
    (
        sum("pemba_raft_write_groups_total"),
        sum("pemba_raft_grouped_writes_total"),
    )
}

/// Waits until a node of `nodes` is ready again after its restart.
async fn wait_ready(node: &Node) {
    let addr = node.metrics_addr.clone();
    tokio::task::spawn_blocking(move || support::wait_ready(&addr))
        .await
        .expect("the wait ends");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_upgrade_under_writes_raises_the_log_format_once_every_node_reads_it() {
    let root = tempfile::tempdir().expect("a temp dir");
    let mut nodes = local_cluster(root.path(), 3);
    let old_build = ["--newest-log-format", "1", "--digest-interval", "1s"].map(String::from);
    for node in &mut nodes {
        node.extra = old_build.to_vec();
        node.start();
    }
    let all: Vec<&Node> = nodes.iter().collect();
    agreed_leader(&all, &[1, 2, 3], Duration::from_secs(30)).await;
    nodes[0]
        .write_viewer_schema()
        .await
        .expect("the schema is written");

    let stop = Arc::new(AtomicBool::new(false));
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let urls: Vec<String> = nodes.iter().map(Node::url).collect();
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            tokio::spawn(write_until_stopped(
                urls.clone(),
                w,
                stop.clone(),
                ledger.clone(),
            ))
        })
        .collect();

    for i in 0..nodes.len() {
        tokio::time::sleep(Duration::from_secs(2)).await;
        // Some node still reads only format 1: the cluster writes format 1.
        assert!(
            formats(&nodes).iter().flatten().all(|f| *f == 1.0),
            "the format was raised before every node read it: {:?}",
            formats(&nodes)
        );
        assert!(nodes[i].terminate(), "node {} stops cleanly", nodes[i].id);
        nodes[i].extra = ["--digest-interval", "1s"].map(String::from).to_vec();
        nodes[i].start();
        wait_ready(&nodes[i]).await;
    }

    // Every node now reads format 2: the leader raises it by itself.
    let deadline = Instant::now() + Duration::from_secs(20);
    while formats(&nodes) != [Some(2.0); 3] {
        assert!(
            Instant::now() < deadline,
            "the format stayed {:?}",
            formats(&nodes)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A node of the old build can no longer join: it would stop at the first grouped entry.
    let old_addr = format!("127.0.0.1:{}", free_port());
    let mut old = Node::new(root.path(), 4, &old_addr, &nodes[0].members);
    old.extra = old_build.to_vec();
    old.start();
    let endpoint = nodes[0].cluster_addr.clone();
    let refused = cli_fails(&["cluster", "--endpoint", &endpoint, "add", "4", &old_addr]);
    assert!(
        refused.contains("reads Raft log formats up to 1, but the cluster writes format 2"),
        "{refused}"
    );
    drop(old);
    let before = grouping(&nodes);
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.await.expect("the writer ends");
    }

    let ledger = std::mem::take(&mut *ledger.lock());
    assert!(
        ledger.failed.is_empty(),
        "writes that failed: {:?}",
        ledger.failed
    );
    assert!(
        ledger.acknowledged.len() > 100,
        "only {} writes",
        ledger.acknowledged.len()
    );
    let after = grouping(&nodes);
    let (entries, writes) = (after.0 - before.0, after.1 - before.1);
    assert!(
        writes > entries,
        "after the raise, {writes} writes went into {entries} entries: none was grouped"
    );
    for node in &nodes {
        let stored = stored_documents(&mut node.permissions().await).await;
        let missing: Vec<_> = ledger
            .acknowledged
            .iter()
            .filter(|d| !stored.contains(&format!("document:{d}#viewer@user:tom")))
            .collect();
        assert!(
            missing.is_empty(),
            "node {} lost acknowledged writes: {missing:?}",
            node.id
        );
        let mismatches = metric(&node.metrics_addr, "pemba_raft_digest_mismatches_total");
        assert_eq!(
            mismatches,
            Some(0.0),
            "node {}'s state digest differed",
            node.id
        );
    }
    let matched: f64 = nodes
        .iter()
        .filter_map(|n| metric(&n.metrics_addr, "pemba_raft_digest_matches_total"))
        .sum();
    assert!(matched > 0.0, "no digest was compared after the upgrade");
}
