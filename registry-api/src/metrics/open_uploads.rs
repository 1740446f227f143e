//! The `registry_uploads_in_progress` gauge, kept as sessions open and
//! close instead of listing every session (and reading its state file) on
//! each scrape.
//!
//! [`CountingUploads`] wraps the registry's [`UploadStore`] and counts
//! every session that it creates (+1) and that commit, a digest mismatch at
//! commit, or cancel ends (−1); garbage collection's expiry cancels through
//! the same store, so it is counted too. Sessions that existed before this
//! process started are counted once, by one listing at the first scrape;
//! every later scrape is constant work.

use std::sync::atomic::{AtomicI64, Ordering::SeqCst};
use std::sync::Arc;

use async_trait::async_trait;
use registry_core::{Digest, RepositoryName};
use registry_storage::{
    BlobInfo, ByteStream, Result, StorageError, UploadId, UploadStatus, UploadStore,
};
use tokio::sync::OnceCell;

/// Open upload sessions: a baseline listed once plus the sessions opened
/// and closed since.
#[derive(Debug, Default)]
pub(crate) struct OpenUploads {
    /// Sessions created minus sessions ended through [`CountingUploads`].
    changes: AtomicI64,
    /// `(sessions listed, changes when listed)`, from the first scrape.
    baseline: OnceCell<(i64, i64)>,
}

impl OpenUploads {
    /// The number of open sessions: lists `store` on the first call only.
    /// A session created or ended while that one listing runs may be
    /// counted twice or not at all; never below zero.
    pub(crate) async fn current(&self, store: &dyn UploadStore) -> Result<usize> {
        let (listed, at) = *self
            .baseline
            .get_or_try_init(|| async {
                let at = self.changes.load(SeqCst);
                let listed = i64::try_from(store.list().await?.len()).unwrap_or(i64::MAX);
                Ok::<_, StorageError>((listed, at))
            })
            .await?;
        let open = listed.saturating_add(self.changes.load(SeqCst) - at);
        Ok(usize::try_from(open).unwrap_or(0))
    }

    fn opened(&self) {
        self.changes.fetch_add(1, SeqCst);
    }

    fn closed(&self) {
        self.changes.fetch_sub(1, SeqCst);
    }
}

/// An [`UploadStore`] that keeps [`OpenUploads`] up to date.
#[derive(Debug)]
pub(crate) struct CountingUploads {
    inner: Arc<dyn UploadStore>,
    open: Arc<OpenUploads>,
}

impl CountingUploads {
    /// Wraps `inner`, counting into `open`.
    pub(crate) fn wrap(
        inner: Arc<dyn UploadStore>,
        open: Arc<OpenUploads>,
    ) -> Arc<dyn UploadStore> {
        Arc::new(CountingUploads { inner, open })
    }

    /// Counts the session of a commit as closed when the contract ends it:
    /// on success and on a digest mismatch.
    fn count_commit(&self, result: Result<BlobInfo>) -> Result<BlobInfo> {
        if matches!(&result, Ok(_) | Err(StorageError::DigestMismatch { .. })) {
            self.open.closed();
        }
        result
    }
}

#[async_trait]
impl UploadStore for CountingUploads {
    async fn create_for(
        &self,
        repository: &RepositoryName,
        owner: Option<registry_storage::SessionOwner<'_>>,
        announced: Option<registry_core::Algorithm>,
    ) -> Result<UploadStatus> {
        let status = self.inner.create_for(repository, owner, announced).await?;
        self.open.opened();
        Ok(status)
    }

    async fn open_sessions(&self, owner: &str) -> Result<usize> {
        self.inner.open_sessions(owner).await
    }

    async fn status(&self, id: &UploadId) -> Result<UploadStatus> {
        self.inner.status(id).await
    }

    async fn append(&self, id: &UploadId, offset: u64, body: ByteStream) -> Result<UploadStatus> {
        self.inner.append(id, offset, body).await
    }

    async fn commit(&self, id: &UploadId, expected: &Digest) -> Result<BlobInfo> {
        let result = self.inner.commit(id, expected).await;
        self.count_commit(result)
    }

    async fn commit_last_chunk(
        &self,
        id: &UploadId,
        offset: u64,
        body: ByteStream,
        expected: &Digest,
    ) -> Result<BlobInfo> {
        let result = self
            .inner
            .commit_last_chunk(id, offset, body, expected)
            .await;
        self.count_commit(result)
    }

    async fn cancel(&self, id: &UploadId) -> Result<()> {
        self.inner.cancel(id).await?;
        self.open.closed();
        Ok(())
    }

    async fn list(&self) -> Result<Vec<UploadStatus>> {
        self.inner.list().await
    }

    async fn remove_stale_files(&self) -> Result<u64> {
        self.inner.remove_stale_files().await
    }
}
