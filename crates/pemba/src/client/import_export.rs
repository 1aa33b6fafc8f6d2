//! `pemba import FILE` and `pemba export`: relationships in bulk, one per line in SpiceDB's text
//! syntax, with a progress bar on stderr when it is a terminal.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::ExitCode;
use std::task::Poll;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use pemba_proto::authzed::api::v1 as api;
use pemba_types::Relationship;
use pemba_validation::ValidationFile;
use serde_json::json;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::Stream;

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

/// A validation file's schema and relationships (small enough to hold in memory).
struct ValidationImport {
    schema: Option<String>,
    relationships: Vec<Relationship>,
}

fn is_validation_file(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "yaml" || e == "yml")
}

impl ValidationImport {
    fn load(path: &Path) -> anyhow::Result<ValidationImport> {
        let text = read_input(path)?;
        let file: ValidationFile = serde_yaml::from_str(&text)
            .with_context(|| format!("{}: not a validation file", path.display()))?;
        // The block's text starts on the line after its `relationships:` key.
        let offset = text
            .lines()
            .position(|l| l.starts_with("relationships:"))
            .map_or(0, |i| i + 1);
        let relationships = parse_lines(
            path,
            file.relationships.as_deref().unwrap_or("").as_bytes(),
            offset,
        )
        .collect::<anyhow::Result<_>>()?;
        Ok(ValidationImport {
            schema: file.schema.filter(|s| !s.trim().is_empty()),
            relationships,
        })
    }
}

/// Opens a relationships file, or stdin for `-`.
fn open_lines(path: &Path) -> anyhow::Result<Box<dyn BufRead + Send>> {
    if path == Path::new("-") {
        return Ok(Box::new(BufReader::new(std::io::stdin())));
    }
    let file = File::open(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(Box::new(BufReader::with_capacity(1 << 20, file)))
}

/// Parses one relationship a line, skipping blank lines and `//` comments; errors name the line
/// (`offset` is the line of the file the text starts after).
fn parse_lines<'a>(
    path: &Path,
    text: impl BufRead + 'a,
    offset: usize,
) -> impl Iterator<Item = anyhow::Result<Relationship>> + 'a {
    let path = path.display().to_string();
    text.lines().enumerate().filter_map(move |(i, line)| {
        let number = offset + i + 1;
        let line = match line {
            Ok(line) => line,
            Err(e) => return Some(Err(anyhow::Error::new(e).context(format!("reading {path}")))),
        };
        let line = line.trim();
        if line.is_empty() || line.starts_with("//") {
            return None;
        }
        Some(Relationship::parse(line).with_context(|| format!("{path}:{number}")))
    })
}

/// Reads a relationships file through once, so that a syntax error anywhere stops the import
/// before anything is sent; returns how many relationships it holds.
fn count_valid_lines(path: &Path) -> anyhow::Result<u64> {
    let mut count = 0;
    for relationship in parse_lines(path, open_lines(path)?, 0) {
        relationship?;
        count += 1;
    }
    Ok(count)
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

pub async fn import(client: &Client, args: ImportArgs, json: bool) -> anyhow::Result<ExitCode> {
    let batch_size = usize::try_from(args.batch_size).unwrap_or(usize::MAX);
    let loaded = if is_validation_file(&args.file) {
        let file = ValidationImport::load(&args.file)?;
        if let (Some(schema), false) = (file.schema, args.no_schema) {
            write_schema(client, schema).await?;
            eprintln!("wrote the schema of {}", args.file.display());
        }
        let count = file.relationships.len() as u64;
        let relationships = file.relationships.into_iter().map(Ok);
        send(client, relationships, Some(count), batch_size).await?
    } else {
        // A file is checked whole first: a bad line imports nothing. Stdin is read once, so a
        // bad line there stops the import where it is.
        let count = (args.file != Path::new("-"))
            .then(|| count_valid_lines(&args.file))
            .transpose()?;
        let relationships = parse_lines(&args.file, open_lines(&args.file)?, 0);
        send(client, relationships, count, batch_size).await?
    };
    if json {
        print_json(&json!({ "numLoaded": loaded }))?;
    } else {
        eprintln!("imported {loaded} relationships");
    }
    Ok(ExitCode::SUCCESS)
}

/// Streams `relationships` (read and encoded on a thread of their own, `batch_size` a message)
/// in one ImportBulkRelationships call; returns how many the server loaded. A relationship that
/// fails to read cancels the call, so the server commits nothing more.
async fn send(
    client: &Client,
    relationships: impl Iterator<Item = anyhow::Result<Relationship>> + Send + 'static,
    count: Option<u64>,
    batch_size: usize,
) -> anyhow::Result<u64> {
    let bar = progress(count, "imported");
    let (messages, received) = mpsc::channel(4);
    let reader = bar.clone();
    std::thread::spawn(move || {
        let mut batch = Vec::with_capacity(batch_size.min(10_000));
        for relationship in relationships {
            let relationship = match relationship {
                Ok(r) => r,
                Err(e) => {
                    let _ = messages.blocking_send(Err(e));
                    return;
                }
            };
            batch.push(relationship_to_api(&relationship));
            if batch.len() >= batch_size {
                reader.inc(batch.len() as u64);
                let message = api::ImportBulkRelationshipsRequest {
                    relationships: std::mem::take(&mut batch),
                };
                if messages.blocking_send(Ok(message)).is_err() {
                    return;
                }
            }
        }
        if !batch.is_empty() {
            reader.inc(batch.len() as u64);
            let _ = messages.blocking_send(Ok(api::ImportBulkRelationshipsRequest {
                relationships: batch,
            }));
        }
    });
    let (failed, failure) = oneshot::channel();
    let stream = ImportStream {
        received,
        failed: Some(failed),
    };
    let mut permissions = client.permissions();
    let response = tokio::select! {
        response = permissions.import_bulk_relationships(stream) => response,
        // Dropping the call cancels it.
        Ok(error) = failure => return Err(error),
    };
    bar.finish_and_clear();
    Ok(response.map_err(rpc_error)?.into_inner().num_loaded)
}

/// The messages of an import. After a read failure it never ends: ending would let the server
/// commit what it holds, so the call is cancelled instead.
struct ImportStream {
    received: mpsc::Receiver<anyhow::Result<api::ImportBulkRelationshipsRequest>>,
    /// Taken when a read fails.
    failed: Option<oneshot::Sender<anyhow::Error>>,
}

impl Stream for ImportStream {
    type Item = api::ImportBulkRelationshipsRequest;

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Option<Self::Item>> {
        if self.failed.is_none() {
            return Poll::Pending;
        }
        match self.received.poll_recv(cx) {
            Poll::Ready(Some(Ok(message))) => Poll::Ready(Some(message)),
            Poll::Ready(Some(Err(error))) => {
                if let Some(failed) = self.failed.take() {
                    let _ = failed.send(error);
                }
                Poll::Pending
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
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
