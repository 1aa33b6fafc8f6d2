//! Garbage collection, scheduled by the node builder for `pemba serve`, the simulation and the
//! tests alike.

use std::sync::Arc;
use std::time::Duration;

use pemba_raft::Compute;
use pemba_store::Datastore;

/// Every `interval` (at least a second), drops history older than `window` before the log's
/// time (never this node's own clock: every node collects by the same time, whatever its clock
/// says). Runs until the runtime stops. Each collection runs where `compute` says.
pub(crate) fn spawn_garbage_collection(
    datastore: Arc<Datastore>,
    window: Duration,
    interval: Duration,
    compute: Compute,
) {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval.max(Duration::from_secs(1)));
        loop {
            ticker.tick().await;
            let collect = {
                let datastore = datastore.clone();
                move || datastore.collect_garbage(datastore.head_time(), window)
            };
            let collected = match compute.run(collect).await {
                Ok(collected) => collected,
                Err(e) => {
                    tracing::warn!(error = %e, "garbage collection stopped before its end");
                    continue;
                }
            };
            match collected {
                Ok(horizon) => tracing::debug!(horizon, "garbage collection done"),
                Err(e) => tracing::warn!(error = %e, "garbage collection failed"),
            }
        }
    });
}
