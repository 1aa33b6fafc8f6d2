//! Garbage collection over datastores of 10k and 100k relationships, each time after one write
//! of 100 relationships: deletes of existing ones (100 versions to drop), then touches creating
//! them again, in turn. Collection looks only at the keys written since the previous one and at
//! expired keys: its time should not grow with the datastore.

// criterion's macros define public functions without docs.
#![allow(missing_docs)]

use std::time::{Duration, Instant, SystemTime};

use criterion::{criterion_group, criterion_main, Criterion};
use pemba_benches::{document_sharing, DOCUMENT_SHARING_SCHEMA};
use pemba_store::{Datastore, MemoryPersistence, UpdateOperation, WriteCommand};
use pemba_types::Relationship;

const PER_WRITE: usize = 100;

/// A datastore holding `size` relationships, written at revisions 1 (schema) and 2 (import).
fn setup(size: usize) -> (Datastore, Vec<Relationship>) {
    let dataset = document_sharing(size, 42);
    let store = Datastore::open(Box::new(MemoryPersistence::default())).expect("opens");
    let schema = WriteCommand::Schema {
        text: DOCUMENT_SHARING_SCHEMA.to_string(),
    };
    store.apply(1, time_of(1), &schema).expect("valid");
    let import = WriteCommand::Import {
        relationships: dataset.relationships.clone(),
    };
    store.apply(2, time_of(2), &import).expect("valid");
    (store, dataset.relationships)
}

/// Revision `revision` is written at 1,000 s + `revision` s.
fn time_of(revision: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_000 + revision)
}

fn collections(c: &mut Criterion) {
    let mut group = c.benchmark_group("garbage collection after 100 replaced relationships");
    for size in [10_000, 100_000] {
        let (store, relationships) = setup(size);
        group.bench_function(format!("{size} relationships"), |b| {
            b.iter_custom(|iterations| {
                let mut spent = Duration::ZERO;
                for _ in 0..iterations {
                    // Deletes of 100 relationships, then touches creating them again.
                    let revision = store.head() + 1;
                    let start = ((revision as usize - 1) / 2 * PER_WRITE) % relationships.len();
                    let operation = if revision % 2 == 1 {
                        UpdateOperation::Delete
                    } else {
                        UpdateOperation::Touch
                    };
                    let updates = (0..PER_WRITE)
                        .map(|i| {
                            let r = relationships[(start + i) % relationships.len()].clone();
                            (operation, r)
                        })
                        .collect();
                    let write = WriteCommand::Relationships {
                        updates,
                        preconditions: Vec::new(),
                    };
                    store
                        .apply(revision, time_of(revision), &write)
                        .expect("valid");
                    let began = Instant::now();
                    store
                        .collect_garbage(time_of(revision), Duration::ZERO)
                        .expect("collected");
                    spent += began.elapsed();
                }
                spent
            });
        });
    }
    group.finish();
}

criterion_group!(benches, collections);
criterion_main!(benches);
