//! `pemba watch`: prints relationship changes as they are committed, until interrupted.

use std::process::ExitCode;

use clap::Args;
use pemba_proto::authzed::api::v1 as api;
use serde_json::json;

use super::connection::Client;
use super::convert::relationship_from_api;
use super::{json, print_json_line, print_line, rpc_error};

#[derive(Args, Debug)]
pub struct WatchArgs {
    /// Only changes to resources of these types (comma-separated or repeated).
    #[arg(long, value_delimiter = ',', value_name = "TYPE")]
    object_types: Vec<String>,
    /// Start after the revision of this ZedToken (default: now).
    #[arg(long, value_name = "TOKEN")]
    revision: Option<String>,
}

pub async fn run(client: &Client, args: WatchArgs, json: bool) -> anyhow::Result<ExitCode> {
    let request = api::WatchRequest {
        optional_object_types: args.object_types,
        optional_start_cursor: args.revision.map(|token| api::ZedToken { token }),
        ..Default::default()
    };
    let mut stream = client
        .watch()
        .watch(request)
        .await
        .map_err(rpc_error)?
        .into_inner();
    loop {
        let response = tokio::select! {
            response = stream.message() => response.map_err(rpc_error)?,
            _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
        };
        let Some(response) = response else {
            anyhow::bail!("the server ended the watch");
        };
        if json {
            print_json_line(&response_json(&response))?;
        } else {
            print_text(&response)?;
        }
    }
}

/// `TOUCH document:plan#viewer@user:tom (revision <token>)`, one line per update.
fn print_text(response: &api::WatchResponse) -> anyhow::Result<()> {
    let revision = response
        .changes_through
        .as_ref()
        .map_or(String::new(), |t| format!(" (revision {})", t.token));
    if response.schema_updated {
        print_line(format_args!("SCHEMA UPDATED{revision}"))?;
    }
    for update in &response.updates {
        let Some(relationship) = &update.relationship else {
            continue;
        };
        let operation = operation_name(update.operation());
        let relationship = relationship_from_api(relationship);
        print_line(format_args!("{operation} {relationship}{revision}"))?;
    }
    Ok(())
}

fn operation_name(operation: api::relationship_update::Operation) -> &'static str {
    use api::relationship_update::Operation;
    match operation {
        Operation::Create => "CREATE",
        Operation::Touch => "TOUCH",
        Operation::Delete => "DELETE",
        Operation::Unspecified => "UNSPECIFIED",
    }
}

fn response_json(response: &api::WatchResponse) -> serde_json::Value {
    let updates: Vec<_> = response
        .updates
        .iter()
        .map(|u| {
            json!({
                "operation": u.operation().as_str_name(),
                "relationship": json::relationship(u.relationship.as_ref()),
            })
        })
        .collect();
    json!({
        "updates": updates,
        "changesThrough": json::token(response.changes_through.as_ref()),
        "schemaUpdated": response.schema_updated,
    })
}
