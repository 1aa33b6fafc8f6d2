//! What a benchmark drives: any `authzed.api.v1` endpoint over gRPC (Pemba, SpiceDB, or the
//! no-op service), or an OpenFGA server through the translation in [`crate::openfga`].

use std::sync::Arc;

use anyhow::{bail, Context};
use pemba_proto::authzed::api::v1 as api;
use pemba_proto::authzed::api::v1::permissions_service_client::PermissionsServiceClient;
use pemba_proto::authzed::api::v1::schema_service_client::SchemaServiceClient;
use pemba_proto::convert::relationship_to_api;
use pemba_types::Relationship;
use tonic::transport::{Channel, Endpoint};

use crate::openfga::OpenFga;
use crate::workload::touches;

/// A benchmark target. Clones share connections.
#[derive(Clone)]
pub enum Target {
    Grpc {
        channel: Channel,
        /// The preshared key sent as `authorization: Bearer <key>`.
        key: Arc<str>,
    },
    OpenFga(OpenFga),
}

/// A failed call's status, as the report shows it.
pub fn status_text(status: tonic::Status) -> String {
    format!("{:?}: {}", status.code(), status.message())
}

/// `message` with the preshared key sent as `authorization: Bearer <key>`.
pub fn authorized<T>(message: T, key: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Ok(value) = format!("Bearer {key}").parse() {
        request.metadata_mut().insert("authorization", value);
    }
    request
}

/// Connects to `endpoint` (`http://host:port`).
async fn connect(endpoint: &str) -> anyhow::Result<Channel> {
    Endpoint::from_shared(endpoint.to_string())?
        .tcp_nodelay(true)
        .connect()
        .await
        .with_context(|| format!("connecting to {endpoint}"))
}

impl Target {
    /// Connects to the `authzed.api.v1` endpoint `endpoint` (`http://host:port`).
    pub async fn grpc(endpoint: &str, key: &str) -> anyhow::Result<Target> {
        Ok(Target::Grpc {
            channel: connect(endpoint).await?,
            key: key.into(),
        })
    }

    /// Connects to the OpenFGA server at `endpoint` and creates a store holding the
    /// document-sharing model.
    pub async fn openfga(endpoint: &str, key: &str) -> anyhow::Result<Target> {
        let channel = connect(endpoint).await?;
        Ok(Target::OpenFga(
            OpenFga::create(channel, key, "pemba-bench").await?,
        ))
    }

    /// Writes the document-sharing schema (OpenFGA's store already holds the model).
    pub async fn write_schema(&self, schema: &str) -> anyhow::Result<()> {
        if let Target::Grpc { channel, key } = self {
            let request = api::WriteSchemaRequest {
                schema: schema.to_string(),
            };
            SchemaServiceClient::new(channel.clone())
                .write_schema(authorized(request, key))
                .await?;
        }
        Ok(())
    }

    /// Writes; returns the revision's token (OpenFGA has none).
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
            Target::OpenFga(fga) => fga.write(request).await.map(|()| None),
        }
    }

    /// Loads `relationships` into an empty store: ImportBulkRelationships in messages of
    /// `batch` (OpenFGA: Writes of `batch` tuples, four at a time).
    pub async fn import(&self, relationships: &[Relationship], batch: usize) -> anyhow::Result<()> {
        let Target::Grpc { channel, key } = self else {
            return self.write_concurrently(relationships, batch, 4).await;
        };
        let messages: Vec<api::ImportBulkRelationshipsRequest> = relationships
            .chunks(batch)
            .map(|chunk| api::ImportBulkRelationshipsRequest {
                relationships: chunk.iter().map(relationship_to_api).collect(),
            })
            .collect();
        let imported = PermissionsServiceClient::new(channel.clone())
            .import_bulk_relationships(authorized(tokio_stream::iter(messages), key))
            .await
            .map_err(|s| anyhow::anyhow!(status_text(s)))?
            .into_inner()
            .num_loaded;
        if imported != relationships.len() as u64 {
            bail!(
                "imported {imported} of {} relationships",
                relationships.len()
            );
        }
        Ok(())
    }

    /// TOUCHes `relationships`, `batch` per request, `writers` requests at a time.
    async fn write_concurrently(
        &self,
        relationships: &[Relationship],
        batch: usize,
        writers: usize,
    ) -> anyhow::Result<()> {
        let chunks: Vec<Vec<Relationship>> =
            relationships.chunks(batch).map(<[_]>::to_vec).collect();
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let chunks = Arc::new(chunks);
        let mut tasks = Vec::new();
        for _ in 0..writers {
            let (target, next, chunks) = (self.clone(), next.clone(), chunks.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(chunk) = chunks.get(i) else {
                        return Ok::<(), String>(());
                    };
                    target.write(touches(chunk)).await?;
                }
            }));
        }
        for task in tasks {
            task.await?.map_err(anyhow::Error::msg)?;
        }
        Ok(())
    }

    /// Checks; returns the permissionship.
    pub async fn check(&self, request: api::CheckPermissionRequest) -> Result<i32, String> {
        match self {
            Target::Grpc { channel, key } => PermissionsServiceClient::new(channel.clone())
                .check_permission(authorized(request, key))
                .await
                .map(|r| r.into_inner().permissionship)
                .map_err(status_text),
            Target::OpenFga(fga) => fga.check(request).await,
        }
    }

    /// Looks resources up (OpenFGA: ListObjects); returns the ids found.
    pub async fn lookup_resources(
        &self,
        request: api::LookupResourcesRequest,
    ) -> Result<Vec<String>, String> {
        let (channel, key) = match self {
            Target::Grpc { channel, key } => (channel, key),
            Target::OpenFga(fga) => return fga.list_objects(request).await,
        };
        let mut stream = PermissionsServiceClient::new(channel.clone())
            .lookup_resources(authorized(request, key))
            .await
            .map_err(status_text)?
            .into_inner();
        let mut found = Vec::new();
        while let Some(item) = stream.message().await.map_err(status_text)? {
            found.push(item.resource_object_id);
        }
        Ok(found)
    }

    /// Looks subjects up; returns the ids found, each with its excluded ids (`*-u1,u2`).
    /// OpenFGA is not asked (its ListUsers is left out of the report).
    pub async fn lookup_subjects(
        &self,
        request: api::LookupSubjectsRequest,
    ) -> Result<Vec<String>, String> {
        let Target::Grpc { channel, key } = self else {
            return Err("LookupSubjects is only sent to authzed.api.v1 targets".into());
        };
        let mut stream = PermissionsServiceClient::new(channel.clone())
            .lookup_subjects(authorized(request, key))
            .await
            .map_err(status_text)?
            .into_inner();
        let mut found = Vec::new();
        while let Some(item) = stream.message().await.map_err(status_text)? {
            let Some(subject) = item.subject else {
                continue;
            };
            let mut excluded: Vec<String> = item
                .excluded_subjects
                .into_iter()
                .map(|e| e.subject_object_id)
                .collect();
            excluded.sort();
            found.push(if excluded.is_empty() {
                subject.subject_object_id
            } else {
                format!("{}-{}", subject.subject_object_id, excluded.join(","))
            });
        }
        Ok(found)
    }

    /// Whether this target answers LookupSubjects and carries ZedTokens (OpenFGA does not).
    pub fn speaks_authzed(&self) -> bool {
        matches!(self, Target::Grpc { .. })
    }
}
