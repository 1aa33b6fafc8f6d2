//! A three-process cluster on 127.0.0.1: writes through a follower are seen with their token on
//! the other follower; `kill -9` of the leader during a stream of writes gives a new leader within
//! seconds and loses no acknowledged write; the old leader rejoins and catches up; a fourth node,
//! added with `pemba cluster add` and `promote`, joins through a snapshot and serves reads with
//! tokens.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use pemba_proto::authzed::api::v1 as api;
use support::cluster_node::{
    agreed_leader, at_least_as_fresh, can_view, cli, cli_fails, touch, Node,
};
use support::{free_port, metric, stored_documents};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_node_cluster_survives_its_leader_and_grows() {
    let root = tempfile::tempdir().expect("a temp dir");
    let mut nodes: Vec<Node> = Vec::new();
    let cluster_ports: Vec<String> = (0..3)
        .map(|_| format!("127.0.0.1:{}", free_port()))
        .collect();
    let members = (1..=3)
        .map(|id| format!("{id}={}", cluster_ports[id as usize - 1]))
        .collect::<Vec<_>>()
        .join(",");
    for id in 1..=3u64 {
        nodes.push(Node::new(
            root.path(),
            id,
            &cluster_ports[id as usize - 1],
            &members,
        ));
    }
    for node in &mut nodes {
        node.start();
    }
    let all: Vec<&Node> = nodes.iter().collect();
    let leader = agreed_leader(&all, &[1, 2, 3], Duration::from_secs(30)).await;
    let followers: Vec<usize> = (0..3).filter(|i| nodes[*i].id != leader).collect();
    let (first, second) = (followers[0], followers[1]);

    // A write through one follower is seen, with its token, on the other.
    nodes[first]
        .write_viewer_schema()
        .await
        .expect("the schema is written through a follower");
    let mut writer = nodes[first].permissions().await;
    let token = touch(&mut writer, "plan", "tom")
        .await
        .expect("written through a follower");
    let mut reader = nodes[second].permissions().await;
    assert!(can_view(&mut reader, "plan", "tom", at_least_as_fresh(&token)).await);
    assert!(!can_view(&mut reader, "plan", "sam", at_least_as_fresh(&token)).await);

    // A stream of writes through both followers, during which the leader is killed.
    let acknowledged: Arc<Mutex<Vec<(u64, api::ZedToken)>>> = Arc::default();
    let attempted: Arc<Mutex<BTreeSet<u64>>> = Arc::default();
    let target = 100u64;
    let stream = {
        let (acknowledged, attempted) = (acknowledged.clone(), attempted.clone());
        let mut clients = [
            nodes[first].permissions().await,
            nodes[second].permissions().await,
        ];
        tokio::spawn(async move {
            for i in 0..target {
                attempted.lock().insert(i);
                let client = &mut clients[i as usize % 2];
                if let Ok(token) = touch(client, &format!("d{i}"), &format!("u{i}")).await {
                    acknowledged.lock().push((i, token));
                }
            }
        })
    };
    while acknowledged.lock().len() < 20 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let leader_index = nodes
        .iter()
        .position(|n| n.id == leader)
        .expect("the leader");
    nodes[leader_index].kill();
    let killed_at = Instant::now();
    let survivors = [&nodes[first], &nodes[second]];
    let survivor_ids = [nodes[first].id, nodes[second].id];
    let new_leader = agreed_leader(&survivors, &survivor_ids, Duration::from_secs(20)).await;
    let failover = killed_at.elapsed();
    eprintln!("new leader {new_leader} elected {failover:?} after the kill");
    assert!(
        failover < Duration::from_secs(10),
        "a new leader took {failover:?}"
    );
    assert_ne!(new_leader, leader);
    stream.await.expect("the writer finishes");
    let acknowledged = acknowledged.lock().clone();
    assert!(
        acknowledged.len() as u64 >= target - 5,
        "only {} of {target} writes were acknowledged",
        acknowledged.len()
    );

    // No acknowledged write lost, and no write that was never attempted.
    let expected_ack: BTreeSet<String> = acknowledged
        .iter()
        .map(|(i, _)| format!("document:d{i}#viewer@user:u{i}"))
        .collect();
    let mut possible: BTreeSet<String> = attempted
        .lock()
        .iter()
        .map(|i| format!("document:d{i}#viewer@user:u{i}"))
        .collect();
    possible.insert("document:plan#viewer@user:tom".into());
    let stored = stored_documents(&mut reader).await;
    assert!(
        expected_ack.is_subset(&stored),
        "lost: {:?}",
        expected_ack.difference(&stored).collect::<Vec<_>>()
    );
    assert!(stored.is_subset(&possible), "phantoms in {stored:?}");

    // The old leader rejoins and catches up: with the newest token it sees every write.
    let (_, newest) = acknowledged
        .iter()
        .max_by_key(|(i, _)| *i)
        .cloned()
        .expect("some writes");
    nodes[leader_index].start();
    let mut rejoined = nodes[leader_index].permissions().await;
    let (last, _) = acknowledged.last().expect("some writes");
    assert!(
        can_view(
            &mut rejoined,
            &format!("d{last}"),
            &format!("u{last}"),
            at_least_as_fresh(&newest)
        )
        .await
    );
    assert_eq!(stored_documents(&mut rejoined).await, stored);

    // A fourth node joins through a snapshot (the log it would need is purged), then votes.
    let fourth_addr = format!("127.0.0.1:{}", free_port());
    let mut fourth = Node::new(root.path(), 4, &fourth_addr, &members);
    fourth.start();
    let before = fourth.status().await.expect("the new node answers");
    assert_eq!(
        before.cluster_id, "",
        "a node outside the initial members waits"
    );
    // Stalled, it cannot take the snapshot it needs: promoting it is refused, naming its lag.
    fourth.server.as_ref().expect("running").signal("STOP");
    let endpoint = nodes[first].cluster_addr.clone();
    cli(&[
        "cluster",
        "--endpoint",
        &endpoint,
        "add",
        "4",
        &fourth.cluster_addr,
    ]);
    let refused = cli_fails(&["cluster", "--endpoint", &endpoint, "promote", "4"]);
    assert!(
        refused.contains("node 4 has not caught up") && refused.contains("entries behind"),
        "{refused}"
    );
    assert!(refused.contains("still receiving a snapshot"), "{refused}");
    fourth.server.as_ref().expect("running").signal("CONT");
    let mut joined = fourth.permissions().await;
    assert!(
        can_view(
            &mut joined,
            &format!("d{last}"),
            &format!("u{last}"),
            at_least_as_fresh(&newest)
        )
        .await
    );
    cli(&["cluster", "--endpoint", &endpoint, "promote", "4", "--wait"]);
    let installed = metric(&fourth.metrics_addr, "pemba_raft_snapshots_installed_total");
    assert!(
        installed.is_some_and(|n| n >= 1.0),
        "the fourth node did not install a snapshot: {installed:?}"
    );
    assert_eq!(stored_documents(&mut joined).await, stored);
    let status = cli(&["cluster", "--endpoint", &fourth.cluster_addr, "status"]);
    assert!(
        status.contains(&format!("4 {} voter", fourth.cluster_addr)),
        "{status}"
    );
    let token = touch(&mut joined, "late", "ann")
        .await
        .expect("written through the new node");
    assert!(can_view(&mut reader, "late", "ann", at_least_as_fresh(&token)).await);
}
