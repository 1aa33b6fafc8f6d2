//! In-process Check on the nested-group document-sharing dataset (100k relationships, groups
//! nested five deep), through the datastore's multi-versioned index.

// criterion's macros define public functions without docs.
#![allow(missing_docs)]

use std::time::SystemTime;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pemba_benches::{document_sharing, DOCUMENT_SHARING_SCHEMA};
use pemba_engine::{Engine, Permissionship};
use pemba_store::{Datastore, MemoryPersistence, WriteCommand};

fn check_nested_groups(c: &mut Criterion) {
    let dataset = document_sharing(100_000, 42);
    let store =
        Datastore::open(Box::new(MemoryPersistence::default())).expect("in-memory store opens");
    let schema = WriteCommand::Schema {
        text: DOCUMENT_SHARING_SCHEMA.to_string(),
    };
    store
        .apply(1, SystemTime::now(), &schema)
        .expect("bench schema is valid");
    let import = WriteCommand::Import {
        relationships: dataset.relationships.clone(),
    };
    let revision = store
        .apply(2, SystemTime::now(), &import)
        .expect("bench data is valid")
        .revision;
    let snapshot = store.snapshot(revision).expect("head is readable");
    let schema = snapshot.compiled_schema();
    // One engine per check, as the server makes one per request (an engine remembers answers).
    let check = |document, user| Engine::new(schema, &snapshot).check(document, "view", user);
    let questions = dataset.check_questions(1_000, 1);
    let allowed = questions
        .iter()
        .filter(|(doc, user)| check(doc, user) == Ok(Permissionship::HasPermission))
        .count();
    eprintln!(
        "dataset: {} relationships; {allowed} of {} questions allowed",
        dataset.relationships.len(),
        questions.len()
    );

    let mut group = c.benchmark_group("check");
    group.throughput(Throughput::Elements(questions.len() as u64));
    group.bench_function("document_view_100k_nested5", |b| {
        b.iter(|| {
            for (document, user) in &questions {
                let answer = check(document, user).expect("check succeeds");
                criterion::black_box(answer);
            }
        })
    });
    group.finish();
}

criterion_group!(benches, check_nested_groups);
criterion_main!(benches);
