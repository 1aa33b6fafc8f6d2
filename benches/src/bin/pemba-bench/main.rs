//! `pemba-bench`: drives `authzed.api.v1` endpoints (Pemba, SpiceDB, a no-op service) and
//! OpenFGA with the same seeded data and questions, and reports throughput, latency quantiles,
//! errors, CPU and memory side by side.
//!
//! `pemba-bench report` reproduces the README's performance table; `pemba-bench run` drives one
//! target with one workload.

mod catch_up;
mod noop;
mod openfga;
mod process;
mod render;
mod report;
mod scrape;
mod systems;
mod target;
mod workload;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use pemba_benches::{document_sharing, DOCUMENT_SHARING_SCHEMA};
use process::Pinning;
use report::ReportOptions;
use systems::{Setup, System, KEY};
use target::Target;
use workload::{Load, Measured, Shape, Workload};

/// The same allocator as the `pemba` binary, so the load generator takes as little CPU from the
/// servers it shares the machine with as it can.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(about = "Pemba's load generator and side-by-side benchmark report")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct LoadArgs {
    /// Concurrent requests in flight.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// How long to measure, after the warm-up.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// How long to send requests before measuring.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Seeds the dataset and the questions.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Relationships per request in the write workload.
    #[arg(long, default_value_t = 100)]
    write_batch: usize,
}

impl LoadArgs {
    fn load(&self) -> Load {
        Load {
            concurrency: self.concurrency,
            warmup: self.warmup,
            duration: self.duration,
            seed: self.seed,
            write_batch: self.write_batch,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum TargetKind {
    /// Any authzed.api.v1 endpoint (`--endpoint`).
    Grpc,
    /// An OpenFGA server's gRPC endpoint: a new store with the document-sharing model.
    Openfga,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SystemName {
    Pemba,
    SpicedbMemdb,
    SpicedbPostgres,
    OpenfgaPostgres,
}

impl From<SystemName> for System {
    fn from(name: SystemName) -> System {
        match name {
            SystemName::Pemba => System::Pemba,
            SystemName::SpicedbMemdb => System::SpiceDbMemory,
            SystemName::SpicedbPostgres => System::SpiceDbPostgres,
            SystemName::OpenfgaPostgres => System::OpenFgaPostgres,
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Drive one target with one workload and print what was measured.
    Run {
        #[arg(long, value_enum, default_value = "grpc")]
        target: TargetKind,
        /// The target's gRPC endpoint.
        #[arg(long, default_value = "http://127.0.0.1:50051")]
        endpoint: String,
        /// The target's preshared key.
        #[arg(long, default_value = KEY)]
        key: String,
        #[arg(long, value_enum, default_value = "check")]
        workload: Workload,
        /// Relationships in the document-sharing dataset the questions are drawn from.
        #[arg(long, default_value_t = 100_000)]
        relationships: usize,
        /// Write the schema and the dataset first (always, for OpenFGA: its store is new).
        #[arg(long)]
        load_data: bool,
        #[command(flatten)]
        load: LoadArgs,
    },
    /// Run every workload against every system; print the table.
    Report {
        /// Relationships in the document-sharing dataset.
        #[arg(long, default_value_t = 1_000_000)]
        relationships: usize,
        /// The systems to compare (Pemba first: the others are cross-checked against it).
        #[arg(
            long,
            value_enum,
            value_delimiter = ',',
            default_value = "pemba,spicedb-memdb,spicedb-postgres,openfga-postgres"
        )]
        systems: Vec<SystemName>,
        /// Skip the three-node write benchmark.
        #[arg(long)]
        no_cluster: bool,
        /// The SpiceDB server binary.
        #[arg(long)]
        spicedb: Option<PathBuf>,
        /// The OpenFGA server binary.
        #[arg(long)]
        openfga: Option<PathBuf>,
        /// A running PostgreSQL (`postgres://user@host:port`) with empty databases `spicedb`
        /// and `openfga`.
        #[arg(long)]
        postgres: Option<String>,
        /// Pin every server to these CPUs (`taskset -c` list).
        #[arg(long)]
        server_cpus: Option<String>,
        /// Concurrent requests of the lookup workloads.
        #[arg(long, default_value_t = 4)]
        lookup_concurrency: usize,
        /// How long to measure the lookup workloads.
        #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
        lookup_duration: Duration,
        /// Also write the table to this file.
        #[arg(long)]
        output: Option<PathBuf>,
        #[command(flatten)]
        load: LoadArgs,
    },
    /// Add a learner to a node holding `--relationships` and measure its catch-up through a
    /// snapshot: time, both nodes' resident memory, write latency before and during, digests.
    CatchUp {
        #[arg(long, default_value_t = 2_000_000)]
        relationships: usize,
        /// How long the learner may take.
        #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
        within: Duration,
        /// Pin both servers to these CPUs (`taskset -c` list).
        #[arg(long)]
        server_cpus: Option<String>,
        #[command(flatten)]
        load: LoadArgs,
    },
    /// Serve the no-op PermissionsService (the report starts it as a child process).
    NoopServer {
        #[arg(long)]
        port: u16,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Run {
            target,
            endpoint,
            key,
            workload,
            relationships,
            load_data,
            load,
        } => {
            let dataset = document_sharing(relationships, load.seed);
            let target = match target {
                TargetKind::Grpc => Target::grpc(&endpoint, &key).await?,
                TargetKind::Openfga => Target::openfga(&endpoint, &key).await?,
            };
            if load_data || !target.speaks_authzed() {
                target.write_schema(DOCUMENT_SHARING_SCHEMA).await?;
                target.import(&dataset.relationships, 1000).await?;
                eprintln!("loaded {relationships} relationships");
            }
            let measured =
                workload::run(&target, workload, Shape::from(&dataset), load.load()).await;
            println!("{}", describe(&measured));
            Ok(())
        }
        Command::Report {
            relationships,
            systems,
            no_cluster,
            spicedb,
            openfga,
            postgres,
            server_cpus,
            lookup_concurrency,
            lookup_duration,
            output,
            load,
        } => {
            let options = ReportOptions {
                relationships,
                systems: systems.into_iter().map(System::from).collect(),
                cluster: !no_cluster,
                load: load.load(),
                lookup_load: Load {
                    concurrency: lookup_concurrency,
                    duration: lookup_duration,
                    ..load.load()
                },
            };
            let scratch = tempfile::tempdir()?;
            let setup = Setup {
                pemba: process::sibling_binary("pemba")?,
                spicedb,
                openfga,
                postgres,
                pinning: Pinning { cpus: server_cpus },
                scratch: scratch.path().to_path_buf(),
            };
            let (table, verdict) = report::report(&options, &setup).await?;
            println!("{table}");
            if let Some(path) = output {
                std::fs::write(&path, &table)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            verdict.into_result()
        }
        Command::CatchUp {
            relationships,
            within,
            server_cpus,
            load,
        } => {
            let scratch = tempfile::tempdir()?;
            let setup = Setup {
                pemba: process::sibling_binary("pemba")?,
                spicedb: None,
                openfga: None,
                postgres: None,
                pinning: Pinning { cpus: server_cpus },
                scratch: scratch.path().to_path_buf(),
            };
            let options = catch_up::CatchUpOptions {
                relationships,
                writes: load.load(),
                within,
            };
            println!("{}", catch_up::catch_up(&options, &setup).await?);
            Ok(())
        }
        Command::NoopServer { port } => noop::serve(SocketAddr::from(([127, 0, 0, 1], port))).await,
    }
}

fn describe(m: &Measured) -> String {
    format!(
        "{} requests in {:.1?}: {:.0}/s, p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, {} errors{}",
        m.requests,
        m.elapsed,
        m.throughput(),
        m.quantile_ms(0.50),
        m.quantile_ms(0.95),
        m.quantile_ms(0.99),
        m.quantile_ms(0.999),
        m.errors,
        m.first_error
            .as_ref()
            .map(|e| format!(" (first: {e})"))
            .unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::free_port;
    use std::time::Instant;

    /// The load generator measures what it drives: requests against the no-op service all
    /// succeed, and their latencies land in the histogram.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_load_generator_measures_a_real_service() {
        let port = free_port().expect("a port");
        tokio::spawn(noop::serve(SocketAddr::from(([127, 0, 0, 1], port))));
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(10);
        let target = loop {
            match Target::grpc(&url, KEY).await {
                Ok(target) => break target,
                Err(e) if Instant::now() > deadline => panic!("no-op service: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
        let load = Load {
            concurrency: 2,
            warmup: Duration::from_millis(100),
            duration: Duration::from_millis(400),
            seed: 1,
            write_batch: 1,
        };
        let shape = Shape {
            documents: 10,
            users: 10,
        };
        let measured = workload::run(&target, Workload::Check, shape, load).await;
        assert_eq!(measured.errors, 0, "{:?}", measured.first_error);
        assert!(measured.requests > 10, "{} requests", measured.requests);
        assert_eq!(measured.latency_us.len(), measured.requests);
        assert!(measured.quantile_ms(0.5) > 0.0);
        // The no-op service answers nothing else: errors are counted, with the first kept.
        let failed = workload::run(&target, Workload::Lookup, shape, load).await;
        assert_eq!(failed.requests, 0);
        assert!(failed.errors > 0);
        assert!(failed
            .first_error
            .is_some_and(|e| e.contains("only answers CheckPermission")));
    }
}
