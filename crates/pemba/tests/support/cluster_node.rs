//! A cluster node run as a `pemba serve` process on 127.0.0.1, for the cluster tests.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use pemba_peer_tls::{PeerTls, TlsDialer};
use pemba_proto::authzed::api::v1 as api;
use pemba_proto::authzed::api::v1::permissions_service_client::PermissionsServiceClient;
use pemba_proto::authzed::api::v1::schema_service_client::SchemaServiceClient;
use pemba_proto::pemba::cluster::v1 as cluster;
use pemba_proto::pemba::cluster::v1::cluster_client::ClusterClient;
use tonic::transport::Channel;

use super::certs::{local_tls, TlsFiles};
use super::{authorized, check_viewer, free_port, viewer, Server};

pub const SECRET: &str = "cluster-test-secret";

/// One node's addresses and data, and its process while it runs.
pub struct Node {
    pub id: u64,
    pub dir: PathBuf,
    pub grpc_port: u16,
    pub cluster_addr: String,
    pub metrics_addr: String,
    pub members: String,
    /// Flags added to every start.
    pub extra: Vec<String>,
    /// The cluster port's TLS files ([`local_tls`] unless a test gives others).
    pub tls: TlsFiles,
    pub server: Option<Server>,
}

/// `size` nodes of a new cluster on 127.0.0.1 (not started), with ids from 1.
pub fn local_cluster(root: &Path, size: u64) -> Vec<Node> {
    let cluster_addrs: Vec<String> = (0..size)
        .map(|_| format!("127.0.0.1:{}", free_port()))
        .collect();
    let members = (1..=size)
        .map(|id| format!("{id}={}", cluster_addrs[id as usize - 1]))
        .collect::<Vec<_>>()
        .join(",");
    (1..=size)
        .map(|id| Node::new(root, id, &cluster_addrs[id as usize - 1], &members))
        .collect()
}

impl Node {
    pub fn new(root: &Path, id: u64, cluster_addr: &str, members: &str) -> Node {
        Node {
            id,
            dir: root.join(format!("node-{id}")),
            grpc_port: free_port(),
            cluster_addr: cluster_addr.to_string(),
            metrics_addr: format!("127.0.0.1:{}", free_port()),
            members: members.to_string(),
            extra: Vec::new(),
            tls: local_tls().clone(),
            server: None,
        }
    }

    pub fn start(&mut self) {
        let args = [
            "--node-id",
            &self.id.to_string(),
            "--cluster-addr",
            &self.cluster_addr,
            "--initial-members",
            &self.members,
            "--cluster-secret",
            SECRET,
            "--snapshot-every",
            "40",
        ]
        .map(String::from);
        let args = [args.as_slice(), &self.tls.args(), &self.extra].concat();
        self.server = Some(Server::start_with_args(
            &self.dir,
            &self.metrics_addr,
            self.grpc_port,
            &args,
        ));
    }

    pub fn kill(&mut self) {
        self.server.take().expect("running").kill();
    }

    /// Stops the node with SIGTERM, as an operator would to upgrade it; whether it exited
    /// cleanly within 15 s.
    pub fn terminate(&mut self) -> bool {
        self.server
            .take()
            .expect("running")
            .terminate(Duration::from_secs(15))
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.grpc_port)
    }

    /// Writes the cluster tests' schema (users, documents with viewers) through this node.
    pub async fn write_viewer_schema(&self) -> Result<(), tonic::Status> {
        let mut schema = SchemaServiceClient::connect(self.url())
            .await
            .expect("connects");
        let request = authorized(api::WriteSchemaRequest {
            schema: "definition user {}\ndefinition document {\n    relation viewer: user\n}"
                .into(),
        });
        schema.write_schema(request).await.map(|_| ())
    }

    pub async fn permissions(&self) -> PermissionsServiceClient<Channel> {
        PermissionsServiceClient::connect(self.url())
            .await
            .expect("connects")
    }

    /// The node's view of the cluster, if it answers within a second.
    pub async fn status(&self) -> Option<cluster::StatusResponse> {
        let tls = PeerTls::load(self.tls.paths()).expect("the node's certificates");
        let dialer = TlsDialer::new(tls);
        let connecting = dialer.connect(&self.cluster_addr);
        let channel = tokio::time::timeout(Duration::from_secs(1), connecting)
            .await
            .ok()?
            .ok()?;
        let mut request = tonic::Request::new(cluster::StatusRequest {});
        let header = format!("Bearer {SECRET}").parse().ok()?;
        request.metadata_mut().insert("authorization", header);
        request.set_timeout(Duration::from_secs(1));
        let status = ClusterClient::new(channel).status(request).await.ok()?;
        Some(status.into_inner())
    }
}

pub fn consistency(requirement: api::consistency::Requirement) -> Option<api::Consistency> {
    Some(api::Consistency {
        requirement: Some(requirement),
    })
}

pub fn at_least_as_fresh(token: &api::ZedToken) -> Option<api::Consistency> {
    consistency(api::consistency::Requirement::AtLeastAsFresh(token.clone()))
}

/// Whether `user` may view `document` on the node behind `client` (answered within 15 s).
pub async fn can_view(
    client: &mut PermissionsServiceClient<Channel>,
    document: &str,
    user: &str,
    consistency: Option<api::Consistency>,
) -> bool {
    let deadline = Duration::from_secs(15);
    check_viewer(client, document, user, consistency, deadline)
        .await
        .expect("the check is answered")
}

/// Waits until every node in `nodes` names the same leader, which is one of `among`.
pub async fn agreed_leader(nodes: &[&Node], among: &[u64], within: Duration) -> u64 {
    let deadline = Instant::now() + within;
    loop {
        let mut leaders = BTreeSet::new();
        for node in nodes {
            match node.status().await {
                Some(s) if !s.cluster_id.is_empty() => leaders.insert(s.leader_id),
                _ => leaders.insert(0),
            };
        }
        if let [leader] = leaders.into_iter().collect::<Vec<_>>()[..] {
            if among.contains(&leader) {
                return leader;
            }
        }
        if Instant::now() >= deadline {
            let mut views = Vec::new();
            for node in nodes {
                views.push(format!(
                    "node {}: {:?}\n{}",
                    node.id,
                    node.status().await,
                    node.server.as_ref().map(|s| s.log()).unwrap_or_default()
                ));
            }
            panic!("no agreed leader within {within:?}:\n{}", views.join("\n"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Touches `document#viewer@user`, through `client`; the write's token.
pub async fn touch(
    client: &mut PermissionsServiceClient<Channel>,
    document: &str,
    user: &str,
) -> Result<api::ZedToken, tonic::Status> {
    let mut request = authorized(api::WriteRelationshipsRequest {
        updates: vec![api::RelationshipUpdate {
            operation: api::relationship_update::Operation::Touch as i32,
            relationship: Some(viewer(document, user)),
        }],
        ..Default::default()
    });
    request.set_timeout(Duration::from_secs(15));
    let response = client.write_relationships(request).await?.into_inner();
    Ok(response.written_at.expect("a token"))
}

/// Runs `pemba args…` with the cluster secret and `tls`, to its end.
pub fn run_cli(args: &[&str], tls: &TlsFiles) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_pemba"))
        .args(args)
        .env("PEMBA_CLUSTER_SECRET", SECRET)
        .envs(tls.env())
        .output()
        .expect("pemba runs")
}

/// Runs `pemba args…` with the cluster secret and `tls`, which must succeed; its standard
/// output.
pub fn cli_with(args: &[&str], tls: &TlsFiles) -> String {
    let output = run_cli(args, tls);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "pemba {args:?} failed: {stderr}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Runs `pemba args…` with the cluster secret and the local test certificate, which must
/// succeed; its standard output.
pub fn cli(args: &[&str]) -> String {
    cli_with(args, local_tls())
}

/// Runs `pemba args…` with the cluster secret and `tls`, which must fail; its standard error.
pub fn cli_fails_with(args: &[&str], tls: &TlsFiles) -> String {
    let output = run_cli(args, tls);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        !output.status.success(),
        "pemba {args:?} succeeded: {stdout}"
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs `pemba args…` with the cluster secret and the local test certificate, which must fail;
/// its standard error.
pub fn cli_fails(args: &[&str]) -> String {
    cli_fails_with(args, local_tls())
}
