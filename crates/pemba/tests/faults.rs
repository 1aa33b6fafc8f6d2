//! Faults as an operator meets them, with `pemba serve` processes: a node cut off from its
//! cluster (follower or leader) stops answering reads without a token once the staleness bound
//! has passed, and says so in `/readyz` and gRPC health; a voter restarted on an empty disk is
//! refused and no acknowledged write is lost; founding members with mismatched
//! `--initial-members` found no cluster; a full disk stops its node while the others serve;
//! fully consistent reads succeed with 300 ms round trips between nodes.
//!
//! The tests run one at a time (each runs three nodes on this machine's two cores). Those that
//! need network namespaces or a tmpfs need root, as CI has; elsewhere they say so and pass.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use pemba_proto::authzed::api::v1 as api;
use pemba_proto::authzed::api::v1::permissions_service_client::PermissionsServiceClient;
use pemba_proto::authzed::api::v1::schema_service_client::SchemaServiceClient;
use support::netns::{is_root, Net, NetNode};
use support::relay::DelayRelay;
use support::{authorized, free_port, http_get, metric, viewer, Server};
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

const SCHEMA: &str = "definition user {}\ndefinition document {\n    relation viewer: user\n}";
const SECRET: &str = "faults-test-secret";
/// `pemba serve`'s default staleness bound.
const MAX_STALENESS: Duration = Duration::from_secs(5);

/// One test at a time.
async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    SERIAL.lock().await
}

fn needs_root(test: &str) -> bool {
    if is_root() {
        return true;
    }
    eprintln!("{test}: skipped, it needs root (network namespaces, mounts); CI runs as root");
    false
}

async fn connect(url: &str) -> Channel {
    Channel::from_shared(url.to_string())
        .expect("a url")
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await
        .expect("connects")
}

fn consistency(requirement: api::consistency::Requirement) -> Option<api::Consistency> {
    Some(api::Consistency {
        requirement: Some(requirement),
    })
}

fn minimize_latency() -> Option<api::Consistency> {
    consistency(api::consistency::Requirement::MinimizeLatency(true))
}

fn fully_consistent() -> Option<api::Consistency> {
    consistency(api::consistency::Requirement::FullyConsistent(true))
}

/// Whether `user` may view `document`, asked with `consistency` and a deadline.
async fn check(
    channel: &Channel,
    document: &str,
    user: &str,
    consistency: Option<api::Consistency>,
    deadline: Duration,
) -> Result<bool, tonic::Status> {
    let mut client = PermissionsServiceClient::new(channel.clone());
    support::check_viewer(&mut client, document, user, consistency, deadline).await
}

/// Touches or deletes `document:<document>#viewer@user:<user>`.
async fn write(
    channel: &Channel,
    operation: api::relationship_update::Operation,
    document: &str,
    user: &str,
) -> Result<api::ZedToken, tonic::Status> {
    let mut request = authorized(api::WriteRelationshipsRequest {
        updates: vec![api::RelationshipUpdate {
            operation: operation as i32,
            relationship: Some(viewer(document, user)),
        }],
        ..Default::default()
    });
    request.set_timeout(Duration::from_secs(10));
    let response = PermissionsServiceClient::new(channel.clone())
        .write_relationships(request)
        .await?;
    Ok(response.into_inner().written_at.expect("a token"))
}

async fn write_schema(channel: &Channel) {
    let mut request = authorized(api::WriteSchemaRequest {
        schema: SCHEMA.into(),
    });
    request.set_timeout(Duration::from_secs(20));
    SchemaServiceClient::new(channel.clone())
        .write_schema(request)
        .await
        .expect("the schema is written");
}

/// Retries `attempt` until it succeeds, at most `within`.
async fn eventually<T, F, Fut>(within: Duration, what: &str, mut attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + within;
    loop {
        match attempt().await {
            Ok(value) => return value,
            Err(e) if Instant::now() > deadline => panic!("{what} within {within:?}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

fn ready(metrics_addr: &str) -> Result<(), String> {
    let response = http_get(metrics_addr, "/readyz");
    match response.starts_with("HTTP/1.1 200") {
        true => Ok(()),
        false => Err(response),
    }
}

async fn health(channel: &Channel) -> i32 {
    HealthClient::new(channel.clone())
        .check(HealthCheckRequest {
            service: "authzed.api.v1.PermissionsService".into(),
        })
        .await
        .expect("health answers")
        .into_inner()
        .status
}

/// Three nodes in namespaces, all ready, with the schema and `document:plan#viewer@user:tom`.
async fn three_in_namespaces(root: &Path) -> (Net, Vec<NetNode>, Vec<Channel>) {
    let net = Net::new(3);
    let mut nodes: Vec<NetNode> = (1..=3)
        .map(|id| NetNode::new(&net, root, id, &[]))
        .collect();
    for node in &mut nodes {
        node.start();
    }
    for node in &nodes {
        let addr = node.metrics_addr();
        eventually(Duration::from_secs(30), "ready", || async { ready(&addr) }).await;
    }
    let mut channels = Vec::new();
    for node in &nodes {
        channels.push(connect(&node.url()).await);
    }
    write_schema(&channels[0]).await;
    write(
        &channels[0],
        api::relationship_update::Operation::Touch,
        "plan",
        "tom",
    )
    .await
    .expect("written");
    (net, nodes, channels)
}

/// The index of the node whose metrics say it leads, among `candidates`.
async fn leader_among(nodes: &[NetNode], candidates: &[usize]) -> usize {
    eventually(Duration::from_secs(30), "a leader", || async {
        candidates
            .iter()
            .copied()
            .find(|i| metric(&nodes[*i].metrics_addr(), "pemba_raft_is_leader") == Some(1.0))
            .ok_or_else(|| "no leader yet".to_string())
    })
    .await
}

/// Once the staleness bound has passed since the cut, every read without a token on the
/// cut-off node fails with UNAVAILABLE for three seconds; it reports not ready and not serving.
async fn assert_refuses_stale_reads(node: &NetNode, channel: &Channel, cut_at: Instant) {
    tokio::time::sleep_until((cut_at + MAX_STALENESS + Duration::from_secs(1)).into()).await;
    let until = Instant::now() + Duration::from_secs(3);
    let mut refused = 0;
    while Instant::now() < until {
        for consistency in [None, minimize_latency()] {
            let answer = check(channel, "plan", "tom", consistency, Duration::from_secs(1)).await;
            match answer {
                Err(status) if status.code() == tonic::Code::Unavailable => refused += 1,
                other => panic!(
                    "node {} answered {other:?} {:?} after the cut",
                    node.id,
                    cut_at.elapsed()
                ),
            }
        }
    }
    assert!(refused >= 2);
    let readyz = http_get(&node.metrics_addr(), "/readyz");
    assert!(readyz.starts_with("HTTP/1.1 503"), "{readyz}");
    assert!(readyz.contains("staleness bound"), "{readyz}");
    assert_eq!(health(channel).await, ServingStatus::NotServing as i32);
}

/// Healed, within 10 s the node is ready and answers, with the revocation.
async fn assert_serves_again(node: &NetNode, channel: &Channel) {
    let addr = node.metrics_addr();
    eventually(Duration::from_secs(10), "ready after healing", || async {
        ready(&addr)
    })
    .await;
    let answer = check(channel, "plan", "tom", None, Duration::from_secs(5)).await;
    assert!(matches!(answer, Ok(false)), "{answer:?}");
    assert_eq!(health(channel).await, ServingStatus::Serving as i32);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_follower_stops_answering_from_stale_state() {
    let _serial = serial().await;
    if !needs_root("a_cut_off_follower_stops_answering_from_stale_state") {
        return;
    }
    let root = tempfile::tempdir().expect("a temp dir");
    let (net, nodes, channels) = three_in_namespaces(root.path()).await;
    let leader = leader_among(&nodes, &[0, 1, 2]).await;
    let follower = (leader + 1) % 3;
    // The follower holds the grant before the cut (a read without a token may run before it
    // applies the write), so a stale answer after the cut would be a visible `true`.
    eventually(
        Duration::from_secs(10),
        "the follower sees the grant",
        || async {
            match check(
                &channels[follower],
                "plan",
                "tom",
                None,
                Duration::from_secs(5),
            )
            .await
            {
                Ok(true) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;

    net.cut(nodes[follower].id);
    let cut_at = Instant::now();
    write(
        &channels[leader],
        api::relationship_update::Operation::Delete,
        "plan",
        "tom",
    )
    .await
    .expect("the majority revokes");
    assert_refuses_stale_reads(&nodes[follower], &channels[follower], cut_at).await;
    assert!(!check(
        &channels[leader],
        "plan",
        "tom",
        None,
        Duration::from_secs(5)
    )
    .await
    .expect("the majority answers"));

    net.heal(nodes[follower].id);
    assert_serves_again(&nodes[follower], &channels[follower]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_leader_stops_answering_from_stale_state() {
    let _serial = serial().await;
    if !needs_root("a_cut_off_leader_stops_answering_from_stale_state") {
        return;
    }
    let root = tempfile::tempdir().expect("a temp dir");
    let (net, nodes, channels) = three_in_namespaces(root.path()).await;
    let old = leader_among(&nodes, &[0, 1, 2]).await;

    net.cut(nodes[old].id);
    let cut_at = Instant::now();
    let others: Vec<usize> = (0..3).filter(|i| *i != old).collect();
    let new = leader_among(&nodes, &others).await;
    let channel = channels[new].clone();
    eventually(Duration::from_secs(20), "the revocation", || async {
        write(
            &channel,
            api::relationship_update::Operation::Delete,
            "plan",
            "tom",
        )
        .await
        .map_err(|e| e.to_string())
    })
    .await;
    assert_refuses_stale_reads(&nodes[old], &channels[old], cut_at).await;

    net.heal(nodes[old].id);
    assert_serves_again(&nodes[old], &channels[old]).await;
}

/// How to start one `pemba serve` on 127.0.0.1 again: its data directory, gRPC port, metrics
/// address and flags.
struct Spec {
    dir: std::path::PathBuf,
    port: u16,
    metrics: String,
    args: Vec<String>,
}

impl Spec {
    fn start(&self) -> Server {
        Server::start_with_args(&self.dir, &self.metrics, self.port, &self.args)
    }
}

/// Three `pemba serve` processes on 127.0.0.1, node `i` started with `--initial-members`
/// `lists[i - 1]`.
fn loopback_nodes(root: &Path, lists: [&str; 3]) -> (Vec<Option<Server>>, Vec<Spec>) {
    let mut specs = Vec::new();
    for (id, members) in (1..=3u64).zip(lists) {
        let args: Vec<String> = [
            "--node-id",
            &id.to_string(),
            "--cluster-addr",
            members_addr(members, id).as_str(),
            "--initial-members",
            members,
            "--cluster-secret",
            SECRET,
        ]
        .map(String::from)
        .to_vec();
        specs.push(Spec {
            dir: root.join(format!("node-{id}")),
            port: free_port(),
            metrics: format!("127.0.0.1:{}", free_port()),
            args,
        });
    }
    let servers = specs.iter().map(|s| Some(s.start())).collect();
    (servers, specs)
}

fn running(servers: &[Option<Server>], i: usize) -> &Server {
    servers[i].as_ref().expect("running")
}

/// Node `id`'s address in a `--initial-members` list.
fn members_addr(members: &str, id: u64) -> String {
    members
        .split(',')
        .find_map(|m| m.strip_prefix(&format!("{id}=")))
        .expect("the node is listed")
        .to_string()
}

fn loopback_members(count: u64) -> String {
    (1..=count)
        .map(|id| format!("{id}=127.0.0.1:{}", free_port()))
        .collect::<Vec<_>>()
        .join(",")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voter_restarted_on_an_empty_disk_is_refused_and_loses_no_write() {
    let _serial = serial().await;
    let root = tempfile::tempdir().expect("a temp dir");
    let members = loopback_members(3);
    let (mut servers, specs) = loopback_nodes(root.path(), [&members, &members, &members]);
    for spec in &specs {
        eventually(Duration::from_secs(30), "ready", || async {
            ready(&spec.metrics)
        })
        .await;
    }
    let leader = eventually(Duration::from_secs(30), "a leader", || async {
        (0..3)
            .find(|i| metric(&specs[*i].metrics, "pemba_raft_is_leader") == Some(1.0))
            .ok_or_else(|| "none".to_string())
    })
    .await;
    let (stalled, wiped) = ((leader + 1) % 3, (leader + 2) % 3);
    let channel = connect(&running(&servers, leader).url()).await;
    write_schema(&channel).await;

    // Acknowledged by the leader and `wiped` alone, while `stalled` is down (stopped, not
    // merely paused: a paused process would still find the write in its socket buffers).
    servers[stalled].take().expect("running").kill();
    write(
        &channel,
        api::relationship_update::Operation::Touch,
        "acked",
        "ann",
    )
    .await
    .expect("acknowledged by two of three");
    servers[wiped].take().expect("running").kill();
    std::fs::remove_dir_all(&specs[wiped].dir).expect("wiped");
    servers[leader].take().expect("running").kill();
    // The wiped node and the one that lacks the write come back: without the guard, the
    // wiped node's vote would make the other leader, and the write would be lost.
    servers[wiped] = Some(specs[wiped].start());
    servers[stalled] = Some(specs[stalled].start());

    let restarted = servers[wiped].as_mut().expect("running");
    let exit = restarted.wait_exit(Duration::from_secs(30));
    let log = restarted.log();
    assert!(
        exit.is_some_and(|status| !status.success()),
        "the wiped node kept running ({exit:?}):\n{log}"
    );
    assert!(log.contains("has empty storage"), "{log}");
    assert!(log.contains("pemba cluster remove"), "{log}");

    // The old leader back, the acknowledged write is there.
    servers[leader] = Some(specs[leader].start());
    for node in [leader, stalled] {
        let channel = connect(&running(&servers, node).url()).await;
        let seen = eventually(
            Duration::from_secs(30),
            "a fully consistent read",
            || async {
                check(
                    &channel,
                    "acked",
                    "ann",
                    fully_consistent(),
                    Duration::from_secs(5),
                )
                .await
                .map_err(|e| e.to_string())
            },
        )
        .await;
        assert!(seen, "node {} lost the acknowledged write", node + 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn founding_members_with_mismatched_lists_found_no_cluster() {
    let _serial = serial().await;
    let root = tempfile::tempdir().expect("a temp dir");
    let agreed = loopback_members(3);
    let other = format!("{agreed},4=127.0.0.1:{}", free_port());
    let (mut servers, _) = loopback_nodes(root.path(), [&agreed, &agreed, &other]);
    for (i, server) in servers.iter_mut().enumerate() {
        let server = server.as_mut().expect("running");
        let exit = server.wait_exit(Duration::from_secs(30));
        let log = server.log();
        assert!(
            exit.is_some_and(|status| !status.success()),
            "node {} kept running ({exit:?}):\n{log}",
            i + 1
        );
        assert!(log.contains("--initial-members differ"), "{log}");
        assert!(!log.contains("founding a new cluster"), "{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_its_node_and_the_others_keep_serving() {
    let _serial = serial().await;
    if !needs_root("a_full_disk_stops_its_node_and_the_others_keep_serving") {
        return;
    }
    let root = tempfile::tempdir().expect("a temp dir");
    // Node 3's store (not its log file, which says what happened) on a 64 MiB tmpfs.
    let small = root.path().join("node-3").join("store");
    std::fs::create_dir_all(&small).expect("a mount point");
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64m", "tmpfs"])
        .arg(&small)
        .status()
        .expect("mount runs");
    assert!(mounted.success(), "mounting a tmpfs");
    let _unmount = Unmount(small.clone());
    let members = loopback_members(3);
    let (servers, specs) = loopback_nodes(root.path(), [&members, &members, &members]);
    for spec in &specs {
        eventually(Duration::from_secs(30), "ready", || async {
            ready(&spec.metrics)
        })
        .await;
    }
    let first = connect(&running(&servers, 0).url()).await;
    write_schema(&first).await;

    // Large writes until node 3's disk is full and its Raft stops; it is unready within 5 s.
    let started = Instant::now();
    let mut batch = 0;
    while !running(&servers, 2)
        .log()
        .contains("stopped on a fatal error")
    {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "node 3 never stopped"
        );
        big_write(&first, batch).await;
        batch += 1;
    }
    let stopped_at = Instant::now();
    eventually(Duration::from_secs(5), "unready", || async {
        match ready(&specs[2].metrics) {
            Ok(()) => Err("still ready".to_string()),
            Err(_) => Ok(()),
        }
    })
    .await;
    eprintln!(
        "node 3 stopped after {batch} writes; unready {:?} later",
        stopped_at.elapsed()
    );
    let log = running(&servers, 2).log();
    assert!(log.contains("No space left on device"), "{log}");
    assert!(log.contains("restart the node"), "{log}");
    // Every call on it fails with UNAVAILABLE; the others keep serving.
    let full = connect(&running(&servers, 2).url()).await;
    for consistency in [None, fully_consistent()] {
        let answer = check(&full, "d0", "u0", consistency, Duration::from_secs(2)).await;
        assert_eq!(
            answer.as_ref().map_err(|s| s.code()),
            Err(tonic::Code::Unavailable),
            "{answer:?}"
        );
    }
    let refused = write(
        &full,
        api::relationship_update::Operation::Touch,
        "late",
        "ann",
    )
    .await;
    assert_eq!(
        refused.map_err(|s| s.code()).err(),
        Some(tonic::Code::Unavailable)
    );
    assert_eq!(health(&full).await, ServingStatus::NotServing as i32);
    let token = eventually(Duration::from_secs(20), "a write on the others", || async {
        write(
            &first,
            api::relationship_update::Operation::Touch,
            "late",
            "ann",
        )
        .await
        .map_err(|e| e.to_string())
    })
    .await;
    let second = connect(&running(&servers, 1).url()).await;
    let fresh = consistency(api::consistency::Requirement::AtLeastAsFresh(token));
    assert!(check(&second, "late", "ann", fresh, Duration::from_secs(5))
        .await
        .expect("answered"));
    drop(servers);
}

#[test]
fn a_staleness_bound_shorter_than_two_heartbeats_is_refused_at_start() {
    let root = tempfile::tempdir().expect("a temp dir");
    let bounds = ["--max-staleness", "150ms", "--heartbeat-interval", "100ms"];
    let stderr = support::serve_refused(root.path(), &bounds);
    let expected = "--max-staleness (150ms) must be at least twice --heartbeat-interval (100ms)";
    assert!(stderr.contains(expected), "{stderr}");
}

/// Unmounts a tmpfs when dropped.
struct Unmount(std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// 500 relationships with long ids in one write.
async fn big_write(channel: &Channel, batch: usize) {
    let padding = "x".repeat(200);
    let updates = (0..500)
        .map(|i| api::RelationshipUpdate {
            operation: api::relationship_update::Operation::Touch as i32,
            relationship: Some(viewer(&format!("d{batch}-{i}"), &format!("u{padding}{i}"))),
        })
        .collect();
    let mut request = authorized(api::WriteRelationshipsRequest {
        updates,
        ..Default::default()
    });
    request.set_timeout(Duration::from_secs(10));
    let _ = PermissionsServiceClient::new(channel.clone())
        .write_relationships(request)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fully_consistent_reads_succeed_with_300ms_round_trips() {
    let _serial = serial().await;
    let root = tempfile::tempdir().expect("a temp dir");
    // Each node listens on its own port; its peers reach it through a relay that delays each
    // direction by 150 ms.
    let delay = Duration::from_millis(150);
    let mut relays = Vec::new();
    let mut advertised = BTreeMap::new();
    let mut listen = BTreeMap::new();
    for id in 1..=3u64 {
        let relay = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port");
        advertised.insert(id, relay.local_addr().expect("an address"));
        let real = format!("127.0.0.1:{}", free_port());
        relays.push(DelayRelay::start(
            relay,
            real.parse().expect("an address"),
            delay,
        ));
        listen.insert(id, real);
    }
    let members = advertised
        .iter()
        .map(|(id, addr)| format!("{id}={addr}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut servers = Vec::new();
    for id in 1..=3u64 {
        let args: Vec<String> = [
            "--node-id",
            &id.to_string(),
            "--cluster-addr",
            &advertised[&id].to_string(),
            "--cluster-listen-addr",
            &listen[&id],
            "--initial-members",
            &members,
            "--cluster-secret",
            SECRET,
            // Raft messages outlive a heartbeat interval shorter than the round trip.
            "--heartbeat-interval",
            "500ms",
            "--election-timeout",
            "3s",
            // A tick's commit takes about two round trips (the leader sends one batch of entries
            // at a time to each follower).
            "--clock-tick",
            "1s",
        ]
        .map(String::from)
        .to_vec();
        let metrics = format!("127.0.0.1:{}", free_port());
        let dir = root.path().join(format!("node-{id}"));
        servers.push((
            Server::start_with_args(&dir, &metrics, free_port(), &args),
            metrics,
        ));
    }
    for (_, metrics) in &servers {
        eventually(Duration::from_secs(60), "ready", || async {
            ready(metrics)
        })
        .await;
    }
    let mut channels = Vec::new();
    for (server, _) in &servers {
        channels.push(connect(&server.url()).await);
    }
    write_schema(&channels[0]).await;
    write(
        &channels[1],
        api::relationship_update::Operation::Touch,
        "plan",
        "tom",
    )
    .await
    .expect("written through a relay");

    let errors: Arc<Mutex<Vec<String>>> = Arc::default();
    let latencies: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let mut workers = Vec::new();
    for worker in 0..25 {
        let channel = channels[worker % 3].clone();
        let (errors, latencies) = (errors.clone(), latencies.clone());
        workers.push(tokio::spawn(async move {
            for _ in 0..40 {
                let started = Instant::now();
                let answer = check(
                    &channel,
                    "plan",
                    "tom",
                    fully_consistent(),
                    Duration::from_secs(5),
                )
                .await;
                match answer {
                    Ok(true) => latencies.lock().push(started.elapsed()),
                    other => errors.lock().push(format!("{other:?}")),
                }
            }
        }));
    }
    for worker in workers {
        worker.await.expect("a worker");
    }
    let errors = errors.lock().clone();
    if !errors.is_empty() {
        for (server, _) in &servers {
            eprintln!(
                "== {}: warnings and errors\n{}",
                server.url(),
                notable(&server.log())
            );
        }
    }
    assert!(
        errors.is_empty(),
        "{} errors: {:?}",
        errors.len(),
        &errors[..errors.len().min(5)]
    );
    let mut latencies = latencies.lock().clone();
    latencies.sort();
    assert_eq!(latencies.len(), 1000);
    eprintln!(
        "1000 fully consistent checks over 300 ms round trips: p50 {:?}, p99 {:?}",
        latencies[500], latencies[990]
    );
    drop(relays);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_continued_past_garbage_collection_is_out_of_range() {
    let _serial = serial().await;
    let root = tempfile::tempdir().expect("a temp dir");
    let args = ["--gc-window", "2s", "--gc-interval", "1s"].map(String::from);
    let server = Server::start_with_args(&root.path().join("node"), "off", free_port(), &args);
    let channel = connect(&server.url()).await;
    write_schema(&channel).await;
    let updates = (0..30)
        .map(|i| api::RelationshipUpdate {
            operation: api::relationship_update::Operation::Touch as i32,
            relationship: Some(viewer(&format!("d{i}"), "ann")),
        })
        .collect();
    let mut request = authorized(api::WriteRelationshipsRequest {
        updates,
        ..Default::default()
    });
    request.set_timeout(Duration::from_secs(10));
    let mut client = PermissionsServiceClient::new(channel.clone());
    let old = client
        .write_relationships(request)
        .await
        .expect("written")
        .into_inner()
        .written_at;
    let at_old = consistency(api::consistency::Requirement::AtExactSnapshot(
        old.expect("a token"),
    ));
    let documents = || api::RelationshipFilter {
        resource_type: "document".into(),
        ..Default::default()
    };

    // First pages at the old revision, each with a cursor.
    let read = api::ReadRelationshipsRequest {
        consistency: at_old.clone(),
        relationship_filter: Some(documents()),
        optional_limit: 10,
        optional_cursor: None,
    };
    let mut pages = client
        .read_relationships(authorized(read.clone()))
        .await
        .expect("a first page")
        .into_inner();
    let mut read_cursor = None;
    while let Some(item) = pages.message().await.expect("the page") {
        read_cursor = item.after_result_cursor;
    }
    let lookup = api::LookupResourcesRequest {
        consistency: at_old.clone(),
        resource_object_type: "document".into(),
        permission: "viewer".into(),
        subject: viewer("x", "ann").subject,
        optional_limit: 10,
        ..Default::default()
    };
    let mut found = client
        .lookup_resources(authorized(lookup.clone()))
        .await
        .expect("a first page")
        .into_inner();
    let mut lookup_cursor = None;
    while let Some(item) = found.message().await.expect("the page") {
        lookup_cursor = item.after_result_cursor;
    }
    let export = api::ExportBulkRelationshipsRequest {
        consistency: at_old,
        optional_limit: 10,
        ..Default::default()
    };
    let mut batches = client
        .export_bulk_relationships(authorized(export.clone()))
        .await
        .expect("an export")
        .into_inner();
    let export_cursor = batches
        .message()
        .await
        .expect("a batch")
        .and_then(|b| b.after_result_cursor);

    assert!(read_cursor.is_some() && lookup_cursor.is_some() && export_cursor.is_some());

    // A later write, then garbage collection passes the old revision (2 s window, every 1 s).
    write(
        &channel,
        api::relationship_update::Operation::Touch,
        "later",
        "bob",
    )
    .await
    .expect("written");
    tokio::time::sleep(Duration::from_secs(4)).await;

    let out_of_range = |status: tonic::Status| {
        assert_eq!(status.code(), tonic::Code::OutOfRange, "{status:?}");
        assert!(status.message().contains("invalid zedtoken"), "{status:?}");
    };
    let next = api::ReadRelationshipsRequest {
        optional_cursor: read_cursor,
        ..read
    };
    match client.read_relationships(authorized(next)).await {
        Err(status) => out_of_range(status),
        Ok(stream) => out_of_range(stream.into_inner().message().await.unwrap_err()),
    }
    let next = api::LookupResourcesRequest {
        optional_cursor: lookup_cursor,
        ..lookup
    };
    match client.lookup_resources(authorized(next)).await {
        Err(status) => out_of_range(status),
        Ok(stream) => out_of_range(stream.into_inner().message().await.unwrap_err()),
    }
    let next = api::ExportBulkRelationshipsRequest {
        optional_cursor: export_cursor,
        ..export
    };
    match client.export_bulk_relationships(authorized(next)).await {
        Err(status) => out_of_range(status),
        Ok(stream) => out_of_range(stream.into_inner().message().await.unwrap_err()),
    }
}

/// The last 60 warning and error lines of a server log.
fn notable(log: &str) -> String {
    let lines: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("WARN") || line.contains("ERROR"))
        .collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}
