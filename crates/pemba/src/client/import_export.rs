//! `pemba import FILE` and `pemba export`: relationships in bulk, one per line in SpiceDB's text
//! syntax, with a progress bar on stderr when it is a terminal.

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use pemba_proto::authzed::api::v1 as api;
use pemba_types::Relationship;
use pemba_validation::ValidationFile;
use serde_json::json;

use super::connection::Client;
use super::convert::{relationship_from_api, relationship_to_api};
use super::schema::{read_input, write as write_schema};
use super::{json, print_json, rpc_error, ConsistencyArgs};

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// Relationships one per line (blank lines and `//` comments skipped), `-` for stdin, or a
    /// SpiceDB validation file (`*.yaml`) whose `schema` and `relationships` are imported.
    file: PathBuf,
    /// Relationships sent per message.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    batch_size: u64,
    /// Do not write the schema of a validation file.
    #[arg(long)]
    no_schema: bool,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Write to this file instead of stdout.
    #[arg(long, short)]
    output: Option<PathBuf>,
    #[command(flatten)]
    consistency: ConsistencyArgs,
}

/// What an import file holds: maybe a schema, and relationships.
struct ImportFile {
    schema: Option<String>,
    relationships: Vec<Relationship>,
}

impl ImportFile {
    fn load(path: &Path) -> anyhow::Result<ImportFile> {
        let text = read_input(path)?;
        let is_yaml = path.extension().is_some_and(|e| e == "yaml" || e == "yml");
        if !is_yaml {
            return Ok(ImportFile {
                schema: None,
                relationships: parse_lines(path, &text, 0)?,
            });
        }
        let file: ValidationFile = serde_yaml::from_str(&text)
            .with_context(|| format!("{}: not a validation file", path.display()))?;
        // The block's text starts on the line after its `relationships:` key.
        let offset = text
            .lines()
            .position(|l| l.starts_with("relationships:"))
            .map_or(0, |i| i + 1);
        Ok(ImportFile {
            schema: file.schema.filter(|s| !s.trim().is_empty()),
            relationships: parse_lines(path, file.relationships.as_deref().unwrap_or(""), offset)?,
        })
    }
}

/// Parses one relationship a line, skipping blank lines and `//` comments; errors name the line
/// (`offset` is the line of the file the text starts after).
fn parse_lines(path: &Path, text: &str, offset: usize) -> anyhow::Result<Vec<Relationship>> {
    text.lines()
        .enumerate()
        .map(|(i, line)| (offset + i + 1, line.trim()))
        .filter(|(_, line)| !line.is_empty() && !line.starts_with("//"))
        .map(|(number, line)| {
            Relationship::parse(line).with_context(|| format!("{}:{number}", path.display()))
        })
        .collect()
}

/// A progress bar on stderr if it is a terminal, else a hidden one.
fn progress(length: Option<u64>, verb: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let (bar, template) = match length {
        Some(length) => (
            ProgressBar::new(length),
            format!("{{bar:40}} {{pos}}/{{len}} relationships {verb} ({{eta}} left)"),
        ),
        None => (
            ProgressBar::new_spinner(),
            format!("{{spinner}} {{pos}} relationships {verb}"),
        ),
    };
    bar.enable_steady_tick(Duration::from_millis(100));
    bar.with_style(ProgressStyle::with_template(&template).expect("a valid template"))
}

/// The import's messages, `size` relationships each.
fn batches(relationships: &[Relationship], size: u64) -> Vec<api::ImportBulkRelationshipsRequest> {
    relationships
        .chunks(usize::try_from(size).unwrap_or(usize::MAX))
        .map(|chunk| api::ImportBulkRelationshipsRequest {
            relationships: chunk.iter().map(relationship_to_api).collect(),
        })
        .collect()
}

pub async fn import(client: &Client, args: ImportArgs, json: bool) -> anyhow::Result<ExitCode> {
    let file = ImportFile::load(&args.file)?;
    if let (Some(schema), false) = (file.schema, args.no_schema) {
        write_schema(client, schema).await?;
        eprintln!("wrote the schema of {}", args.file.display());
    }
    let bar = progress(Some(file.relationships.len() as u64), "imported");
    let sent = bar.clone();
    let batches = batches(&file.relationships, args.batch_size);
    let stream = tokio_stream::iter(batches.into_iter().inspect(move |batch| {
        sent.inc(batch.relationships.len() as u64);
    }));
    let response = client.permissions().import_bulk_relationships(stream).await;
    bar.finish_and_clear();
    let loaded = response.map_err(rpc_error)?.into_inner().num_loaded;
    if json {
        print_json(&json!({ "numLoaded": loaded }))?;
    } else {
        eprintln!("imported {loaded} relationships");
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn export(client: &Client, args: ExportArgs, json: bool) -> anyhow::Result<ExitCode> {
    let mut out: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(BufWriter::new(
            File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => Box::new(BufWriter::new(std::io::stdout().lock())),
    };
    let request = api::ExportBulkRelationshipsRequest {
        consistency: Some(args.consistency.to_api()),
        ..Default::default()
    };
    let mut stream = client
        .permissions()
        .export_bulk_relationships(request)
        .await
        .map_err(rpc_error)?
        .into_inner();
    let bar = progress(None, "exported");
    let mut count = 0u64;
    while let Some(page) = stream.message().await.map_err(rpc_error)? {
        for relationship in &page.relationships {
            write_relationship(&mut out, relationship, json)?;
        }
        count += page.relationships.len() as u64;
        bar.set_position(count);
    }
    bar.finish_and_clear();
    out.flush().context("writing the export")?;
    eprintln!("exported {count} relationships");
    Ok(ExitCode::SUCCESS)
}

fn write_relationship(
    out: &mut dyn Write,
    relationship: &api::Relationship,
    json: bool,
) -> anyhow::Result<()> {
    if json {
        writeln!(out, "{}", json::relationship(Some(relationship)))?;
    } else {
        writeln!(out, "{}", relationship_from_api(relationship))?;
    }
    Ok(())
}
