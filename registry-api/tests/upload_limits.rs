//! Limits on uploads per user, idle expiry in the background, and a full
//! disk answered with a meaning (507) and reported by `/readyz`.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, StatusCode};
use common::{basic, with_access_control, Client, PASSWORD};
use registry_api::{Limits, Registry};
use registry_auth::Role;
use registry_core::{Digest, RepositoryName};
use registry_storage::memory::{MemoryBlobStore, MemoryMetadataStore, MemoryUploadStore};
use registry_storage::{BlobInfo, ByteStream, StorageError, UploadId, UploadStatus, UploadStore};

async fn team(limits: Limits) -> (Client, String, String) {
    let registry = common::limited(limits).await;
    let (registry, _) = with_access_control(
        registry,
        &["alice", "bob"],
        &[
            ("team", Role::Editor, "alice"),
            ("team", Role::Editor, "bob"),
        ],
        &[],
    )
    .await;
    registry
        .metadata()
        .create_namespace(&"team".parse().unwrap())
        .await
        .unwrap();
    (
        Client::with(registry),
        basic("alice", PASSWORD),
        basic("bob", PASSWORD),
    )
}

async fn start(c: &Client, auth: &str) -> common::Reply {
    c.bare(
        Method::POST,
        "/v2/team/app/blobs/uploads/",
        &[("authorization", auth)],
    )
    .await
}

/// One user's upload requests in flight are capped: the next is 429 with
/// Retry-After while another user still gets through (before, only the
/// global cap existed, so one user could take every slot).
#[tokio::test]
async fn concurrent_uploads_are_capped_per_user() {
    let (c, alice, bob) = team({
        let mut l = Limits::default();
        l.max_concurrent_uploads_per_user = 1;
        l
    })
    .await;
    let loc = start(&c, &alice).await.header("location").to_owned();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(1);
    tx.send(Ok(bytes::Bytes::from_static(b"first")))
        .await
        .unwrap();
    let body = Body::from_stream(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }));
    let app = c.app.clone();
    let held = tokio::spawn({
        let (loc, alice) = (loc.clone(), alice.clone());
        async move {
            Client { app }
                .call(Method::PATCH, &loc, &[("authorization", &alice)], body)
                .await
        }
    });
    let mut refused = None;
    for _ in 0..200 {
        let r = start(&c, &alice).await;
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            refused = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let r = refused.expect("alice's second upload while the first streams gets 429");
    assert_eq!(r.code(), "TOOMANYREQUESTS");
    assert_eq!(r.header("retry-after"), "1");
    assert_eq!(start(&c, &bob).await.status, StatusCode::ACCEPTED);
    drop(tx);
    assert_eq!(held.await.unwrap().status, StatusCode::ACCEPTED);
    assert_eq!(start(&c, &alice).await.status, StatusCode::ACCEPTED);
}

/// Open sessions are capped per user (20,000 never-finished sessions used
/// to be accepted): 429 TOOMANYREQUESTS with Retry-After and a message;
/// other users are unaffected, and ending a session frees a place.
#[tokio::test]
async fn open_sessions_are_capped_per_user() {
    let (c, alice, bob) = team({
        let mut l = Limits::default();
        l.max_open_uploads_per_user = 3;
        l
    })
    .await;
    let mut locations = Vec::new();
    for _ in 0..3 {
        let r = start(&c, &alice).await;
        assert_eq!(r.status, StatusCode::ACCEPTED);
        locations.push(r.header("location").to_owned());
    }
    let r = start(&c, &alice).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.code(), "TOOMANYREQUESTS");
    assert!(!r.header("retry-after").is_empty());
    let message = r.json()["errors"][0]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.contains("upload sessions open"), "{message}");
    // A monolithic push opens no session: still fine.
    let data = b"monolithic";
    let d = Digest::sha256_of(data);
    let r = c
        .call(
            Method::POST,
            &format!("/v2/team/app/blobs/uploads/?digest={d}"),
            &[("authorization", &alice), ("content-length", "10")],
            data.to_vec(),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(start(&c, &bob).await.status, StatusCode::ACCEPTED);
    let r = c
        .bare(Method::DELETE, &locations[0], &[("authorization", &alice)])
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(start(&c, &alice).await.status, StatusCode::ACCEPTED);
}

/// Sessions that receive no byte for `upload_idle_timeout` are cancelled by
/// the registry's own background task, without anyone running a prune; the
/// task stops with its handle.
#[tokio::test]
async fn idle_sessions_expire_in_the_background() {
    let registry = common::limited({
        let mut l = Limits::default();
        l.upload_idle_timeout = Duration::from_millis(200);
        l.maintenance_interval = Duration::from_millis(20);
        l
    })
    .await;
    let maintenance = registry.spawn_maintenance();
    let c = Client::with(registry.clone());
    let loc = c
        .bare(Method::POST, "/v2/ns/app/blobs/uploads/", &[])
        .await
        .header("location")
        .to_owned();
    assert_eq!(c.get(&loc).await.status, StatusCode::NO_CONTENT);
    let mut expired = false;
    for _ in 0..200 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if c.get(&loc).await.status == StatusCode::NOT_FOUND {
            expired = true;
            break;
        }
    }
    assert!(expired, "the idle session was never expired");
    assert_eq!(c.get(&loc).await.code(), "BLOB_UPLOAD_UNKNOWN");

    drop(maintenance);
    let loc = c
        .bare(Method::POST, "/v2/ns/app/blobs/uploads/", &[])
        .await
        .header("location")
        .to_owned();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        c.get(&loc).await.status,
        StatusCode::NO_CONTENT,
        "the task kept running after its handle was dropped"
    );
}

/// An upload store whose disk is full while `full` is set.
#[derive(Debug)]
struct Disk {
    inner: MemoryUploadStore,
    full: Arc<AtomicBool>,
}

impl Disk {
    fn check(&self) -> Result<(), StorageError> {
        if self.full.load(Ordering::SeqCst) {
            let e = std::io::Error::from(std::io::ErrorKind::StorageFull);
            return Err(e.into());
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl UploadStore for Disk {
    async fn create_for(
        &self,
        repository: &RepositoryName,
        owner: Option<registry_storage::SessionOwner<'_>>,
        announced: Option<registry_core::Algorithm>,
    ) -> Result<UploadStatus, StorageError> {
        self.check()?;
        self.inner.create_for(repository, owner, announced).await
    }
    async fn open_sessions(&self, owner: &str) -> Result<usize, StorageError> {
        self.inner.open_sessions(owner).await
    }
    async fn status(&self, id: &UploadId) -> Result<UploadStatus, StorageError> {
        self.inner.status(id).await
    }
    async fn append(
        &self,
        id: &UploadId,
        offset: u64,
        body: ByteStream,
    ) -> Result<UploadStatus, StorageError> {
        self.check()?;
        self.inner.append(id, offset, body).await
    }
    async fn commit(&self, id: &UploadId, expected: &Digest) -> Result<BlobInfo, StorageError> {
        self.check()?;
        self.inner.commit(id, expected).await
    }
    async fn commit_last_chunk(
        &self,
        id: &UploadId,
        offset: u64,
        body: ByteStream,
        expected: &Digest,
    ) -> Result<BlobInfo, StorageError> {
        self.check()?;
        self.inner
            .commit_last_chunk(id, offset, body, expected)
            .await
    }
    async fn cancel(&self, id: &UploadId) -> Result<(), StorageError> {
        self.inner.cancel(id).await
    }
    async fn list(&self) -> Result<Vec<UploadStatus>, StorageError> {
        self.inner.list().await
    }
}

/// A full disk is 507 with a message naming it (it was 500 UNKNOWN), and
/// `/readyz` says not ready until space returns; then both recover.
#[tokio::test]
async fn a_full_disk_is_507_and_not_ready() {
    let blobs = MemoryBlobStore::default();
    let full = Arc::new(AtomicBool::new(true));
    let uploads = Disk {
        inner: MemoryUploadStore::in_memory(&blobs),
        full: full.clone(),
    };
    let registry = Registry::new(registry_storage::Stores::new(
        Arc::new(blobs),
        Arc::new(uploads),
        Arc::new(MemoryMetadataStore::default()),
    ));
    let c = Client::with(registry);
    let r = c.bare(Method::POST, "/v2/ns/app/blobs/uploads/", &[]).await;
    assert_eq!(r.status, StatusCode::INSUFFICIENT_STORAGE);
    assert_eq!(r.code(), "UNAVAILABLE");
    let message = r.json()["errors"][0]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.contains("storage is full"), "{message}");
    let r = c.get("/readyz").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(String::from_utf8_lossy(&r.body).contains("storage full"));

    full.store(false, Ordering::SeqCst);
    let r = c.bare(Method::POST, "/v2/ns/app/blobs/uploads/", &[]).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    // The readiness answer is reused for a second at most.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(c.get("/readyz").await.status, StatusCode::OK);
}
