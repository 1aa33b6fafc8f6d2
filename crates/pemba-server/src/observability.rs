//! Request tracing and metrics: a tower layer that gives every gRPC request a span with a request
//! id (the client's `x-request-id`, or a new one, echoed back) and records per-method counts by
//! status and latency histograms; and a small HTTP endpoint serving `/metrics` (Prometheus text
//! format), `/healthz` and `/readyz`.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use pemba_cluster::ReplicaStatus;
use pemba_store::Datastore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracing::Instrument;

use crate::node::Node;

/// Upper bounds of the latency histogram buckets, in seconds.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    /// Cumulative counts per bucket of [`BUCKETS`].
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        for (bound, bucket) in BUCKETS.iter().zip(self.buckets.iter_mut()) {
            if seconds <= *bound {
                *bucket += 1;
            }
        }
        self.count += 1;
        self.sum += seconds;
    }
}

/// Per-method request counts and latencies, and readiness.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, &'static str), u64>>,
    latencies: Mutex<BTreeMap<String, Histogram>>,
    next_request_id: AtomicU64,
    ready: AtomicBool,
}

fn code_name(code: &str) -> &'static str {
    match code.parse::<i32>().map(tonic::Code::from_i32) {
        Ok(tonic::Code::Ok) => "OK",
        Ok(tonic::Code::Cancelled) => "CANCELLED",
        Ok(tonic::Code::InvalidArgument) => "INVALID_ARGUMENT",
        Ok(tonic::Code::DeadlineExceeded) => "DEADLINE_EXCEEDED",
        Ok(tonic::Code::NotFound) => "NOT_FOUND",
        Ok(tonic::Code::AlreadyExists) => "ALREADY_EXISTS",
        Ok(tonic::Code::PermissionDenied) => "PERMISSION_DENIED",
        Ok(tonic::Code::ResourceExhausted) => "RESOURCE_EXHAUSTED",
        Ok(tonic::Code::FailedPrecondition) => "FAILED_PRECONDITION",
        Ok(tonic::Code::Aborted) => "ABORTED",
        Ok(tonic::Code::OutOfRange) => "OUT_OF_RANGE",
        Ok(tonic::Code::Unimplemented) => "UNIMPLEMENTED",
        Ok(tonic::Code::Internal) => "INTERNAL",
        Ok(tonic::Code::Unavailable) => "UNAVAILABLE",
        Ok(tonic::Code::DataLoss) => "DATA_LOSS",
        Ok(tonic::Code::Unauthenticated) => "UNAUTHENTICATED",
        _ => "UNKNOWN",
    }
}

impl Metrics {
    fn record(&self, method: &str, code: &'static str, elapsed: Duration) {
        *self
            .requests
            .lock()
            .entry((method.to_string(), code))
            .or_default() += 1;
        self.latencies
            .lock()
            .entry(method.to_string())
            .or_default()
            .observe(elapsed.as_secs_f64());
    }

    /// Marks the node ready (serving) or not (starting, draining).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    /// The Prometheus text exposition of every metric.
    /// The metrics in Prometheus' text format; `ready` is whether the node serves now.
    pub fn render(
        &self,
        datastore: &Datastore,
        replica: Option<&ReplicaStatus>,
        ready: bool,
    ) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        out.push_str(
            "# HELP pemba_grpc_requests_total gRPC requests handled, by method and status code.\n",
        );
        out.push_str("# TYPE pemba_grpc_requests_total counter\n");
        for ((method, code), count) in self.requests.lock().iter() {
            let _ = writeln!(
                out,
                "pemba_grpc_requests_total{{method=\"{method}\",code=\"{code}\"}} {count}"
            );
        }
        out.push_str("# HELP pemba_grpc_request_duration_seconds Time to answer a gRPC request, by method.\n");
        out.push_str("# TYPE pemba_grpc_request_duration_seconds histogram\n");
        for (method, h) in self.latencies.lock().iter() {
            for (bound, count) in BUCKETS.iter().zip(h.buckets.iter()) {
                let _ = writeln!(out, "pemba_grpc_request_duration_seconds_bucket{{method=\"{method}\",le=\"{bound}\"}} {count}");
            }
            let _ = writeln!(
                out,
                "pemba_grpc_request_duration_seconds_bucket{{method=\"{method}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "pemba_grpc_request_duration_seconds_sum{{method=\"{method}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "pemba_grpc_request_duration_seconds_count{{method=\"{method}\"}} {}",
                h.count
            );
        }
        let stats = datastore.stats();
        let gauges = [
            (
                "pemba_revision",
                "The newest applied revision.",
                stats.head as f64,
            ),
            (
                "pemba_gc_horizon_revision",
                "The oldest revision still readable.",
                stats.horizon as f64,
            ),
            (
                "pemba_relationship_keys",
                "Relationships with at least one kept version.",
                stats.keys as f64,
            ),
            (
                "pemba_relationship_versions",
                "Relationship versions kept in the GC window.",
                stats.versions as f64,
            ),
            (
                "pemba_ready",
                "1 when the node serves requests (as /readyz and gRPC health say).",
                f64::from(u8::from(ready)),
            ),
        ];
        for (name, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
        if let Some(replica) = replica {
            render_replica(&mut out, replica);
        }
        out
    }
}

/// The tower layer that traces and measures every request.
#[derive(Clone)]
pub struct ObservabilityLayer {
    metrics: Arc<Metrics>,
}

impl ObservabilityLayer {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self { metrics }
    }
}

impl<S> tower_layer::Layer<S> for ObservabilityLayer {
    type Service = Observed<S>;

    fn layer(&self, inner: S) -> Observed<S> {
        Observed {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// A service wrapped by [`ObservabilityLayer`].
#[derive(Clone)]
pub struct Observed<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

impl<S, B, R> tower_service::Service<http::Request<B>> for Observed<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<R>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
    R: Send + 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = BoxFuture<Result<http::Response<R>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = request.uri().path().to_string();
        let request_id = request
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty() && v.len() <= 128)
            .map(str::to_string)
            .unwrap_or_else(|| {
                format!(
                    "{:016x}",
                    self.metrics.next_request_id.fetch_add(1, Ordering::Relaxed)
                )
            });
        let span = tracing::info_span!("grpc", request_id = %request_id, method = %method);
        let started = Instant::now();
        // Call the instance that was polled ready; keep a fresh clone for the next call.
        let clone = self.inner.clone();
        let mut ready = std::mem::replace(&mut self.inner, clone);
        let future = ready.call(request);
        let metrics = self.metrics.clone();
        Box::pin(
            async move {
                let mut result = future.await;
                let code = match &result {
                    Ok(response) => code_name(
                        response
                            .headers()
                            .get("grpc-status")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("0"),
                    ),
                    Err(_) => "UNKNOWN",
                };
                let elapsed = started.elapsed();
                metrics.record(&method, code, elapsed);
                tracing::debug!(
                    code,
                    elapsed_ms = elapsed.as_secs_f64() * 1000.0,
                    "answered"
                );
                if let (Ok(response), Ok(value)) =
                    (&mut result, http::HeaderValue::from_str(&request_id))
                {
                    response.headers_mut().insert("x-request-id", value);
                }
                result
            }
            .instrument(span),
        )
    }
}

/// Raft's figures: elections, leadership, log and apply progress, replication lag, snapshots.
fn render_replica(out: &mut String, replica: &ReplicaStatus) {
    use std::fmt::Write;
    let single = [
        (
            "pemba_raft_term",
            "gauge",
            "The current Raft term (a change means an election).",
            replica.term,
        ),
        (
            "pemba_raft_leader_id",
            "gauge",
            "The node this node takes as leader (0: none known).",
            replica.leader_id.unwrap_or(0),
        ),
        (
            "pemba_raft_is_leader",
            "gauge",
            "1 on the leader.",
            u64::from(replica.is_leader),
        ),
        (
            "pemba_raft_last_log_index",
            "gauge",
            "The index of the last entry in this node's log.",
            replica.last_log_index,
        ),
        (
            "pemba_raft_applied_index",
            "gauge",
            "The index of the last entry applied here (this node's revision).",
            replica.applied_index,
        ),
        (
            "pemba_raft_snapshot_index",
            "gauge",
            "The last index the newest snapshot covers.",
            replica.snapshot_index,
        ),
        (
            "pemba_raft_snapshots_built_total",
            "counter",
            "Snapshots this node built since it started.",
            replica.snapshots_built,
        ),
        (
            "pemba_raft_snapshots_installed_total",
            "counter",
            "Snapshots this node installed from the leader since it started.",
            replica.snapshots_installed,
        ),
        (
            "pemba_raft_digest_matches_total",
            "counter",
            "Leader state digests equal to this node's at the same revision, since it started.",
            replica.digest_checks.matched,
        ),
        (
            "pemba_raft_digest_mismatches_total",
            "counter",
            "Leader state digests that differed from this node's at the same revision: its state diverged.",
            replica.digest_checks.mismatched,
        ),
        (
            "pemba_raft_diverged",
            "gauge",
            "1 once this node's state diverged from the leader's (it then serves nothing and is not ready).",
            u64::from(replica.diverged),
        ),
        (
            "pemba_log_format",
            "gauge",
            "The cluster's Raft log format as applied on this node (raised once every member reads a newer one).",
            u64::from(replica.log_format),
        ),
        (
            "pemba_log_fsyncs_total",
            "counter",
            "Syncs of this node's Raft log to disk since it started; writes grouped in one entry share one.",
            replica.log_syncs,
        ),
        (
            "pemba_raft_write_groups_total",
            "counter",
            "Log entries of client writes this node proposed as leader since it started (group commit).",
            replica.write_groups,
        ),
        (
            "pemba_raft_grouped_writes_total",
            "counter",
            "Client writes in those entries: divided by the groups, the writes that share one entry and one fsync.",
            replica.grouped_writes,
        ),
    ];
    for (name, kind, help, value) in single {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    }
    let staleness = replica
        .staleness
        .map_or(f64::INFINITY, |age| age.as_secs_f64());
    let _ = writeln!(
        out,
        "# HELP pemba_read_staleness_seconds How old this node's newest confirmation by a leader's quorum is: the most a read without a token answered here now can lag the cluster (+Inf before the first).\n# TYPE pemba_read_staleness_seconds gauge\npemba_read_staleness_seconds {staleness}"
    );
    let offset = replica.clock_offset.unwrap_or(f64::NAN);
    let _ = writeln!(
        out,
        "# HELP pemba_clock_offset_seconds This node's wall clock minus the cluster's (the voters' median), as last measured.\n# TYPE pemba_clock_offset_seconds gauge\npemba_clock_offset_seconds {offset}"
    );
    let _ = writeln!(
        out,
        "# HELP pemba_clock_skewed 1 while this node's clock is off the other voters' by more than --max-clock-offset (it does not lead).\n# TYPE pemba_clock_skewed gauge\npemba_clock_skewed {}",
        u8::from(replica.clock_skewed)
    );
    out.push_str("# HELP pemba_raft_replication_lag Entries a follower lacks of the leader's log (leader only).\n");
    out.push_str("# TYPE pemba_raft_replication_lag gauge\n");
    for (follower, lag) in &replica.replication_lag {
        let _ = writeln!(
            out,
            "pemba_raft_replication_lag{{follower=\"{follower}\"}} {lag}"
        );
    }
}

/// Whether the node serves now, and if not, why: it is shutting down, its Raft stopped, it has
/// not joined a named cluster, or its state is not confirmed within the staleness bound.
pub fn readiness(metrics: &Metrics, node: &Node) -> Result<(), NotReady> {
    if !metrics.ready.load(Ordering::SeqCst) {
        return Err(NotReady::StartingOrStopping);
    }
    node.replica.readiness().map_err(NotReady::Cluster)
}

/// Why a node does not serve now.
#[derive(Debug, thiserror::Error)]
pub enum NotReady {
    #[error("the server is starting or shutting down")]
    StartingOrStopping,
    #[error(transparent)]
    Cluster(pemba_cluster::ClusterError),
}

/// Serves `/metrics`, `/healthz` and `/readyz` over HTTP/1.1 until `shutdown` completes.
pub async fn serve_http(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    node: Arc<Node>,
    shutdown: impl Future<Output = ()> + Send,
) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let (metrics, node) = (metrics.clone(), node.clone());
                tokio::spawn(async move {
                    let _ = answer_http(stream, &metrics, &node).await;
                });
            }
        }
    }
}

async fn answer_http(mut stream: TcpStream, metrics: &Metrics, node: &Node) -> std::io::Result<()> {
    let mut request = Vec::with_capacity(1024);
    let mut buffer = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 8192 {
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer)).await??;
        if read == 0 {
            break;
        }
        request.extend_from_slice(&buffer[..read]);
    }
    let line = String::from_utf8_lossy(&request);
    let path = line.split_whitespace().nth(1).unwrap_or("");
    let readiness = readiness(metrics, node);
    let (status, content_type, body) = match path {
        "/metrics" => (
            "200 OK",
            "text/plain; version=0.0.4",
            metrics.render(
                &node.datastore,
                Some(&node.replica.status()),
                readiness.is_ok(),
            ),
        ),
        "/healthz" => ("200 OK", "text/plain", "ok\n".to_string()),
        "/readyz" => match readiness {
            Ok(()) => ("200 OK", "text/plain", "ready\n".to_string()),
            Err(why) => (
                "503 Service Unavailable",
                "text/plain",
                format!("not ready: {why}\n"),
            ),
        },
        _ => (
            "404 Not Found",
            "text/plain",
            "not found: try /metrics, /healthz or /readyz\n".to_string(),
        ),
    };
    let head = format!("HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n", body.len());
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_histograms_and_gauges() {
        let metrics = Metrics::default();
        metrics.record(
            "/authzed.api.v1.PermissionsService/CheckPermission",
            "OK",
            Duration::from_micros(700),
        );
        metrics.record(
            "/authzed.api.v1.PermissionsService/CheckPermission",
            code_name("16"),
            Duration::from_millis(3),
        );
        let datastore =
            Datastore::open(Box::new(pemba_store::MemoryPersistence::default())).unwrap();
        let text = metrics.render(&datastore, None, false);
        assert!(text.contains("pemba_grpc_requests_total{method=\"/authzed.api.v1.PermissionsService/CheckPermission\",code=\"UNAUTHENTICATED\"} 1"));
        assert!(text.contains("pemba_grpc_request_duration_seconds_bucket{method=\"/authzed.api.v1.PermissionsService/CheckPermission\",le=\"0.001\"} 1"));
        assert!(text.contains("pemba_grpc_request_duration_seconds_bucket{method=\"/authzed.api.v1.PermissionsService/CheckPermission\",le=\"0.005\"} 2"));
        assert!(text.contains("pemba_revision 0"));
        assert!(text.contains("pemba_ready 0"));
    }
}
