//! `pemba validate FILE…`: runs validation files and prints one line per file (one per failure).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use pemba_validation::{run_source, Outcome};

/// Expands directories into their `*.yaml` files, sorted; files are taken as given.
fn collect_files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("reading directory {}", path.display()))?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|p| {
                    p.extension()
                        .is_some_and(|ext| ext == "yaml" || ext == "yml")
                })
                .collect();
            found.sort();
            files.extend(found);
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

fn display_name(path: &Path) -> String {
    path.display().to_string()
}

pub fn run(paths: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    for path in collect_files(paths)? {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let report = run_source(&display_name(&path), &text);
        match report.outcome {
            Outcome::Passed { .. } => passed += 1,
            Outcome::Skipped { .. } => skipped += 1,
            Outcome::Failed(_) => failed += 1,
        }
        println!("{report}");
    }
    println!("validate: {passed} passed, {failed} failed, {skipped} skipped");
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
