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
    /// 95% checks carrying the newest ZedToken (at_least_as_fresh), 5% single-relationship
    /// writes.
    Mixed,
    /// LookupResources: every document a user may view.
    Lookup,
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
    pub elapsed: Duration,
    pub latency_us: Histogram<u64>,
}

impl Measured {
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

/// A lookup of every document `user` may view (minimize_latency).
fn lookup_request(user: &SubjectRef) -> api::LookupResourcesRequest {
    api::LookupResourcesRequest {
        consistency: minimize_latency(),
        resource_object_type: "document".into(),
        permission: "view".into(),
        subject: Some(subject_to_api(user)),
        ..Default::default()
    }
}

/// The user of a single timed lookup ([`time_one_lookup`]), drawn from `seed`.
pub fn lookup_user(shape: Shape, seed: u64) -> SubjectRef {
    random_user(&mut ChaCha8Rng::seed_from_u64(seed), shape)
}

/// One lookup of every document `user` may view, given up (cancelled) after `patience`: how
/// long it took and how many documents it found, or `None` if it had not finished.
pub async fn time_one_lookup(
    target: &Target,
    user: &SubjectRef,
    patience: Duration,
) -> Result<Option<(Duration, usize)>, String> {
    let began = Instant::now();
    match tokio::time::timeout(patience, target.lookup_resources(lookup_request(user))).await {
        Ok(found) => Ok(Some((began.elapsed(), found?))),
        Err(_) => Ok(None),
    }
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

/// Runs `workload` against `target` with `load`.
pub async fn run(target: &Target, workload: Workload, shape: Shape, load: Load) -> Measured {
    let start = Instant::now();
    let measure_from = start + load.warmup;
    let end = measure_from + load.duration;
    let newest_token: Arc<Mutex<Option<api::ZedToken>>> = Arc::default();
    let mut workers = Vec::new();
    for worker in 0..load.concurrency {
        let target = target.clone();
        let newest_token = newest_token.clone();
        workers.push(tokio::spawn(async move {
            let seed = load
                .seed
                .wrapping_mul(1_000_003)
                .wrapping_add(worker as u64);
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut histogram = new_histogram();
            let (mut requests, mut written, mut errors) = (0u64, 0u64, 0u64);
            let mut first_error = None;
            let mut sequence = 0u64;
            loop {
                let began = Instant::now();
                if began >= end {
                    break;
                }
                let (outcome, writes) = match workload {
                    Workload::Check => {
                        let request = check_request(
                            &random_document(&mut rng, shape),
                            &random_user(&mut rng, shape),
                            minimize_latency(),
                        );
                        (target.check(request).await.map(|_| ()), 0)
                    }
                    Workload::Mixed if rng.gen_bool(0.05) => {
                        let r = Relationship::new(
                            random_document(&mut rng, shape),
                            "viewer",
                            random_user(&mut rng, shape),
                        );
                        let written = target.write(touches(&[r])).await;
                        if let Ok(Some(token)) = &written {
                            *newest_token.lock().await = Some(token.clone());
                        }
                        (written.map(|_| ()), 1)
                    }
                    Workload::Mixed => {
                        let token = newest_token.lock().await.clone();
                        let fresh = match token {
                            Some(token) => {
                                consistency(api::consistency::Requirement::AtLeastAsFresh(token))
                            }
                            None => minimize_latency(),
                        };
                        let request = check_request(
                            &random_document(&mut rng, shape),
                            &random_user(&mut rng, shape),
                            fresh,
                        );
                        (target.check(request).await.map(|_| ()), 0)
                    }
                    Workload::Lookup => {
                        let request = lookup_request(&random_user(&mut rng, shape));
                        (target.lookup_resources(request).await.map(|_| ()), 0)
                    }
                    Workload::Write => {
                        let batch: Vec<Relationship> = (0..load.write_batch)
                            .map(|_| {
                                sequence += 1;
                                Relationship::new(
                                    ObjectRef::new("document", format!("w{worker}x{sequence}")),
                                    "viewer",
                                    random_user(&mut rng, shape),
                                )
                            })
                            .collect();
                        let written = target.write(touches(&batch)).await.map(|_| ());
                        (written, load.write_batch as u64)
                    }
                };
                let finished = Instant::now();
                if began < measure_from || finished > end {
                    continue;
                }
                match outcome {
                    Ok(()) => {
                        requests += 1;
                        written += writes;
                        let micros = finished.duration_since(began).as_micros() as u64;
                        histogram.saturating_record(micros.max(1));
                    }
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert(e);
                    }
                }
            }
            (histogram, requests, written, errors, first_error)
        }));
    }
    let mut measured = Measured {
        requests: 0,
        written: 0,
        errors: 0,
        first_error: None,
        elapsed: load.duration,
        latency_us: new_histogram(),
    };
    for worker in workers {
        let Ok((histogram, requests, written, errors, first_error)) = worker.await else {
            measured.errors += 1;
            continue;
        };
        let _ = measured.latency_us.add(&histogram);
        measured.requests += requests;
        measured.written += written;
        measured.errors += errors;
        if measured.first_error.is_none() {
            measured.first_error = first_error;
        }
    }
    measured
}
