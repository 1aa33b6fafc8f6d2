//! One Pemba node's state shared by its services: the datastore, the replica that writes to it
//! and waits for revisions, and the request limits.

use std::sync::Arc;
use std::time::Duration;

use pemba_cluster::Replica;
use pemba_proto::authzed::api::v1 as api;
use pemba_raft::Written;
use pemba_store::{Datastore, Snapshot, WriteCommand};
use pemba_types::Revision;
use tokio::time::Instant;
use tonic::Status;

use crate::status;
use crate::token;
use pemba_raft::Compute;

/// Limits on request sizes, as SpiceDB enforces them, and on waiting.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Updates in one WriteRelationships (SpiceDB: 1000).
    pub max_updates_per_write: usize,
    /// Preconditions in one write (SpiceDB: 1000).
    pub max_preconditions: usize,
    /// Items in one CheckBulkPermissions (SpiceDB: 1000).
    pub max_bulk_checks: usize,
    /// Relationships deleted by one DeleteRelationships (SpiceDB: 1000).
    pub max_delete: u64,
    /// The largest `optional_limit` of ReadRelationships and LookupResources (SpiceDB: 1000).
    pub max_read_page: usize,
    /// The largest ExportBulkRelationships batch, and the batch size when none is given
    /// (SpiceDB: 10000).
    pub max_export_batch: usize,
    /// The largest schema accepted, in bytes.
    pub max_schema_bytes: usize,
    /// How long a request without a deadline may wait for a leader or for a revision to be
    /// applied here before it fails with UNAVAILABLE.
    pub max_wait: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_updates_per_write: 1000,
            max_preconditions: 1000,
            max_bulk_checks: 1000,
            max_delete: 1000,
            max_read_page: 1000,
            max_export_batch: 10_000,
            max_schema_bytes: 4 * 1024 * 1024,
            max_wait: Duration::from_secs(10),
        }
    }
}

/// The gRPC deadline a request carries (`grpc-timeout`), capped at `max_wait`, less a tenth so
/// the answer (UNAVAILABLE naming what was waited for) reaches the client before it gives up.
fn timeout_of(header: Option<&str>, max_wait: Duration) -> Duration {
    let parsed = header.and_then(|value| {
        let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
        let amount: u64 = digits.parse().ok()?;
        Some(match unit {
            "H" => Duration::from_secs(amount.saturating_mul(3600)),
            "M" => Duration::from_secs(amount.saturating_mul(60)),
            "S" => Duration::from_secs(amount),
            "m" => Duration::from_millis(amount),
            "u" => Duration::from_micros(amount),
            "n" => Duration::from_nanos(amount),
            _ => return None,
        })
    });
    let timeout = parsed.map_or(max_wait, |t| t.min(max_wait));
    timeout - timeout / 10
}

/// Deliberate bugs, for proving that the simulation's checker catches them. Only in builds with
/// the `fault-injection` feature, which production builds never enable.
#[cfg(feature = "fault-injection")]
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    /// Serve `at_least_as_fresh` reads from whatever this node has applied, without waiting for
    /// the token's revision: the New Enemy bug.
    pub ignore_consistency_tokens: bool,
}

/// What the services of one node share.
pub struct Node {
    pub datastore: Arc<Datastore>,
    pub replica: Arc<Replica>,
    pub limits: Limits,
    /// Where lookups run (off the async workers, unless in the simulation).
    pub compute: Compute,
    #[cfg(feature = "fault-injection")]
    pub faults: Faults,
}

impl Node {
    pub fn new(datastore: Arc<Datastore>, replica: Arc<Replica>, limits: Limits) -> Self {
        Self {
            datastore,
            replica,
            limits,
            compute: Compute::default(),
            #[cfg(feature = "fault-injection")]
            faults: Faults::default(),
        }
    }

    /// When a request must be answered by.
    pub fn deadline<T>(&self, request: &tonic::Request<T>) -> Instant {
        Instant::now() + self.timeout(request)
    }

    /// How long each step of `request` may wait: its `grpc-timeout`, at most the node's limit.
    pub fn timeout<T>(&self, request: &tonic::Request<T>) -> Duration {
        let header = request
            .metadata()
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok());
        timeout_of(header, self.limits.max_wait)
    }

    /// The cluster's id, once it has one (shortly after its first leader is elected): a request
    /// reaching a node that is still joining waits for it until its deadline.
    pub async fn cluster_id(&self, deadline: Instant) -> Result<String, Status> {
        self.replica
            .cluster_id_by(deadline)
            .await
            .map_err(|e| Status::unavailable(e.to_string()))
    }

    /// The token of `revision`. Only called after [`Node::cluster_id`] succeeded for the request
    /// (a cluster's id never changes once set).
    pub fn token(&self, revision: Revision) -> api::ZedToken {
        api::ZedToken {
            token: token::encode(&self.replica.cluster_id().unwrap_or_default(), revision),
        }
    }

    /// Waits until this node has applied `revision`; fails if this node stopped serving.
    async fn wait_for(&self, revision: Revision, deadline: Instant) -> Result<(), Status> {
        self.replica.serving().map_err(status::cluster)?;
        self.replica
            .wait_applied(revision, deadline)
            .await
            .map_err(status::cluster)
    }

    /// This node's applied state, once it is within the staleness bound for a read that arrived
    /// at `arrived` (see [`pemba_cluster::Replica::fresh_revision`]).
    async fn fresh(&self, arrived: Instant, deadline: Instant) -> Result<Revision, Status> {
        self.replica
            .fresh_revision(arrived, deadline)
            .await
            .map_err(status::cluster)
    }

    /// The revision a read with `consistency` is evaluated at, once this node has applied it:
    /// - `minimize_latency` (or none): what this node has applied, once that includes every
    ///   write the cluster committed the staleness bound before the read arrived;
    /// - `at_least_as_fresh(T)`: the same, and at least T;
    /// - `at_exact_snapshot(T)`: T, after waiting for it;
    /// - `fully_consistent`: what this node has applied, after waiting for the leader's read
    ///   index (linearizable).
    ///
    /// Waiting ends at `deadline` with UNAVAILABLE: never an older answer. A token from another
    /// cluster is refused. A node whose Raft stopped answers nothing.
    pub async fn read_revision(
        &self,
        consistency: Option<&api::Consistency>,
        deadline: Instant,
    ) -> Result<Revision, Status> {
        use api::consistency::Requirement;
        let arrived = Instant::now();
        self.replica.serving().map_err(status::cluster)?;
        let cluster_id = self.cluster_id(deadline).await?;
        match consistency.and_then(|c| c.requirement.as_ref()) {
            None | Some(Requirement::MinimizeLatency(_)) => self.fresh(arrived, deadline).await,
            Some(Requirement::FullyConsistent(_)) => {
                let index = self
                    .replica
                    .read_index(deadline)
                    .await
                    .map_err(status::cluster)?;
                self.wait_for(index, deadline).await?;
                Ok(self.datastore.head())
            }
            Some(Requirement::AtLeastAsFresh(t)) => {
                let wanted = token::decode(&cluster_id, &t.token).map_err(status::token)?;
                #[cfg(feature = "fault-injection")]
                if self.faults.ignore_consistency_tokens {
                    return Ok(self.datastore.head());
                }
                self.fresh(arrived, deadline).await?;
                self.wait_for(wanted, deadline).await?;
                Ok(self.datastore.head())
            }
            Some(Requirement::AtExactSnapshot(t)) => {
                let wanted = token::decode(&cluster_id, &t.token).map_err(status::token)?;
                self.wait_for(wanted, deadline).await?;
                Ok(wanted)
            }
        }
    }

    /// A snapshot for a read with `consistency`.
    pub async fn snapshot(
        &self,
        consistency: Option<&api::Consistency>,
        deadline: Instant,
    ) -> Result<Snapshot, Status> {
        let revision = self.read_revision(consistency, deadline).await?;
        self.datastore.snapshot(revision).map_err(status::read)
    }

    /// A snapshot of what this node has applied, however stale: only for a first look whose
    /// refusal is checked again at a fresh revision (see `check_filters_in_schema`).
    pub async fn applied_snapshot(&self, deadline: Instant) -> Result<Snapshot, Status> {
        self.replica.serving().map_err(status::cluster)?;
        self.cluster_id(deadline).await?;
        self.datastore
            .snapshot(self.datastore.head())
            .map_err(status::read)
    }

    /// The snapshot a paginated read continues from: the cursor's revision if it carries one,
    /// else the one `consistency` asks for.
    pub async fn snapshot_continuing(
        &self,
        cursor_revision: Option<Revision>,
        consistency: Option<&api::Consistency>,
        deadline: Instant,
    ) -> Result<Snapshot, Status> {
        match cursor_revision {
            Some(revision) => {
                self.wait_for(revision, deadline).await?;
                self.datastore.snapshot(revision).map_err(status::read)
            }
            None => self.snapshot(consistency, deadline).await,
        }
    }

    /// Writes through the cluster's leader; returns once the write is committed on a majority.
    pub async fn write(&self, command: WriteCommand, deadline: Instant) -> Result<Written, Status> {
        self.cluster_id(deadline).await?;
        self.replica
            .write(command, deadline)
            .await
            .map_err(status::write)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pemba_cluster::{NodeBuilder, ReplicaConfig, StartedNode};
    use pemba_raft::MemoryLog;
    use pemba_store::MemoryPersistence;
    use std::collections::BTreeMap;

    /// A one-node cluster in memory, with three schema writes (revisions past the cluster's own
    /// first entries).
    async fn node() -> (Node, Vec<Revision>) {
        let config = ReplicaConfig {
            node_id: 1,
            initial_members: BTreeMap::from([(1, "127.0.0.1:1".to_string())]),
            cluster_secret: String::new(),
            heartbeat_interval: Duration::from_millis(50),
            election_timeout: Duration::from_millis(150),
            snapshot_every: 1000,
            catch_up_entries: 100_000,
            clock_tick: Duration::from_secs(1),
            max_staleness: Duration::from_secs(5),
            max_clock_offset: Duration::from_millis(500),
            digest_every: Duration::from_secs(1),
            newest_log_format: pemba_raft::NEWEST_LOG_FORMAT,
        };
        let persistence = Box::new(MemoryPersistence::default());
        let StartedNode { datastore, replica } =
            NodeBuilder::new(config, persistence, MemoryLog::default())
                .start()
                .await
                .expect("starts");
        let node = Node::new(datastore, replica, Limits::default());
        let mut revisions = Vec::new();
        for _ in 0..3 {
            let command = WriteCommand::Schema {
                text: "definition user {}".into(),
            };
            let deadline = Instant::now() + Duration::from_secs(10);
            revisions.push(
                node.write(command, deadline)
                    .await
                    .expect("written")
                    .revision,
            );
        }
        (node, revisions)
    }

    fn at_least_as_fresh(token: api::ZedToken) -> api::Consistency {
        api::Consistency {
            requirement: Some(api::consistency::Requirement::AtLeastAsFresh(token)),
        }
    }

    fn at_exact_snapshot(token: api::ZedToken) -> api::Consistency {
        api::Consistency {
            requirement: Some(api::consistency::Requirement::AtExactSnapshot(token)),
        }
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_millis(300)
    }

    #[tokio::test]
    async fn reads_wait_for_their_revision_and_never_answer_older() {
        let (node, revisions) = node().await;
        let head = node.datastore.head();
        let exact = node.token(revisions[1]);
        assert_eq!(
            node.read_revision(Some(&at_exact_snapshot(exact)), soon())
                .await
                .unwrap(),
            revisions[1]
        );
        let fresh = node.token(revisions[0]);
        assert_eq!(
            node.read_revision(Some(&at_least_as_fresh(fresh)), soon())
                .await
                .unwrap(),
            head
        );
        // A revision this node has not applied (nor will): UNAVAILABLE at the deadline, naming it.
        let future = node.token(head + 100);
        for consistency in [at_least_as_fresh(future.clone()), at_exact_snapshot(future)] {
            let error = node
                .read_revision(Some(&consistency), soon())
                .await
                .unwrap_err();
            assert_eq!(error.code(), tonic::Code::Unavailable);
            assert!(
                error
                    .message()
                    .contains(&format!("revision {}", head + 100)),
                "{error:?}"
            );
        }
    }

    #[tokio::test]
    async fn tokens_of_another_cluster_or_garbage_are_refused() {
        let (node, _) = node().await;
        let foreign = api::ZedToken {
            token: token::encode("another-cluster", 2),
        };
        let garbled = api::ZedToken {
            token: "garbage".into(),
        };
        for token in [foreign, garbled] {
            for consistency in [
                at_least_as_fresh(token.clone()),
                at_exact_snapshot(token.clone()),
            ] {
                let error = node
                    .read_revision(Some(&consistency), soon())
                    .await
                    .unwrap_err();
                assert_eq!(error.code(), tonic::Code::InvalidArgument, "{error:?}");
            }
        }
    }

    #[test]
    fn request_deadlines_are_read_from_grpc_timeout_and_capped() {
        let cap = Duration::from_secs(10);
        assert_eq!(timeout_of(Some("2S"), cap), Duration::from_millis(1800));
        assert_eq!(timeout_of(Some("500m"), cap), Duration::from_millis(450));
        assert_eq!(timeout_of(Some("1H"), cap), Duration::from_secs(9));
        assert_eq!(timeout_of(None, cap), Duration::from_secs(9));
        assert_eq!(timeout_of(Some("garbage"), cap), Duration::from_secs(9));
        assert_eq!(timeout_of(Some(""), cap), Duration::from_secs(9));
    }
}
