//! `pemba serve`: runs one node on a local data directory.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use pemba_cluster::{GcSchedule, NodeBuilder, ReplicaConfig, StartedNode};
use pemba_server::{Limits, Node, ServeOptions, TlsFiles};

use crate::cluster_port::{ClusterTlsArgs, PeerSecurity};

/// How long a refused node keeps answering its peers before it exits.
const REFUSAL_LINGER: Duration = Duration::from_secs(3);

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Where the node keeps its data (created if missing).
    #[arg(long, default_value = "./pemba-data", env = "PEMBA_DATA_DIR")]
    data_dir: PathBuf,
    /// The gRPC listen address.
    #[arg(long, default_value = "127.0.0.1:50051", env = "PEMBA_GRPC_ADDR")]
    grpc_addr: SocketAddr,
    /// The HTTP listen address for `/metrics` (Prometheus), `/healthz` and `/readyz`; `off` to
    /// disable.
    #[arg(long, default_value = "127.0.0.1:9090", env = "PEMBA_METRICS_ADDR")]
    metrics_addr: String,
    /// The key clients must present as `authorization: Bearer <key>` (required; repeat the flag to
    /// accept several keys during a rotation).
    #[arg(
        long = "grpc-preshared-key",
        env = "PEMBA_GRPC_PRESHARED_KEY",
        value_delimiter = ',',
        required = true
    )]
    grpc_preshared_keys: Vec<String>,
    /// PEM certificate chain for TLS (with --tls-key-path); plaintext if absent.
    #[arg(long, env = "PEMBA_TLS_CERT_PATH", requires = "tls_key_path")]
    tls_cert_path: Option<PathBuf>,
    /// PEM private key for TLS.
    #[arg(long, env = "PEMBA_TLS_KEY_PATH", requires = "tls_cert_path")]
    tls_key_path: Option<PathBuf>,
    /// How long old revisions stay readable (at_exact_snapshot, cursors, Watch resumption);
    /// older history is garbage-collected.
    #[arg(long, default_value = "24h", value_parser = humantime::parse_duration, env = "PEMBA_GC_WINDOW")]
    gc_window: Duration,
    /// How often garbage collection runs.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    gc_interval: Duration,
    /// The largest request message accepted, in bytes.
    #[arg(long, default_value_t = 4 * 1024 * 1024)]
    max_message_bytes: usize,
    /// This node's id in its cluster (a positive number, never reused for another node).
    #[arg(long, default_value_t = 1, env = "PEMBA_NODE_ID")]
    node_id: u64,
    /// The address other nodes reach this node's cluster port at (`host:port`).
    #[arg(long, default_value = "127.0.0.1:50053", env = "PEMBA_CLUSTER_ADDR")]
    cluster_addr: String,
    /// Where the cluster port listens; by default the --cluster-addr if it is an IP address,
    /// else 0.0.0.0 with its port.
    #[arg(long, env = "PEMBA_CLUSTER_LISTEN_ADDR")]
    cluster_listen_addr: Option<SocketAddr>,
    /// The members of a new cluster, `id=host:port,…` (the same on every node). The lowest id
    /// initializes the cluster; a node not listed waits to be added (`pemba cluster add`).
    /// Without it, this node runs a one-node cluster.
    #[arg(long, env = "PEMBA_INITIAL_MEMBERS", value_parser = parse_members)]
    initial_members: Option<Members>,
    /// The secret every node of the cluster shares; peer calls without it are refused. Required
    /// with --initial-members.
    #[arg(long, env = "PEMBA_CLUSTER_SECRET", hide_env_values = true)]
    cluster_secret: Option<String>,
    #[command(flatten)]
    cluster_tls: ClusterTlsArgs,
    /// How often the cluster TLS files are checked for changes (SIGHUP checks at once).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    cluster_tls_reload_interval: Duration,
    /// Let the cluster port listen beyond loopback without TLS, in clear text: only on a
    /// network nobody else can reach.
    #[arg(
        long,
        env = "PEMBA_CLUSTER_INSECURE",
        conflicts_with = "cluster_tls_cert_path"
    )]
    cluster_insecure: bool,
    /// How often the leader sends heartbeats.
    #[arg(long, default_value = "100ms", value_parser = humantime::parse_duration)]
    heartbeat_interval: Duration,
    /// How long followers wait without a heartbeat before electing a new leader (each waits a
    /// random time between this and twice this).
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    election_timeout: Duration,
    /// Log entries between snapshots (the log before a snapshot is then purged).
    #[arg(long, default_value_t = 10_000)]
    snapshot_every: u64,
    /// Log entries before its newest snapshot the leader keeps for a follower that has yet to
    /// receive them (one installing a snapshot, or behind), so that it catches up from the log
    /// instead of needing another snapshot. Costs disk only; a follower behind by more needs a
    /// snapshot.
    #[arg(long, default_value_t = 100_000)]
    catch_up_entries: u64,
    /// How far the log's time may lag the leader's clock before the leader records its time in
    /// the log. Reads at a revision judge expirations at the revision's recorded time, so
    /// expiring relationships disappear at most this plus --max-clock-offset late, on every
    /// node alike.
    #[arg(long, default_value = "500ms", value_parser = humantime::parse_duration)]
    clock_tick: Duration,
    /// How far this node's wall clock may differ from the other voters' before it stops leading
    /// (and steps down if it leads). The log's time, which decides expirations, comes from the
    /// leader's clock, held within this of the majority's.
    #[arg(long, default_value = "500ms", value_parser = humantime::parse_duration, env = "PEMBA_MAX_CLOCK_OFFSET")]
    max_clock_offset: Duration,
    /// How often the leader appends a digest of its state for every replica to compare with its
    /// own at the same revision. A replica whose digest differs logs it, reports not ready and
    /// stops serving (`pemba_raft_digest_mismatches_total` counts the differences).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration, env = "PEMBA_DIGEST_INTERVAL")]
    digest_interval: Duration,
    /// For upgrade tests: the newest Raft log format this node reads, as an older build would
    /// (the cluster keeps writing a format every member reads).
    #[arg(long, hide = true, default_value_t = pemba_cluster::NEWEST_LOG_FORMAT)]
    newest_log_format: u32,
    /// How stale a read without a ZedToken (minimize_latency, or no consistency) may be: it is
    /// answered at a revision that includes every write the cluster committed this long before
    /// the read arrived, or fails with UNAVAILABLE (a node cut off from its cluster stops
    /// answering such reads after this long, and reports not ready). At least twice
    /// --heartbeat-interval.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration, env = "PEMBA_MAX_STALENESS")]
    max_staleness: Duration,
}

/// Cluster members by node id.
#[derive(Debug, Clone)]
pub struct Members(BTreeMap<u64, String>);

/// Why `--initial-members` could not be read.
#[derive(Debug, thiserror::Error)]
pub enum MembersError {
    #[error("`{0}` is not `id=host:port`")]
    NotAMember(String),
    #[error("`{0}` is not a node id (a positive number)")]
    NotAnId(String),
    #[error("node ids start at 1")]
    ZeroId,
    #[error("node {0} is listed twice")]
    Twice(u64),
    #[error("no members listed")]
    Empty,
}

fn parse_members(text: &str) -> Result<Members, MembersError> {
    let mut members = BTreeMap::new();
    for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (id, addr) = item
            .split_once('=')
            .ok_or_else(|| MembersError::NotAMember(item.to_string()))?;
        let id: u64 = id
            .trim()
            .parse()
            .map_err(|_| MembersError::NotAnId(id.to_string()))?;
        if id == 0 {
            return Err(MembersError::ZeroId);
        }
        if members.insert(id, addr.trim().to_string()).is_some() {
            return Err(MembersError::Twice(id));
        }
    }
    if members.is_empty() {
        return Err(MembersError::Empty);
    }
    Ok(Members(members))
}

/// Where the cluster port listens: the cluster address itself if it is an IP address, else all
/// interfaces on its port.
fn cluster_listen_addr(args: &ServeArgs) -> anyhow::Result<SocketAddr> {
    if let Some(addr) = args.cluster_listen_addr {
        return Ok(addr);
    }
    if let Ok(addr) = args.cluster_addr.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let port = args
        .cluster_addr
        .rsplit_once(':')
        .and_then(|(_, port)| port.parse::<u16>().ok())
        .with_context(|| format!("--cluster-addr `{}` has no port", args.cluster_addr))?;
    Ok(SocketAddr::from(([0, 0, 0, 0], port)))
}

async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: draining in-flight requests");
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    if args.grpc_preshared_keys.iter().all(|k| k.trim().is_empty()) {
        bail!("--grpc-preshared-key must not be empty");
    }
    if args.node_id == 0 {
        bail!("--node-id must be a positive number");
    }
    if args.max_staleness < args.heartbeat_interval * 2 {
        bail!(
            "--max-staleness ({}) must be at least twice --heartbeat-interval ({}): a node renews its confirmation by a leader's quorum, which takes a heartbeat round, within a third of the bound",
            humantime::format_duration(args.max_staleness),
            humantime::format_duration(args.heartbeat_interval)
        );
    }
    let secret = args.cluster_secret.clone().filter(|s| !s.is_empty());
    let initial_members = match &args.initial_members {
        Some(Members(members)) => {
            if secret.is_none() {
                bail!("a cluster needs --cluster-secret (the same on every node)");
            }
            members.clone()
        }
        None => BTreeMap::from([(args.node_id, args.cluster_addr.clone())]),
    };
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let (persistence, log) = pemba_rocksdb::open(&args.data_dir.join("store"))?;

    // A one-node cluster started without a secret has no peers: its cluster port stays closed.
    let cluster_port = match &secret {
        Some(_) => {
            let addr = cluster_listen_addr(&args)?;
            let security = PeerSecurity::choose(&args.cluster_tls, args.cluster_insecure, addr)?;
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("listening on {addr} (cluster port)"))?;
            Some((listener, security))
        }
        None => None,
    };

    let http_listener = match args.metrics_addr.as_str() {
        "off" => None,
        addr => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("listening on {addr}"))?,
        ),
    };
    // The gRPC port is bound last: whoever finds it accepting finds the other ports bound.
    let listener = tokio::net::TcpListener::bind(args.grpc_addr)
        .await
        .with_context(|| format!("listening on {}", args.grpc_addr))?;

    let config = ReplicaConfig {
        node_id: args.node_id,
        initial_members,
        cluster_secret: secret.clone().unwrap_or_default(),
        heartbeat_interval: args.heartbeat_interval,
        election_timeout: args.election_timeout,
        snapshot_every: args.snapshot_every,
        catch_up_entries: args.catch_up_entries,
        clock_tick: args.clock_tick,
        max_staleness: args.max_staleness,
        max_clock_offset: args.max_clock_offset,
        digest_every: args.digest_interval,
        newest_log_format: args.newest_log_format,
    };
    let gc = GcSchedule {
        window: args.gc_window,
        interval: args.gc_interval,
    };
    let mut builder = NodeBuilder::new(config, Box::new(persistence), log).collect_garbage(gc);
    if let Some((_, security)) = &cluster_port {
        builder = builder.dialer(security.dialer());
    }
    let StartedNode { datastore, replica } = builder.start().await?;
    if let (Some((listener, security)), Some(secret)) = (cluster_port, secret) {
        let reload_every = args.cluster_tls_reload_interval;
        security.serve(listener, replica.clone(), secret, reload_every);
    }
    let node = Arc::new(Node::new(
        datastore.clone(),
        replica.clone(),
        Limits::default(),
    ));
    let tls = match (&args.tls_cert_path, &args.tls_key_path) {
        (Some(cert), Some(key)) => Some(TlsFiles {
            certificate_pem: std::fs::read(cert)
                .with_context(|| format!("reading {}", cert.display()))?,
            key_pem: std::fs::read(key).with_context(|| format!("reading {}", key.display()))?,
        }),
        _ => None,
    };
    tracing::info!(
        grpc_addr = %listener.local_addr()?,
        metrics_addr = %args.metrics_addr,
        cluster_addr = %args.cluster_addr,
        node_id = args.node_id,
        data_dir = %args.data_dir.display(),
        revision = datastore.head(),
        "pemba is serving"
    );
    let options = ServeOptions {
        preshared_keys: args.grpc_preshared_keys,
        tls,
        max_message_bytes: args.max_message_bytes,
    };
    let incoming = crate::incoming::without_delay(listener);
    // A node that must not run (its storage is empty while the cluster lists it, or the
    // founding members disagree) shuts down and exits non-zero, saying why and what to do. It
    // lingers a moment first, still answering (its peers learn of a disagreement from it; its
    // clients get UNAVAILABLE with the reason).
    let refusal = Arc::new(std::sync::Mutex::new(None));
    let stop = {
        let (replica, refusal) = (replica.clone(), refusal.clone());
        async move {
            tokio::select! {
                () = shutdown_signal() => {}
                why = replica.refused() => {
                    tokio::time::sleep(REFUSAL_LINGER).await;
                    *refusal.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
                }
            }
        }
    };
    pemba_server::serve(node, incoming, http_listener, options, stop).await?;
    replica.shutdown().await;
    if let Some(why) = refusal.lock().unwrap_or_else(|e| e.into_inner()).take() {
        bail!("{why}");
    }
    Ok(())
}
