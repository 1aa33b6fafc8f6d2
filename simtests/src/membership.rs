//! Membership changes while faults go on: spare nodes are added as learners, then promoted; then,
//! in half the runs, a voter is removed (the leader, in half of those).

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use pemba_proto::pemba::cluster::v1 as cluster;
use pemba_proto::pemba::cluster::v1::cluster_client::ClusterClient;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::{host, net, CLUSTER_PORT, SECRET};

fn request<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let value = format!("Bearer {SECRET}").parse().expect("a header value");
    request.metadata_mut().insert("authorization", value);
    request.set_timeout(Duration::from_secs(3));
    request
}

/// Adds each spare node as a learner and promotes it, through any node (changes go to the
/// leader), retrying until `until`; then maybe removes a voter (recorded in `removed`); logs what
/// happened.
pub async fn change(
    seed: u64,
    nodes: Vec<String>,
    spares: Vec<usize>,
    until: Duration,
    log: Arc<Mutex<Vec<String>>>,
    removed: Arc<Mutex<std::collections::BTreeSet<usize>>>,
) -> turmoil::Result {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xad_d5ec);
    let clients: Vec<_> = nodes
        .iter()
        .map(|n| net::channel(&format!("{n}:{CLUSTER_PORT}")).map(ClusterClient::new))
        .collect::<Result<_, _>>()?;
    for spare in spares {
        let id = spare as u64 + 1;
        let addr = format!("{}:{CLUSTER_PORT}", host(spare));
        let start = until.mul_f64(rng.gen_range(0.2..0.5));
        tokio::time::sleep(start.saturating_sub(turmoil::elapsed())).await;
        let mut added = false;
        while turmoil::elapsed() < until {
            let mut client = clients[rng.gen_range(0..clients.len())].clone();
            let answer = if added {
                client
                    .promote(request(cluster::PromoteRequest { id }))
                    .await
            } else {
                let add = cluster::AddLearnerRequest {
                    id,
                    addr: addr.clone(),
                };
                client.add_learner(request(add)).await
            };
            match answer {
                Ok(done) if added => {
                    log.lock().push(format!(
                        "[{:?}] promoted node {id} (log index {})",
                        turmoil::elapsed(),
                        done.into_inner().log_index
                    ));
                    break;
                }
                Ok(done) => {
                    log.lock().push(format!(
                        "[{:?}] added node {id} as a learner (log index {})",
                        turmoil::elapsed(),
                        done.into_inner().log_index
                    ));
                    added = true;
                }
                // Already a member: a retry whose first attempt went through.
                Err(status) if !added && status.message().contains("already a member") => {
                    added = true;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(300)).await,
            }
        }
    }
    if rng.gen_bool(0.5) {
        let leader_first = rng.gen_bool(0.5);
        remove_one(&mut rng, &clients, leader_first, until, &log, &removed).await;
    }
    Ok(())
}

/// Removes one of the initial voters (the leader, if `leader_first` and one is known), through
/// any node, retrying until `until`.
async fn remove_one(
    rng: &mut ChaCha8Rng,
    clients: &[ClusterClient<tonic::transport::Channel>],
    leader_first: bool,
    until: Duration,
    log: &Mutex<Vec<String>>,
    removed: &Mutex<std::collections::BTreeSet<usize>>,
) {
    let mut target = rng.gen_range(0..clients.len());
    if leader_first {
        let mut client = clients[rng.gen_range(0..clients.len())].clone();
        if let Ok(status) = client.status(request(cluster::StatusRequest {})).await {
            let leader = status.into_inner().leader_id;
            if (1..=clients.len() as u64).contains(&leader) {
                target = leader as usize - 1;
            }
        }
    }
    let id = target as u64 + 1;
    // Removed from here on: the verifier no longer expects it to take writes.
    removed.lock().insert(target);
    while turmoil::elapsed() < until {
        let mut client = clients[rng.gen_range(0..clients.len())].clone();
        match client.remove(request(cluster::RemoveRequest { id })).await {
            Ok(done) => {
                log.lock().push(format!(
                    "[{:?}] removed node {id}{} (log index {})",
                    turmoil::elapsed(),
                    if leader_first { ", the leader" } else { "" },
                    done.into_inner().log_index
                ));
                return;
            }
            // Not a member: a retry whose first attempt went through.
            Err(status) if status.message().contains("is not a member") => return,
            Err(_) => tokio::time::sleep(Duration::from_millis(300)).await,
        }
    }
}
