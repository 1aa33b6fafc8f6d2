//! The systems the report compares, each started as its users would run it: Pemba (one node;
//! three for the replicated write row), the SpiceDB server on its in-memory datastore and on
//! PostgreSQL (default caches, 5 s quantization), and the OpenFGA server on PostgreSQL.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::process::{free_port, Pinning, Server, Usage};
use crate::target::Target;

/// The preshared key of every server the report starts.
pub const KEY: &str = "pemba-bench-key";

/// Where the systems' programs are and how they run.
pub struct Setup {
    pub pemba: PathBuf,
    pub spicedb: Option<PathBuf>,
    pub openfga: Option<PathBuf>,
    /// `postgres://user@host:port` of a running PostgreSQL holding the empty databases
    /// `spicedb` and `openfga`; `None`: the PostgreSQL rows are skipped.
    pub postgres: Option<String>,
    pub pinning: Pinning,
    /// Each server's log goes here.
    pub scratch: PathBuf,
}

/// One system of the comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum System {
    Pemba,
    SpiceDbMemory,
    SpiceDbPostgres,
    OpenFgaPostgres,
}

impl System {
    /// The system column of the table.
    pub fn label(self) -> &'static str {
        match self {
            System::Pemba => "Pemba (1 node)",
            System::SpiceDbMemory => "SpiceDB v1.56.2 (memdb)",
            System::SpiceDbPostgres => "SpiceDB v1.56.2 (PostgreSQL)",
            System::OpenFgaPostgres => "OpenFGA v1.22.1 (PostgreSQL)",
        }
    }

    /// Why the system cannot run with `setup`, if it cannot.
    pub fn missing(self, setup: &Setup) -> Option<&'static str> {
        match self {
            System::Pemba => None,
            System::SpiceDbMemory if setup.spicedb.is_none() => Some("no spicedb binary"),
            System::SpiceDbPostgres if setup.spicedb.is_none() => Some("no spicedb binary"),
            System::OpenFgaPostgres if setup.openfga.is_none() => Some("no openfga binary"),
            System::SpiceDbPostgres | System::OpenFgaPostgres if setup.postgres.is_none() => {
                Some("no PostgreSQL (--postgres)")
            }
            _ => None,
        }
    }

    /// Starts the system and connects to it.
    pub async fn start(self, setup: &Setup) -> anyhow::Result<Running> {
        let port = free_port()?;
        let log = setup.scratch.join(format!("{self:?}.log"));
        let (program, args) = match self {
            System::Pemba => {
                let dir = setup.scratch.join("pemba");
                std::fs::create_dir_all(&dir)?;
                (setup.pemba.clone(), pemba_args(port, &dir, None, &[]))
            }
            System::SpiceDbMemory => (binary(&setup.spicedb)?, spicedb_args(port, None)),
            System::SpiceDbPostgres => {
                let uri = format!("{}/spicedb?sslmode=disable", postgres(setup)?);
                let spicedb = binary(&setup.spicedb)?;
                let migrate = [
                    "datastore",
                    "migrate",
                    "head",
                    "--datastore-engine",
                    "postgres",
                    "--datastore-conn-uri",
                    &uri,
                ];
                run_to_end(&spicedb, &migrate)?;
                (spicedb, spicedb_args(port, Some(&uri)))
            }
            System::OpenFgaPostgres => {
                let uri = format!("{}/openfga?sslmode=disable", postgres(setup)?);
                let openfga = binary(&setup.openfga)?;
                let migrate = [
                    "migrate",
                    "--datastore-engine",
                    "postgres",
                    "--datastore-uri",
                    &uri,
                ];
                run_to_end(&openfga, &migrate)?;
                (openfga, openfga_args(port, &uri))
            }
        };
        let server = Server::start(&program, &args, port, &log, &setup.pinning)?;
        let target = match self {
            System::OpenFgaPostgres => Target::openfga(&server.url(), KEY).await?,
            _ => Target::grpc(&server.url(), KEY).await?,
        };
        Ok(Running {
            servers: vec![server],
            target,
            metrics: Vec::new(),
        })
    }
}

/// A started system; its servers stop when it is dropped.
pub struct Running {
    pub servers: Vec<Server>,
    pub target: Target,
    /// The `host:port` of each server's Prometheus metrics, where it serves them.
    pub metrics: Vec<String>,
}

impl Running {
    /// The servers' CPU time (summed) and peak memory (the largest).
    pub fn usage(&self) -> Usage {
        self.servers.iter().fold(Usage::default(), |sum, server| {
            let u = server.usage();
            Usage {
                cpu: sum.cpu + u.cpu,
                peak_rss_bytes: sum.peak_rss_bytes.max(u.peak_rss_bytes),
            }
        })
    }
}

fn binary(path: &Option<PathBuf>) -> anyhow::Result<PathBuf> {
    path.clone().context("binary not given")
}

fn postgres(setup: &Setup) -> anyhow::Result<&str> {
    setup.postgres.as_deref().context("no PostgreSQL given")
}

/// Runs a setup command (a migration) and fails with its output if it fails.
fn run_to_end(program: &Path, args: &[&str]) -> anyhow::Result<()> {
    let output = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running {}", program.display()))?;
    if !output.status.success() {
        bail!(
            "{} {} failed: {}{}",
            program.display(),
            args.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// `pemba serve` on `port` with its data in `dir`, its metrics at `metrics` (or none), plus
/// `extra` flags.
pub fn pemba_args(port: u16, dir: &Path, metrics: Option<u16>, extra: &[String]) -> Vec<String> {
    let metrics = metrics.map_or("off".to_string(), |port| format!("127.0.0.1:{port}"));
    let mut args: Vec<String> = [
        "serve",
        "--grpc-preshared-key",
        KEY,
        "--grpc-addr",
        &format!("127.0.0.1:{port}"),
        "--metrics-addr",
        &metrics,
        "--data-dir",
    ]
    .map(String::from)
    .to_vec();
    args.push(dir.display().to_string());
    args.extend_from_slice(extra);
    args
}

/// `spicedb serve` with its defaults (dispatch and namespace caches on, 5 s quantization),
/// on memdb or, given a connection URI, PostgreSQL; only warnings logged, as Pemba's default.
fn spicedb_args(port: u16, postgres: Option<&str>) -> Vec<String> {
    let mut args: Vec<String> = [
        "serve",
        "--grpc-preshared-key",
        KEY,
        "--grpc-addr",
        &format!("127.0.0.1:{port}"),
        "--http-enabled=false",
        "--metrics-enabled=false",
        "--telemetry-endpoint=",
        "--skip-release-check=true",
        "--log-level",
        "warn",
        "--datastore-engine",
    ]
    .map(String::from)
    .to_vec();
    match postgres {
        Some(uri) => args.extend(["postgres".into(), "--datastore-conn-uri".into(), uri.into()]),
        None => args.push("memory".into()),
    }
    args
}

/// `openfga run` on PostgreSQL with its check and iterator caches on (as a user tuning it for
/// speed would; HIGHER_CONSISTENCY requests bypass them), ListObjects' result cap and deadline
/// lifted and its 3 s request timeout raised to 10 minutes (it cannot be 0), so that its
/// answers are complete (SpiceDB has no request timeout), and writes of up to 1,000 tuples (SpiceDB's limit)
/// so that it loads the dataset as the others do.
fn openfga_args(port: u16, uri: &str) -> Vec<String> {
    [
        "run",
        "--grpc-addr",
        &format!("127.0.0.1:{port}"),
        "--http-enabled=false",
        "--playground-enabled=false",
        "--metrics-enabled=false",
        "--log-level",
        "warn",
        "--authn-method",
        "preshared",
        "--authn-preshared-keys",
        KEY,
        "--datastore-engine",
        "postgres",
        "--datastore-uri",
        uri,
        "--max-tuples-per-write",
        "1000",
        "--listObjects-max-results",
        "0",
        "--listObjects-deadline",
        "0",
        "--request-timeout",
        "10m",
        "--check-query-cache-enabled",
        "--check-iterator-cache-enabled",
        "--list-objects-iterator-cache-enabled",
    ]
    .map(String::from)
    .to_vec()
}

/// A three-node Pemba cluster on this machine (fsync on), pinned like every server; connected
/// to node 1 once the schema is written (a leader is elected and the cluster named).
pub async fn pemba_cluster(setup: &Setup, schema: &str) -> anyhow::Result<Running> {
    let cluster_ports = [free_port()?, free_port()?, free_port()?];
    let members = cluster_ports
        .iter()
        .enumerate()
        .map(|(i, port)| format!("{}=127.0.0.1:{port}", i + 1))
        .collect::<Vec<_>>()
        .join(",");
    let mut servers = Vec::new();
    let mut metrics = Vec::new();
    for (i, cluster_port) in cluster_ports.iter().enumerate() {
        let extra = [
            "--node-id".to_string(),
            (i + 1).to_string(),
            "--cluster-addr".into(),
            format!("127.0.0.1:{cluster_port}"),
            "--initial-members".into(),
            members.clone(),
            "--cluster-secret".into(),
            "pemba-bench-cluster".into(),
        ];
        let port = free_port()?;
        let dir = setup.scratch.join(format!("cluster-{}", i + 1));
        std::fs::create_dir_all(&dir)?;
        let log = setup.scratch.join(format!("cluster-{}.log", i + 1));
        let metrics_port = free_port()?;
        metrics.push(format!("127.0.0.1:{metrics_port}"));
        let args = pemba_args(port, &dir, Some(metrics_port), &extra);
        servers.push(Server::start(
            &setup.pemba,
            &args,
            port,
            &log,
            &setup.pinning,
        )?);
    }
    let target = Target::grpc(&servers[0].url(), KEY).await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Err(e) = target.write_schema(schema).await {
        if Instant::now() > deadline {
            return Err(e.context("the cluster elected no leader"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(Running {
        servers,
        target,
        metrics,
    })
}
