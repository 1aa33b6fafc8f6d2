//! openraft's storage test suite against the RocksDB log and a state machine over RocksDB
//! persistence: votes, log reads, truncation, purging, applied state and membership.

use std::sync::Arc;

use openraft::testing::{StoreBuilder, Suite};
use openraft::StorageError;
use pemba_raft::{LogStore, NodeId, StateMachine, TypeConfig};
use pemba_rocksdb::RocksLog;
use pemba_store::Datastore;
use tempfile::TempDir;

struct RocksStores;

impl StoreBuilder<TypeConfig, LogStore<RocksLog>, StateMachine, TempDir> for RocksStores {
    async fn build(
        &self,
    ) -> Result<(TempDir, LogStore<RocksLog>, StateMachine), StorageError<NodeId>> {
        let dir = tempfile::tempdir().expect("a temp dir");
        let (persistence, log) = pemba_rocksdb::open(dir.path()).expect("RocksDB opens");
        let datastore = Datastore::open(Box::new(persistence)).expect("the datastore opens");
        let machine = StateMachine::new(Arc::new(datastore)).expect("the state machine starts");
        let log = LogStore::new(log).expect("the log's thread starts");
        Ok((dir, log, machine))
    }
}

#[test]
fn rocksdb_log_and_state_machine_pass_openraft_suite() {
    Suite::test_all(RocksStores).unwrap();
}
