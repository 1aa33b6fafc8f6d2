//! `pemba serve`: runs one node on a local data directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context};
use clap::Args;
use pemba_rocksdb::RocksPersistence;
use pemba_server::{Limits, Node, ServeOptions, TlsFiles};
use pemba_store::Datastore;

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
}

/// The datastore's identity: read from `<data dir>/datastore-id`, created on first start.
fn datastore_id(data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join("datastore-id");
    if let Ok(id) = std::fs::read_to_string(&path) {
        return Ok(id.trim().to_string());
    }
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let id = format!("{:x}-{:x}", nanos, std::process::id());
    let temporary = data_dir.join("datastore-id.tmp");
    std::fs::write(&temporary, &id).with_context(|| format!("writing {}", temporary.display()))?;
    std::fs::File::open(&temporary)?.sync_all()?;
    std::fs::rename(&temporary, &path)?;
    std::fs::File::open(data_dir)?.sync_all()?;
    Ok(id)
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

/// Every `interval`, drops history older than `window`.
fn spawn_garbage_collection(datastore: Arc<Datastore>, window: Duration, interval: Duration) {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval.max(Duration::from_secs(1)));
        loop {
            ticker.tick().await;
            match datastore.collect_garbage(SystemTime::now(), window) {
                Ok(horizon) => tracing::debug!(horizon, "garbage collection done"),
                Err(e) => tracing::warn!(error = %e, "garbage collection failed"),
            }
        }
    });
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    if args.grpc_preshared_keys.iter().all(|k| k.trim().is_empty()) {
        bail!("--grpc-preshared-key must not be empty");
    }
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let id = datastore_id(&args.data_dir)?;
    let persistence = RocksPersistence::open(&args.data_dir.join("store"))?;
    let datastore = Arc::new(Datastore::open(Box::new(persistence))?);
    let node = Arc::new(Node::new(
        datastore.clone(),
        id.clone(),
        Limits::default(),
        Arc::new(SystemTime::now),
    ));
    let tls = match (&args.tls_cert_path, &args.tls_key_path) {
        (Some(cert), Some(key)) => Some(TlsFiles {
            certificate_pem: std::fs::read(cert)
                .with_context(|| format!("reading {}", cert.display()))?,
            key_pem: std::fs::read(key).with_context(|| format!("reading {}", key.display()))?,
        }),
        _ => None,
    };
    let listener = tokio::net::TcpListener::bind(args.grpc_addr)
        .await
        .with_context(|| format!("listening on {}", args.grpc_addr))?;
    let http_listener = match args.metrics_addr.as_str() {
        "off" => None,
        addr => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("listening on {addr}"))?,
        ),
    };
    tracing::info!(
        grpc_addr = %listener.local_addr()?,
        metrics_addr = %args.metrics_addr,
        data_dir = %args.data_dir.display(),
        datastore_id = %id,
        revision = datastore.head(),
        "pemba is serving"
    );
    spawn_garbage_collection(datastore.clone(), args.gc_window, args.gc_interval);
    let options = ServeOptions {
        preshared_keys: args.grpc_preshared_keys,
        tls,
        max_message_bytes: args.max_message_bytes,
    };
    pemba_server::serve(node, listener, http_listener, options, shutdown_signal()).await?;
    Ok(())
}
