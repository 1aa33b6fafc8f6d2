//! The persistence suite against the in-memory backend the simulation runs on.

use pemba_store::testing::persistence_suite;
use pemba_store::{MemoryPersistence, Persistence};

#[test]
fn memory_persistence_passes_the_suite() {
    persistence_suite(&|| {
        let disk = MemoryPersistence::default();
        Box::new(move || Box::new(disk.clone()) as Box<dyn Persistence>)
    });
}
