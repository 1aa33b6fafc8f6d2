//! `pemba schema read|write`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use pemba_proto::authzed::api::v1 as api;
use serde_json::json;

use super::connection::Client;
use super::{json, print_json, print_line, rpc_error};

#[derive(Subcommand, Debug)]
pub enum SchemaCommand {
    /// Print the current schema.
    Read {
        /// Print the ZedToken the schema was read at to stderr.
        #[arg(long)]
        show_token: bool,
    },
    /// Replace the schema with the one in FILE (`-` for stdin); prints the written-at ZedToken to
    /// stderr.
    Write {
        /// The schema file, or `-` for stdin.
        file: PathBuf,
    },
}

pub async fn run(client: &Client, command: SchemaCommand, json: bool) -> anyhow::Result<ExitCode> {
    match command {
        SchemaCommand::Read { show_token } => read(client, show_token, json).await?,
        SchemaCommand::Write { file } => {
            let written_at = write(client, read_input(&file)?).await?;
            if json {
                print_json(&json!({ "writtenAt": json::token(written_at.as_ref()) }))?;
            } else if let Some(token) = written_at {
                eprintln!("{}", token.token);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn read(client: &Client, show_token: bool, json: bool) -> anyhow::Result<()> {
    let response = client
        .schema()
        .read_schema(client.request(api::ReadSchemaRequest {}))
        .await
        .map_err(rpc_error)?
        .into_inner();
    if json {
        print_json(&json!({
            "schemaText": response.schema_text,
            "readAt": json::token(response.read_at.as_ref()),
        }))?;
        return Ok(());
    }
    print_line(response.schema_text.trim_end())?;
    if let (true, Some(token)) = (show_token, &response.read_at) {
        eprintln!("{}", token.token);
    }
    Ok(())
}

/// Writes a schema; returns the token it was written at.
pub async fn write(client: &Client, schema: String) -> anyhow::Result<Option<api::ZedToken>> {
    let response = client
        .schema()
        .write_schema(client.request(api::WriteSchemaRequest { schema }))
        .await
        .map_err(rpc_error)?;
    Ok(response.into_inner().written_at)
}

/// The text of a file, or of stdin for `-`.
pub fn read_input(path: &Path) -> anyhow::Result<String> {
    if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading stdin")?;
        return Ok(text);
    }
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}
