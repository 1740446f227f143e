//! Garbage collection over every backend combination: memory, and the
//! embedded default (filesystem blobs and uploads, cached SQLite metadata).
//!
//! Each scenario runs on fresh stores, cleans up what it made, and asserts
//! that nothing is left behind: no blob, no upload session, no repository,
//! an empty mark set. The clean-up itself goes through the collector, so
//! every scenario also checks that deleting a manifest turns its blobs into
//! garbage.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::{self, BoxStream};
use futures::StreamExt;
use registry_core::{media_type, Digest, RepositoryName};
use registry_storage::filesystem::{FsBlobStore, FsUploadStore};
use registry_storage::memory::{MemoryBlobStore, MemoryMetadataStore, MemoryUploadStore};
use registry_storage::sqlite::SqliteMetadataStore;
use registry_storage::testing::{
    assert_no_blobs, assert_no_uploads, assert_upload_unknown, body_of, list_digests, test_data,
};
use registry_storage::{
    collect_garbage, BlobBody, BlobInfo, BlobStore, BlobTicket, ByteRange, ByteStream,
    CachedMetadataStore, GcOptions, GcReport, MetadataStore, NewManifest, Result, StorageError,
    UploadStore,
};

/// One set of stores (and the directory behind them, if any).
struct Stores {
    blobs: Arc<dyn BlobStore>,
    uploads: Arc<dyn UploadStore>,
    metadata: Arc<dyn MetadataStore>,
    _dir: Option<tempfile::TempDir>,
}

fn memory() -> Stores {
    let blobs = MemoryBlobStore::default();
    Stores {
        uploads: Arc::new(MemoryUploadStore::in_memory(&blobs)),
        blobs: Arc::new(blobs),
        metadata: Arc::new(MemoryMetadataStore::default()),
        _dir: None,
    }
}

async fn filesystem_sqlite() -> Stores {
    let dir = tempfile::tempdir().expect("tempdir");
    let blobs = FsBlobStore::open(dir.path()).expect("blob store");
    let metadata = SqliteMetadataStore::open(dir.path().join("registry.db"))
        .await
        .expect("sqlite store");
    let uploads = FsUploadStore::for_blobs(&blobs, Arc::new(metadata.clone()));
    Stores {
        blobs: Arc::new(blobs),
        uploads: Arc::new(uploads),
        metadata: Arc::new(CachedMetadataStore::new(metadata)),
        _dir: Some(dir),
    }
}

impl Stores {
    async fn gc(&self, options: GcOptions) -> GcReport {
        collect_garbage(
            self.blobs.as_ref(),
            self.uploads.as_ref(),
            self.metadata.as_ref(),
            options,
        )
        .await
        .expect("garbage collection")
    }

    /// Stores a blob of `len` bytes derived from `seed`; returns its digest.
    async fn blob(&self, len: usize, seed: u64) -> Digest {
        let data = test_data(len, seed);
        let digest = Digest::sha256_of(&data);
        self.blobs
            .put(&digest, body_of(&data, 1000))
            .await
            .expect("put blob");
        digest
    }

    async fn exists(&self, digest: &Digest) -> bool {
        self.blobs.stat(digest).await.expect("stat").is_some()
    }

    /// Pushes a manifest referencing `config` and `layer` to `repo`.
    async fn manifest(&self, repo: &RepositoryName, config: &Digest, layer: &Digest) {
        self.metadata
            .put_manifest(new_manifest(repo, config, layer))
            .await
            .expect("put manifest");
    }

    /// Removes every repository, collects everything, and asserts that
    /// nothing is left behind.
    async fn clean_up_and_check(&self) {
        let repos = self
            .metadata
            .list_repositories(None, None, usize::MAX)
            .await
            .expect("list repositories");
        for repo in &repos {
            self.metadata
                .delete_repository(repo)
                .await
                .expect("delete repository");
        }
        let report = self.gc(now_options()).await;
        assert!(!report.dry_run);
        assert_eq!(report.blobs_referenced, 0, "{report:?}");
        assert_no_blobs(self.blobs.as_ref()).await;
        assert_no_uploads(self.uploads.as_ref()).await;
        assert!(self
            .metadata
            .referenced_blobs()
            .await
            .expect("mark set")
            .is_empty());
    }
}

/// A manifest in `repo` referencing `config` and `layer`, tagged `v1`.
fn new_manifest(repo: &RepositoryName, config: &Digest, layer: &Digest) -> NewManifest {
    let bytes = bytes::Bytes::from(format!("{{\"config\":\"{config}\",\"layer\":\"{layer}\"}}"));
    NewManifest {
        repository: repo.clone(),
        digest: Digest::sha256_of(&bytes),
        media_type: media_type::OCI_MANIFEST.to_owned(),
        bytes,
        subject: None,
        artifact_type: None,
        annotations: Default::default(),
        config: Some(config.clone()),
        blobs: vec![config.clone(), layer.clone()],
        children: vec![],
        tags: vec!["v1".parse().expect("tag")],
        fixed_tags: Vec::new(),
        actor: "test".into(),
        events: Vec::new(),
        tag_moved: Vec::new(),
    }
}

fn repo(name: &str) -> RepositoryName {
    name.parse().expect("repository name")
}

/// Everything unreferenced is old enough; every session has expired.
fn now_options() -> GcOptions {
    GcOptions {
        grace_period: Duration::ZERO,
        upload_max_age: Duration::ZERO,
        ..GcOptions::default()
    }
}

const DAY: Duration = Duration::from_secs(86_400);

/// Referenced blobs survive (in any repository); unreferenced ones go,
/// linked or not, and lose their links.
async fn referenced_survive_unreferenced_go(s: Stores) {
    let (app, other) = (repo("team/app"), repo("other/tool"));
    let config = s.blob(100, 1).await;
    let layer = s.blob(3000, 2).await;
    let shared = s.blob(200, 3).await;
    let linked_only = s.blob(400, 4).await;
    let orphan = s.blob(50, 5).await;
    s.manifest(&app, &config, &layer).await;
    s.manifest(&other, &shared, &layer).await;
    s.metadata
        .link_blob(&app, &linked_only)
        .await
        .expect("link");

    let report = s.gc(now_options()).await;
    assert_eq!(report.blobs_scanned, 5);
    assert_eq!(report.blobs_referenced, 3);
    assert_eq!(report.blobs_deleted, 2);
    assert_eq!(report.bytes_freed, 450);
    let mut deleted = report.deleted.clone();
    deleted.sort();
    let mut expected = vec![linked_only.clone(), orphan.clone()];
    expected.sort();
    assert_eq!(deleted, expected);
    for d in [&config, &layer, &shared] {
        assert!(s.exists(d).await, "referenced blob {d} was deleted");
    }
    for d in [&linked_only, &orphan] {
        assert!(!s.exists(d).await, "unreferenced blob {d} survived");
    }
    assert!(!s
        .metadata
        .blob_linked(&app, &linked_only)
        .await
        .expect("linked"));
    assert!(s.metadata.blob_linked(&app, &layer).await.expect("linked"));

    // Deleting one image keeps the layer the other still references.
    s.metadata
        .delete_repository(&app)
        .await
        .expect("delete repository");
    let report = s.gc(now_options()).await;
    assert_eq!(report.blobs_deleted, 1, "{report:?}");
    assert_eq!(report.deleted, vec![config.clone()]);
    assert!(s.exists(&layer).await);
    s.clean_up_and_check().await;
}

/// Unreferenced blobs younger than the grace period stay.
async fn young_blobs_stay(s: Stores) {
    let fresh = s.blob(700, 6).await;
    s.metadata
        .link_blob(&repo("team/app"), &fresh)
        .await
        .expect("link");
    let report = s
        .gc(GcOptions {
            grace_period: DAY,
            ..GcOptions::default()
        })
        .await;
    assert_eq!(report.blobs_scanned, 1);
    assert_eq!(report.blobs_young, 1);
    assert_eq!(report.blobs_deleted, 0);
    assert_eq!(report.bytes_freed, 0);
    assert!(s.exists(&fresh).await);
    s.clean_up_and_check().await;
}

/// A dry run reports what it would do and changes nothing.
async fn dry_run_changes_nothing(s: Stores) {
    let app = repo("team/app");
    let garbage = s.blob(1234, 7).await;
    s.metadata.link_blob(&app, &garbage).await.expect("link");
    let session = s.uploads.create(&app).await.expect("create upload");
    let report = s
        .gc(GcOptions {
            dry_run: true,
            ..now_options()
        })
        .await;
    assert!(report.dry_run);
    assert_eq!(report.blobs_deleted, 1);
    assert_eq!(report.bytes_freed, 1234);
    assert_eq!(report.deleted, vec![garbage.clone()]);
    assert_eq!(report.uploads_expired, 1);
    assert!(s.exists(&garbage).await);
    assert!(s
        .metadata
        .blob_linked(&app, &garbage)
        .await
        .expect("linked"));
    assert_eq!(list_digests(s.blobs.as_ref()).await, vec![garbage.clone()]);
    let status = s.uploads.status(&session.id).await.expect("still open");
    assert_eq!(status.offset, 0);
    s.clean_up_and_check().await;
}

/// Sessions older than `upload_max_age` are cancelled; younger ones stay.
async fn expired_uploads_cancelled(s: Stores) {
    let app = repo("team/app");
    let session = s.uploads.create(&app).await.expect("create upload");
    let data = test_data(5000, 8);
    s.uploads
        .append(&session.id, 0, body_of(&data, 1000))
        .await
        .expect("append");
    let report = s
        .gc(GcOptions {
            upload_max_age: DAY,
            ..now_options()
        })
        .await;
    assert_eq!(report.uploads_expired, 0);
    assert_eq!(
        s.uploads.status(&session.id).await.expect("open").offset,
        5000
    );

    let report = s.gc(now_options()).await;
    assert_eq!(report.uploads_expired, 1);
    assert_upload_unknown(s.uploads.as_ref(), &session.id).await;
    // Expiry publishes nothing.
    assert_eq!(report.blobs_scanned, 0);
    s.clean_up_and_check().await;
}

/// A blob store that commits a manifest when the collector starts listing
/// it: a push finishing during the sweep.
#[derive(Debug)]
struct CommitsDuringListing {
    inner: Arc<dyn BlobStore>,
    metadata: Arc<dyn MetadataStore>,
    manifest: NewManifest,
}

#[async_trait]
impl BlobStore for CommitsDuringListing {
    async fn stat(&self, digest: &Digest) -> Result<Option<BlobInfo>> {
        self.inner.stat(digest).await
    }
    async fn get(&self, digest: &Digest, range: Option<ByteRange>) -> Result<BlobBody> {
        self.inner.get(digest, range).await
    }
    async fn put(&self, expected: &Digest, body: ByteStream) -> Result<BlobInfo> {
        self.inner.put(expected, body).await
    }
    async fn delete(&self, digest: &Digest) -> Result<()> {
        self.inner.delete(digest).await
    }
    fn list(&self) -> BoxStream<'_, Result<BlobInfo>> {
        let commit = self.metadata.put_manifest(self.manifest.clone());
        stream::once(commit)
            .filter_map(|r| async move { r.err().map(Err) })
            .chain(self.inner.list())
            .boxed()
    }
}

/// Blobs that a manifest committed during the sweep references survive,
/// although they were unreferenced when the collector read the mark set.
async fn manifest_committed_during_sweep_keeps_its_blobs(s: Stores) {
    let app = repo("team/app");
    let config = s.blob(10, 9).await;
    let layer = s.blob(20, 10).await;
    let orphan = s.blob(30, 11).await;
    let racing = CommitsDuringListing {
        inner: s.blobs.clone(),
        metadata: s.metadata.clone(),
        manifest: new_manifest(&app, &config, &layer),
    };
    let report = collect_garbage(
        &racing,
        s.uploads.as_ref(),
        s.metadata.as_ref(),
        now_options(),
    )
    .await
    .expect("garbage collection");
    assert_eq!(report.deleted, vec![orphan.clone()], "{report:?}");
    // Kept as referenced, or as just touched by the commit.
    assert_eq!(
        report.blobs_referenced + report.blobs_young,
        2,
        "{report:?}"
    );
    assert!(s.exists(&config).await && s.exists(&layer).await);
    assert!(!s.exists(&orphan).await);
    s.clean_up_and_check().await;
}

/// A blob store that links a blob with a ticket taken before the sweep
/// once the collector has listed everything (and read every record): a
/// re-upload or mount acknowledged after the listing.
#[derive(Debug)]
struct LinksAfterListing {
    inner: Arc<dyn BlobStore>,
    metadata: Arc<dyn MetadataStore>,
    repo: RepositoryName,
    ticket: BlobTicket,
}

#[async_trait]
impl BlobStore for LinksAfterListing {
    async fn stat(&self, digest: &Digest) -> Result<Option<BlobInfo>> {
        self.inner.stat(digest).await
    }
    async fn get(&self, digest: &Digest, range: Option<ByteRange>) -> Result<BlobBody> {
        self.inner.get(digest, range).await
    }
    async fn put(&self, expected: &Digest, body: ByteStream) -> Result<BlobInfo> {
        self.inner.put(expected, body).await
    }
    async fn delete(&self, digest: &Digest) -> Result<()> {
        self.inner.delete(digest).await
    }
    fn list(&self) -> BoxStream<'_, Result<BlobInfo>> {
        let link = self.metadata.link_blob_with(&self.repo, &self.ticket);
        self.inner
            .list()
            .chain(stream::once(link).filter_map(|r| async move { r.err().map(Err) }))
            .boxed()
    }
}

/// A blob linked after the collector read its record survives that run.
async fn linked_after_listing_survives(s: Stores) {
    let app = repo("team/app");
    let d = s.blob(64, 12).await;
    s.metadata.link_blob(&app, &d).await.expect("link");
    let ticket = s.metadata.blob_ticket(&d).await.expect("ticket");
    let racing = LinksAfterListing {
        inner: s.blobs.clone(),
        metadata: s.metadata.clone(),
        repo: app.clone(),
        ticket,
    };
    let report = collect_garbage(
        &racing,
        s.uploads.as_ref(),
        s.metadata.as_ref(),
        now_options(),
    )
    .await
    .expect("garbage collection");
    assert_eq!(report.blobs_deleted, 0, "{report:?}");
    assert_eq!(report.blobs_raced, 1, "{report:?}");
    assert!(s.exists(&d).await);
    assert!(s.metadata.blob_linked(&app, &d).await.expect("linked"));
    s.clean_up_and_check().await;
}

/// A put that found the bytes present (a no-op) and a sweep that deleted
/// them before the link: the link is refused, and an upload after the
/// sweep is accepted and keeps its bytes.
async fn noop_put_then_sweep_refuses_the_link(s: Stores) {
    let app = repo("team/app");
    let d = s.blob(80, 13).await;
    s.metadata.link_blob(&app, &d).await.expect("link");
    // The client: ticket, then a put that finds the bytes.
    let ticket = s.metadata.blob_ticket(&d).await.expect("ticket");
    let again = s.blob(80, 13).await;
    assert_eq!(again, d);
    // The sweep in between.
    let report = s.gc(now_options()).await;
    assert_eq!(report.deleted, vec![d.clone()]);
    assert!(!s.exists(&d).await);
    // The client's link must fail: acknowledging it would point at nothing.
    let refused = s.metadata.link_blob_with(&app, &ticket).await;
    assert!(
        matches!(refused, Err(StorageError::BlobDeleted { .. })),
        "{refused:?}"
    );
    // A manifest whose reference check ran before the sweep is refused too.
    let config = s.blob(10, 14).await;
    let refused = s
        .metadata
        .put_manifest(new_manifest(&app, &config, &d))
        .await;
    assert!(
        matches!(refused, Err(StorageError::BlobDeleted { .. })),
        "{refused:?}"
    );
    // The retry: a fresh ticket, the bytes stored again, the link, the manifest.
    let ticket = s.metadata.blob_ticket(&d).await.expect("ticket");
    s.blob(80, 13).await;
    s.metadata
        .link_blob_with(&app, &ticket)
        .await
        .expect("link after the sweep");
    s.manifest(&app, &config, &d).await;
    let report = s.gc(now_options()).await;
    assert_eq!(report.blobs_deleted, 0, "{report:?}");
    assert!(s.exists(&d).await);
    s.clean_up_and_check().await;
}

macro_rules! over_backends {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::memory()).await;
            })*
        }
        mod filesystem_sqlite {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::filesystem_sqlite().await).await;
            })*
        }
    };
}

over_backends!(
    referenced_survive_unreferenced_go,
    young_blobs_stay,
    dry_run_changes_nothing,
    expired_uploads_cancelled,
    manifest_committed_during_sweep_keeps_its_blobs,
    linked_after_listing_survives,
    noop_put_then_sweep_refuses_the_link,
);
