//! `pemba relationship create|touch|delete|read|bulk-delete`.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::bail;
use clap::{Args, Subcommand};
use pemba_proto::authzed::api::v1 as api;
use serde_json::json;

use super::connection::Client;
use super::convert::{filter, relationship_from_api, relationship_from_args, relationship_to_api};
use super::{json, print_json, print_json_line, print_line, rpc_error, ReadOptions};

#[derive(Subcommand, Debug)]
pub enum RelationshipCommand {
    /// Create a relationship; fails if it already exists. Prints the written-at ZedToken.
    Create(WriteArgs),
    /// Create a relationship, or update it if it exists. Prints the written-at ZedToken.
    Touch(WriteArgs),
    /// Delete a relationship, if it exists. Prints the written-at ZedToken.
    Delete(WriteArgs),
    /// Print the relationships matching a filter, one per line.
    Read {
        #[command(flatten)]
        filter: FilterArgs,
        #[command(flatten)]
        read: ReadOptions,
    },
    /// Delete every relationship matching a filter.
    BulkDelete {
        #[command(flatten)]
        filter: FilterArgs,
        /// Delete without asking for confirmation.
        #[arg(long)]
        force: bool,
    },
}

/// One relationship: `RESOURCE RELATION SUBJECT`, e.g. `document:plan viewer group:eng#member`,
/// or one `document:plan#viewer@group:eng#member`.
#[derive(Args, Debug)]
pub struct WriteArgs {
    /// `RESOURCE RELATION SUBJECT`, or one `type:id#relation@type:id[#relation]`; a subject may
    /// carry `[caveat:{json}]` and `[expiration:RFC3339]`.
    #[arg(required = true, num_args = 1..=3, value_name = "RELATIONSHIP")]
    words: Vec<String>,
}

/// A relationship filter, as positional arguments.
#[derive(Args, Debug)]
pub struct FilterArgs {
    /// `RESOURCE_TYPE[:ID]`, or `RESOURCE_TYPE:PREFIX%` for ids starting with PREFIX.
    resource: Option<String>,
    /// The relation.
    relation: Option<String>,
    /// `SUBJECT_TYPE[:ID][#RELATION]`.
    subject: Option<String>,
}

impl FilterArgs {
    fn to_api(&self) -> anyhow::Result<api::RelationshipFilter> {
        filter(
            self.resource.as_deref(),
            self.relation.as_deref(),
            self.subject.as_deref(),
        )
    }
}

pub async fn run(
    client: &Client,
    command: RelationshipCommand,
    json: bool,
) -> anyhow::Result<ExitCode> {
    use api::relationship_update::Operation;
    match command {
        RelationshipCommand::Create(args) => write(client, Operation::Create, &args, json).await?,
        RelationshipCommand::Touch(args) => write(client, Operation::Touch, &args, json).await?,
        RelationshipCommand::Delete(args) => write(client, Operation::Delete, &args, json).await?,
        RelationshipCommand::Read { filter, read } => {
            self::read(client, filter.to_api()?, &read, json).await?
        }
        RelationshipCommand::BulkDelete { filter, force } => {
            bulk_delete(client, filter.to_api()?, force, json).await?
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn write(
    client: &Client,
    operation: api::relationship_update::Operation,
    args: &WriteArgs,
    json: bool,
) -> anyhow::Result<()> {
    let relationship = relationship_from_args(&args.words)?;
    let update = api::RelationshipUpdate {
        operation: operation as i32,
        relationship: Some(relationship_to_api(&relationship)),
    };
    let request = api::WriteRelationshipsRequest {
        updates: vec![update],
        ..Default::default()
    };
    let response = client
        .permissions()
        .write_relationships(client.request(request))
        .await
        .map_err(rpc_error)?
        .into_inner();
    print_token("writtenAt", response.written_at.as_ref(), json)
}

/// Prints a write's token: `{"<key>": {"token": …}}` with `--json`, else the bare token.
fn print_token(key: &str, token: Option<&api::ZedToken>, json: bool) -> anyhow::Result<()> {
    match token {
        _ if json => print_json(&json!({ key: json::token(token) })),
        Some(token) => print_line(&token.token),
        None => Ok(()),
    }
}

async fn read(
    client: &Client,
    filter: api::RelationshipFilter,
    options: &ReadOptions,
    json: bool,
) -> anyhow::Result<()> {
    let mut stream = open_read(client, filter, options).await?;
    let mut first = true;
    while let Some(response) = stream.message().await.map_err(rpc_error)? {
        if std::mem::take(&mut first) {
            options.show(response.read_at.as_ref());
        }
        let relationship = response.relationship.as_ref();
        if json {
            print_json_line(&json!({
                "readAt": json::token(response.read_at.as_ref()),
                "relationship": json::relationship(relationship),
            }))?;
        } else if let Some(relationship) = relationship {
            print_line(relationship_from_api(relationship))?;
        }
    }
    Ok(())
}

async fn open_read(
    client: &Client,
    filter: api::RelationshipFilter,
    options: &ReadOptions,
) -> anyhow::Result<tonic::Streaming<api::ReadRelationshipsResponse>> {
    let request = api::ReadRelationshipsRequest {
        consistency: Some(options.consistency.to_api()),
        relationship_filter: Some(filter),
        ..Default::default()
    };
    let response = client
        .permissions()
        .read_relationships(client.request(request))
        .await
        .map_err(rpc_error)?;
    Ok(response.into_inner())
}

async fn bulk_delete(
    client: &Client,
    filter: api::RelationshipFilter,
    force: bool,
    json: bool,
) -> anyhow::Result<()> {
    if !force && !confirm_deletion(client, &filter).await? {
        eprintln!("nothing deleted");
        return Ok(());
    }
    let request = api::DeleteRelationshipsRequest {
        relationship_filter: Some(filter),
        ..Default::default()
    };
    let response = client
        .permissions()
        .delete_relationships(client.request(request))
        .await
        .map_err(rpc_error)?
        .into_inner();
    if json {
        print_json(&json!({
            "deletedAt": json::token(response.deleted_at.as_ref()),
            "deletionProgress": response.deletion_progress().as_str_name(),
            "relationshipsDeletedCount": response.relationships_deleted_count,
        }))?;
        return Ok(());
    }
    print_token("deletedAt", response.deleted_at.as_ref(), false)?;
    eprintln!(
        "deleted {} relationships",
        response.relationships_deleted_count
    );
    Ok(())
}

/// Counts what the filter matches and asks on the terminal whether to delete it; refuses when
/// stdin is not a terminal.
async fn confirm_deletion(
    client: &Client,
    filter: &api::RelationshipFilter,
) -> anyhow::Result<bool> {
    let options = ReadOptions {
        consistency: super::ConsistencyArgs {
            consistency_full: true,
            ..Default::default()
        },
        show_token: false,
    };
    let mut stream = open_read(client, filter.clone(), &options).await?;
    let mut count = 0u64;
    while stream.message().await.map_err(rpc_error)?.is_some() {
        count += 1;
    }
    if count == 0 {
        return Ok(false);
    }
    if !std::io::stdin().is_terminal() {
        bail!("refusing to delete {count} relationships without --force (stdin is not a terminal)");
    }
    eprint!("delete {count} relationships? [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}
