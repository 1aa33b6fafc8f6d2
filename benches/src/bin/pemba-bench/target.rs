//! What a benchmark drives: any `authzed.api.v1` endpoint over gRPC (Pemba, SpiceDB, or the
//! no-op service), or real SpiceDB in this process.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use hyper_util::rt::TokioIo;
use pemba_proto::authzed::api::v1 as api;
use pemba_proto::authzed::api::v1::permissions_service_client::PermissionsServiceClient;
use pemba_proto::authzed::api::v1::schema_service_client::SchemaServiceClient;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::spicedb::EmbeddedSpiceDb;

/// A benchmark target. Clones share connections (gRPC) or the instance (embedded).
#[derive(Clone)]
pub enum Target {
    Grpc {
        channel: Channel,
        /// The preshared key sent as `authorization: Bearer <key>`.
        key: Arc<str>,
    },
    Embedded {
        db: Arc<EmbeddedSpiceDb>,
        /// gRPC over the instance's unix socket, for its streaming calls.
        streaming: Channel,
    },
}

/// A failed call's status, as the report shows it.
fn status_text(status: tonic::Status) -> String {
    format!("{:?}: {}", status.code(), status.message())
}

fn authorized<T>(message: T, key: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Ok(value) = format!("Bearer {key}").parse() {
        request.metadata_mut().insert("authorization", value);
    }
    request
}

impl Target {
    /// Connects to `endpoint` (`http://host:port`).
    pub async fn grpc(endpoint: &str, key: &str) -> anyhow::Result<Target> {
        let channel = Endpoint::from_shared(endpoint.to_string())?
            .tcp_nodelay(true)
            .connect()
            .await
            .with_context(|| format!("connecting to {endpoint}"))?;
        Ok(Target::Grpc {
            channel,
            key: key.into(),
        })
    }

    /// Starts real SpiceDB in this process from the library at `library`.
    pub async fn embedded(library: &Path) -> anyhow::Result<Target> {
        let db = Arc::new(EmbeddedSpiceDb::start(library)?);
        let socket = db.streaming_socket().to_path_buf();
        // The address is a placeholder: every connection goes to the socket.
        let streaming = Endpoint::from_static("http://embedded.spicedb")
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                let socket = socket.clone();
                async move { UnixStream::connect(socket).await.map(TokioIo::new) }
            }))
            .await
            .context("connecting to embedded SpiceDB's streaming socket")?;
        Ok(Target::Embedded { db, streaming })
    }

    pub async fn write_schema(&self, schema: &str) -> anyhow::Result<()> {
        match self {
            Target::Grpc { channel, key } => {
                let request = api::WriteSchemaRequest {
                    schema: schema.to_string(),
                };
                SchemaServiceClient::new(channel.clone())
                    .write_schema(authorized(request, key))
                    .await?;
            }
            Target::Embedded { db, .. } => db.write_schema(schema).map_err(anyhow::Error::msg)?,
        }
        Ok(())
    }

    /// Writes; returns the revision's token.
    pub async fn write(
        &self,
        request: api::WriteRelationshipsRequest,
    ) -> Result<Option<api::ZedToken>, String> {
        match self {
            Target::Grpc { channel, key } => PermissionsServiceClient::new(channel.clone())
                .write_relationships(authorized(request, key))
                .await
                .map(|r| r.into_inner().written_at)
                .map_err(status_text),
            Target::Embedded { db, .. } => {
                let db = db.clone();
                tokio::task::spawn_blocking(move || db.write_relationships(&request))
                    .await
                    .map_err(|e| e.to_string())?
                    .map(|r| r.written_at)
                    .map_err(|e| e.to_string())
            }
        }
    }

    /// Checks; returns the permissionship.
    pub async fn check(&self, request: api::CheckPermissionRequest) -> Result<i32, String> {
        match self {
            Target::Grpc { channel, key } => PermissionsServiceClient::new(channel.clone())
                .check_permission(authorized(request, key))
                .await
                .map(|r| r.into_inner().permissionship)
                .map_err(status_text),
            Target::Embedded { db, .. } => {
                let db = db.clone();
                tokio::task::spawn_blocking(move || db.check_permission(&request))
                    .await
                    .map_err(|e| e.to_string())?
                    .map(|r| r.permissionship)
                    .map_err(|e| e.to_string())
            }
        }
    }

    /// Looks resources up; returns how many were found.
    pub async fn lookup_resources(
        &self,
        request: api::LookupResourcesRequest,
    ) -> Result<usize, String> {
        let (channel, request) = match self {
            Target::Grpc { channel, key } => (channel, authorized(request, key)),
            Target::Embedded { streaming, .. } => (streaming, tonic::Request::new(request)),
        };
        let mut stream = PermissionsServiceClient::new(channel.clone())
            .lookup_resources(request)
            .await
            .map_err(status_text)?
            .into_inner();
        let mut found = 0;
        while let Some(_item) = stream.message().await.map_err(status_text)? {
            found += 1;
        }
        Ok(found)
    }
}
