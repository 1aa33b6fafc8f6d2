//! The report's table (one row per system and workload, grouped by workload) and the ratios
//! of Pemba to every other system.

use std::fmt::Write as _;

use crate::report::ReportOptions;
use crate::systems::{Setup, System};
use crate::workload::Measured;

/// What a row measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measuring {
    /// One of the compared systems.
    System(System),
    /// Pemba's three-node cluster (the replicated write row).
    PembaCluster,
    /// The no-op service (the ceiling).
    Noop,
}

impl Measuring {
    /// The system column of the table.
    pub fn label(self) -> &'static str {
        match self {
            Measuring::System(system) => system.label(),
            Measuring::PembaCluster => "Pemba (3 nodes, fsync)",
            Measuring::Noop => "no-op tonic service (ceiling)",
        }
    }

    pub fn is_pemba(self) -> bool {
        matches!(
            self,
            Measuring::System(System::Pemba) | Measuring::PembaCluster
        )
    }
}

/// One line of the table.
pub struct Row {
    pub workload: String,
    pub system: Measuring,
    pub measured: Measured,
    /// CPU cores used on average while measured (see `report::measure`).
    pub cpu_cores: f64,
    pub peak_rss_bytes: u64,
}

fn throughput(m: &Measured) -> String {
    let mut shown = format!("{:.0}", m.throughput());
    if m.written > 0 {
        let _ = write!(
            shown,
            " ({:.0} rel/s)",
            m.written as f64 / m.elapsed.as_secs_f64()
        );
    }
    if m.requests == 0 && m.unfinished > 0 {
        // Every request sent was still unanswered when the measured period ended.
        let _ = write!(
            shown,
            " (none answered; {} in flight at the end)",
            m.unfinished
        );
    }
    shown
}

/// The workloads in the order they were first measured.
fn workloads(rows: &[Row]) -> Vec<&str> {
    let mut seen: Vec<&str> = Vec::new();
    for row in rows {
        if !seen.contains(&row.workload.as_str()) {
            seen.push(&row.workload);
        }
    }
    seen
}

fn header(out: &mut String, options: &ReportOptions, setup: &Setup) {
    let load = options.load;
    // Not `available_parallelism`: this process is pinned to the load generator's cores.
    let cpus = std::fs::read_to_string("/proc/cpuinfo")
        .map(|info| info.lines().filter(|l| l.starts_with("processor")).count())
        .unwrap_or(0);
    let pinning = match &setup.pinning.cpus {
        Some(cpus) => format!(
            "every server (and PostgreSQL) pinned to CPU {cpus}, the load generator to the others"
        ),
        None => "servers and load generator not pinned".into(),
    };
    let _ = writeln!(
        out,
        "Document-sharing dataset (groups nested 5 deep, folders, wildcards, exclusions), {} relationships, seed {}; {} concurrent requests unless noted, {:?} warm-up, {:?} measured ({:?} for lookups); this machine: {cpus} CPUs, {pinning}.\n",
        options.relationships, load.seed, load.concurrency, load.warmup, load.duration, options.lookup_load.duration
    );
    let _ = writeln!(out, "| Workload | System | Throughput (req/s) | p50 (ms) | p95 (ms) | p99 (ms) | p99.9 (ms) | Errors | CPU (cores) | Peak RSS (MiB) |");
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
}

/// Pemba's throughput and p99 against every other system's, workload by workload.
fn ratios(out: &mut String, rows: &[Row]) {
    for workload in workloads(rows) {
        let pemba = Measuring::System(System::Pemba);
        let Some(pemba) = rows
            .iter()
            .find(|r| r.workload == workload && r.system == pemba)
        else {
            continue;
        };
        let others: Vec<String> = rows
            .iter()
            .filter(|r| r.workload == workload && !r.system.is_pemba())
            .filter(|r| matches!(r.system, Measuring::System(_)))
            .map(|other| {
                let theirs = other.measured.throughput();
                let system = other.system.label();
                if theirs == 0.0 {
                    return format!("unbounded against {system} (it answered none)");
                }
                format!(
                    "{:.1}× {system} (p99 {:.2} vs {:.2} ms)",
                    pemba.measured.throughput() / theirs,
                    pemba.measured.quantile_ms(0.99),
                    other.measured.quantile_ms(0.99)
                )
            })
            .collect();
        if !others.is_empty() {
            let _ = writeln!(
                out,
                "- {workload}: Pemba's throughput is {}",
                others.join("; ")
            );
        }
    }
}

pub fn render(rows: &[Row], notes: &[String], options: &ReportOptions, setup: &Setup) -> String {
    let mut out = String::new();
    header(&mut out, options, setup);
    for workload in workloads(rows) {
        for row in rows.iter().filter(|r| r.workload == workload) {
            let m = &row.measured;
            let _ = writeln!(
                out,
                "| {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {:.2} | {:.0} |",
                row.workload,
                row.system.label(),
                throughput(m),
                m.quantile_ms(0.50),
                m.quantile_ms(0.95),
                m.quantile_ms(0.99),
                m.quantile_ms(0.999),
                m.errors,
                row.cpu_cores,
                row.peak_rss_bytes as f64 / (1024.0 * 1024.0)
            );
        }
    }
    let _ = writeln!(out);
    ratios(&mut out, rows);
    for note in notes {
        let _ = writeln!(out, "- {note}");
    }
    out
}
