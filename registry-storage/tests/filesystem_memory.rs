//! A 1 GiB put through `FsBlobStore` must not hold the blob in memory.
//!
//! Alone in its own test binary so that no other test moves the process's
//! peak resident set size (`VmHWM`) while it runs.

use std::time::Instant;

use bytes::Bytes;
use futures::StreamExt;
use registry_core::{Digest, Digester};
use registry_storage::filesystem::{Durability, FsBlobStore};
use registry_storage::BlobStore;

const MIB: usize = 1024 * 1024;

/// Peak resident set size of this process, in bytes (Linux only).
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_put_of_1_gib_stays_under_64_mib_of_rss() {
    let Some(before) = peak_rss() else {
        eprintln!("no /proc/self/status: skipped");
        return;
    };
    let chunk = Bytes::from((0..MIB).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    let mut digester = Digester::new(registry_core::Algorithm::Sha256);
    for _ in 0..1024 {
        digester.update(&chunk);
    }
    let digest: Digest = digester.finish();

    let dir = tempfile::tempdir().unwrap();
    let blobs = FsBlobStore::with_durability(dir.path(), Durability::None).unwrap();
    let body = futures::stream::repeat(chunk).take(1024).map(Ok).boxed();
    let started = Instant::now();
    let info = blobs.put(&digest, body).await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(info.size, 1024 * MIB as u64);

    let after = peak_rss().unwrap();
    let growth = after.saturating_sub(before);
    eprintln!(
        "1 GiB put: {:.1} s, peak RSS {} -> {} MiB (+{} MiB)",
        elapsed.as_secs_f64(),
        before / MIB as u64,
        after / MIB as u64,
        growth / MIB as u64
    );
    assert!(
        growth < 64 * MIB as u64,
        "peak RSS grew by {} MiB during a 1 GiB put",
        growth / MIB as u64
    );
    blobs.delete(&digest).await.unwrap();
}
