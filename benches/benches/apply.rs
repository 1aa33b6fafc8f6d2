//! Applying writes to the datastore over 100k relationships: 20 writes of 100 relationships each,
//! one revision apiece (as log entries were before group commit) or all in one revision (a
//! grouped log entry). `PEMBA_APPLY_ROUNDS=N` runs each way N times outside criterion, for
//! instruction counts under `valgrind --tool=callgrind` (which repeat exactly).

// criterion's macros define public functions without docs.
#![allow(missing_docs)]

use std::time::SystemTime;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use pemba_benches::{document_sharing, DOCUMENT_SHARING_SCHEMA};
use pemba_store::{Datastore, MemoryPersistence, UpdateOperation, WriteCommand};
use pemba_types::Relationship;

const WRITES: usize = 20;
const PER_WRITE: usize = 100;

/// A datastore holding the 100k dataset, and `WRITES` touches of `PER_WRITE` new relationships.
fn setup() -> (Datastore, Vec<WriteCommand>) {
    let dataset = document_sharing(100_000, 42);
    let store = Datastore::open(Box::new(MemoryPersistence::default())).expect("opens");
    let schema = WriteCommand::Schema {
        text: DOCUMENT_SHARING_SCHEMA.to_string(),
    };
    store.apply(1, SystemTime::now(), &schema).expect("valid");
    let import = WriteCommand::Import {
        relationships: dataset.relationships.clone(),
    };
    store.apply(2, SystemTime::now(), &import).expect("valid");
    let writes = (0..WRITES)
        .map(|w| WriteCommand::Relationships {
            updates: (0..PER_WRITE)
                .map(|i| {
                    let text = format!("document:bench-{w}-{i}#viewer@user:bench-{i}");
                    let r = Relationship::parse(&text).expect("a relationship");
                    (UpdateOperation::Touch, r)
                })
                .collect(),
            preconditions: Vec::new(),
        })
        .collect();
    (store, writes)
}

/// Applies `writes` after the head: one revision each, or all in one.
fn apply(store: &Datastore, writes: &[WriteCommand], grouped: bool) {
    let head = store.head();
    let now = SystemTime::now();
    if grouped {
        let all: Vec<&WriteCommand> = writes.iter().collect();
        let outcomes = store
            .apply_entry(head + 1, now, &all, |_| Ok(Vec::new()))
            .expect("applies");
        assert!(outcomes.iter().all(Result::is_ok));
    } else {
        for (i, write) in writes.iter().enumerate() {
            let outcomes = store
                .apply_entry(head + 1 + i as u64, now, &[write], |_| Ok(Vec::new()))
                .expect("applies");
            assert!(outcomes[0].is_ok());
        }
    }
}

fn apply_writes(c: &mut Criterion) {
    if let Some(rounds) = std::env::var("PEMBA_APPLY_ROUNDS")
        .ok()
        .and_then(|r| r.parse::<usize>().ok())
    {
        let grouped = std::env::var_os("PEMBA_APPLY_GROUPED").is_some();
        let (store, writes) = setup();
        for _ in 0..rounds {
            apply(&store, &writes, grouped);
        }
        return;
    }
    let mut group = c.benchmark_group("apply");
    group.throughput(Throughput::Elements((WRITES * PER_WRITE) as u64));
    for (name, grouped) in [
        ("one_revision_per_write", false),
        ("one_revision_for_all", true),
    ] {
        group.bench_function(name, |b| {
            b.iter_batched(
                setup,
                |(store, writes)| apply(&store, &writes, grouped),
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, apply_writes);
criterion_main!(benches);
