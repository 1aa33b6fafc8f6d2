//! Where a long computation runs. A LookupResources over a large dataset takes tens of
//! milliseconds of CPU; on an async worker it would hold up everything queued behind it there
//! (other requests, and the Raft heartbeats and replication of the node's replica).

use tonic::Status;

/// Where lookups run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Compute {
    /// On tokio's blocking threads, off the async workers.
    #[default]
    Blocking,
    /// On the calling task: for the simulation, whose runtime cannot wait for threads it does
    /// not drive (its time stands still while they run).
    Inline,
}

impl Compute {
    /// Runs `work` where this says, and returns its result.
    pub async fn run<T: Send + 'static>(
        self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Status> {
        match self {
            Compute::Inline => Ok(work()),
            Compute::Blocking => tokio::task::spawn_blocking(work)
                .await
                .map_err(|e| Status::internal(format!("a lookup stopped before its end: {e}"))),
        }
    }
}
