//! Assembling a node: the one way `pemba serve`, the simulation and the tests put a datastore,
//! its Raft log, the network and a clock together into a running replica, with garbage
//! collection scheduled. What differs between them is only what they pass in: RocksDB or
//! memory, TCP or a simulated network, the system clock or a simulated one.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use pemba_raft::{Compute, LogBackend};
use pemba_store::{Datastore, Observer, Persistence};

use crate::dialer::{Dialer, TcpDialer};
use crate::error::ClusterError;
use crate::gc::spawn_garbage_collection;
use crate::replica::{Clock, Replica, ReplicaConfig};

/// How old history is dropped: every `interval`, what is older than `window` in log time.
#[derive(Debug, Clone, Copy)]
pub struct GcSchedule {
    /// How long history stays readable, in log time.
    pub window: Duration,
    /// How often a collection runs.
    pub interval: Duration,
}

/// A node to start: its configuration and storage, and (unless set) TCP to its peers, the
/// system clock, no garbage collection and no observer.
pub struct NodeBuilder<B> {
    config: ReplicaConfig,
    persistence: Box<dyn Persistence>,
    log: B,
    dialer: Arc<dyn Dialer>,
    clock: Clock,
    gc: Option<GcSchedule>,
    observer: Option<Observer>,
}

/// A started node's datastore and replica.
pub struct StartedNode {
    /// The node's datastore.
    pub datastore: Arc<Datastore>,
    /// The node's replica.
    pub replica: Arc<Replica>,
}

impl<B: LogBackend> NodeBuilder<B> {
    /// A node with `config`, its datastore over `persistence` and its Raft log over `log`.
    pub fn new(config: ReplicaConfig, persistence: Box<dyn Persistence>, log: B) -> Self {
        NodeBuilder {
            config,
            persistence,
            log,
            dialer: Arc::new(TcpDialer),
            clock: Arc::new(SystemTime::now),
            gc: None,
            observer: None,
        }
    }

    /// Reaches peers through `dialer` instead of TCP.
    pub fn dialer(mut self, dialer: Arc<dyn Dialer>) -> Self {
        self.dialer = dialer;
        self
    }

    /// Reads wall-clock time from `clock` instead of the system clock.
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Collects garbage on `schedule` while the runtime runs.
    pub fn collect_garbage(mut self, schedule: GcSchedule) -> Self {
        self.gc = Some(schedule);
        self
    }

    /// Tells `observer` of every revision the datastore applies, from the first one on.
    pub fn observe(mut self, observer: Observer) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Opens the datastore, schedules garbage collection and starts the replica (which settles
    /// its standing with its peers in the background; see [`crate::identity`]).
    pub async fn start(self) -> Result<StartedNode, ClusterError> {
        let datastore = Arc::new(Datastore::open(self.persistence)?);
        if let Some(observer) = self.observer {
            datastore.observe(observer);
        }
        if let Some(GcSchedule { window, interval }) = self.gc {
            // A log on disk goes with a datastore on disk: collect off the async workers.
            let compute = Compute::for_storage(self.log.blocks());
            spawn_garbage_collection(datastore.clone(), window, interval, compute);
        }
        let replica = Replica::start(
            self.config,
            self.log,
            datastore.clone(),
            self.dialer,
            self.clock,
        )
        .await?;
        Ok(StartedNode { datastore, replica })
    }
}
