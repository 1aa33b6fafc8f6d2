//! Binding a Raft message to the member that sent it: with mutual TLS on the cluster port, a
//! node's certificate lets it speak as itself only, not as any other member.

use std::sync::Arc;

use pemba_raft::NodeId;
use thiserror::Error;
use tonic::{Extensions, Status};

use crate::replica::Replica;

/// Checks that the connection a peer call came on belongs to the member at a cluster address.
/// The cluster port's transport supplies it (mutual TLS: the client's certificate must name
/// that address); without one, the cluster secret is all that authenticates a peer.
pub trait SenderCheck: Send + Sync + 'static {
    /// Whether the connection whose request `extensions` are given may speak for the member
    /// whose cluster address is `addr`.
    fn may_speak_for(&self, extensions: &Extensions, addr: &str) -> Result<(), SenderRefusal>;
}

/// Why a connection may not speak for a member.
#[derive(Debug, Error)]
pub enum SenderRefusal {
    /// The connection came without a client certificate.
    #[error("the connection presented no client certificate")]
    NoCertificate,
    /// The certificate does not name the member's address.
    #[error("the client certificate does not name {addr}: {source}")]
    NotNamed {
        /// The member's cluster address.
        addr: String,
        /// Why the certificate does not name it.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// The check a replica's peer service applies to Raft messages, if any.
pub(crate) type Senders = Option<Arc<dyn SenderCheck>>;

/// Refuses a Raft message that claims to come from member `sender` over a connection that may
/// not speak for it. A sender this node cannot place (a learner that has not yet learned the
/// membership gets its first entries from a leader it does not know) passes: its certificate was
/// still checked against the CA.
pub(crate) fn check_sender(
    senders: &Senders,
    replica: &Replica,
    extensions: &Extensions,
    sender: Option<NodeId>,
) -> Result<(), Status> {
    let (Some(check), Some(sender)) = (senders, sender) else {
        return Ok(());
    };
    let Some(addr) = replica.member_addr(sender) else {
        return Ok(());
    };
    check.may_speak_for(extensions, &addr).map_err(|refusal| {
        tracing::warn!(%refusal, sender, "refused a Raft message: its sender's certificate does not name it");
        Status::permission_denied(format!(
            "a message as node {sender} must come with a certificate naming its cluster address {addr}: {refusal}"
        ))
    })
}
