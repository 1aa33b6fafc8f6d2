//! The load generator: `concurrency` workers send one workload's requests back to back for a
//! warm-up and then a measured period; latencies of the measured period go into an HDR
//! histogram (microseconds).

use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use pemba_benches::Dataset;
use pemba_proto::authzed::api::v1 as api;
use pemba_proto::convert::{object_to_api, relationship_to_api, subject_to_api};
use pemba_types::{ObjectRef, Relationship, SubjectRef};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::sync::Mutex;

use crate::target::Target;

/// What the workers send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    /// CheckPermission only (`document view user`, minimize_latency), seeded questions with
    /// the dataset's own hit/miss mix.
    Check,
    /// The same checks, fully consistent (OpenFGA: HIGHER_CONSISTENCY).
    CheckFull,
    /// 95% checks carrying the newest ZedToken (at_least_as_fresh), 5% single-relationship
    /// writes.
    Mixed,
    /// LookupResources (OpenFGA: ListObjects): every document a user may view.
    Lookup,
    /// LookupSubjects: every user who may view a document.
    LookupSubjects,
    /// WriteRelationships only, `write_batch` relationships per request.
    Write,
}

/// How long and how hard to drive a target.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    pub concurrency: usize,
    pub warmup: Duration,
    pub duration: Duration,
    pub seed: u64,
    /// Relationships per request of the write workload.
    pub write_batch: usize,
}

/// What one run measured.
pub struct Measured {
    /// Requests completed in the measured period (failed ones included in `errors` only).
    pub requests: u64,
    /// Relationships written in the measured period (write and mixed workloads).
    pub written: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    /// Requests given up, unanswered, when the measured period ended.
    pub unfinished: u64,
    pub elapsed: Duration,
    pub latency_us: Histogram<u64>,
}

impl Measured {
    /// Nothing measured yet, over a period of `duration`.
    pub fn new(duration: Duration) -> Measured {
        Measured {
            requests: 0,
            written: 0,
            errors: 0,
            first_error: None,
            unfinished: 0,
            elapsed: duration,
            latency_us: new_histogram(),
        }
    }

    /// Counts one request of the measured period.
    fn record(&mut self, outcome: Result<(), String>, writes: u64, took: Duration) {
        match outcome {
            Ok(()) => {
                self.requests += 1;
                self.written += writes;
                let micros = took.as_micros() as u64;
                self.latency_us.saturating_record(micros.max(1));
            }
            Err(e) => {
                self.errors += 1;
                self.first_error.get_or_insert(e);
            }
        }
    }

    /// Adds another worker's counts.
    fn add(&mut self, other: Measured) {
        let _ = self.latency_us.add(&other.latency_us);
        self.requests += other.requests;
        self.written += other.written;
        self.errors += other.errors;
        self.unfinished += other.unfinished;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    pub fn throughput(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    /// A latency quantile in milliseconds.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        self.latency_us.value_at_quantile(q) as f64 / 1000.0
    }
}

fn consistency(requirement: api::consistency::Requirement) -> Option<api::Consistency> {
    Some(api::Consistency {
        requirement: Some(requirement),
    })
}

/// A check of `document view user` with `consistency`.
pub fn check_request(
    document: &ObjectRef,
    user: &SubjectRef,
    consistency: Option<api::Consistency>,
) -> api::CheckPermissionRequest {
    api::CheckPermissionRequest {
        consistency,
        resource: Some(object_to_api(document)),
        permission: "view".into(),
        subject: Some(subject_to_api(user)),
        ..Default::default()
    }
}

pub fn minimize_latency() -> Option<api::Consistency> {
    consistency(api::consistency::Requirement::MinimizeLatency(true))
}

/// TOUCHes of `relationships`.
pub fn touches(relationships: &[Relationship]) -> api::WriteRelationshipsRequest {
    api::WriteRelationshipsRequest {
        updates: relationships
            .iter()
            .map(|r| api::RelationshipUpdate {
                operation: api::relationship_update::Operation::Touch as i32,
                relationship: Some(relationship_to_api(r)),
            })
            .collect(),
        ..Default::default()
    }
}

pub fn fully_consistent() -> Option<api::Consistency> {
    consistency(api::consistency::Requirement::FullyConsistent(true))
}

/// A lookup of every document `user` may view.
pub fn lookup_request(
    user: &SubjectRef,
    consistency: Option<api::Consistency>,
) -> api::LookupResourcesRequest {
    api::LookupResourcesRequest {
        consistency,
        resource_object_type: "document".into(),
        permission: "view".into(),
        subject: Some(subject_to_api(user)),
        ..Default::default()
    }
}

/// A lookup of every user who may view `document`.
pub fn lookup_subjects_request(
    document: &ObjectRef,
    consistency: Option<api::Consistency>,
) -> api::LookupSubjectsRequest {
    api::LookupSubjectsRequest {
        consistency,
        resource: Some(object_to_api(document)),
        permission: "view".into(),
        subject_object_type: "user".into(),
        ..Default::default()
    }
}

/// `count` users and `count` documents drawn from `seed`: the lookups every system answers
/// before it is measured, compared across systems.
pub fn lookup_questions(shape: Shape, seed: u64, count: usize) -> Vec<(SubjectRef, ObjectRef)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..count)
        .map(|_| {
            (
                random_user(&mut rng, shape),
                random_document(&mut rng, shape),
            )
        })
        .collect()
}

/// The sizes the workers draw documents and users from.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub documents: usize,
    pub users: usize,
}

impl From<&Dataset> for Shape {
    fn from(dataset: &Dataset) -> Shape {
        Shape {
            documents: dataset.documents,
            users: dataset.users,
        }
    }
}

fn random_document(rng: &mut ChaCha8Rng, shape: Shape) -> ObjectRef {
    ObjectRef::new(
        "document",
        format!("d{}", rng.gen_range(0..shape.documents)),
    )
}

fn random_user(rng: &mut ChaCha8Rng, shape: Shape) -> SubjectRef {
    SubjectRef::object("user", format!("u{}", rng.gen_range(0..shape.users)))
}

/// Latencies from 1 µs to 10 minutes, three significant digits.
fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

/// One worker's state between requests.
struct Worker {
    id: usize,
    rng: ChaCha8Rng,
    /// Documents this worker's writes create (`w<id>x<sequence>`).
    sequence: u64,
}

/// Sends one request of `workload`; returns its outcome and how many relationships it wrote.
async fn send_one(
    target: &Target,
    workload: Workload,
    shape: Shape,
    load: Load,
    worker: &mut Worker,
    newest_token: &Mutex<Option<api::ZedToken>>,
) -> (Result<(), String>, u64) {
    let rng = &mut worker.rng;
    match workload {
        Workload::Check | Workload::CheckFull => {
            let fresh = match workload {
                Workload::CheckFull => fully_consistent(),
                _ => minimize_latency(),
            };
            let request = check_request(
                &random_document(rng, shape),
                &random_user(rng, shape),
                fresh,
            );
            (target.check(request).await.map(|_| ()), 0)
        }
        Workload::Mixed if rng.gen_bool(0.05) => {
            let r = Relationship::new(
                random_document(rng, shape),
                "viewer",
                random_user(rng, shape),
            );
            let written = target.write(touches(&[r])).await;
            if let Ok(Some(token)) = &written {
                *newest_token.lock().await = Some(token.clone());
            }
            (written.map(|_| ()), 1)
        }
        Workload::Mixed => {
            let fresh = match newest_token.lock().await.clone() {
                Some(token) => consistency(api::consistency::Requirement::AtLeastAsFresh(token)),
                None => minimize_latency(),
            };
            let request = check_request(
                &random_document(rng, shape),
                &random_user(rng, shape),
                fresh,
            );
            (target.check(request).await.map(|_| ()), 0)
        }
        Workload::Lookup => {
            let request = lookup_request(&random_user(rng, shape), minimize_latency());
            (target.lookup_resources(request).await.map(|_| ()), 0)
        }
        Workload::LookupSubjects => {
            let request = lookup_subjects_request(&random_document(rng, shape), minimize_latency());
            (target.lookup_subjects(request).await.map(|_| ()), 0)
        }
        Workload::Write => {
            let batch: Vec<Relationship> = (0..load.write_batch)
                .map(|_| {
                    worker.sequence += 1;
                    let document =
                        ObjectRef::new("document", format!("w{}x{}", worker.id, worker.sequence));
                    Relationship::new(document, "viewer", random_user(&mut worker.rng, shape))
                })
                .collect();
            (
                target.write(touches(&batch)).await.map(|_| ()),
                load.write_batch as u64,
            )
        }
    }
}

/// Runs `workload` against `target` with `load`. A request still unanswered when the measured
/// period ends is given up (counted in `unfinished`), so a slow system cannot stretch the run.
pub async fn run(target: &Target, workload: Workload, shape: Shape, load: Load) -> Measured {
    let start = Instant::now();
    let measure_from = start + load.warmup;
    let end = measure_from + load.duration;
    let newest_token: Arc<Mutex<Option<api::ZedToken>>> = Arc::default();
    let mut workers = Vec::new();
    for id in 0..load.concurrency {
        let target = target.clone();
        let newest_token = newest_token.clone();
        workers.push(tokio::spawn(async move {
            let seed = load.seed.wrapping_mul(1_000_003).wrapping_add(id as u64);
            let mut worker = Worker {
                id,
                rng: ChaCha8Rng::seed_from_u64(seed),
                sequence: 0,
            };
            let mut measured = Measured::new(load.duration);
            while Instant::now() < end {
                let began = Instant::now();
                let sent = send_one(&target, workload, shape, load, &mut worker, &newest_token);
                let Ok((outcome, writes)) = tokio::time::timeout_at(end.into(), sent).await else {
                    measured.unfinished += 1;
                    break;
                };
                if began >= measure_from {
                    measured.record(outcome, writes, began.elapsed());
                }
            }
            measured
        }));
    }
    let mut total = Measured::new(load.duration);
    for worker in workers {
        match worker.await {
            Ok(measured) => total.add(measured),
            Err(_) => total.errors += 1,
        }
    }
    total
}
