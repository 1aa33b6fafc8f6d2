//! openraft's own storage test suite, run against the log store and the state machine (over the
//! in-memory backends): votes, log reads, truncation, purging, applied state and membership.

use std::sync::Arc;

use openraft::testing::{StoreBuilder, Suite};
use openraft::StorageError;
use pemba_raft::{LogStore, MemoryLog, NodeId, StateMachine, TypeConfig};
use pemba_store::{Datastore, MemoryPersistence};

struct MemoryStores;

impl StoreBuilder<TypeConfig, LogStore<MemoryLog>, StateMachine> for MemoryStores {
    async fn build(&self) -> Result<((), LogStore<MemoryLog>, StateMachine), StorageError<NodeId>> {
        let datastore =
            Datastore::open(Box::new(MemoryPersistence::default())).expect("the test setup holds");
        let machine = StateMachine::new(Arc::new(datastore)).expect("the test setup holds");
        Ok((
            (),
            LogStore::new(MemoryLog::default()).expect("a memory log needs no thread"),
            machine,
        ))
    }
}

#[test]
fn log_store_and_state_machine_pass_openraft_suite() {
    Suite::test_all(MemoryStores).unwrap();
}
