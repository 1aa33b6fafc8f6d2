//! The persistence suite against RocksDB: each case on its own database, opened again (as a
//! restarted process opens it) wherever the suite restarts.

use std::path::PathBuf;

use pemba_store::testing::persistence_suite;
use pemba_store::Persistence;

#[test]
fn rocksdb_persistence_passes_the_suite() {
    let dirs = tempfile::tempdir().expect("a temp dir");
    let base = dirs.path().to_path_buf();
    let cases = std::cell::Cell::new(0);
    persistence_suite(&|| {
        cases.set(cases.get() + 1);
        let dir: PathBuf = base.join(format!("case-{}", cases.get()));
        Box::new(move || {
            let (persistence, _log) = pemba_rocksdb::open(&dir).expect("RocksDB opens");
            Box::new(persistence) as Box<dyn Persistence>
        })
    });
}
