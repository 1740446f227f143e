//! `FsBlobStore::put` of 256 MiB (1 MiB chunks, SHA-256 verified), with and
//! without fsync, into a temp directory (on the same disk as `TMPDIR`).
//!
//! `cargo bench --bench blob_put`

// criterion_group! generates an undocumented `pub fn`.
#![allow(missing_docs)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use futures::StreamExt;
use registry_core::{Algorithm, Digest, Digester};
use registry_storage::filesystem::{Durability, FsBlobStore};
use registry_storage::BlobStore;

const CHUNK: usize = 1024 * 1024;
const CHUNKS: usize = 256;

fn blob_put(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let chunk = Bytes::from((0..CHUNK).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    let mut digester = Digester::new(Algorithm::Sha256);
    for _ in 0..CHUNKS {
        digester.update(&chunk);
    }
    let digest: Digest = digester.finish();

    let mut group = c.benchmark_group("fs_put_256MiB");
    group.throughput(Throughput::Bytes((CHUNK * CHUNKS) as u64));
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(10));

    for (name, durability) in [("fsync", Durability::Fsync), ("no_fsync", Durability::None)] {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = FsBlobStore::with_durability(dir.path(), durability).expect("store");
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let body = futures::stream::repeat(chunk.clone())
                        .take(CHUNKS)
                        .map(Ok)
                        .boxed();
                    let started = Instant::now();
                    runtime.block_on(store.put(&digest, body)).expect("put");
                    total += started.elapsed();
                    // Not timed: the next put must write again, not find the blob.
                    runtime.block_on(store.delete(&digest)).expect("delete");
                }
                total
            })
        });
    }
    group.finish();
}

criterion_group!(benches, blob_put);
criterion_main!(benches);
