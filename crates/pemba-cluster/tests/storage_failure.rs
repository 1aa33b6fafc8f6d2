//! A node whose log storage fails (a full or failing disk) stops: its Raft core halts, and from
//! then on it answers no read and no write (it has no way to know what the cluster did since),
//! reports not ready, and says why.

use std::collections::BTreeMap;
use std::time::Duration;

use pemba_cluster::{ClusterError, NodeBuilder, ReplicaConfig, WriteFailure};
use pemba_raft::MemoryLog;
use pemba_store::{MemoryPersistence, WriteCommand};
use tokio::time::{sleep, Instant};

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(5)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_log_cannot_be_written_stops_serving_and_says_why() {
    let log = MemoryLog::default();
    let config = ReplicaConfig {
        node_id: 1,
        initial_members: BTreeMap::from([(1, "127.0.0.1:1".to_string())]),
        cluster_secret: String::new(),
        heartbeat_interval: Duration::from_millis(50),
        election_timeout: Duration::from_millis(150),
        snapshot_every: 1000,
        catch_up_entries: 100_000,
        clock_tick: Duration::from_secs(1),
        max_staleness: Duration::from_secs(2),
        max_clock_offset: Duration::from_millis(500),
        digest_every: Duration::from_secs(1),
        newest_log_format: pemba_raft::NEWEST_LOG_FORMAT,
    };
    let persistence = Box::new(MemoryPersistence::default());
    let replica = NodeBuilder::new(config, persistence, log.clone())
        .start()
        .await
        .expect("starts")
        .replica;
    let schema = || WriteCommand::Schema {
        text: "definition user {}".into(),
    };
    let written = replica.write(schema(), soon()).await.expect("written");
    let revision = replica
        .fresh_revision(Instant::now(), soon())
        .await
        .expect("a fresh read");
    assert!(revision >= written.revision);

    log.set_failing(true);
    let failed = replica.write(schema(), soon()).await;
    assert!(
        matches!(failed, Err(WriteFailure::Unconfirmed(_))),
        "{failed:?}"
    );
    let deadline = soon();
    while replica.stopped().is_none() {
        assert!(Instant::now() < deadline, "Raft did not stop");
        sleep(Duration::from_millis(20)).await;
    }
    // Stopped: every call fails at once, naming the cause and what to do, even reads that the
    // frozen state could still answer within the staleness bound.
    let read = replica.fresh_revision(Instant::now(), soon()).await;
    let Err(ClusterError::Stopped(fatal)) = &read else {
        panic!("a stopped node answered a read: {read:?}");
    };
    let message = read.as_ref().unwrap_err().to_string();
    assert!(message.contains("No space left on device"), "{message}");
    assert!(message.contains("restart"), "{message}");
    assert!(!fatal.to_string().is_empty());
    assert!(matches!(replica.readiness(), Err(ClusterError::Stopped(_))));
    assert!(matches!(
        replica.read_index(soon()).await,
        Err(ClusterError::Stopped(_))
    ));
    let refused = replica.write(schema(), soon()).await;
    let Err(WriteFailure::Unconfirmed(cause)) = refused else {
        panic!("a stopped node took a write: {refused:?}");
    };
    assert!(matches!(cause, ClusterError::Stopped(_)), "{cause:?}");
    assert!(cause.to_string().contains("stopped serving"), "{cause}");
}
