//! Prune racing pushes: several clients push through the router (fresh
//! uploads, re-uploads of old unreferenced blobs, chunked sessions, mounts,
//! `HEAD`-then-skip) while several prune loops run at once, with a grace
//! period of zero and with the default one, over memory stores and over the
//! embedded default (filesystem blobs, cached SQLite metadata).
//!
//! The promise checked: every manifest that got `201` stays fully pullable
//! (the manifest and each of its blobs answer `200` with the right digest),
//! also after one more prune once the pushes are over. A client may get an
//! error when it races a delete; it must never get a success for something
//! that is then gone.
//!
//! The prune loops call [`registry_storage::collect_garbage`] directly, not
//! [`Registry::collect_garbage`], so several sweeps really overlap: safety
//! must come from the metadata store, not from the per-process mutex.
//!
//! "Old" blobs are aged by [`Aged`], a blob store wrapper that reports the
//! pool's blobs as written two hours ago (an injected clock for the blob
//! store), so the default grace period of one hour does not protect them.
//! It also yields to the scheduler around every call, so that the memory
//! stores (which never wait) interleave as a disk and a database do.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::http::{Method, StatusCode};
use common::{Client, Reply};
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use registry_api::Registry;
use registry_core::{media_type, Digest};
use registry_storage::filesystem::{Durability, FsBlobStore, FsUploadStore};
use registry_storage::memory::{MemoryBlobStore, MemoryMetadataStore, MemoryUploadStore};
use registry_storage::sqlite::SqliteMetadataStore;
use registry_storage::{
    BlobBody, BlobInfo, BlobStore, ByteRange, ByteStream, CachedMetadataStore, GcOptions,
    MetadataStore, Result, UploadStore,
};

/// Pushing clients, each in its own repository.
const CLIENTS: usize = 4;
/// Images each client tries to push.
const ROUNDS: usize = 24;
/// Concurrent prune loops.
const PRUNERS: usize = 2;
/// Old, unreferenced blobs the clients re-upload.
const POOL: usize = 48;
/// How much older than they are the pool's blobs look.
const AGE: Duration = Duration::from_secs(2 * 3600);
/// The whole scenario must end well within this.
const BOUND: Duration = Duration::from_secs(120);

/// A blob store that reports the blobs in `aged` as written [`AGE`] earlier.
#[derive(Debug)]
struct Aged {
    inner: Arc<dyn BlobStore>,
    aged: Arc<Mutex<HashSet<Digest>>>,
}

impl Aged {
    fn age(&self, mut info: BlobInfo) -> BlobInfo {
        let aged = self
            .aged
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&info.digest);
        if aged {
            info.modified = info.modified.map(|m| m - AGE);
        }
        info
    }
}

#[async_trait]
impl BlobStore for Aged {
    async fn stat(&self, digest: &Digest) -> Result<Option<BlobInfo>> {
        tokio::task::yield_now().await;
        Ok(self.inner.stat(digest).await?.map(|i| self.age(i)))
    }
    async fn get(&self, digest: &Digest, range: Option<ByteRange>) -> Result<BlobBody> {
        self.inner.get(digest, range).await
    }
    async fn put(&self, expected: &Digest, body: ByteStream) -> Result<BlobInfo> {
        tokio::task::yield_now().await;
        let info = self.inner.put(expected, body).await?;
        tokio::task::yield_now().await;
        Ok(self.age(info))
    }
    async fn delete(&self, digest: &Digest) -> Result<()> {
        tokio::task::yield_now().await;
        self.inner.delete(digest).await
    }
    fn list(&self) -> BoxStream<'_, Result<BlobInfo>> {
        self.inner
            .list()
            .and_then(move |i| async move {
                tokio::task::yield_now().await;
                Ok(self.age(i))
            })
            .boxed()
    }
}

/// The stores of one scenario.
struct Stores {
    blobs: Arc<dyn BlobStore>,
    uploads: Arc<dyn UploadStore>,
    metadata: Arc<dyn MetadataStore>,
    aged: Arc<Mutex<HashSet<Digest>>>,
    _dir: Option<tempfile::TempDir>,
}

impl Stores {
    fn wrap(
        blobs: Arc<dyn BlobStore>,
        uploads: Arc<dyn UploadStore>,
        metadata: Arc<dyn MetadataStore>,
        dir: Option<tempfile::TempDir>,
    ) -> Self {
        let aged = Arc::new(Mutex::new(HashSet::new()));
        Stores {
            blobs: Arc::new(Aged {
                inner: blobs,
                aged: aged.clone(),
            }),
            uploads,
            metadata,
            aged,
            _dir: dir,
        }
    }

    fn memory() -> Self {
        let blobs = MemoryBlobStore::default();
        let uploads = MemoryUploadStore::in_memory(&blobs);
        Self::wrap(
            Arc::new(blobs),
            Arc::new(uploads),
            Arc::new(MemoryMetadataStore::default()),
            None,
        )
    }

    async fn filesystem_sqlite() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let blobs = FsBlobStore::with_durability(dir.path(), Durability::None).expect("blobs");
        let database = SqliteMetadataStore::open(dir.path().join("registry.db"))
            .await
            .expect("sqlite");
        let uploads = FsUploadStore::for_blobs(&blobs, Arc::new(database.clone()));
        Self::wrap(
            Arc::new(blobs),
            Arc::new(uploads),
            Arc::new(CachedMetadataStore::new(database)),
            Some(dir),
        )
    }
}

/// A small deterministic generator (each client has its own seed).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) % below as u64) as usize
    }
}

fn pool_blob(i: usize) -> Vec<u8> {
    format!("old layer {i} ").repeat(20 + i).into_bytes()
}

/// A manifest that got 201, with what it references.
struct Acknowledged {
    repo: String,
    digest: Digest,
    bytes: Vec<u8>,
    blobs: Vec<Digest>,
}

fn manifest(config: &(Digest, usize), layers: &[(Digest, usize)]) -> Vec<u8> {
    let layers: Vec<_> = layers
        .iter()
        .map(|(d, len)| serde_json::json!({"mediaType": media_type::OCI_LAYER_GZIP, "digest": d, "size": len}))
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_MANIFEST,
        "config": {"mediaType": media_type::OCI_CONFIG, "digest": config.0, "size": config.1},
        "layers": layers,
    }))
    .expect("manifest json")
}

fn ok(r: &Reply) -> bool {
    r.status.is_success()
}

/// Monolithic upload.
async fn monolithic(c: &Client, repo: &str, data: &[u8]) -> bool {
    ok(&c.try_push_blob(repo, data).await)
}

/// `PUT`s the whole blob into the session a reply opened.
async fn finish_session(c: &Client, opened: &Reply, data: &[u8]) -> bool {
    if opened.status != StatusCode::ACCEPTED {
        return false;
    }
    let d = Digest::sha256_of(data);
    let location = opened.header("location");
    let sep = if location.contains('?') { '&' } else { '?' };
    let r = c
        .call(
            Method::PUT,
            &format!("{location}{sep}digest={d}"),
            &[("content-length", &data.len().to_string())],
            data.to_vec(),
        )
        .await;
    ok(&r)
}

/// `POST` then `PUT` with the bytes.
async fn session(c: &Client, repo: &str, data: &[u8]) -> bool {
    let opened = c
        .bare(Method::POST, &format!("/v2/{repo}/blobs/uploads/"), &[])
        .await;
    finish_session(c, &opened, data).await
}

/// Mounts from `from`, uploading into the session it opens when it cannot.
async fn mount(c: &Client, repo: &str, from: &str, data: &[u8]) -> bool {
    let d = Digest::sha256_of(data);
    let r = c
        .bare(
            Method::POST,
            &format!("/v2/{repo}/blobs/uploads/?mount={d}&from={from}"),
            &[],
        )
        .await;
    if r.status == StatusCode::CREATED {
        return true;
    }
    finish_session(c, &r, data).await
}

/// `HEAD`, and uploads only when the blob is not there.
async fn head_or_upload(c: &Client, repo: &str, data: &[u8]) -> bool {
    let d = Digest::sha256_of(data);
    let r = c
        .bare(Method::HEAD, &format!("/v2/{repo}/blobs/{d}"), &[])
        .await;
    if r.status == StatusCode::OK {
        return true;
    }
    monolithic(c, repo, data).await
}

/// One client: `ROUNDS` images of a fresh config and two pool layers, each
/// layer sent a different way.
async fn client(c: Client, me: usize, scenario: &'static str) -> (Vec<Acknowledged>, u64) {
    let repo = format!("{scenario}/c{me}");
    let neighbour = format!("{scenario}/c{}", (me + 1) % CLIENTS);
    let mut rng = Lcg(me as u64 * 7919 + 17);
    let mut acknowledged = Vec::new();
    let mut refused = 0;
    for round in 0..ROUNDS {
        let config =
            format!(r#"{{"architecture":"amd64","os":"linux","client":{me},"round":{round}}}"#);
        let mut sent = monolithic(&c, &repo, config.as_bytes()).await;
        let mut layers = Vec::new();
        for k in 0..2 {
            let data = pool_blob(rng.next(POOL));
            let way = (round + k + me) % 4;
            sent &= match way {
                0 => monolithic(&c, &repo, &data).await,
                1 => session(&c, &repo, &data).await,
                2 => mount(&c, &repo, &neighbour, &data).await,
                _ => head_or_upload(&c, &repo, &data).await,
            };
            layers.push((Digest::sha256_of(&data), data.len()));
        }
        if !sent {
            refused += 1;
            continue;
        }
        let config = (Digest::sha256_of(config.as_bytes()), config.len());
        let bytes = manifest(&config, &layers);
        let r = c
            .call(
                Method::PUT,
                &format!("/v2/{repo}/manifests/r{round}"),
                &[("content-type", media_type::OCI_MANIFEST)],
                bytes.clone(),
            )
            .await;
        if r.status == StatusCode::CREATED {
            let mut blobs = vec![config.0];
            blobs.extend(layers.into_iter().map(|(d, _)| d));
            acknowledged.push(Acknowledged {
                repo: repo.clone(),
                digest: Digest::sha256_of(&bytes),
                bytes,
                blobs,
            });
        } else {
            assert!(
                r.status.is_client_error() || r.status == StatusCode::SERVICE_UNAVAILABLE,
                "manifest push failed with {}: {:?}",
                r.status,
                r.body
            );
            refused += 1;
        }
    }
    (acknowledged, refused)
}

/// What a manifest that got 201 must still serve; returns the problems.
async fn check_pullable(c: &Client, m: &Acknowledged) -> Vec<String> {
    let mut problems = Vec::new();
    let r = c
        .get(&format!("/v2/{}/manifests/{}", m.repo, m.digest))
        .await;
    if r.status != StatusCode::OK || r.body.as_ref() != m.bytes.as_slice() {
        problems.push(format!("manifest {}@{}: {}", m.repo, m.digest, r.status));
    }
    for d in &m.blobs {
        let r = c.get(&format!("/v2/{}/blobs/{d}", m.repo)).await;
        if r.status != StatusCode::OK || Digest::sha256_of(&r.body) != *d {
            problems.push(format!("blob {d} of {}@{}: {}", m.repo, m.digest, r.status));
        }
    }
    problems
}

async fn race(stores: Stores, grace_period: Duration, scenario: &'static str) {
    // The pool: old blobs that no manifest references, linked nowhere.
    for i in 0..POOL {
        let data = pool_blob(i);
        let d = Digest::sha256_of(&data);
        stores
            .blobs
            .put(
                &d,
                futures::stream::iter([Ok(bytes::Bytes::from(data))]).boxed(),
            )
            .await
            .expect("pool blob");
        stores.aged.lock().unwrap().insert(d);
    }
    let registry = Registry::new(registry_storage::Stores::new(
        stores.blobs.clone(),
        stores.uploads.clone(),
        stores.metadata.clone(),
    ));
    let options = GcOptions {
        grace_period,
        ..GcOptions::default()
    };

    let stop = Arc::new(AtomicBool::new(false));
    let swept = Arc::new(AtomicU64::new(0));
    let mut pruners = Vec::new();
    for _ in 0..PRUNERS {
        let (stop, swept, options) = (stop.clone(), swept.clone(), options.clone());
        let (blobs, uploads, metadata) = (
            stores.blobs.clone(),
            stores.uploads.clone(),
            stores.metadata.clone(),
        );
        pruners.push(tokio::spawn(async move {
            let mut runs = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let report = registry_storage::collect_garbage(
                    blobs.as_ref(),
                    uploads.as_ref(),
                    metadata.as_ref(),
                    options.clone(),
                )
                .await
                .expect("prune");
                swept.fetch_add(report.blobs_deleted, Ordering::SeqCst);
                runs += 1;
                tokio::task::yield_now().await;
            }
            runs
        }));
    }

    let clients: Vec<_> = (0..CLIENTS)
        .map(|me| tokio::spawn(client(Client::with(registry.clone()), me, scenario)))
        .collect();
    let mut acknowledged = Vec::new();
    let mut refused = 0;
    for handle in clients {
        let (acks, r) = handle.await.expect("client");
        acknowledged.extend(acks);
        refused += r;
    }
    stop.store(true, Ordering::SeqCst);
    let mut runs = 0;
    for p in pruners {
        runs += p.await.expect("pruner");
    }
    // One more sweep after the pushes: nothing acknowledged may go now either.
    let last = registry
        .collect_garbage(options)
        .await
        .expect("final prune");
    let swept = swept.load(Ordering::SeqCst) + last.blobs_deleted;

    let c = Client::with(registry.clone());
    let mut broken = Vec::new();
    for m in &acknowledged {
        let problems = check_pullable(&c, m).await;
        if !problems.is_empty() {
            broken.push(problems.join("; "));
        }
    }
    eprintln!(
        "{scenario}: {} manifests acknowledged, {refused} pushes refused, {runs} prunes swept {swept} blobs, {} acknowledged manifests broken",
        acknowledged.len(),
        broken.len()
    );
    assert!(
        broken.is_empty(),
        "{} of {} acknowledged manifests are not pullable: {:#?}",
        broken.len(),
        acknowledged.len(),
        broken
    );
    // The race was real: pushes went through and prunes deleted blobs.
    assert!(
        acknowledged.len() >= CLIENTS * ROUNDS / 4,
        "too few pushes succeeded ({}) for the test to mean anything",
        acknowledged.len()
    );
    assert!(
        swept > 0,
        "no prune deleted anything: the race did not happen"
    );
}

async fn bounded(f: impl std::future::Future<Output = ()>) {
    tokio::time::timeout(BOUND, f)
        .await
        .expect("the scenario is bounded in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_grace_zero() {
    bounded(race(Stores::memory(), Duration::ZERO, "memzero")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_default_grace() {
    let grace = GcOptions::default().grace_period;
    bounded(race(Stores::memory(), grace, "memgrace")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn filesystem_sqlite_grace_zero() {
    bounded(race(
        Stores::filesystem_sqlite().await,
        Duration::ZERO,
        "fszero",
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn filesystem_sqlite_default_grace() {
    let grace = GcOptions::default().grace_period;
    bounded(race(Stores::filesystem_sqlite().await, grace, "fsgrace")).await;
}
