//! A no-op PermissionsService: CheckPermission answers at once, without looking at anything.
//! Its throughput is the ceiling any tonic service has on this machine with these messages.

use std::net::SocketAddr;
use std::pin::Pin;

use pemba_proto::authzed::api::v1 as api;
use pemba_proto::authzed::api::v1::permissions_service_server::{
    PermissionsService, PermissionsServiceServer,
};
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

type Stream_<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

struct Noop;

fn unimplemented<T>() -> Result<T, Status> {
    Err(Status::unimplemented(
        "the no-op service only answers CheckPermission",
    ))
}

#[tonic::async_trait]
impl PermissionsService for Noop {
    type ReadRelationshipsStream = Stream_<api::ReadRelationshipsResponse>;
    type LookupResourcesStream = Stream_<api::LookupResourcesResponse>;
    type LookupSubjectsStream = Stream_<api::LookupSubjectsResponse>;
    type ExportBulkRelationshipsStream = Stream_<api::ExportBulkRelationshipsResponse>;

    async fn check_permission(
        &self,
        _request: Request<api::CheckPermissionRequest>,
    ) -> Result<Response<api::CheckPermissionResponse>, Status> {
        Ok(Response::new(api::CheckPermissionResponse {
            checked_at: Some(api::ZedToken {
                token: "noop".into(),
            }),
            permissionship: api::check_permission_response::Permissionship::HasPermission as i32,
            ..Default::default()
        }))
    }

    async fn check_bulk_permissions(
        &self,
        _: Request<api::CheckBulkPermissionsRequest>,
    ) -> Result<Response<api::CheckBulkPermissionsResponse>, Status> {
        unimplemented()
    }

    async fn expand_permission_tree(
        &self,
        _: Request<api::ExpandPermissionTreeRequest>,
    ) -> Result<Response<api::ExpandPermissionTreeResponse>, Status> {
        unimplemented()
    }

    async fn lookup_resources(
        &self,
        _: Request<api::LookupResourcesRequest>,
    ) -> Result<Response<Self::LookupResourcesStream>, Status> {
        unimplemented()
    }

    async fn lookup_subjects(
        &self,
        _: Request<api::LookupSubjectsRequest>,
    ) -> Result<Response<Self::LookupSubjectsStream>, Status> {
        unimplemented()
    }

    async fn read_relationships(
        &self,
        _: Request<api::ReadRelationshipsRequest>,
    ) -> Result<Response<Self::ReadRelationshipsStream>, Status> {
        unimplemented()
    }

    async fn write_relationships(
        &self,
        _: Request<api::WriteRelationshipsRequest>,
    ) -> Result<Response<api::WriteRelationshipsResponse>, Status> {
        unimplemented()
    }

    async fn delete_relationships(
        &self,
        _: Request<api::DeleteRelationshipsRequest>,
    ) -> Result<Response<api::DeleteRelationshipsResponse>, Status> {
        unimplemented()
    }

    async fn import_bulk_relationships(
        &self,
        _: Request<Streaming<api::ImportBulkRelationshipsRequest>>,
    ) -> Result<Response<api::ImportBulkRelationshipsResponse>, Status> {
        unimplemented()
    }

    async fn export_bulk_relationships(
        &self,
        _: Request<api::ExportBulkRelationshipsRequest>,
    ) -> Result<Response<Self::ExportBulkRelationshipsStream>, Status> {
        unimplemented()
    }
}

/// Serves the no-op service on `addr` until the process ends.
pub async fn serve(addr: SocketAddr) -> anyhow::Result<()> {
    tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .add_service(PermissionsServiceServer::new(Noop))
        .serve(addr)
        .await?;
    Ok(())
}
