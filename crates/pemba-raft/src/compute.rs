//! Where long work runs: a LookupResources over a large dataset (tens of milliseconds of CPU),
//! a garbage collection, building or installing a snapshot (seconds, with disk I/O). On an async
//! worker it would hold up everything queued behind it there (other requests, and the Raft
//! heartbeats and replication of the node's replica).

use tokio::task::JoinError;

/// Where long work runs.
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
    /// Where work over storage runs: off the async workers if the storage blocks (a disk),
    /// inline if it does not (the simulation's memory).
    pub fn for_storage(blocks: bool) -> Compute {
        if blocks {
            Compute::Blocking
        } else {
            Compute::Inline
        }
    }

    /// Runs `work` where this says, and returns its result; fails only if a blocking thread
    /// stopped before the end of `work` (it panicked, or the runtime is shutting down).
    pub async fn run<T: Send + 'static>(
        self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, JoinError> {
        match self {
            Compute::Inline => Ok(work()),
            Compute::Blocking => tokio::task::spawn_blocking(work).await,
        }
    }
}
