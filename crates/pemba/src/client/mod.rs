//! The client subcommands: a zed-like command line for any `authzed.api.v1` endpoint (Pemba's or
//! SpiceDB's). Global options say where and how to connect; read commands take consistency flags;
//! every command prints plain text, or JSON with `--json`.

mod cluster;
mod connection;
mod convert;
mod import_export;
mod json;
mod permission;
mod relationship;
mod schema;
mod watch;

use std::fmt::Display;
use std::io::Write;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use pemba_proto::authzed::api::v1 as api;
use serde_json::Value;

use connection::Client;
pub use connection::ClientOptions;

/// The client subcommands, flattened into `pemba`'s own.
#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    /// Read or write the schema.
    Schema {
        #[command(flatten)]
        options: ClientOptions,
        #[command(subcommand)]
        command: schema::SchemaCommand,
    },
    /// Create, touch, delete and read relationships.
    Relationship {
        #[command(flatten)]
        options: ClientOptions,
        #[command(subcommand)]
        command: relationship::RelationshipCommand,
    },
    /// Check and expand permissions, look up resources and subjects.
    Permission {
        #[command(flatten)]
        options: ClientOptions,
        #[command(subcommand)]
        command: permission::PermissionCommand,
    },
    /// Import relationships (one per line, or a validation YAML file with its schema).
    Import {
        #[command(flatten)]
        options: ClientOptions,
        #[command(flatten)]
        args: import_export::ImportArgs,
    },
    /// Export every relationship, one per line.
    Export {
        #[command(flatten)]
        options: ClientOptions,
        #[command(flatten)]
        args: import_export::ExportArgs,
    },
    /// Print relationship changes as they happen, until interrupted.
    Watch {
        #[command(flatten)]
        options: ClientOptions,
        #[command(flatten)]
        args: watch::WatchArgs,
    },
    /// Cluster administration: status, add a learner, promote it, remove a node.
    Cluster {
        #[command(flatten)]
        options: cluster::ClusterOptions,
        #[command(subcommand)]
        command: cluster::ClusterCommand,
    },
}

/// Runs a client command; errors are printed as `error: …` and give a non-zero exit code.
pub fn run(command: ClientCommand) -> ExitCode {
    let outcome = tokio::runtime::Runtime::new()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(dispatch(command)));
    match outcome {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(command: ClientCommand) -> anyhow::Result<ExitCode> {
    match command {
        ClientCommand::Schema { options, command } => {
            schema::run(&Client::connect(&options).await?, command, options.json).await
        }
        ClientCommand::Relationship { options, command } => {
            relationship::run(&Client::connect(&options).await?, command, options.json).await
        }
        ClientCommand::Permission { options, command } => {
            permission::run(&Client::connect(&options).await?, command, options.json).await
        }
        ClientCommand::Import { options, args } => {
            import_export::import(&Client::connect(&options).await?, args, options.json).await
        }
        ClientCommand::Export { options, args } => {
            import_export::export(&Client::connect(&options).await?, args, options.json).await
        }
        ClientCommand::Watch { options, args } => {
            watch::run(&Client::connect(&options).await?, args, options.json).await
        }
        ClientCommand::Cluster { options, command } => cluster::run(options, command).await,
    }
}

/// A gRPC error as `<code>: <message>`, e.g. `PermissionDenied: invalid preshared key: invalid
/// token`; for a call that never reached the server (a refused TLS certificate, say), followed
/// by the transport's causes.
fn rpc_error(status: tonic::Status) -> anyhow::Error {
    let mut text = format!("{:?}: {}", status.code(), status.message());
    let mut cause = std::error::Error::source(&status);
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    anyhow::anyhow!(text)
}

/// Which revision a read is evaluated at (default: whatever minimizes latency).
#[derive(Args, Debug, Default)]
#[group(multiple = false)]
pub struct ConsistencyArgs {
    /// Evaluate at the newest revision.
    #[arg(long)]
    consistency_full: bool,
    /// Evaluate at a revision at least as new as this ZedToken.
    #[arg(long, value_name = "TOKEN")]
    consistency_at_least: Option<String>,
    /// Evaluate at exactly the revision of this ZedToken.
    #[arg(long, value_name = "TOKEN")]
    consistency_at_exactly: Option<String>,
}

impl ConsistencyArgs {
    fn to_api(&self) -> api::Consistency {
        use api::consistency::Requirement;
        let token = |t: &String| api::ZedToken { token: t.clone() };
        let requirement = match (&self.consistency_at_least, &self.consistency_at_exactly) {
            (Some(t), _) => Requirement::AtLeastAsFresh(token(t)),
            (None, Some(t)) => Requirement::AtExactSnapshot(token(t)),
            (None, None) if self.consistency_full => Requirement::FullyConsistent(true),
            (None, None) => Requirement::MinimizeLatency(true),
        };
        api::Consistency {
            requirement: Some(requirement),
        }
    }
}

/// The options every read takes: its consistency, and whether to show the token it was read at.
#[derive(Args, Debug)]
pub struct ReadOptions {
    #[command(flatten)]
    consistency: ConsistencyArgs,
    /// Print the ZedToken the read was evaluated at to stderr.
    #[arg(long)]
    show_token: bool,
}

impl ReadOptions {
    /// Prints `token` to stderr if `--show-token` was given.
    fn show(&self, token: Option<&api::ZedToken>) {
        if let (true, Some(token)) = (self.show_token, token) {
            eprintln!("{}", token.token);
        }
    }
}

/// Prints a line to stdout; fails with a broken pipe once stdout is closed (see [`run`]).
fn print_line(text: impl Display) -> anyhow::Result<()> {
    writeln!(std::io::stdout(), "{text}")?;
    Ok(())
}

/// Prints one response as indented JSON.
fn print_json(value: &Value) -> anyhow::Result<()> {
    print_line(format_args!("{value:#}"))
}

/// Prints one item of a stream as a line of JSON.
fn print_json_line(value: &Value) -> anyhow::Result<()> {
    print_line(value)
}

/// True if the error is stdout (or the export file) having been closed by its reader, as when
/// piping into `head`: the command then stops quietly.
fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
