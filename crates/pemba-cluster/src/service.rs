//! The server side of the cluster port.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use pemba_proto::pemba::cluster::v1 as proto;
use pemba_proto::pemba::cluster::v1::cluster_server::{Cluster, ClusterServer};
use pemba_raft::{NodeId, TypeConfig, WriteOutcome};
use pemba_store::WriteCommand;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tokio_stream::Stream;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::Connected;
use tonic::transport::Server;
use tonic::{Extensions, Request, Response, Status};

use crate::auth::{check_cluster_id, ClusterSecret};
use crate::error::{ClusterError, LeaderRefusal};
use crate::identity::{Founding, Standing};
use crate::leader::refusal_to_wire;
use crate::network::{decode, encode};
use crate::replica::{Replica, PEER_MESSAGE_LIMIT};
use crate::sender_check::{check_sender, SenderCheck, Senders};

/// How long a membership change may take when the caller set no deadline.
const DEFAULT_ADMIN_TIMEOUT: Duration = Duration::from_secs(10);

struct PeerService {
    replica: Arc<Replica>,
    /// Binds Raft messages to their senders' certificates (with mutual TLS).
    senders: Senders,
}

fn payload<T: serde::Serialize>(value: &T) -> Result<Response<proto::RaftPayload>, Status> {
    Ok(Response::new(proto::RaftPayload {
        data: encode(value)?,
    }))
}

fn admin_status(e: ClusterError) -> Status {
    match e {
        ClusterError::Membership(refusal) => Status::failed_precondition(refusal.to_string()),
        other => Status::unavailable(other.to_string()),
    }
}

impl PeerService {
    /// Raft messages are taken only by a node whose standing is settled (see
    /// [`crate::identity`]): one with empty storage must not vote or accept entries before a
    /// peer has confirmed it is new.
    fn takes_raft_messages(&self) -> Result<(), Status> {
        match self.replica.identity.standing() {
            Standing::Member => Ok(()),
            Standing::Unconfirmed if self.replica.identity.guard_skipped() => Ok(()),
            Standing::Unconfirmed => {
                Err(Status::unavailable(ClusterError::Unconfirmed.to_string()))
            }
            Standing::Refused(why) => Err(Status::unavailable(why.to_string())),
        }
    }

    /// Refuses a Raft message from `sender` over a connection that may not speak for it.
    fn check_sender(&self, extensions: &Extensions, sender: Option<NodeId>) -> Result<(), Status> {
        check_sender(&self.senders, &self.replica, extensions, sender)
    }
}

fn admin_deadline() -> Instant {
    Instant::now() + DEFAULT_ADMIN_TIMEOUT
}

#[tonic::async_trait]
impl Cluster for PeerService {
    async fn append_entries(
        &self,
        request: Request<proto::RaftPayload>,
    ) -> Result<Response<proto::RaftPayload>, Status> {
        self.takes_raft_messages()?;
        let (_, extensions, message) = request.into_parts();
        let rpc: AppendEntriesRequest<TypeConfig> = decode(&message.data)?;
        self.check_sender(&extensions, rpc.vote.leader_id().voted_for())?;
        payload(&self.replica.raft().append_entries(rpc).await)
    }

    async fn vote(
        &self,
        request: Request<proto::RaftPayload>,
    ) -> Result<Response<proto::RaftPayload>, Status> {
        self.takes_raft_messages()?;
        let (_, extensions, message) = request.into_parts();
        let rpc: VoteRequest<NodeId> = decode(&message.data)?;
        self.check_sender(&extensions, rpc.vote.leader_id().voted_for())?;
        payload(&self.replica.raft().vote(rpc).await)
    }

    async fn install_snapshot(
        &self,
        request: Request<proto::RaftPayload>,
    ) -> Result<Response<proto::RaftPayload>, Status> {
        self.takes_raft_messages()?;
        let (_, extensions, message) = request.into_parts();
        let rpc: InstallSnapshotRequest<TypeConfig> = decode(&message.data)?;
        self.check_sender(&extensions, rpc.vote.leader_id().voted_for())?;
        let answer: Result<_, RaftError<NodeId, InstallSnapshotError>> =
            self.replica.raft().install_snapshot(rpc).await;
        payload(&answer)
    }

    async fn forward_write(
        &self,
        request: Request<proto::RaftPayload>,
    ) -> Result<Response<proto::RaftPayload>, Status> {
        let (request_id, command): (String, WriteCommand) = decode(&request.into_inner().data)?;
        let outcome: Result<WriteOutcome, LeaderRefusal> =
            self.replica.propose(request_id, command).await;
        payload(&outcome)
    }

    async fn read_index(
        &self,
        _request: Request<proto::ReadIndexRequest>,
    ) -> Result<Response<proto::ReadIndexResponse>, Status> {
        let answer = match self.replica.local_read_index().await {
            Ok(index) => proto::ReadIndexResponse {
                index,
                refusal: None,
            },
            Err(refusal) => proto::ReadIndexResponse {
                index: 0,
                refusal: Some(refusal_to_wire(&refusal)),
            },
        };
        Ok(Response::new(answer))
    }

    async fn status(
        &self,
        _request: Request<proto::StatusRequest>,
    ) -> Result<Response<proto::StatusResponse>, Status> {
        Ok(Response::new(self.replica.describe()))
    }

    async fn time(
        &self,
        _request: Request<proto::TimeRequest>,
    ) -> Result<Response<proto::TimeResponse>, Status> {
        let now = (self.replica.clock)();
        let unix_nanos = match now.duration_since(std::time::UNIX_EPOCH) {
            Ok(after) => i64::try_from(after.as_nanos()).unwrap_or(i64::MAX),
            Err(before) => -i64::try_from(before.duration().as_nanos()).unwrap_or(i64::MAX),
        };
        Ok(Response::new(proto::TimeResponse { unix_nanos }))
    }

    async fn bootstrap(
        &self,
        request: Request<proto::BootstrapRequest>,
    ) -> Result<Response<proto::BootstrapResponse>, Status> {
        let r = request.into_inner();
        let founding = Founding {
            cluster_id: r.cluster_id,
            members: r.members.into_iter().collect(),
        };
        match self.replica.identity.record_founding(&founding) {
            Ok(()) => {
                tracing::info!(cluster_id = %founding.cluster_id, "recorded the founding of a new cluster");
                Ok(Response::new(proto::BootstrapResponse {}))
            }
            Err(refusal) => Err(Status::failed_precondition(refusal.to_string())),
        }
    }

    async fn add_learner(
        &self,
        request: Request<proto::AddLearnerRequest>,
    ) -> Result<Response<proto::MembershipResponse>, Status> {
        let r = request.into_inner();
        if r.id == 0 || r.addr.is_empty() {
            return Err(Status::invalid_argument(
                "a node needs an id above 0 and a peer address",
            ));
        }
        let log_index = self
            .replica
            .add_learner(r.id, r.addr, admin_deadline())
            .await
            .map_err(admin_status)?;
        Ok(Response::new(proto::MembershipResponse { log_index }))
    }

    async fn promote(
        &self,
        request: Request<proto::PromoteRequest>,
    ) -> Result<Response<proto::MembershipResponse>, Status> {
        let log_index = self
            .replica
            .promote(request.into_inner().id, admin_deadline())
            .await
            .map_err(admin_status)?;
        Ok(Response::new(proto::MembershipResponse { log_index }))
    }

    async fn remove(
        &self,
        request: Request<proto::RemoveRequest>,
    ) -> Result<Response<proto::MembershipResponse>, Status> {
        let log_index = self
            .replica
            .remove(request.into_inner().id, admin_deadline())
            .await
            .map_err(admin_status)?;
        Ok(Response::new(proto::MembershipResponse { log_index }))
    }
}

/// Serves the cluster port for `replica` on `incoming` connections until `shutdown` completes.
/// Every call must carry `cluster_secret`; with `senders`, a Raft message that claims to come
/// from a member must come over a connection that may speak for it.
pub async fn serve_peers<I, IO, IE>(
    replica: Arc<Replica>,
    cluster_secret: &str,
    senders: Option<Arc<dyn SenderCheck>>,
    incoming: I,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ClusterError>
where
    I: Stream<Item = Result<IO, IE>>,
    IO: AsyncRead + AsyncWrite + Connected + Unpin + Send + 'static,
    IE: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let secret = ClusterSecret::new(cluster_secret);
    let known = replica.clone();
    let service = ClusterServer::new(PeerService { replica, senders })
        .max_decoding_message_size(PEER_MESSAGE_LIMIT)
        .max_encoding_message_size(PEER_MESSAGE_LIMIT);
    Server::builder()
        .add_service(InterceptedService::new(service, move |request| {
            let request = secret.check(request)?;
            check_cluster_id(&request, known.known_cluster_id().as_deref())?;
            Ok(request)
        }))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
        .map_err(ClusterError::Serve)
}
