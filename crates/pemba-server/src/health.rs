//! `grpc.health.v1.Health`: serving exactly while `/readyz` says ready, judged at each call (a
//! node cut off from its cluster turns not serving once its reads are past the staleness bound).

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use pemba_proto::authzed::api::v1::permissions_service_server::PermissionsServiceServer;
use pemba_proto::authzed::api::v1::schema_service_server::SchemaServiceServer;
use pemba_proto::authzed::api::v1::watch_service_server::WatchServiceServer;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tonic::server::NamedService;
use tonic::{Request, Response, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_server::Health;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

use crate::node::Node;
use crate::observability::{self, Metrics};
use crate::permissions::Permissions;
use crate::schema::Schemas;
use crate::watch::Watcher;

/// How often a Watch of the health looks at the node's readiness again.
const WATCH_EVERY: Duration = Duration::from_millis(250);

/// The services health is reported for: the server as a whole (`""`) and each API service.
const SERVICES: [&str; 4] = [
    "",
    <PermissionsServiceServer<Permissions> as NamedService>::NAME,
    <SchemaServiceServer<Schemas> as NamedService>::NAME,
    <WatchServiceServer<Watcher> as NamedService>::NAME,
];

pub struct NodeHealth {
    metrics: Arc<Metrics>,
    node: Arc<Node>,
}

impl NodeHealth {
    pub fn new(metrics: Arc<Metrics>, node: Arc<Node>) -> Self {
        Self { metrics, node }
    }
}

/// The status of `service` now (every service shares the node's readiness), or `None` for a
/// service this server does not have.
fn status_of(metrics: &Metrics, node: &Node, service: &str) -> Option<ServingStatus> {
    if !SERVICES.contains(&service) {
        return None;
    }
    Some(match observability::readiness(metrics, node) {
        Ok(()) => ServingStatus::Serving,
        Err(_) => ServingStatus::NotServing,
    })
}

fn response(status: ServingStatus) -> HealthCheckResponse {
    HealthCheckResponse {
        status: status as i32,
    }
}

#[tonic::async_trait]
impl Health for NodeHealth {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        let service = request.into_inner().service;
        match status_of(&self.metrics, &self.node, &service) {
            Some(status) => Ok(Response::new(response(status))),
            None => Err(Status::not_found(format!("unknown service `{service}`"))),
        }
    }

    type WatchStream =
        Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send + 'static>>;

    async fn watch(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let service = request.into_inner().service;
        let (metrics, node) = (self.metrics.clone(), self.node.clone());
        let (sender, receiver) = mpsc::channel(4);
        tokio::spawn(async move {
            let mut sent = None;
            loop {
                let status =
                    status_of(&metrics, &node, &service).unwrap_or(ServingStatus::ServiceUnknown);
                if sent != Some(status) {
                    if sender.send(Ok(response(status))).await.is_err() {
                        return;
                    }
                    sent = Some(status);
                }
                tokio::select! {
                    () = sender.closed() => return,
                    () = tokio::time::sleep(WATCH_EVERY) => {}
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }
}
