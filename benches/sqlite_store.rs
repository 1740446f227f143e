//! What one call of the SQLite metadata store costs, awaited from outside a
//! 2-worker Tokio runtime (`block_on`): a one-row read (`namespace_exists`)
//! and a one-row write transaction (`set_namespace_policy`), on a WAL
//! database in a temp directory (on the same disk as `TMPDIR`).
//!
//! Each statement batch is a round trip to the worker thread that sqlx keeps
//! per SQLite connection; the read's figure is mostly that hand-off, since
//! SQLite itself answers such a read in a few microseconds.
//!
//! `cargo bench --bench sqlite_store`

// criterion_group! generates an undocumented `pub fn`.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use registry_core::Namespace;
use registry_storage::sqlite::SqliteMetadataStore;
use registry_storage::{MetadataStore, NamespacePolicy};

fn sqlite_store(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let store = runtime
        .block_on(SqliteMetadataStore::open(dir.path().join("registry.db")))
        .expect("store");
    let namespace: Namespace = "bench".parse().expect("namespace");
    runtime
        .block_on(store.create_namespace(&namespace))
        .expect("namespace");

    let mut group = c.benchmark_group("sqlite_store");
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("read_one_row", |b| {
        b.iter(|| {
            let exists = runtime.block_on(store.namespace_exists(black_box(&namespace)));
            assert!(exists.expect("read"));
        })
    });
    let mut revisions = 0u32;
    group.bench_function("write_transaction", |b| {
        b.iter(|| {
            revisions = revisions % 1000 + 1;
            let mut policy = NamespacePolicy::default();
            policy.keep_tag_revisions = Some(revisions);
            runtime
                .block_on(store.set_namespace_policy(&namespace, &policy))
                .expect("write");
        })
    });
    group.finish();
}

criterion_group!(benches, sqlite_store);
criterion_main!(benches);
