//! The client side of the cluster port: Raft messages to peers, and calls to the leader.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use parking_lot::Mutex;
use pemba_codec::Format;
use pemba_proto::pemba::cluster::v1 as proto;
use pemba_proto::pemba::cluster::v1::cluster_client::ClusterClient;
use pemba_proto::pemba::cluster::v1::RaftPayload;
use pemba_raft::{NodeId, TypeConfig};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

use crate::auth::{self, ClusterSecret};
use crate::dialer::Dialer;
use crate::replica::Replica;

/// A peer message's body (see [`Format::PeerMessage`]).
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, Status> {
    pemba_codec::encode(Format::PeerMessage, value).map_err(|e| Status::internal(e.to_string()))
}

/// Reads a peer message's body. A message in a newer format version than this build reads is
/// refused with a status that says so (the peer runs a newer Pemba build).
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Status> {
    pemba_codec::decode(Format::PeerMessage, bytes)
        .map_err(|e| Status::invalid_argument(e.to_string()))
}

/// Channels to peers by address, with the cluster secret.
pub struct Peers {
    dialer: Arc<dyn Dialer>,
    secret: ClusterSecret,
    channels: Mutex<HashMap<String, Channel>>,
    /// The replica whose cluster id every call names (set once it exists).
    replica: OnceLock<Weak<Replica>>,
}

impl Peers {
    pub fn new(dialer: Arc<dyn Dialer>, secret: ClusterSecret) -> Self {
        Self {
            dialer,
            secret,
            channels: Mutex::new(HashMap::new()),
            replica: OnceLock::new(),
        }
    }

    /// Every call from now on names `replica`'s cluster, once it knows it.
    pub fn set_cluster_id_source(&self, replica: Weak<Replica>) {
        let _ = self.replica.set(replica);
    }

    /// A client for the peer at `addr`.
    pub fn client(&self, addr: &str) -> Result<ClusterClient<Channel>, Status> {
        let mut channels = self.channels.lock();
        let channel = match channels.get(addr) {
            Some(channel) => channel.clone(),
            None => {
                let channel = self
                    .dialer
                    .channel(addr)
                    .map_err(|e| Status::unavailable(e.to_string()))?;
                channels.insert(addr.to_string(), channel.clone());
                channel
            }
        };
        Ok(ClusterClient::new(channel).max_decoding_message_size(usize::MAX))
    }

    /// Forgets the channel to `addr` after a failed call: the next call dials again. A connection
    /// that silently lost data (a partition, a dropped NAT entry) would otherwise keep failing
    /// every call made on it.
    pub fn forget(&self, addr: &str) {
        self.channels.lock().remove(addr);
    }

    /// The status of the peer at `addr`: its answer or refusal within `within`, or `None` if it
    /// could not be reached in time.
    pub async fn status(
        &self,
        addr: &str,
        within: Duration,
    ) -> Option<Result<proto::StatusResponse, Status>> {
        let mut client = self.client(addr).ok()?;
        let request = self.request(proto::StatusRequest {}, within);
        let answer = tokio::time::timeout(within, client.status(request))
            .await
            .ok()?;
        Some(answer.map(tonic::Response::into_inner))
    }

    /// `message` as a request with the secret, this node's cluster id (once known) and a
    /// timeout.
    pub fn request<T>(&self, message: T, timeout: Duration) -> Request<T> {
        let mut request = Request::new(message);
        self.secret.attach(&mut request);
        let cluster_id = self
            .replica
            .get()
            .and_then(Weak::upgrade)
            .and_then(|r| r.known_cluster_id());
        if let Some(cluster_id) = cluster_id {
            auth::attach_cluster_id(&mut request, &cluster_id);
        }
        request.set_timeout(timeout);
        request
    }
}

/// openraft's network: one [`PeerConnection`] per target.
pub struct PeerNetwork {
    pub peers: Arc<Peers>,
}

impl RaftNetworkFactory<TypeConfig> for PeerNetwork {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> PeerConnection {
        PeerConnection {
            peers: self.peers.clone(),
            target,
            addr: node.addr.clone(),
        }
    }
}

/// Raft messages to one peer.
pub struct PeerConnection {
    peers: Arc<Peers>,
    target: NodeId,
    addr: String,
}

/// A failed call as openraft sees it: a peer that refuses connections is unreachable (backed
/// off), any other failure (a timeout, say) is retried at once.
fn transport_error<E: std::error::Error>(status: Status) -> RPCError<NodeId, BasicNode, E> {
    match status.code() {
        Code::Unavailable => RPCError::Unreachable(Unreachable::new(&status)),
        _ => RPCError::Network(NetworkError::new(&status)),
    }
}

impl PeerConnection {
    async fn call<Req, Resp, E>(
        &self,
        method: RaftMethod,
        request: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let payload = RaftPayload {
            data: encode(request).map_err(transport_error)?,
        };
        let mut client = self.peers.client(&self.addr).map_err(transport_error)?;
        let request = self.peers.request(payload, option.hard_ttl());
        let call = async {
            match method {
                RaftMethod::AppendEntries => client.append_entries(request).await,
                RaftMethod::Vote => client.vote(request).await,
                RaftMethod::InstallSnapshot => client.install_snapshot(request).await,
            }
        };
        // openraft drops the call at its deadline: a call that does not finish forgets the
        // channel on the way out, as a failed one does.
        let mut forget_on_drop = ForgetOnDrop {
            peers: &self.peers,
            addr: &self.addr,
            armed: true,
        };
        let response = call.await;
        forget_on_drop.armed = response.is_err();
        let response = response.map_err(transport_error)?;
        let answer: Result<Resp, RaftError<NodeId, E>> =
            decode(&response.into_inner().data).map_err(transport_error)?;
        answer.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

/// Forgets a peer's channel when dropped while armed.
struct ForgetOnDrop<'a> {
    peers: &'a Peers,
    addr: &'a str,
    armed: bool,
}

impl Drop for ForgetOnDrop<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.peers.forget(self.addr);
        }
    }
}

enum RaftMethod {
    AppendEntries,
    Vote,
    InstallSnapshot,
}

impl RaftNetwork<TypeConfig> for PeerConnection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.call(RaftMethod::AppendEntries, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.call(RaftMethod::InstallSnapshot, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.call(RaftMethod::Vote, &rpc, &option).await
    }
}

/// Golden fixtures of the messages peers exchange (see `pemba_codec::golden`).
#[cfg(test)]
mod golden_tests {
    use std::time::{Duration, SystemTime};

    use openraft::error::{Fatal, RaftError};
    use openraft::raft::{AppendEntriesResponse, InstallSnapshotResponse, VoteResponse};
    use openraft::{
        CommittedLeaderId, Entry, EntryPayload, LeaderId, LogId, Membership, SnapshotMeta,
        StoredMembership, Vote,
    };
    use pemba_codec::golden;
    use pemba_raft::{Request, WriteOutcome, Written};
    use pemba_store::{RefusalKind, UpdateOperation, WriteCommand, WriteRefusal};
    use pemba_types::Relationship;

    use super::*;
    use crate::error::LeaderRefusal;

    fn check<T: Serialize + DeserializeOwned + std::fmt::Debug>(name: &str, value: &T) {
        golden::assert_fixture(env!("CARGO_MANIFEST_DIR"), name, Format::PeerMessage, value);
    }

    fn vote() -> Vote<NodeId> {
        Vote {
            leader_id: LeaderId::new(4, 2),
            committed: true,
        }
    }

    fn log_id(index: u64) -> LogId<NodeId> {
        LogId::new(CommittedLeaderId::new(4, 2), index)
    }

    fn command() -> WriteCommand {
        let relationship = Relationship::parse("document:d#viewer@user:alice").expect("valid");
        WriteCommand::Relationships {
            updates: vec![(UpdateOperation::Touch, relationship)],
            preconditions: Vec::new(),
        }
    }

    #[test]
    fn raft_messages() {
        let entry = Entry::<TypeConfig> {
            log_id: log_id(21),
            payload: EntryPayload::Normal(Request::Write {
                request_id: "node-2/1".into(),
                timestamp: SystemTime::UNIX_EPOCH + Duration::new(1_700_000_000, 9),
                command: Box::new(command()),
            }),
        };
        let append = AppendEntriesRequest::<TypeConfig> {
            vote: vote(),
            prev_log_id: Some(log_id(20)),
            entries: vec![entry],
            leader_commit: Some(log_id(19)),
        };
        check("append_entries", &append);
        type Answer<T> = Result<T, RaftError<NodeId>>;
        check(
            "append_entries_success",
            &Answer::Ok(AppendEntriesResponse::<NodeId>::Success),
        );
        check(
            "append_entries_conflict",
            &Answer::Ok(AppendEntriesResponse::<NodeId>::Conflict),
        );
        check("vote_request", &VoteRequest::new(vote(), Some(log_id(20))));
        let granted = VoteResponse {
            vote: vote(),
            vote_granted: true,
            last_log_id: Some(log_id(20)),
        };
        check("vote_response", &Answer::Ok(granted));
        check(
            "vote_response_stopped",
            &Answer::<VoteResponse<NodeId>>::Err(RaftError::Fatal(Fatal::Stopped)),
        );
        let membership = Membership::new(vec![[1, 2, 3].into()], ());
        let install = InstallSnapshotRequest::<TypeConfig> {
            vote: vote(),
            meta: SnapshotMeta {
                last_log_id: Some(log_id(30)),
                last_membership: StoredMembership::new(Some(log_id(2)), membership),
                snapshot_id: "30-1".into(),
            },
            offset: 0,
            data: vec![pemba_codec::MARK, 4, 1, 0],
            done: true,
        };
        check("install_snapshot", &install);
        let installed: Result<_, RaftError<NodeId, InstallSnapshotError>> =
            Ok(InstallSnapshotResponse { vote: vote() });
        check("install_snapshot_response", &installed);
    }

    #[test]
    fn forwarded_writes() {
        check("forward_write", &("node-1/5".to_string(), command()));
        type Forwarded = Result<WriteOutcome, LeaderRefusal>;
        let written = Written {
            revision: 22,
            count: 1,
            partial: false,
        };
        check("forward_written", &Forwarded::Ok(Ok(written)));
        let refused = WriteRefusal {
            kind: RefusalKind::UnknownName,
            message: "object definition `folder` not found".into(),
        };
        check("forward_refused", &Forwarded::Ok(Err(refused)));
        let not_leader = LeaderRefusal::NotLeader {
            node: 1,
            leader: Some(3),
        };
        check("forward_not_leader", &Forwarded::Err(not_leader));
    }
}
