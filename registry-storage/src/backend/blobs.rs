//! [`BackendBlobStore`]: the digest-verifying [`BlobStore`] over any backend.

use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::StreamExt;
use registry_core::{Digest, Digester};

use super::{AppendMode, BlobBackend, StageTarget};
use crate::blob::{BlobBody, BlobInfo, BlobStore, ByteRange, ByteStream};
use crate::error::Result;
use crate::verify::Verifier;

/// A [`BlobStore`] over a [`BlobBackend`]: puts are hashed while they
/// stream into a staged write, published only when the digest matches and
/// aborted otherwise. Cheap to clone; clones share the backend.
#[derive(Debug)]
pub struct BackendBlobStore<B> {
    backend: Arc<B>,
}

impl<B> Clone for BackendBlobStore<B> {
    fn clone(&self) -> Self {
        BackendBlobStore {
            backend: self.backend.clone(),
        }
    }
}

impl<B: BlobBackend> BackendBlobStore<B> {
    /// A blob store over `backend`.
    pub fn new(backend: B) -> Self {
        Self::from_arc(Arc::new(backend))
    }

    /// A blob store over a shared backend (the one an
    /// [`BackendUploadStore`](super::BackendUploadStore) publishes into).
    pub fn from_arc(backend: Arc<B>) -> Self {
        BackendBlobStore { backend }
    }

    /// The backend.
    pub fn backend(&self) -> &Arc<B> {
        &self.backend
    }
}

/// Wraps `body` so that every chunk passing through is fed to `hasher`.
pub(super) fn hashed<H: Send + 'static>(
    body: ByteStream,
    hasher: Arc<Mutex<H>>,
    feed: fn(&mut H, &[u8]),
) -> ByteStream {
    body.inspect(move |chunk| {
        if let Ok(chunk) = chunk {
            feed(
                &mut hasher.lock().unwrap_or_else(PoisonError::into_inner),
                chunk,
            );
        }
    })
    .boxed()
}

/// Takes the hasher back once the stream that fed it is gone.
pub(super) fn into_inner<H: Clone>(hasher: Arc<Mutex<H>>) -> H {
    match Arc::try_unwrap(hasher) {
        Ok(mutex) => mutex.into_inner().unwrap_or_else(PoisonError::into_inner),
        // A backend that kept the stream alive: read the state as it is.
        Err(shared) => shared
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone(),
    }
}

#[async_trait]
impl<B: BlobBackend> BlobStore for BackendBlobStore<B> {
    async fn stat(&self, digest: &Digest) -> Result<Option<BlobInfo>> {
        self.backend.stat(digest).await
    }

    async fn get(&self, digest: &Digest, range: Option<ByteRange>) -> Result<BlobBody> {
        self.backend.get(digest, range).await
    }

    async fn put(&self, expected: &Digest, mut body: ByteStream) -> Result<BlobInfo> {
        if let Some(existing) = self.backend.stat(expected).await? {
            // Not rewritten, but the caller's bytes are still checked.
            let mut verifier = Verifier::new(expected);
            while let Some(chunk) = body.next().await {
                verifier.update(&chunk?);
            }
            verifier.finish(expected)?;
            return Ok(existing);
        }
        let staged = self.backend.stage(StageTarget::Blob(expected)).await?;
        let hasher = Arc::new(Mutex::new(Digester::new(expected.algorithm())));
        let body = hashed(body, hasher.clone(), Digester::update);
        let appended = match self.backend.append(&staged, body, AppendMode::Final).await {
            Ok(appended) => appended,
            Err(e) => {
                discard(self.backend.as_ref(), staged).await;
                return Err(e);
            }
        };
        let verified = Verifier::from_digester(into_inner(hasher)).finish(expected);
        match verified {
            Ok(_) => self.backend.publish(appended, expected).await,
            Err(e) => {
                discard(self.backend.as_ref(), appended).await;
                Err(e)
            }
        }
    }

    async fn delete(&self, digest: &Digest) -> Result<()> {
        self.backend.delete(digest).await
    }

    fn list(&self) -> BoxStream<'_, Result<BlobInfo>> {
        self.backend.list()
    }
}

/// Aborts a staged write after a failure; the failure is what the caller
/// reports, so an abort error is only logged (stale staged writes are
/// removed later by [`BlobBackend::remove_stale_staged`]).
pub(super) async fn discard<B: BlobBackend + ?Sized>(backend: &B, staged: super::StagedWrite) {
    if let Err(e) = backend.abort(staged).await {
        tracing::warn!(error = %e, "could not abort a staged blob write");
    }
}
