//! Mutual TLS on the cluster port, across `pemba serve` processes on 127.0.0.1: what crosses
//! between nodes is TLS and carries none of the relationships written; certificates from
//! another CA, expired ones and ones naming another address are refused, by nodes and by
//! `pemba cluster`; a certificate cannot vote as another node; node certificates and then the
//! CA rotate under a write load, without a restart and without a failed write; a cluster port
//! beyond loopback needs TLS or `--cluster-insecure`.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::certs::{Leaf, TestCa, TlsFiles};
use support::cluster_node::{
    agreed_leader, at_least_as_fresh, can_view, cli_fails_with, cli_with, run_cli, touch, Node,
    SECRET,
};
use support::relay::RecordingRelay;
use support::{free_port, metric};

/// Node `id` advertised at `cluster_addr`, with `leaf` and the CA bundle `ca_pem`.
fn node_with(root: &Path, id: u64, cluster_addr: &str, members: &str, tls: TlsFiles) -> Node {
    let mut node = Node::new(root, id, cluster_addr, members);
    node.tls = tls;
    node
}

fn files(root: &Path, name: &str, leaf: &Leaf, ca_pem: &str) -> TlsFiles {
    TlsFiles::write(&root.join(name), leaf, ca_pem)
}

/// Retries `attempt` every 200 ms until it holds, at most `within`.
async fn eventually(within: Duration, what: &str, mut attempt: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !attempt() {
        assert!(Instant::now() < deadline, "{what} within {within:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_talk_only_tls_with_certificates_from_their_ca() {
    let root = tempfile::tempdir().expect("a temp dir");
    let root = root.path();
    let ca = TestCa::new("cluster CA");
    // Each node listens on a port of its own; its peers reach it through a relay that records
    // every byte, as a wiretap would.
    let (mut relays, mut listen, mut advertised) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..3 {
        let port = free_port();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a relay port");
        advertised.push(listener.local_addr().expect("bound").to_string());
        let target = SocketAddr::from(([127, 0, 0, 1], port));
        relays.push(RecordingRelay::start(listener, target));
        listen.push(format!("127.0.0.1:{port}"));
    }
    let members = (1..=3)
        .map(|id| format!("{id}={}", advertised[id - 1]))
        .collect::<Vec<_>>()
        .join(",");
    let mut nodes: Vec<Node> = (1..=3u64)
        .map(|id| {
            let tls = files(
                root,
                &format!("node-{id}"),
                &ca.leaf(&["127.0.0.1"]),
                &ca.pem,
            );
            let i = id as usize - 1;
            let mut node = node_with(root, id, &advertised[i], &members, tls);
            node.extra = vec!["--cluster-listen-addr".into(), listen[i].clone()];
            node
        })
        .collect();
    for node in &mut nodes {
        node.start();
    }
    let all: Vec<&Node> = nodes.iter().collect();
    agreed_leader(&all, &[1, 2, 3], Duration::from_secs(30)).await;
    nodes[0].write_viewer_schema().await.expect("the schema");

    // Written through every node (through a follower, the write is passed to the leader over
    // the cluster port), read on every node at the last write's token.
    let mut token = None;
    for node in &nodes {
        let document = format!("sealed-doc-{}", node.id);
        let written = touch(&mut node.permissions().await, &document, "sealed-user-7c1e").await;
        token = Some(written.expect("written"));
    }
    let token = token.expect("three writes");
    for node in &nodes {
        for id in 1..=3 {
            let document = format!("sealed-doc-{id}");
            let fresh = at_least_as_fresh(&token);
            let mut client = node.permissions().await;
            assert!(can_view(&mut client, &document, "sealed-user-7c1e", fresh).await);
        }
    }

    let recorded: Vec<_> = relays.iter().flat_map(RecordingRelay::recorded).collect();
    let carried: usize = recorded
        .iter()
        .map(|c| c.from_client.len() + c.from_server.len())
        .sum();
    assert!(recorded.len() >= 2, "{} connections", recorded.len());
    assert!(carried > 4096, "only {carried} bytes crossed the relays");
    for connection in recorded.iter().filter(|c| !c.from_client.is_empty()) {
        // A TLS record of type handshake (22), version 3.x: the ClientHello.
        assert_eq!(connection.from_client[..2], [0x16, 0x03], "not TLS");
        for secret in ["sealed-doc", "sealed-user-7c1e", SECRET] {
            assert!(!contains(&connection.from_client, secret), "{secret} seen");
            assert!(!contains(&connection.from_server, secret), "{secret} seen");
        }
    }

    refused_by_the_cluster_port(root, &ca, &nodes[0], &listen[0]);
    refused_as_peers(root, &ca, &nodes, &listen[0], &members).await;
    a_certificate_speaks_only_for_its_own_node(root, &ca, &nodes[0], &listen[0]).await;
}

/// A vote request claiming to come from node 2 (at 127.0.0.1): with a certificate naming
/// 127.0.0.1 it is answered (a stale term: not granted, nothing disturbed); with one from the
/// same CA naming another address it is refused, so one node's certificate cannot vote, or
/// append entries, as another.
async fn a_certificate_speaks_only_for_its_own_node(
    root: &Path,
    ca: &TestCa,
    node: &Node,
    endpoint: &str,
) {
    use pemba_proto::pemba::cluster::v1 as proto;
    let vote = openraft::raft::VoteRequest::<u64>::new(openraft::Vote::new(0, 2), None);
    let data = pemba_codec::encode(pemba_codec::Format::PeerMessage, &vote).expect("encoded");
    let elsewhere = files(root, "elsewhere", &ca.leaf(&["127.0.0.9"]), &ca.pem);
    for (tls, named) in [(&node.tls, true), (&elsewhere, false)] {
        let peer_tls = pemba_peer_tls::PeerTls::load(tls.paths()).expect("certificates");
        let channel = pemba_peer_tls::TlsDialer::new(peer_tls)
            .connect(endpoint)
            .await
            .expect("connected");
        let mut request = tonic::Request::new(proto::RaftPayload { data: data.clone() });
        let secret = format!("Bearer {SECRET}").parse().expect("a header");
        request.metadata_mut().insert("authorization", secret);
        let answer = proto::cluster_client::ClusterClient::new(channel)
            .vote(request)
            .await;
        match answer {
            Ok(_) => assert!(named, "a vote as node 2 with a certificate for 127.0.0.9"),
            Err(status) => {
                assert!(!named, "{status:?}");
                assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
                assert!(status.message().contains("naming its cluster address"));
            }
        }
    }
}

/// `pemba cluster` reaches `node` with a certificate from the cluster's CA, and is refused
/// with one from another CA or an expired one, and when the node's certificate does not name
/// the address dialed.
fn refused_by_the_cluster_port(root: &Path, ca: &TestCa, node: &Node, endpoint: &str) {
    let status = ["cluster", "--endpoint", endpoint, "status"];
    let answer = cli_with(&status, &node.tls);
    assert!(answer.contains("leader"), "{answer}");

    let other = TestCa::new("another CA");
    let foreign = files(root, "foreign", &other.leaf(&["127.0.0.1"]), &ca.pem);
    let expired = files(root, "expired", &ca.expired_leaf(&["127.0.0.1"]), &ca.pem);
    for (client, reason) in [
        (&foreign, "UnknownIssuer"),
        (&expired, "certificate expired"),
    ] {
        let error = cli_fails_with(&status, client);
        assert!(error.contains("its log says why"), "{error}");
        let log = || node.server.as_ref().expect("running").log();
        let said_why = |log: &str| {
            log.lines()
                .any(|l| l.contains("refused a connection") && l.contains(reason))
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while !said_why(&log()) {
            assert!(Instant::now() < deadline, "{error}\n{}", log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    let port = endpoint.rsplit_once(':').expect("host:port").1;
    let misnamed = format!("localhost:{port}");
    let error = cli_fails_with(&["cluster", "--endpoint", &misnamed, "status"], &node.tls);
    assert!(error.contains("not valid for name"), "{error}");
}

/// Nodes presenting a certificate from another CA, an expired one or one naming another
/// address are added as learners but never receive an entry; one with a good certificate,
/// added alike, catches up.
async fn refused_as_peers(root: &Path, ca: &TestCa, nodes: &[Node], endpoint: &str, members: &str) {
    let other = TestCa::new("another CA");
    let joiners = [
        (4, ca.leaf(&["127.0.0.1"])),
        (5, other.leaf(&["127.0.0.1"])),
        (6, ca.expired_leaf(&["127.0.0.1"])),
        (7, ca.leaf(&["127.0.0.9", "pemba-7.example"])),
    ];
    let mut started = Vec::new();
    for (id, leaf) in joiners {
        let addr = format!("127.0.0.1:{}", free_port());
        let tls = files(root, &format!("joiner-{id}"), &leaf, &ca.pem);
        let mut node = node_with(root, id, &addr, members, tls);
        node.start();
        let id = id.to_string();
        cli_with(
            &["cluster", "--endpoint", endpoint, "add", &id, &addr],
            &nodes[0].tls,
        );
        started.push(node);
    }
    let applied = |node: &Node| metric(&node.metrics_addr, "pemba_raft_applied_index");
    let leader_applied = applied(&nodes[0]).expect("the leader's applied index");
    eventually(
        Duration::from_secs(20),
        "the good joiner catching up",
        || applied(&started[0]).is_some_and(|a| a >= leader_applied),
    )
    .await;
    // The others had as long, and more.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for node in &started[1..] {
        assert_eq!(
            applied(node),
            Some(0.0),
            "node {} received entries",
            node.id
        );
    }
}

/// The certificate the node at `addr` presents, as seen by a client holding `tls`.
async fn presented_certificate(addr: &str, tls: &TlsFiles) -> Option<Vec<u8>> {
    let material = pemba_peer_tls::Material::load(&tls.paths()).ok()?;
    let tcp = tokio::net::TcpStream::connect(addr).await.ok()?;
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").ok()?;
    let stream = tokio_rustls::TlsConnector::from(material.client)
        .connect(name, tcp)
        .await
        .ok()?;
    let certificate = stream.get_ref().1.peer_certificates()?.first()?;
    Some(certificate.to_vec())
}

/// Writes through every node in turn until stopped; counts acknowledged and failed writes.
struct WriteLoad {
    stop: Arc<AtomicBool>,
    written: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<Vec<String>>>,
}

impl WriteLoad {
    async fn start(nodes: &[Node]) -> WriteLoad {
        let stop = Arc::new(AtomicBool::new(false));
        let written = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for node in nodes {
            let mut client = node.permissions().await;
            let (stop, written, failed) = (stop.clone(), written.clone(), failed.clone());
            let id = node.id;
            tasks.push(tokio::spawn(async move {
                let mut errors = Vec::new();
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    match touch(&mut client, &format!("load-{id}-{n}"), "writer").await {
                        Ok(_) => written.fetch_add(1, Ordering::Relaxed),
                        Err(status) => {
                            errors.push(format!("through node {id}: {status:?}"));
                            failed.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                }
                errors
            }));
        }
        WriteLoad {
            stop,
            written,
            failed,
            tasks,
        }
    }

    /// Stops the writers; the acknowledged writes and the failures' descriptions.
    async fn finish(self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let mut errors = Vec::new();
        for task in self.tasks {
            errors.extend(task.await.expect("a writer"));
        }
        assert_eq!(self.failed.load(Ordering::Relaxed), errors.len() as u64);
        (self.written.load(Ordering::Relaxed), errors)
    }
}

/// Tells nodes 1 and 2 (which re-read their files only on SIGHUP) to reload; node 3 re-reads
/// its own every half second.
fn hang_up(nodes: &[Node]) {
    for node in &nodes[..2] {
        node.server.as_ref().expect("running").signal("HUP");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_and_then_the_ca_rotate_under_writes_without_a_failed_write() {
    let root = tempfile::tempdir().expect("a temp dir");
    let root = root.path();
    let (old_ca, new_ca) = (TestCa::new("old CA"), TestCa::new("new CA"));
    let mut nodes = support::cluster_node::local_cluster(root, 3);
    for node in &mut nodes {
        let name = format!("node-{}-certs", node.id);
        node.tls = files(root, &name, &old_ca.leaf(&["127.0.0.1"]), &old_ca.pem);
        let every = if node.id == 3 { "500ms" } else { "1h" };
        node.extra = vec!["--cluster-tls-reload-interval".into(), every.into()];
        node.start();
    }
    let all: Vec<&Node> = nodes.iter().collect();
    agreed_leader(&all, &[1, 2, 3], Duration::from_secs(30)).await;
    nodes[0].write_viewer_schema().await.expect("the schema");
    let both = format!("{}{}", old_ca.pem, new_ca.pem);
    // Clients of the cluster port, one per CA, each trusting both.
    let old_client = files(root, "old-client", &old_ca.leaf(&["client"]), &both);
    let new_client = files(root, "new-client", &new_ca.leaf(&["client"]), &both);
    let load = WriteLoad::start(&nodes).await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    // 1. New node certificates from the same CA.
    rotate_leaves(&nodes, &old_ca, &old_client).await;
    // 2. Both CAs trusted: a client with a certificate from the new one is let in.
    for node in &nodes {
        node.tls.replace_ca(&both);
    }
    hang_up(&nodes);
    for node in &nodes {
        let status = ["cluster", "--endpoint", &node.cluster_addr, "status"];
        eventually(Duration::from_secs(10), "the new CA trusted", || {
            run_cli(&status, &new_client).status.success()
        })
        .await;
    }
    // 3. Node certificates from the new CA.
    rotate_leaves(&nodes, &new_ca, &new_client).await;
    // 4. Only the new CA trusted: a client with a certificate from the old one is refused.
    for node in &nodes {
        node.tls.replace_ca(&new_ca.pem);
    }
    hang_up(&nodes);
    for node in &nodes {
        let status = ["cluster", "--endpoint", &node.cluster_addr, "status"];
        eventually(
            Duration::from_secs(10),
            "the old CA no longer trusted",
            || !run_cli(&status, &old_client).status.success(),
        )
        .await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (written, failed) = load.finish().await;
    assert!(
        failed.is_empty(),
        "{} writes failed: {failed:?}",
        failed.len()
    );
    assert!(written >= 30, "only {written} writes during the rotation");
    eprintln!("{written} writes acknowledged during the rotation, none failed");

    // A restarted node connects to its peers, and they to it, with the new material only.
    nodes[2].kill();
    let token = touch(&mut nodes[0].permissions().await, "after", "rotation")
        .await
        .expect("written with a node down");
    nodes[2].start();
    let mut client = nodes[2].permissions().await;
    assert!(can_view(&mut client, "after", "rotation", at_least_as_fresh(&token)).await);
}

/// Replaces every node's certificate with a new one from `ca`, and waits until each presents
/// it to new connections (seen by `client`).
async fn rotate_leaves(nodes: &[Node], ca: &TestCa, client: &TlsFiles) {
    let leaves: Vec<Leaf> = nodes.iter().map(|_| ca.leaf(&["127.0.0.1"])).collect();
    for (node, leaf) in nodes.iter().zip(&leaves) {
        node.tls.replace_leaf(leaf);
    }
    hang_up(nodes);
    for (node, leaf) in nodes.iter().zip(&leaves) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while presented_certificate(&node.cluster_addr, client).await != Some(leaf.cert_der.clone())
        {
            assert!(
                Instant::now() < deadline,
                "node {} kept its old certificate",
                node.id
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

#[test]
fn a_cluster_port_beyond_loopback_without_tls_is_refused_at_start() {
    let root = tempfile::tempdir().expect("a temp dir");
    // 192.0.2.1 (TEST-NET-1) is never this machine's: the node must refuse before binding it.
    let peers = [
        ("--cluster-addr", "192.0.2.1:50053"),
        ("--initial-members", "1=192.0.2.1:50053"),
        ("--cluster-secret", "s"),
    ];
    let args: Vec<&str> = peers
        .iter()
        .flat_map(|(flag, value)| [*flag, *value])
        .collect();
    let stderr = support::serve_refused(root.path(), &args);
    for expected in [
        "192.0.2.1:50053",
        "--cluster-tls-cert-path",
        "--cluster-insecure",
    ] {
        assert!(stderr.contains(expected), "{stderr}");
    }
}

/// `deploy/make-cluster-certs.sh` makes a CA and node certificates that a node and
/// `pemba cluster` accept (webpki is stricter than openssl about what a certificate holds).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deploy_script_makes_certificates_nodes_accept() {
    let root = tempfile::tempdir().expect("a temp dir");
    let certs = root.path().join("certs");
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/make-cluster-certs.sh"
    );
    for node in ["node-1", "node-2"] {
        let made = std::process::Command::new("sh")
            .arg(script)
            .arg(&certs)
            .args([node, "127.0.0.1", "localhost"])
            .output()
            .expect("the script runs (it needs openssl)");
        let stderr = String::from_utf8_lossy(&made.stderr);
        assert!(made.status.success(), "{stderr}");
    }
    let tls = |node: &str| TlsFiles {
        cert: certs.join(format!("{node}.pem")),
        key: certs.join(format!("{node}.key")),
        ca: certs.join("ca.pem"),
    };
    let mut nodes = support::cluster_node::local_cluster(root.path(), 2);
    for (node, name) in nodes.iter_mut().zip(["node-1", "node-2"]) {
        node.tls = tls(name);
        node.start();
    }
    let all: Vec<&Node> = nodes.iter().collect();
    agreed_leader(&all, &[1, 2], Duration::from_secs(30)).await;
    let status = ["cluster", "--endpoint", &nodes[1].cluster_addr, "status"];
    let answer = cli_with(&status, &tls("node-1"));
    assert!(answer.contains("2 127.0.0.1"), "{answer}");
}
