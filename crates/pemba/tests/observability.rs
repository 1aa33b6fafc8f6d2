//! `/metrics`, `/healthz` and `/readyz` on the metrics address.

mod support;

use pemba_proto::authzed::api::v1 as api;
use pemba_proto::authzed::api::v1::schema_service_client::SchemaServiceClient;
use std::time::Duration;
use support::{authorized, free_port, http_get as get, Server};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_health_and_readiness_are_served() {
    let data = tempfile::tempdir().expect("a temp dir");
    let metrics_addr = format!("127.0.0.1:{}", free_port());
    let server = Server::start_with_metrics(data.path(), &metrics_addr);
    assert!(get(&metrics_addr, "/healthz").starts_with("HTTP/1.1 200 OK"));
    support::wait_ready(&metrics_addr);
    assert!(get(&metrics_addr, "/readyz").starts_with("HTTP/1.1 200 OK"));
    assert!(get(&metrics_addr, "/nothing").starts_with("HTTP/1.1 404"));

    let mut schema = SchemaServiceClient::connect(server.url())
        .await
        .expect("connects");
    let request = authorized(api::WriteSchemaRequest {
        schema: "definition user {}".into(),
    });
    let response = schema.write_schema(request).await.expect("schema written");
    let request_id = response
        .metadata()
        .get("x-request-id")
        .expect("a request id is echoed");
    assert!(!request_id.is_empty());
    let unauthenticated = schema
        .read_schema(tonic::Request::new(api::ReadSchemaRequest {}))
        .await
        .expect_err("no key");
    assert_eq!(unauthenticated.code(), tonic::Code::Unauthenticated);

    let metrics = get(&metrics_addr, "/metrics");
    assert!(
        metrics.contains("pemba_grpc_requests_total{method=\"/authzed.api.v1.SchemaService/WriteSchema\",code=\"OK\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("pemba_grpc_requests_total{method=\"/authzed.api.v1.SchemaService/ReadSchema\",code=\"UNAUTHENTICATED\"} 1"),
        "{metrics}"
    );
    // The revision is the Raft log index of the schema write: after the entries that formed the
    // one-node cluster.
    let revision: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("pemba_revision "))
        .and_then(|v| v.parse().ok())
        .expect("a revision gauge");
    assert!(revision >= 1, "{metrics}");
    assert!(metrics.contains("pemba_raft_is_leader 1"), "{metrics}");
    assert!(
        metrics.contains(&format!("pemba_raft_applied_index {revision}")),
        "{metrics}"
    );
    assert!(metrics.contains("pemba_ready 1"), "{metrics}");

    let channel = server.channel().await;
    let mut health = HealthClient::new(channel);
    let serving = health
        .check(HealthCheckRequest {
            service: "authzed.api.v1.PermissionsService".into(),
        })
        .await
        .expect("health answers without a key")
        .into_inner();
    assert_eq!(serving.status, ServingStatus::Serving as i32);

    assert!(
        server.terminate(Duration::from_secs(10)),
        "SIGTERM ends the server cleanly"
    );
}

/// With the default log filter (neither `PEMBA_LOG` nor `RUST_LOG` set), a three-node cluster's
/// first 30 seconds (founding, an election, a write) log Pemba's own INFO lines and no INFO line
/// of openraft's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_logs_hold_pembas_info_lines_and_no_openraft_info_lines() {
    let started = std::time::Instant::now();
    let root = tempfile::tempdir().expect("a temp dir");
    let cluster_addrs: Vec<String> = (0..3)
        .map(|_| format!("127.0.0.1:{}", free_port()))
        .collect();
    let members = (1..=3)
        .map(|id| format!("{id}={}", cluster_addrs[id - 1]))
        .collect::<Vec<_>>()
        .join(",");
    let default_filter = [("PEMBA_LOG", ""), ("RUST_LOG", "")].map(|(k, v)| (k.into(), v.into()));
    let mut servers = Vec::new();
    for id in 1..=3 {
        let metrics_addr = format!("127.0.0.1:{}", free_port());
        let args = [
            "--node-id",
            &id.to_string(),
            "--cluster-addr",
            &cluster_addrs[id - 1],
            "--initial-members",
            &members,
            "--cluster-secret",
            "observability-test-secret",
        ]
        .map(String::from);
        let dir = root.path().join(format!("node-{id}"));
        let server =
            Server::start_with_env(&dir, &metrics_addr, free_port(), &args, &default_filter);
        servers.push((server, metrics_addr));
    }
    for (_, metrics_addr) in &servers {
        support::wait_ready(metrics_addr);
    }
    let mut schema = SchemaServiceClient::connect(servers[1].0.url())
        .await
        .expect("connects");
    let request = authorized(api::WriteSchemaRequest {
        schema: "definition user {}".into(),
    });
    schema.write_schema(request).await.expect("schema written");
    tokio::time::sleep(Duration::from_secs(30).saturating_sub(started.elapsed())).await;

    let logs: Vec<String> = servers.iter().map(|(server, _)| server.log()).collect();
    let all = logs.join("\n");
    let openraft_info: Vec<&str> = all
        .lines()
        .filter(|line| line.contains(" INFO ") && line.contains("openraft"))
        .collect();
    assert!(openraft_info.is_empty(), "{openraft_info:#?}");
    assert!(
        logs.iter().all(|log| log.contains("pemba is serving")),
        "every node logs that it serves:\n{all}"
    );
    assert!(all.contains("founding a new cluster"), "{all}");
}
