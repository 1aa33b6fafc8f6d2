//! A node's storage in a simulation: the in-memory log and datastore, which survive crashes and
//! can be made to fail (a full or failing disk) or wiped (a new volume).

use pemba_raft::MemoryLog;
use pemba_store::MemoryPersistence;

/// One node's disk.
#[derive(Clone, Default)]
pub struct SimStorage {
    pub persistence: MemoryPersistence,
    pub log: MemoryLog,
}

impl SimStorage {
    /// Empties the disk.
    pub fn wipe(&self) {
        self.persistence.wipe();
        self.log.wipe();
    }
}
