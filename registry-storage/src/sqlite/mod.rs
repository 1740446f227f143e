//! [`SqliteMetadataStore`]: registry metadata in one SQLite database file,
//! the embedded default.
//!
//! The database runs in WAL mode with `synchronous = NORMAL`, so readers
//! never wait for the writer; the log is checkpointed by a background task,
//! never by a commit (see `checkpoints`). Writes go through a single connection (SQLite
//! allows one writer at a time; queueing for it is cheaper than spinning on
//! the busy timeout) and every multi-statement write is one
//! `BEGIN IMMEDIATE` transaction, its statements sent in as few round trips
//! as their results allow (see `batch`). Reads use several connections. The
//! connections are held directly, not in sqlx pools, whose bookkeeping cost
//! more worker-thread round trips than the statements (see `connections`).
//! Migrations are embedded in the binary and applied by [`open`].
//!
//! The same store implements [`registry_auth::AuthStore`]: users, service
//! accounts, access tokens (by hash only) and role bindings share the
//! database, so one `Arc<SqliteMetadataStore>` serves as both
//! `Arc<dyn MetadataStore>` and `Arc<dyn AuthStore>`.
//!
//! ```
//! use registry_core::Namespace;
//! use registry_storage::{sqlite::SqliteMetadataStore, MetadataStore};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let dir = tempfile::tempdir().unwrap();
//! let store = SqliteMetadataStore::open(dir.path().join("registry.db")).await.unwrap();
//! let team: Namespace = "team".parse().unwrap();
//! store.create_namespace(&team).await.unwrap();
//! assert!(store.namespace_exists(&team).await.unwrap());
//! # });
//! ```
//!
//! [`open`]: SqliteMetadataStore::open

mod auth;
mod auth_queries;
mod batch;
mod blobs;
mod checkpoints;
mod connections;
mod error;
#[cfg(all(test, feature = "testing"))]
mod guarded_tests;
mod manifests;
mod outbox;
mod repositories;
mod retention;
mod sessions;
mod tags;
mod token_queries;
mod usage;

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use registry_core::{Digest, Namespace, Reference, RepositoryName, Tag};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};

use checkpoints::Checkpointer;
use connections::{Readers, Slot};
use sessions::SessionDb;

use crate::error::Result;
use crate::events::NewEvent;
use crate::metadata::{
    BlobRecord, BlobTicket, LinkedBlob, ManifestNode, MetadataStore, NewManifest, Referrer,
    RepositoryInfo, StoredManifest, TagEvent, TagRecord,
};
use crate::policy::NamespacePolicy;
use crate::usage::{NamespaceUsage, RepositoryUsage, UsageRecount, UsageSummary};

/// The schema, embedded at compile time from `migrations/sqlite`.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

/// How long a statement waits for another process's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Read connections per store.
const READERS: u32 = 4;

/// SQLite would create the database 0644, and its `-wal` and `-shm` files
/// copy the database's mode: password and token hashes live there, so the
/// file is made (or tightened to) 0600 first.
fn secure_files(path: &Path) -> Result<()> {
    use crate::filesystem::permissions::{prepare_private_file, restrict, PRIVATE_FILE_MODE};
    let failed = |p: &Path, e| crate::filesystem::io_error("restricting the mode of", p, e);
    prepare_private_file(path).map_err(|e| failed(path, e))?;
    for suffix in ["-wal", "-shm"] {
        let mut side = path.as_os_str().to_owned();
        side.push(suffix);
        let side = Path::new(&side);
        restrict(side, PRIVATE_FILE_MODE).map_err(|e| failed(side, e))?;
    }
    Ok(())
}

/// Registry metadata in SQLite.
#[derive(Debug, Clone)]
pub struct SqliteMetadataStore {
    reader: Readers,
    writer: Slot,
    /// `None` in memory, where there is no write-ahead log.
    checkpoints: Option<Arc<Checkpointer>>,
    /// Upload-session state, in a database of its own (see `sessions`).
    sessions: SessionDb,
}

impl SqliteMetadataStore {
    /// Opens the database at `path`, creating the file if it is missing (its
    /// directory must exist), and applies pending migrations. Upload
    /// sessions go to a second database beside it (`registry.db`:
    /// `registry-uploads.db`), so that their writes do not queue behind
    /// metadata transactions. Starts a task on the current Tokio runtime
    /// that checkpoints both write-ahead logs, so open the store on the
    /// runtime that uses it: without that task the logs only grow until
    /// the store is closed.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        secure_files(path)?;
        secure_files(&SessionDb::path_beside(path))?;
        Ok(Self::open_file(path).await?)
    }

    async fn open_file(path: &Path) -> Result<Self, error::Error> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        // Switching to WAL needs an exclusive lock, so only the writer asks;
        // the mode is stored in the file and readers inherit it. The writer
        // never checkpoints: a task does, off the write path (see
        // `checkpoints`).
        let writer = Slot::connect(
            &options
                .clone()
                .journal_mode(SqliteJournalMode::Wal)
                .pragma("wal_autocheckpoint", "0"),
        )
        .await?;
        let sessions_path = SessionDb::path_beside(path);
        let sessions = SessionDb::open(&options.clone().filename(&sessions_path)).await?;
        let adopted = SessionDb::adopt_older_sessions(&writer, &sessions_path).await?;
        if adopted > 0 {
            tracing::info!(sessions = adopted, path = %sessions_path.display(),
                "moved the open upload sessions into their own database");
        }
        MIGRATOR.run(&mut *writer.hold().await?).await?;
        sqlx::query(batch::GUARD_TABLE).execute(&writer).await?;
        outbox::release_all_leases(&writer).await?;
        let mut readers = Vec::new();
        for _ in 0..READERS {
            readers.push(Slot::connect(&options).await?);
        }
        let checkpoints = Checkpointer::start(&options, Some(&sessions_path)).await?;
        Ok(SqliteMetadataStore {
            reader: Readers::new(readers),
            writer,
            checkpoints: Some(Arc::new(checkpoints)),
            sessions,
        })
    }

    /// A private database in memory, gone when the store is dropped: for tests.
    pub async fn open_in_memory() -> Result<Self> {
        Ok(Self::open_memory().await?)
    }

    async fn open_memory() -> Result<Self, error::Error> {
        // Every connection to `:memory:` is its own database, so reads and
        // writes share one connection.
        let conn = Slot::connect(
            &SqliteConnectOptions::new()
                .in_memory(true)
                .foreign_keys(true),
        )
        .await?;
        MIGRATOR.run(&mut *conn.hold().await?).await?;
        sqlx::query(batch::GUARD_TABLE).execute(&conn).await?;
        Ok(SqliteMetadataStore {
            reader: Readers::new(vec![conn.clone()]),
            writer: conn,
            checkpoints: None,
            sessions: SessionDb::open_memory().await?,
        })
    }

    /// Closes every connection, waiting for running statements to finish.
    pub async fn close(&self) {
        if let Some(checkpoints) = &self.checkpoints {
            checkpoints.close().await;
        }
        self.writer.close().await;
        self.reader.close().await;
        self.sessions.close().await;
    }
}

#[async_trait]
impl MetadataStore for SqliteMetadataStore {
    async fn create_namespace_raising(
        &self,
        namespace: &Namespace,
        events: Vec<NewEvent>,
    ) -> Result<()> {
        Ok(repositories::create_namespace(&self.writer, namespace, &events).await?)
    }

    async fn namespace_exists(&self, namespace: &Namespace) -> Result<bool> {
        Ok(repositories::namespace_exists(&self.reader, namespace).await?)
    }

    async fn list_namespaces(&self) -> Result<Vec<Namespace>> {
        Ok(repositories::list_namespaces(&self.reader).await?)
    }

    async fn delete_namespace_raising(
        &self,
        namespace: &Namespace,
        events: Vec<NewEvent>,
    ) -> Result<()> {
        Ok(repositories::delete_namespace(&self.writer, namespace, &events).await?)
    }

    async fn namespace_policy(&self, namespace: &Namespace) -> Result<NamespacePolicy> {
        Ok(repositories::namespace_policy(&self.reader, namespace).await?)
    }

    async fn set_namespace_policy_raising(
        &self,
        namespace: &Namespace,
        policy: &NamespacePolicy,
        events: Vec<NewEvent>,
    ) -> Result<()> {
        Ok(repositories::set_namespace_policy(&self.writer, namespace, policy, &events).await?)
    }

    async fn repository(&self, name: &RepositoryName) -> Result<Option<RepositoryInfo>> {
        Ok(repositories::repository(&self.reader, name).await?)
    }

    async fn list_repositories(
        &self,
        namespace: Option<&Namespace>,
        last: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RepositoryName>> {
        Ok(repositories::list_repositories(&self.reader, namespace, last, limit).await?)
    }

    async fn delete_repository_raising(
        &self,
        name: &RepositoryName,
        events: Vec<NewEvent>,
    ) -> Result<()> {
        Ok(repositories::delete_repository(&self.writer, name, &events).await?)
    }

    async fn put_manifest(&self, manifest: NewManifest) -> Result<Vec<crate::MovedTag>> {
        Ok(manifests::put_manifest(&self.writer, manifest).await?)
    }

    async fn get_manifest(
        &self,
        repository: &RepositoryName,
        reference: &Reference,
    ) -> Result<Option<StoredManifest>> {
        Ok(manifests::get_manifest(&self.reader, repository, reference).await?)
    }

    async fn delete_manifest_raising(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        actor: &str,
        events: Vec<NewEvent>,
    ) -> Result<()> {
        Ok(manifests::delete_manifest(&self.writer, repository, digest, actor, &events).await?)
    }

    async fn manifests_present(
        &self,
        repository: &RepositoryName,
        digests: &[Digest],
    ) -> Result<Vec<bool>> {
        Ok(manifests::manifests_present(&self.reader, repository, digests).await?)
    }

    async fn manifest_nodes(
        &self,
        repository: &RepositoryName,
        last: Option<&Digest>,
        limit: usize,
    ) -> Result<Vec<ManifestNode>> {
        Ok(retention::manifest_nodes(&self.reader, repository, last, limit).await?)
    }

    async fn delete_unreferenced_manifests(
        &self,
        repository: &RepositoryName,
        digests: &[Digest],
        planned: SystemTime,
    ) -> Result<Vec<bool>> {
        Ok(retention::delete_unreferenced(&self.writer, repository, digests, planned).await?)
    }

    async fn blob_reference_count(&self, digest: &Digest) -> Result<u64> {
        Ok(retention::blob_reference_count(&self.reader, digest).await?)
    }

    async fn tag_events(
        &self,
        repository: &RepositoryName,
        after: Option<(&Tag, u64)>,
        limit: usize,
    ) -> Result<Vec<(Tag, TagEvent)>> {
        Ok(retention::tag_events(&self.reader, repository, after, limit).await?)
    }

    async fn find_manifest(&self, digest: &Digest) -> Result<Vec<RepositoryName>> {
        Ok(manifests::find_manifest(&self.reader, digest).await?)
    }

    async fn list_tags(
        &self,
        repository: &RepositoryName,
        last: Option<&Tag>,
        limit: usize,
    ) -> Result<Vec<Tag>> {
        Ok(tags::list_tags(&self.reader, repository, last, limit).await?)
    }

    async fn tags(
        &self,
        repository: &RepositoryName,
        last: Option<&Tag>,
        limit: usize,
    ) -> Result<Vec<TagRecord>> {
        Ok(tags::tags(&self.reader, repository, last, limit).await?)
    }

    async fn tag_history(
        &self,
        repository: &RepositoryName,
        tag: &Tag,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<TagEvent>> {
        Ok(tags::tag_history(&self.reader, repository, tag, before, limit).await?)
    }

    async fn delete_tag_raising(
        &self,
        repository: &RepositoryName,
        tag: &Tag,
        actor: &str,
        events: Vec<NewEvent>,
    ) -> Result<()> {
        Ok(tags::delete_tag(&self.writer, repository, tag, actor, &events).await?)
    }

    async fn link_blob(&self, repository: &RepositoryName, digest: &Digest) -> Result<()> {
        Ok(blobs::link_blob(&self.writer, repository, digest).await?)
    }

    async fn linked_blob(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<LinkedBlob>> {
        Ok(blobs::linked_blob(&self.reader, repository, digest).await?)
    }

    async fn unlink_blob(&self, repository: &RepositoryName, digest: &Digest) -> Result<()> {
        Ok(blobs::unlink_blob(&self.writer, repository, digest).await?)
    }

    async fn referrers(
        &self,
        repository: &RepositoryName,
        subject: &Digest,
        artifact_type: Option<&str>,
        last: Option<&Digest>,
        limit: usize,
    ) -> Result<Vec<Referrer>> {
        Ok(manifests::referrers(
            &self.reader,
            repository,
            subject,
            artifact_type,
            last,
            limit,
        )
        .await?)
    }

    async fn referenced_blobs(&self) -> Result<HashSet<Digest>> {
        Ok(blobs::referenced_blobs(&self.reader).await?)
    }

    async fn forget_blob(&self, digest: &Digest) -> Result<()> {
        Ok(blobs::forget_blob(&self.writer, digest).await?)
    }

    async fn blob_record(&self, digest: &Digest) -> Result<BlobRecord> {
        Ok(blobs::blob_record(&self.reader, digest).await?)
    }

    async fn link_blob_with(&self, repository: &RepositoryName, ticket: &BlobTicket) -> Result<()> {
        Ok(blobs::link_blob_with(&self.writer, repository, ticket).await?)
    }

    async fn begin_blob_delete(&self, digest: &Digest, generation: u64) -> Result<bool> {
        Ok(blobs::begin_blob_delete(&self.writer, digest, generation).await?)
    }

    async fn finish_blob_delete(&self, digest: &Digest) -> Result<()> {
        Ok(blobs::finish_blob_delete(&self.writer, digest).await?)
    }

    async fn record_blob_sizes(&self, sizes: &[(Digest, u64)]) -> Result<()> {
        Ok(usage::record_blob_sizes(&self.writer, sizes).await?)
    }

    async fn unsized_blobs(
        &self,
        namespace: &Namespace,
        last: Option<&Digest>,
        limit: usize,
    ) -> Result<Vec<Digest>> {
        Ok(usage::unsized_blobs(&self.reader, namespace, last, limit).await?)
    }

    async fn namespace_usage(&self, namespace: &Namespace) -> Result<NamespaceUsage> {
        Ok(usage::namespace_usage(&self.reader, namespace).await?)
    }

    async fn repository_usage(&self, repository: &RepositoryName) -> Result<RepositoryUsage> {
        Ok(usage::repository_usage(&self.reader, repository).await?)
    }

    async fn usage_summary(&self, limit: usize) -> Result<UsageSummary> {
        Ok(usage::usage_summary(&self.reader, limit).await?)
    }

    async fn recount_usage(&self, namespace: &Namespace) -> Result<UsageRecount> {
        Ok(usage::recount_usage(&self.writer, namespace).await?)
    }

    async fn stale_blob_deletes(&self, before: SystemTime) -> Result<Vec<Digest>> {
        Ok(blobs::stale_blob_deletes(&self.reader, error::to_nanos(before)).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn file_databases_use_wal_normal_sync_and_foreign_keys() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteMetadataStore::open(dir.path().join("m.db"))
            .await
            .expect("open");
        for mut conn in [
            store.reader.hold().await.expect("reader"),
            store.writer.hold().await.expect("writer"),
        ] {
            let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
                .fetch_one(&mut *conn)
                .await
                .expect("journal_mode");
            assert_eq!(mode, "wal");
            let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
                .fetch_one(&mut *conn)
                .await
                .expect("synchronous");
            assert_eq!(sync, 1, "NORMAL");
            let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
                .fetch_one(&mut *conn)
                .await
                .expect("foreign_keys");
            assert_eq!(fk, 1);
        }
        let autocheckpoint: i64 = sqlx::query_scalar("PRAGMA wal_autocheckpoint")
            .fetch_one(&store.writer)
            .await
            .expect("wal_autocheckpoint");
        assert_eq!(
            autocheckpoint, 0,
            "the writer leaves checkpoints to the task"
        );
        store.close().await;
    }

    /// The writer never checkpoints, so the database file grows only when
    /// the background task copies the log into it.
    #[tokio::test]
    async fn the_log_reaches_the_database_file_in_the_background() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("m.db");
        let store = SqliteMetadataStore::open(&path).await.expect("open");
        let size = || std::fs::metadata(&path).expect("database file").len();
        let before = size();
        let repo: RepositoryName = "logged/app".parse().expect("name");
        store
            .create_namespace(&repo.to_namespace())
            .await
            .expect("namespace");
        for i in 0..500 {
            let digest = Digest::sha256_of(format!("blob {i}").as_bytes());
            store.link_blob(&repo, &digest).await.expect("link");
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while size() <= before {
            assert!(
                std::time::Instant::now() < deadline,
                "no checkpoint copied the log into the database file ({before} bytes)"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        store.close().await;
    }

    /// A write that finds the database full is `StorageFull`, and once
    /// space returns the next writes succeed (they used to fail with "non-zero
    /// transaction depth" until a restart).
    #[tokio::test]
    async fn writes_recover_after_the_database_was_full() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteMetadataStore::open(dir.path().join("m.db"))
            .await
            .expect("open");
        let repo: RepositoryName = "full/app".parse().expect("name");
        store
            .create_namespace(&repo.to_namespace())
            .await
            .expect("namespace");
        // `max_page_count` is per connection: set it on the one writer.
        let pages: i64 = sqlx::query_scalar("PRAGMA page_count")
            .fetch_one(&store.writer)
            .await
            .expect("page_count");
        sqlx::query(&format!("PRAGMA max_page_count = {pages}"))
            .execute(&store.writer)
            .await
            .expect("limit the database");
        let mut full = None;
        for i in 0..10_000 {
            let digest = Digest::sha256_of(format!("blob {i}").as_bytes());
            if let Err(e) = store.link_blob(&repo, &digest).await {
                full = Some(e);
                break;
            }
        }
        let full = full.expect("the database never filled up");
        assert!(full.is_storage_full(), "expected StorageFull, got {full:?}");

        // Space returns (on a connection that was discarded the limit is
        // gone anyway; on one that was kept, lift it).
        sqlx::query("PRAGMA max_page_count = 1073741823")
            .execute(&store.writer)
            .await
            .expect("lift the limit");
        for i in 0..3 {
            let digest = Digest::sha256_of(format!("after {i}").as_bytes());
            store
                .link_blob(&repo, &digest)
                .await
                .expect("writes work again once space returns");
            assert!(store.blob_linked(&repo, &digest).await.expect("read"));
        }
        store.close().await;
    }
}
