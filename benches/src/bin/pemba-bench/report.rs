//! `pemba-bench report`: the same dataset, questions and load generator against every system
//! in one run: Pemba, the SpiceDB server (memdb and PostgreSQL) and the OpenFGA server, each
//! started on the same pinned cores, loaded, cross-checked against Pemba's answers, then
//! measured workload by workload.

use std::time::{Duration, Instant};

use anyhow::bail;
use pemba_benches::{document_sharing, Dataset, DOCUMENT_SHARING_SCHEMA};

use crate::process::{busy_time, free_port, Server};
use crate::render::{render, Measuring, Row};
use crate::scrape::group_commit_note;
use crate::systems::{pemba_cluster, Running, Setup, System, KEY};
use crate::target::Target;
use crate::workload::{self, Load, Shape, Workload};

/// Relationships per ImportBulkRelationships message (and per OpenFGA Write) while loading.
const LOAD_BATCH: usize = 1000;
/// The pause between loading a system and measuring it: longer than SpiceDB's 5 s
/// quantization, so that its minimize_latency reads see the loaded data.
const SETTLE: Duration = Duration::from_secs(7);
/// How long a system may take to answer all the cross-checked questions; what is not answered
/// by then is not compared (and said so).
const CROSS_CHECK_BUDGET: Duration = Duration::from_secs(120);
/// Cross-checked questions: checks, then LookupResources and LookupSubjects.
const CHECKED_QUESTIONS: usize = 100;
const CHECKED_LOOKUPS: usize = 3;

pub struct ReportOptions {
    pub relationships: usize,
    pub systems: Vec<System>,
    pub cluster: bool,
    pub load: Load,
    /// Concurrency and duration of the lookup workloads.
    pub lookup_load: Load,
}

/// One measured step of the plan.
struct Step {
    label: String,
    workload: Workload,
    load: Load,
}

/// What every system runs, in this order (writes last: they change the data).
fn plan(options: &ReportOptions) -> Vec<Step> {
    let load = options.load;
    let eight = Load {
        concurrency: 8,
        ..load
    };
    let lookups = options.lookup_load;
    let step = |label: String, workload, load| Step {
        label,
        workload,
        load,
    };
    vec![
        step("check".into(), Workload::Check, load),
        step("check, fully consistent".into(), Workload::CheckFull, load),
        step("check, concurrency 8".into(), Workload::Check, eight),
        step("mixed (5% writes)".into(), Workload::Mixed, load),
        step(
            format!("LookupResources, concurrency {}", lookups.concurrency),
            Workload::Lookup,
            lookups,
        ),
        step(
            format!("LookupSubjects, concurrency {}", lookups.concurrency),
            Workload::LookupSubjects,
            lookups,
        ),
        step(
            format!("write, {} per request", load.write_batch),
            Workload::Write,
            load,
        ),
    ]
}

/// Whether `system` runs `workload`: OpenFGA has no ZedTokens (mixed carries them) and its
/// ListUsers is left out.
fn runs(system: System, workload: Workload) -> bool {
    system != System::OpenFgaPostgres
        || !matches!(workload, Workload::Mixed | Workload::LookupSubjects)
}

/// The answers to the cross-checked questions, compared between systems; `None` where the
/// system had not answered within [`CROSS_CHECK_BUDGET`].
#[derive(Debug)]
struct Answers {
    checks: Vec<Option<i32>>,
    /// Sorted document ids per user.
    resources: Vec<Option<Vec<String>>>,
    /// Sorted subjects per document; empty where the system is not asked.
    subjects: Vec<Option<Vec<String>>>,
    /// How long each LookupResources took (not compared).
    resource_times: Vec<Duration>,
}

/// The answer of `call` if it comes before `deadline`.
async fn before<T>(
    deadline: Instant,
    call: impl std::future::Future<Output = Result<T, String>>,
) -> anyhow::Result<Option<T>> {
    match tokio::time::timeout_at(deadline.into(), call).await {
        Ok(answer) => Ok(Some(answer.map_err(anyhow::Error::msg)?)),
        Err(_) => Ok(None),
    }
}

fn sorted(list: Option<Vec<String>>) -> Option<Vec<String>> {
    list.map(|mut l| {
        l.sort();
        l
    })
}

/// Asks `target` the cross-checked questions, fully consistent, within the budget.
async fn answers(target: &Target, dataset: &Dataset, seed: u64) -> anyhow::Result<Answers> {
    let full = workload::fully_consistent;
    let began = Instant::now();
    let deadline = began + CROSS_CHECK_BUDGET;
    let mut checks = Vec::new();
    for (document, user) in dataset.check_questions(CHECKED_QUESTIONS, 7) {
        let request = workload::check_request(&document, &user, full());
        checks.push(before(deadline, target.check(request)).await?);
    }
    eprintln!(
        "  cross-checked checks, one at a time: {:.1?}",
        began.elapsed()
    );
    let questions = workload::lookup_questions(Shape::from(dataset), seed, CHECKED_LOOKUPS);
    let (mut resources, mut subjects, mut resource_times) = (Vec::new(), Vec::new(), Vec::new());
    for (user, document) in &questions {
        let began = Instant::now();
        let request = workload::lookup_request(user, full());
        resources.push(sorted(
            before(deadline, target.lookup_resources(request)).await?,
        ));
        resource_times.push(began.elapsed());
        if target.speaks_authzed() {
            let request = workload::lookup_subjects_request(document, full());
            subjects.push(sorted(
                before(deadline, target.lookup_subjects(request)).await?,
            ));
        }
    }
    eprintln!("  all cross-checked questions: {:.1?}", began.elapsed());
    Ok(Answers {
        checks,
        resources,
        subjects,
        resource_times,
    })
}

/// How long the cross-checked LookupResources took on `system`, as a note.
fn lookup_times_note(system: System, answers: &Answers) -> String {
    let times: Vec<String> = answers
        .resources
        .iter()
        .zip(&answers.resource_times)
        .map(|(found, took)| match found {
            Some(found) => format!("{:.2} s ({} documents)", took.as_secs_f64(), found.len()),
            None => "not answered within the budget".into(),
        })
        .collect();
    format!(
        "{}: the cross-checked LookupResources (fully consistent), each timed alone: {}.",
        system.label(),
        times.join(", ")
    )
}

/// Of the questions both answered: how many, and how many alike.
fn alike<T: PartialEq>(ours: &[Option<T>], theirs: &[Option<T>]) -> (usize, usize) {
    let both: Vec<_> = ours
        .iter()
        .zip(theirs)
        .filter_map(|(a, b)| Some((a.as_ref()?, b.as_ref()?)))
        .collect();
    let same = both.iter().filter(|(a, b)| a == b).count();
    (both.len(), same)
}

/// How `theirs` compares with Pemba's answers, as a note; and whether nothing differed.
fn compare(system: System, ours: &Answers, theirs: &Answers) -> (String, bool) {
    let (checks, same_checks) = alike(&ours.checks, &theirs.checks);
    let (resources, same_resources) = alike(&ours.resources, &theirs.resources);
    let (subjects, same_subjects) = alike(&ours.subjects, &theirs.subjects);
    let agree = checks == same_checks && resources == same_resources && subjects == same_subjects;
    let asked = ours.checks.len() + ours.resources.len() + theirs.subjects.len();
    let unanswered = asked - checks - resources - subjects;
    let mut note = format!(
        "{}: {same_checks} of {checks} checks, {same_resources} of {resources} LookupResources, {same_subjects} of {subjects} LookupSubjects answered as Pemba did, fully consistent",
        system.label(),
    );
    if unanswered > 0 {
        note.push_str(&format!(
            "; {unanswered} questions not answered within {} s, not compared",
            CROSS_CHECK_BUDGET.as_secs()
        ));
    }
    if !agree {
        note.push_str(" — DISAGREEMENT");
    }
    (note, agree)
}

/// Runs `step` against `measuring` (started as `running`) and makes its row. CPU is the busy
/// time of the server cores (everything pinned to them) when servers are pinned, else the
/// servers' own CPU time.
async fn measure(
    measuring: Measuring,
    running: &Running,
    step: &Step,
    shape: Shape,
    setup: &Setup,
) -> Row {
    let cores = setup.pinning.cpu_numbers();
    let cpu = || match cores.is_empty() {
        true => running.usage().cpu,
        false => busy_time(&cores),
    };
    let before = cpu();
    let started = Instant::now();
    let measured = workload::run(&running.target, step.workload, shape, step.load).await;
    let used = cpu().saturating_sub(before).as_secs_f64() / started.elapsed().as_secs_f64();
    eprintln!("  {}: {}", step.label, crate::describe(&measured));
    Row {
        workload: step.label.clone(),
        system: measuring,
        measured,
        cpu_cores: used,
        peak_rss_bytes: running.usage().peak_rss_bytes,
    }
}

/// How long to wait, at most, for the server cores to go idle before a measurement.
const DRAIN_PATIENCE: Duration = Duration::from_secs(180);

/// Waits until the server cores are idle (under 10% busy over a second): requests given up at
/// the end of the previous period may still be running there (neither SpiceDB nor OpenFGA
/// stops all work on a cancelled request), and the next period must not measure them. Returns
/// how long it waited; without pinning there is nothing to watch.
async fn drain(setup: &Setup) -> Duration {
    let cores = setup.pinning.cpu_numbers();
    let began = Instant::now();
    while !cores.is_empty() && began.elapsed() < DRAIN_PATIENCE {
        let before = busy_time(&cores);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let busy = busy_time(&cores).saturating_sub(before).as_secs_f64();
        if busy < 0.1 * cores.len() as f64 {
            break;
        }
    }
    began.elapsed()
}

/// Loads `dataset` into a fresh `system`, cross-checks it and runs the plan; returns its
/// answers and notes.
async fn run_system(
    system: System,
    dataset: &Dataset,
    options: &ReportOptions,
    setup: &Setup,
    rows: &mut Vec<Row>,
) -> anyhow::Result<(Answers, Vec<String>)> {
    eprintln!(
        "{}: {} relationships",
        system.label(),
        dataset.relationships.len()
    );
    // The previous system's abandoned work may still run in PostgreSQL.
    drain(setup).await;
    let running = system.start(setup).await?;
    let started = Instant::now();
    running.target.write_schema(DOCUMENT_SHARING_SCHEMA).await?;
    running
        .target
        .import(&dataset.relationships, LOAD_BATCH)
        .await?;
    let took = started.elapsed().as_secs_f64();
    let mut notes = vec![format!(
        "{} loaded {} relationships in {took:.0} s ({:.0} per second; {}).",
        system.label(),
        dataset.relationships.len(),
        dataset.relationships.len() as f64 / took,
        match system {
            System::OpenFgaPostgres => "Writes of 1,000 tuples, four at a time",
            _ => "ImportBulkRelationships",
        }
    )];
    eprintln!("  {}", notes[0]);
    tokio::time::sleep(SETTLE).await;
    let answers = answers(&running.target, dataset, options.load.seed).await?;
    notes.push(lookup_times_note(system, &answers));
    let shape = Shape::from(dataset);
    let answered = answers.checks.iter().flatten().count();
    if answered < answers.checks.len() {
        // Its abandoned requests would still hold the server's cores: measuring it now would
        // measure that backlog.
        notes.push(format!(
            "{} not measured under load: it answered {answered} of the {} cross-checked checks (fully consistent, one at a time) within {} s, about {:.1} s each.",
            system.label(),
            answers.checks.len(),
            CROSS_CHECK_BUDGET.as_secs(),
            CROSS_CHECK_BUDGET.as_secs_f64() / answered.max(1) as f64
        ));
        return Ok((answers, notes));
    }
    for step in plan(options).iter().filter(|s| runs(system, s.workload)) {
        let waited = drain(setup).await;
        if waited > Duration::from_secs(2) {
            eprintln!("  waited {waited:.1?} for the server cores to go idle");
        }
        rows.push(measure(Measuring::System(system), &running, step, shape, setup).await);
    }
    if system == System::Pemba {
        notes.push(format!(
            "Pemba's data directory: {:.0} bytes per relationship.",
            crate::process::disk_usage(&setup.scratch.join("pemba")) as f64
                / dataset.relationships.len() as f64
        ));
    }
    Ok((answers, notes))
}

/// What makes a report fail once it is printed.
pub struct Verdict {
    /// A system answered a cross-checked question unlike Pemba.
    pub disagreed: bool,
    /// Pemba's rows with failed requests (the other systems' failures are shown in the table,
    /// with the first error in the notes: e.g. SpiceDB answers CANCELLED to a request that
    /// shared work with one given up at the end of a measured period).
    pub rows_with_errors: Vec<String>,
}

impl Verdict {
    pub fn into_result(self) -> anyhow::Result<()> {
        if self.disagreed {
            bail!("a system disagreed with Pemba on the cross-checked questions (see the notes)");
        }
        if !self.rows_with_errors.is_empty() {
            bail!("failed requests in: {}", self.rows_with_errors.join("; "));
        }
        Ok(())
    }
}

/// The verdict on measured `rows`, given whether every system agreed with Pemba.
fn verdict(rows: &[Row], agree: bool) -> Verdict {
    Verdict {
        disagreed: !agree,
        rows_with_errors: rows
            .iter()
            .filter(|r| r.measured.errors > 0 && r.system.is_pemba())
            .map(|r| format!("{}, {}", r.workload, r.system.label()))
            .collect(),
    }
}

/// Runs the report; returns the rendered table and what makes it fail.
pub async fn report(options: &ReportOptions, setup: &Setup) -> anyhow::Result<(String, Verdict)> {
    let dataset = document_sharing(options.relationships, options.load.seed);
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    let mut reference: Option<Answers> = None;
    let mut agree = true;
    for &system in &options.systems {
        if let Some(why) = system.missing(setup) {
            notes.push(format!("{} not measured: {why}.", system.label()));
            continue;
        }
        let (answers, system_notes) =
            run_system(system, &dataset, options, setup, &mut rows).await?;
        notes.extend(system_notes);
        match &reference {
            None => reference = Some(answers),
            Some(ours) => {
                let (note, same) = compare(system, ours, &answers);
                eprintln!("  {note}");
                notes.push(note);
                agree &= same;
            }
        }
    }
    if options.cluster {
        let (row, note) = cluster_writes(options, setup).await?;
        rows.push(row);
        notes.push(note);
    }
    rows.push(noop_ceiling(&dataset, options, setup).await?);
    for row in rows.iter().filter(|r| r.measured.errors > 0) {
        notes.push(format!(
            "{}, {}: {} failed requests, the first: {}.",
            row.system.label(),
            row.workload,
            row.measured.errors,
            row.measured.first_error.as_deref().unwrap_or("?")
        ));
    }
    Ok((render(&rows, &notes, options, setup), verdict(&rows, agree)))
}

/// Writes through the leader of a three-node Pemba cluster; and a note on how they shared log
/// entries and fsyncs.
async fn cluster_writes(options: &ReportOptions, setup: &Setup) -> anyhow::Result<(Row, String)> {
    eprintln!("Pemba, three nodes, writes");
    let running = pemba_cluster(setup, DOCUMENT_SHARING_SCHEMA).await?;
    let step = Step {
        label: format!("write, {} per request", options.load.write_batch),
        workload: Workload::Write,
        load: options.load,
    };
    let shape = Shape {
        documents: 1000,
        users: 1000,
    };
    let row = measure(Measuring::PembaCluster, &running, &step, shape, setup).await;
    let label = Measuring::PembaCluster.label();
    let note = match group_commit_note(label, &running.metrics).await {
        Ok(note) => note,
        Err(e) => format!("{label}: its metrics could not be read: {e:#}."),
    };
    eprintln!("  {note}");
    Ok((row, note))
}

/// Checks against a service that answers without looking anything up: what the load
/// generator and gRPC alone allow on these cores.
async fn noop_ceiling(
    dataset: &Dataset,
    options: &ReportOptions,
    setup: &Setup,
) -> anyhow::Result<Row> {
    eprintln!("no-op gRPC service");
    let port = free_port()?;
    let me = std::env::current_exe()?;
    let args = ["noop-server".into(), "--port".into(), port.to_string()];
    let log = setup.scratch.join("noop.log");
    let server = Server::start(&me, &args, port, &log, &setup.pinning)?;
    let running = Running {
        target: Target::grpc(&server.url(), KEY).await?,
        servers: vec![server],
        metrics: Vec::new(),
    };
    let step = Step {
        label: "check".into(),
        workload: Workload::Check,
        load: options.load,
    };
    let shape = Shape::from(dataset);
    Ok(measure(Measuring::Noop, &running, &step, shape, setup).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answers(checks: &[i32], resources: &[Option<&[&str]>]) -> Answers {
        let list = |l: &Option<&[&str]>| l.map(|l| l.iter().map(|s| s.to_string()).collect());
        Answers {
            checks: checks.iter().map(|&c| Some(c)).collect(),
            resources: resources.iter().map(list).collect(),
            subjects: Vec::new(),
            resource_times: Vec::new(),
        }
    }

    #[test]
    fn a_different_check_or_lookup_is_a_disagreement_and_an_unfinished_lookup_is_not() {
        let ours = answers(&[1, 2], &[Some(&["d1", "d2"]), Some(&["d3"])]);
        let same = answers(&[1, 2], &[Some(&["d1", "d2"]), None]);
        let (note, agree) = compare(System::SpiceDbMemory, &ours, &same);
        assert!(agree, "{note}");
        assert!(note.contains("1 questions not answered"), "{note}");
        let check = answers(&[1, 1], &[Some(&["d1", "d2"]), Some(&["d3"])]);
        assert!(!compare(System::SpiceDbMemory, &ours, &check).1);
        let lookup = answers(&[1, 2], &[Some(&["d1"]), Some(&["d3"])]);
        let (note, agree) = compare(System::OpenFgaPostgres, &ours, &lookup);
        assert!(!agree);
        assert!(note.ends_with("DISAGREEMENT"), "{note}");
    }

    fn row(system: Measuring, errors: u64) -> Row {
        let mut measured = workload::Measured::new(Duration::from_secs(1));
        measured.errors = errors;
        Row {
            workload: "check".into(),
            system,
            measured,
            cpu_cores: 1.0,
            peak_rss_bytes: 0,
        }
    }

    #[test]
    fn failed_requests_fail_the_report_only_on_pembas_rows() {
        let theirs = row(Measuring::System(System::SpiceDbPostgres), 3);
        assert!(verdict(&[theirs], true).into_result().is_ok());
        for pemba in [Measuring::System(System::Pemba), Measuring::PembaCluster] {
            let failed = verdict(&[row(pemba, 1)], true).into_result();
            assert!(failed.is_err_and(|e| e.to_string().contains(pemba.label())));
        }
        assert!(verdict(&[row(Measuring::Noop, 0)], false)
            .into_result()
            .is_err());
    }

    #[test]
    fn openfga_runs_neither_the_token_workload_nor_lookup_subjects() {
        assert!(runs(System::OpenFgaPostgres, Workload::Check));
        assert!(runs(System::OpenFgaPostgres, Workload::Lookup));
        assert!(!runs(System::OpenFgaPostgres, Workload::Mixed));
        assert!(!runs(System::OpenFgaPostgres, Workload::LookupSubjects));
        assert!(runs(System::SpiceDbPostgres, Workload::Mixed));
    }
}
