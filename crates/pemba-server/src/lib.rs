//! Pemba's gRPC server: SpiceDB's `authzed.api.v1` services (permissions, schema, watch) over
//! Pemba's engine and datastore, with preshared-key authentication, optional TLS, gRPC health and
//! server reflection.

// Not every public item is documented yet: `missing_docs` (see the workspace's lints) is
// allowed here until it is.
#![allow(missing_docs)]

mod auth;
mod convert;
mod cursor;
mod health;
mod node;
mod observability;
mod permissions;
mod schema;
mod status;
mod stream_end;
pub mod token;
mod watch;

use std::future::Future;
use std::sync::Arc;

use pemba_proto::authzed::api::v1::permissions_service_server::PermissionsServiceServer;
use pemba_proto::authzed::api::v1::schema_service_server::SchemaServiceServer;
use pemba_proto::authzed::api::v1::watch_service_server::WatchServiceServer;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_stream::Stream;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::Connected;
use tonic::transport::{Identity, Server, ServerTlsConfig};
use tonic_health::pb::health_server::HealthServer;

pub use auth::PresharedKeys;
#[cfg(feature = "fault-injection")]
pub use node::Faults;
pub use node::{Limits, Node};
pub use observability::Metrics;
pub use pemba_raft::Compute;

/// PEM-encoded certificate chain and private key for TLS.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub certificate_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

/// How the gRPC endpoint is exposed.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Accepted bearer tokens; at least one.
    pub preshared_keys: Vec<String>,
    pub tls: Option<TlsFiles>,
    /// The largest request message accepted, in bytes (SpiceDB's default is 4 MiB).
    pub max_message_bytes: usize,
}

#[derive(Debug, Error)]
pub enum ServeError {
    #[error("at least one preshared key is required")]
    NoPresharedKey,
    #[error("server reflection: {0}")]
    Reflection(tonic_reflection::server::Error),
    #[error("TLS configuration: {0}")]
    Tls(tonic::transport::Error),
    #[error("gRPC server failed: {0}")]
    Transport(tonic::transport::Error),
}

/// Serves `node`'s gRPC API on the `grpc_incoming` connections (and, when given, `/metrics`,
/// `/healthz` and `/readyz` on `http_listener`) until `shutdown` completes; then reports not
/// ready and drains in-flight requests. The connections may come from any network: a
/// `TcpListenerStream` in production, a simulated one in tests.
pub async fn serve<I, IO, IE>(
    node: Arc<Node>,
    grpc_incoming: I,
    http_listener: Option<TcpListener>,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError>
where
    I: Stream<Item = Result<IO, IE>>,
    IO: AsyncRead + AsyncWrite + Connected + Unpin + Send + 'static,
    IE: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if options.preshared_keys.iter().all(|k| k.is_empty()) {
        return Err(ServeError::NoPresharedKey);
    }
    let keys = PresharedKeys::new(
        options
            .preshared_keys
            .into_iter()
            .filter(|k| !k.is_empty())
            .collect(),
    );
    let limit = options.max_message_bytes;

    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pemba_proto::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(ServeError::Reflection)?;

    let metrics = Arc::new(Metrics::default());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let when_stopped = |mut receiver: tokio::sync::watch::Receiver<bool>| async move {
        let _ = receiver.wait_for(|stop| *stop).await;
    };
    if let Some(http_listener) = http_listener {
        let serving = observability::serve_http(
            http_listener,
            metrics.clone(),
            node.clone(),
            when_stopped(stopped.clone()),
        );
        tokio::spawn(serving);
    }
    let draining = metrics.clone();
    tokio::spawn(async move {
        shutdown.await;
        draining.set_ready(false);
        let _ = stop.send(true);
    });

    let health = HealthServer::new(health::NodeHealth::new(metrics.clone(), node.clone()));
    let authenticate = move |request| keys.check(request);
    let permissions = PermissionsServiceServer::new(permissions::Permissions::new(node.clone()))
        .max_decoding_message_size(limit);
    let schemas = SchemaServiceServer::new(schema::Schemas::new(node.clone()))
        .max_decoding_message_size(limit);
    let watcher =
        WatchServiceServer::new(watch::Watcher::new(node)).max_decoding_message_size(limit);

    let mut builder = Server::builder()
        .layer(observability::ObservabilityLayer::new(metrics.clone()))
        .layer(stream_end::StreamEndLayer);
    if let Some(tls) = options.tls {
        let identity = Identity::from_pem(tls.certificate_pem, tls.key_pem);
        builder = builder
            .tls_config(ServerTlsConfig::new().identity(identity))
            .map_err(ServeError::Tls)?;
    }
    metrics.set_ready(true);
    builder
        .add_service(health)
        .add_service(reflection)
        .add_service(InterceptedService::new(permissions, authenticate.clone()))
        .add_service(InterceptedService::new(schemas, authenticate.clone()))
        .add_service(InterceptedService::new(watcher, authenticate))
        .serve_with_incoming_shutdown(grpc_incoming, when_stopped(stopped))
        .await
        .map_err(ServeError::Transport)
}
