//! Digester throughput against raw `sha2` on the same 64 MiB buffer: the
//! wrapper must cost nothing measurable (within 5%).
//!
//! `cargo bench --bench digest`

// criterion_group! generates an undocumented `pub fn`.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use registry_core::{Algorithm, Digester};
use sha2::Digest as _;

const LEN: usize = 64 * 1024 * 1024;
const CHUNK: usize = 1024 * 1024;

fn raw_sha2(data: &[u8]) -> impl Sized {
    sha2::Sha256::digest(data)
}

fn digester(data: &[u8]) -> impl Sized {
    let mut d = Digester::new(Algorithm::Sha256);
    d.update(data);
    d.finish()
}

fn time<T>(f: impl FnOnce() -> T) -> Duration {
    let started = Instant::now();
    black_box(f());
    started.elapsed()
}

/// Alternates the two contenders and keeps each one's best time, so that
/// noise from a shared machine hits both alike; prints the ratio.
fn interleaved_ratio(data: &[u8]) {
    let (mut raw, mut ours) = (Duration::MAX, Duration::MAX);
    for _ in 0..15 {
        raw = raw.min(time(|| raw_sha2(black_box(data))));
        ours = ours.min(time(|| digester(black_box(data))));
    }
    let mib = data.len() as f64 / (1024.0 * 1024.0);
    println!(
        "interleaved best of 15: raw_sha2 {:.1} ms ({:.0} MiB/s), digester {:.1} ms ({:.0} MiB/s), digester/raw = {:.3}",
        raw.as_secs_f64() * 1e3,
        mib / raw.as_secs_f64(),
        ours.as_secs_f64() * 1e3,
        mib / ours.as_secs_f64(),
        ours.as_secs_f64() / raw.as_secs_f64()
    );
}

fn digest(c: &mut Criterion) {
    let data: Vec<u8> = (0..LEN).map(|i| (i % 251) as u8).collect();
    interleaved_ratio(&data);
    let mut group = c.benchmark_group("sha256_64MiB");
    group.throughput(Throughput::Bytes(LEN as u64));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(8));

    group.bench_function("raw_sha2", |b| b.iter(|| raw_sha2(black_box(&data))));
    group.bench_function("digester", |b| b.iter(|| digester(black_box(&data))));
    // As the stores feed it: one chunk at a time.
    group.bench_function("digester_1MiB_chunks", |b| {
        b.iter(|| {
            let mut d = Digester::new(Algorithm::Sha256);
            for chunk in black_box(&data).chunks(CHUNK) {
                d.update(chunk);
            }
            d.finish()
        })
    });
    group.finish();
}

criterion_group!(benches, digest);
criterion_main!(benches);
