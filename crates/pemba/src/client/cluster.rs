//! `pemba cluster`: membership administration over a node's cluster port.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use pemba_peer_tls::TlsDialer;
use pemba_proto::pemba::cluster::v1 as proto;
use pemba_proto::pemba::cluster::v1::cluster_client::ClusterClient;
use serde_json::json;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};

use super::{print_json, print_line, rpc_error};
use crate::cluster_port::ClusterTlsArgs;

/// Where a node's cluster port is, and the cluster secret.
#[derive(Args, Debug)]
pub struct ClusterOptions {
    /// A node's cluster address (`host:port`); any node will do, changes go to the leader.
    #[arg(
        long = "endpoint",
        default_value = "127.0.0.1:50053",
        env = "PEMBA_CLUSTER_ENDPOINT"
    )]
    endpoint: String,
    /// The cluster secret (as given to `pemba serve --cluster-secret`).
    #[arg(long, env = "PEMBA_CLUSTER_SECRET", hide_env_values = true)]
    cluster_secret: String,
    /// A certificate from the cluster's CA, for a node whose cluster port requires mutual TLS.
    #[command(flatten)]
    tls: ClusterTlsArgs,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// Show this node's view: leader, term, log and applied indexes, members.
    Status,
    /// Add a node as a learner: it catches up from a snapshot and the log, without voting.
    Add {
        /// The new node's id (never used before in this cluster).
        id: u64,
        /// The new node's cluster address (`host:port`).
        addr: String,
    },
    /// Make a learner a voter. A learner that has not caught up with the leader's log is
    /// refused (the error says how far behind it is), unless `--wait` is given.
    Promote {
        id: u64,
        /// Wait for the learner to catch up, printing its progress, then promote it.
        #[arg(long)]
        wait: bool,
    },
    /// Remove a node (voter or learner) from the cluster.
    Remove { id: u64 },
}

async fn connect(options: &ClusterOptions) -> anyhow::Result<ClusterClient<Channel>> {
    let channel = match options.tls.load()? {
        Some(tls) => TlsDialer::new(tls).connect(&options.endpoint).await?,
        None => Endpoint::from_shared(format!("http://{}", options.endpoint))
            .with_context(|| format!("`{}` is not a host:port", options.endpoint))?
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await
            .with_context(|| format!("connecting to {}", options.endpoint))?,
    };
    Ok(ClusterClient::new(channel))
}

fn request<T>(options: &ClusterOptions, message: T) -> anyhow::Result<tonic::Request<T>> {
    let mut request = tonic::Request::new(message);
    let header = MetadataValue::try_from(format!("Bearer {}", options.cluster_secret))
        .context("the cluster secret must be printable ASCII")?;
    request.metadata_mut().insert("authorization", header);
    request.set_timeout(Duration::from_secs(15));
    Ok(request)
}

/// A failed call's error. One that never reached the node over mutual TLS gets a hint: in TLS
/// 1.3 the node checks the client's certificate after the client considers the handshake
/// done, so a refused certificate shows up here only as a broken connection.
fn call_error(options: &ClusterOptions) -> impl Fn(tonic::Status) -> anyhow::Error + '_ {
    move |status| {
        let over_tls = options.tls.paths().is_some();
        let transport = std::error::Error::source(&status).is_some();
        let error = rpc_error(status);
        if over_tls && transport {
            error.context(format!(
                "the call to {} failed before reaching the node: if it refused this certificate (another CA's, expired), its log says why",
                options.endpoint
            ))
        } else {
            error
        }
    }
}

pub async fn run(options: ClusterOptions, command: ClusterCommand) -> anyhow::Result<ExitCode> {
    let mut client = connect(&options).await?;
    let rpc_error = call_error(&options);
    let log_index = match command {
        ClusterCommand::Status => {
            let status = client
                .status(request(&options, proto::StatusRequest {})?)
                .await
                .map_err(&rpc_error)?
                .into_inner();
            print_status(&status, options.json)?;
            return Ok(ExitCode::SUCCESS);
        }
        ClusterCommand::Add { id, addr } => client
            .add_learner(request(&options, proto::AddLearnerRequest { id, addr })?)
            .await
            .map_err(&rpc_error)?,
        ClusterCommand::Promote { id, wait } => promote(&mut client, &options, id, wait).await?,
        ClusterCommand::Remove { id } => client
            .remove(request(&options, proto::RemoveRequest { id })?)
            .await
            .map_err(&rpc_error)?,
    }
    .into_inner()
    .log_index;
    if options.json {
        print_json(&json!({ "logIndex": log_index }))?;
    } else {
        print_line(format_args!("done at log index {log_index}"))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Promotes learner `id`; with `wait`, while it has not caught up, prints how far behind it is
/// (to stderr) every second and tries again.
async fn promote(
    client: &mut ClusterClient<Channel>,
    options: &ClusterOptions,
    id: u64,
    wait: bool,
) -> anyhow::Result<tonic::Response<proto::MembershipResponse>> {
    loop {
        let answer = client
            .promote(request(options, proto::PromoteRequest { id })?)
            .await;
        match answer {
            Err(status) if wait && is_lagging(&status) => {
                eprintln!("waiting: {}", status.message());
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            answer => return answer.map_err(call_error(options)),
        }
    }
}

/// Whether a refused promotion was refused because the learner lags.
fn is_lagging(status: &tonic::Status) -> bool {
    status.code() == tonic::Code::FailedPrecondition
        && status.message().contains("has not caught up")
}

fn print_status(status: &proto::StatusResponse, as_json: bool) -> anyhow::Result<()> {
    if as_json {
        let members: Vec<_> = status
            .members
            .iter()
            .map(|m| {
                json!({
                    "id": m.id,
                    "addr": m.addr,
                    "voter": m.voter,
                    "matchedIndex": m.matched_index,
                })
            })
            .collect();
        return print_json(&json!({
            "nodeId": status.node_id,
            "clusterId": status.cluster_id,
            "state": status.state,
            "term": status.term,
            "leaderId": status.leader_id,
            "lastLogIndex": status.last_log_index,
            "appliedIndex": status.applied_index,
            "snapshotIndex": status.snapshot_index,
            "members": members,
        }));
    }
    print_line(format_args!(
        "node {} ({}), cluster {}\nterm {}, leader {}\nlog {}, applied {}, snapshot {}",
        status.node_id,
        status.state,
        if status.cluster_id.is_empty() {
            "(not named yet)"
        } else {
            &status.cluster_id
        },
        status.term,
        match status.leader_id {
            0 => "unknown".to_string(),
            id => id.to_string(),
        },
        status.last_log_index,
        status.applied_index,
        status.snapshot_index,
    ))?;
    for m in &status.members {
        let matched = m
            .matched_index
            .map(|i| format!(", matched {i}"))
            .unwrap_or_default();
        print_line(format_args!(
            "  {} {} {}{matched}",
            m.id,
            m.addr,
            if m.voter { "voter" } else { "learner" }
        ))?;
    }
    Ok(())
}
