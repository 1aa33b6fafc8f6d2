//! The `pemba` command line: `serve` runs a node, `validate` runs validation files, and the other
//! subcommands are a client of any `authzed.api.v1` endpoint.

mod client;
mod cluster_port;
mod incoming;
mod serve;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// A check allocates many small, short-lived objects on every worker thread; mimalloc's
/// per-thread heaps serve them without the contention of the system allocator's arenas.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "pemba",
    version,
    about = "A replicated, SpiceDB-compatible authorization datastore"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once per process: the size of its largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run a Pemba node.
    Serve(serve::ServeArgs),
    /// Run SpiceDB validation files (schema, relationships, assertions, expected subjects).
    ///
    /// Directories are searched for `*.yaml` files. Exits non-zero if any file fails.
    Validate {
        /// Validation files or directories of them.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    #[command(flatten)]
    Client(client::ClientCommand),
}

/// What is logged unless `PEMBA_LOG` or `RUST_LOG` says otherwise: Pemba's own INFO lines (every
/// target starting with `pemba`: this binary and the `pemba_*` crates), and only the warnings and
/// errors of the libraries below it (openraft's INFO lines narrate every vote and log id: a
/// screenful at each start).
const DEFAULT_LOG_FILTER: &str = "warn,pemba=info";

fn main() -> anyhow::Result<ExitCode> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PEMBA_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| DEFAULT_LOG_FILTER.into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match Cli::parse().command {
        Command::Serve(args) => {
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(serve::run(args))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Validate { paths } => validate::run(&paths),
        Command::Client(command) => Ok(client::run(command)),
    }
}
