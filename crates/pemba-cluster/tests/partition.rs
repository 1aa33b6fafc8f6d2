//! Three replicas in one process over real TCP, with a network the test can partition: a leader
//! cut off from the others is deposed, and while partitioned it cannot serve a linearizable
//! (`fully_consistent`) read, even though it may still believe it leads, nor, once the staleness
//! bound has passed, a read without a token; neither can a cut-off follower. After healing, they
//! catch up and serve again.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use pemba_cluster::{ClusterError, Dialer, NodeBuilder, Replica, ReplicaConfig, WriteFailure};
use pemba_raft::MemoryLog;
use pemba_store::{MemoryPersistence, UpdateOperation, WriteCommand};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{sleep, Instant};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Channel, Endpoint};

const SECRET: &str = "partition-test-secret";

/// Directed links (from, to) that are cut.
type Cuts = Arc<Mutex<HashSet<(u64, u64)>>>;

/// Dials peers through connections that fail as soon as their link is cut.
struct PartitionableDialer {
    from: u64,
    ids: HashMap<String, u64>,
    cuts: Cuts,
}

impl Dialer for PartitionableDialer {
    fn channel(&self, addr: &str) -> Result<Channel, ClusterError> {
        let link = (self.from, self.ids[addr]);
        let (cuts, target) = (self.cuts.clone(), addr.to_string());
        let connector = tower::service_fn(move |_| {
            let (cuts, target) = (cuts.clone(), target.clone());
            async move {
                if cuts.lock().contains(&link) {
                    return Err(io::Error::new(io::ErrorKind::ConnectionRefused, "cut"));
                }
                let stream = TcpStream::connect(&target).await?;
                Ok::<_, io::Error>(TokioIo::new(CuttableStream { stream, cuts, link }))
            }
        });
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))
            .expect("a valid address")
            .connect_timeout(Duration::from_millis(500));
        Ok(endpoint.connect_with_connector_lazy(connector))
    }
}

/// A TCP stream that errors once its link is cut.
struct CuttableStream {
    stream: TcpStream,
    cuts: Cuts,
    link: (u64, u64),
}

impl CuttableStream {
    fn check(&self) -> io::Result<()> {
        if self.cuts.lock().contains(&self.link) {
            Err(io::Error::new(io::ErrorKind::BrokenPipe, "cut"))
        } else {
            Ok(())
        }
    }
}

impl AsyncRead for CuttableStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.check()?;
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for CuttableStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.check()?;
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

fn isolate(cuts: &Cuts, node: u64, others: &[u64]) {
    let mut cuts = cuts.lock();
    for other in others {
        cuts.insert((node, *other));
        cuts.insert((*other, node));
    }
}

fn touch(relationship: &str) -> WriteCommand {
    WriteCommand::Relationships {
        updates: vec![(
            UpdateOperation::Touch,
            pemba_types::Relationship::parse(relationship).expect("a relationship"),
        )],
        preconditions: Vec::new(),
    }
}

fn schema() -> WriteCommand {
    WriteCommand::Schema {
        text: "definition user {}\ndefinition document {\n    relation viewer: user\n}".into(),
    }
}

fn in_seconds(seconds: u64) -> Instant {
    Instant::now() + Duration::from_secs(seconds)
}

async fn leader_of(replicas: &BTreeMap<u64, Arc<Replica>>, among: &[u64]) -> u64 {
    let deadline = in_seconds(20);
    loop {
        let leaders: HashSet<u64> = among
            .iter()
            .filter_map(|id| replicas[id].status().leader_id)
            .collect();
        let agreed = leaders.len() == 1
            && among
                .iter()
                .all(|id| replicas[id].status().leader_id.is_some());
        if agreed {
            let leader = *leaders.iter().next().expect("one leader");
            if among.contains(&leader) {
                return leader;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no leader agreed among {among:?}"
        );
        sleep(Duration::from_millis(50)).await;
    }
}

/// The staleness bound of the test clusters.
const MAX_STALENESS: Duration = Duration::from_secs(2);

/// Three replicas over real TCP through partitionable links, with their cuts.
async fn three_replicas() -> (BTreeMap<u64, Arc<Replica>>, Cuts) {
    let ids = [1u64, 2, 3];
    let mut listeners = Vec::new();
    let mut members = BTreeMap::new();
    for id in ids {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
        members.insert(id, listener.local_addr().expect("an address").to_string());
        listeners.push(listener);
    }
    let addr_ids: HashMap<String, u64> = members.iter().map(|(id, a)| (a.clone(), *id)).collect();
    let cuts: Cuts = Arc::default();
    let mut replicas = BTreeMap::new();
    for (id, listener) in ids.into_iter().zip(listeners) {
        let config = ReplicaConfig {
            node_id: id,
            initial_members: members.clone(),
            cluster_secret: SECRET.into(),
            heartbeat_interval: Duration::from_millis(50),
            election_timeout: Duration::from_millis(300),
            snapshot_every: 1000,
            catch_up_entries: 100_000,
            clock_tick: Duration::from_secs(1),
            max_staleness: MAX_STALENESS,
            max_clock_offset: Duration::from_millis(500),
            digest_every: Duration::from_secs(1),
            newest_log_format: pemba_raft::NEWEST_LOG_FORMAT,
        };
        let dialer = PartitionableDialer {
            from: id,
            ids: addr_ids.clone(),
            cuts: cuts.clone(),
        };
        let persistence = Box::new(MemoryPersistence::default());
        let replica = NodeBuilder::new(config, persistence, MemoryLog::default())
            .dialer(Arc::new(dialer))
            .start()
            .await
            .expect("the replica starts")
            .replica;
        let serving = replica.clone();
        tokio::spawn(async move {
            let incoming = TcpListenerStream::new(listener);
            let _ =
                pemba_cluster::serve_peers(serving, SECRET, None, incoming, std::future::pending())
                    .await;
        });
        replicas.insert(id, replica);
    }

    (replicas, cuts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_deposed_leader_cannot_serve_a_linearizable_read() {
    let ids = [1u64, 2, 3];
    let (replicas, cuts) = three_replicas().await;
    let old_leader = leader_of(&replicas, &ids).await;
    replicas[&old_leader]
        .write(schema(), in_seconds(10))
        .await
        .expect("the schema is written");
    let before = replicas[&old_leader]
        .read_index(in_seconds(5))
        .await
        .expect("a connected leader serves a read index");

    assert!(replicas[&old_leader].readiness().is_ok());
    let others: Vec<u64> = ids.iter().copied().filter(|id| *id != old_leader).collect();
    isolate(&cuts, old_leader, &others);
    let new_leader = leader_of(&replicas, &others).await;
    assert_ne!(new_leader, old_leader);
    let written = replicas[&new_leader]
        .write(touch("document:plan#viewer@user:tom"), in_seconds(10))
        .await
        .expect("the majority side accepts writes");
    let written_at = Instant::now();
    assert!(written.revision > before);

    // The deposed leader is cut off: no quorum confirms its leadership, so it has no read index
    // to give, and a fully consistent read there fails instead of answering from stale state.
    let refused = replicas[&old_leader]
        .read_index(Instant::now() + Duration::from_secs(2))
        .await;
    assert!(
        matches!(refused, Err(ClusterError::NoLeaderAnswered { .. })),
        "a partitioned leader served a read index: {refused:?}"
    );
    assert!(replicas[&old_leader].applied() < written.revision);
    // Nor, once the staleness bound has passed since the write, a read without a token: it
    // still holds a state without the write, and may still think it leads.
    sleep_past(written_at, MAX_STALENESS + Duration::from_secs(1)).await;
    let bounded = replicas[&old_leader]
        .fresh_revision(Instant::now(), in_seconds(1))
        .await;
    assert!(
        matches!(bounded, Err(ClusterError::Stale(_))),
        "a cut-off leader answered a read without a token at {bounded:?}"
    );
    assert!(matches!(
        replicas[&old_leader].readiness(),
        Err(ClusterError::Stale(_))
    ));
    assert!(replicas[&new_leader].readiness().is_ok());
    // Nor can it commit a write: the client is told UNAVAILABLE (outcome unknown) at its deadline.
    let stranded = replicas[&old_leader]
        .write(
            touch("document:plan#viewer@user:sam"),
            Instant::now() + Duration::from_secs(2),
        )
        .await;
    assert!(
        matches!(stranded, Err(WriteFailure::Unconfirmed(_))),
        "{stranded:?}"
    );

    // Healed, it follows the new leader and its read index covers the write.
    cuts.lock().clear();
    let index = replicas[&old_leader]
        .read_index(in_seconds(10))
        .await
        .expect("after healing, a read index");
    assert!(index >= written.revision);
    replicas[&old_leader]
        .wait_applied(written.revision, in_seconds(10))
        .await
        .expect("the old leader catches up");
    ready_within(&replicas[&old_leader], Duration::from_secs(10)).await;
    for replica in replicas.values() {
        replica.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_follower_stops_answering_reads_without_a_token_after_the_bound() {
    let ids = [1u64, 2, 3];
    let (replicas, cuts) = three_replicas().await;
    let leader = leader_of(&replicas, &ids).await;
    let follower = *ids.iter().find(|id| **id != leader).expect("a follower");
    let others: Vec<u64> = ids.iter().copied().filter(|id| *id != follower).collect();
    replicas[&leader]
        .write(schema(), in_seconds(10))
        .await
        .expect("the schema is written");
    replicas[&leader]
        .write(touch("document:plan#viewer@user:tom"), in_seconds(10))
        .await
        .expect("a write");
    ready_within(&replicas[&follower], Duration::from_secs(10)).await;

    isolate(&cuts, follower, &others);
    // The revocation, committed by the majority without the follower.
    let revoked = replicas[&leader]
        .write(
            WriteCommand::Relationships {
                updates: vec![(
                    UpdateOperation::Delete,
                    pemba_types::Relationship::parse("document:plan#viewer@user:tom")
                        .expect("a relationship"),
                )],
                preconditions: Vec::new(),
            },
            in_seconds(10),
        )
        .await
        .expect("the majority commits the revocation");
    let revoked_at = Instant::now();

    // Reads arriving more than the bound after the revocation was committed never see a state
    // without it: they fail. (Before that, the follower's older state is within the bound.)
    let mut refused = 0;
    while revoked_at.elapsed() < MAX_STALENESS + Duration::from_secs(2) {
        let arrived = Instant::now();
        let answer = replicas[&follower]
            .fresh_revision(arrived, arrived + Duration::from_millis(100))
            .await;
        if arrived.duration_since(revoked_at) > MAX_STALENESS {
            match answer {
                Ok(revision) => assert!(
                    revision >= revoked.revision,
                    "a cut-off follower answered at revision {revision}, without the revocation at {}, {:?} after it",
                    revoked.revision,
                    arrived.duration_since(revoked_at)
                ),
                Err(ClusterError::Stale(stale)) => {
                    refused += 1;
                    assert!(stale.to_string().contains("staleness bound"), "{stale}");
                }
                Err(other) => panic!("unexpected failure: {other:?}"),
            }
        }
        sleep(Duration::from_millis(100)).await;
    }
    assert!(refused > 5, "the cut-off follower kept answering");
    assert!(matches!(
        replicas[&follower].readiness(),
        Err(ClusterError::Stale(_))
    ));

    cuts.lock().clear();
    ready_within(&replicas[&follower], Duration::from_secs(10)).await;
    let revision = replicas[&follower]
        .fresh_revision(Instant::now(), in_seconds(5))
        .await
        .expect("healed, the follower serves");
    assert!(revision >= revoked.revision);
    for replica in replicas.values() {
        replica.shutdown().await;
    }
}

/// Sleeps until `since + wait`.
async fn sleep_past(since: Instant, wait: Duration) {
    tokio::time::sleep_until(since + wait).await;
}

/// Waits until `replica` reports ready, at most `within`.
async fn ready_within(replica: &Replica, within: Duration) {
    let deadline = Instant::now() + within;
    while let Err(e) = replica.readiness() {
        assert!(
            Instant::now() < deadline,
            "not ready within {within:?}: {e}"
        );
        sleep(Duration::from_millis(50)).await;
    }
}
