//! Raising the cluster's log format, the step a rolling upgrade ends with.
//!
//! Each node reads log formats up to its build's newest ([`pemba_raft::NEWEST_LOG_FORMAT`]) and
//! says so in its status. The leader appends entries of the cluster's format only, which is the
//! first one until raised by a replicated [`Request::RaiseFormat`]; the leader appends that once
//! every member (voters and learners) says it reads the newer format. So during a rolling
//! upgrade the old nodes never receive an entry they cannot read, and once the last node runs
//! the new build the cluster moves to the new format by itself. A node that does not read the
//! cluster's format is not added ([`crate::MembershipRefusal::ReadsOlderFormat`]).

use std::sync::Weak;
use std::time::Duration;

use openraft::ServerState;
use pemba_proto::pemba::cluster::v1 as proto;
use pemba_raft::Request;
use tokio::time::sleep;

use crate::replica::Replica;

/// How often the leader looks whether the cluster's log format can be raised, while it can.
const RAISE_CHECK_EVERY: Duration = Duration::from_secs(1);
/// How long a member has to say which formats it reads.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// While this node leads a cluster whose log format is older than this node reads, raises it
/// as soon as every member reads a newer one. Ends once this node reads no newer format.
pub(crate) async fn raise_when_all_read(replica: Weak<Replica>) {
    loop {
        sleep(RAISE_CHECK_EVERY).await;
        let Some(replica) = Replica::running(&replica) else {
            return;
        };
        let machine = &replica.state_machine;
        let (current, newest) = (machine.log_format(), machine.newest_format());
        if current >= newest {
            continue;
        }
        let leads = replica.raft.metrics().borrow().state == ServerState::Leader;
        if !leads || replica.cluster_id().is_none() {
            continue;
        }
        let target = replica.format_all_members_read().await.min(newest);
        if target <= current {
            continue;
        }
        let raise = Request::RaiseFormat { version: target };
        match replica.append_as_leader(raise).await {
            Ok(_) => tracing::info!(
                from = current,
                to = target,
                "raised the cluster's log format: every member reads the new one"
            ),
            Err(e) => tracing::debug!(error = %e, "raising the log format"),
        }
    }
}

impl Replica {
    /// The newest log format every member other than this node says it reads (0 if one does
    /// not answer; a build from before formats were announced counts as reading the first).
    async fn format_all_members_read(&self) -> u32 {
        let metrics = self.metrics();
        let membership = metrics.membership_config.membership();
        let mut newest = u32::MAX;
        for (id, node) in membership.nodes() {
            if *id == self.node_id {
                continue;
            }
            let read = match self.peers.status(&node.addr, PROBE_TIMEOUT).await {
                Some(Ok(status)) => reads_up_to(&status),
                Some(Err(refusal)) => {
                    tracing::debug!(peer = id, error = %refusal.message(), "asking a member its status");
                    0
                }
                None => 0,
            };
            newest = newest.min(read);
        }
        newest
    }
}

/// The newest log format a node's status says it reads; a build from before formats were
/// announced (the field reads 0) reads the first.
pub(crate) fn reads_up_to(status: &proto::StatusResponse) -> u32 {
    status.newest_log_format.max(pemba_raft::FIRST_LOG_FORMAT)
}
