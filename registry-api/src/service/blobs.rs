//! Blob reads and deletes. A repository serves only the blobs linked to it
//! (layer authorization).

use registry_auth::{Action, Resource};
use registry_core::{Digest, RepositoryName};
use registry_storage::{BlobBody, BlobInfo, ByteRange, StorageError};

use super::{Caller, Registry, RegistryError, RegistryResult};

/// One byte range of a blob, as a client asks for it (RFC 9110 §14.1.2),
/// before it meets the blob's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobRange {
    /// From byte `first` to `last` inclusive, or to the end (`None`).
    From {
        /// The first byte.
        first: u64,
        /// The last byte, inclusive.
        last: Option<u64>,
    },
    /// The last `n` bytes.
    Suffix(u64),
}

impl BlobRange {
    /// The bytes of a blob of `size` this range selects, clipped to the
    /// blob; `None` when it selects nothing (a start past the end, an empty
    /// suffix, any range of an empty blob).
    ///
    /// This is the one place a requested range meets the blob's size: the
    /// stores are given only ranges inside the blob.
    pub fn resolve(self, size: u64) -> Option<ByteRange> {
        let (start, end) = match self {
            BlobRange::From { first, last } => {
                let end = last.map_or(size, |l| l.saturating_add(1).min(size));
                (first, end)
            }
            BlobRange::Suffix(n) => (size.saturating_sub(n), size),
        };
        (start < end).then_some(ByteRange {
            start,
            end: Some(end),
        })
    }
}

fn blob_unknown(repo: &RepositoryName, digest: &Digest) -> RegistryError {
    RegistryError::BlobUnknown {
        repository: repo.clone(),
        digest: digest.clone(),
    }
}

impl Registry {
    /// The size of a blob `repo` links, `None` when it does not (only
    /// linked blobs are visible through a repository). The size recorded
    /// with the link answers without asking the blob store (a round trip
    /// to S3); a blob linked before sizes were recorded is asked for.
    pub(crate) async fn linked_blob_size(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> RegistryResult<Option<u64>> {
        let Some(linked) = self.metadata().linked_blob(repo, digest).await? else {
            return Ok(None);
        };
        if let Some(size) = linked.size {
            return Ok(Some(size));
        }
        Ok(self.blobs().stat(digest).await?.map(|info| info.size))
    }

    /// [`linked_blob_size`](Self::linked_blob_size), unknown when unlinked.
    async fn linked_size(&self, repo: &RepositoryName, digest: &Digest) -> RegistryResult<u64> {
        self.linked_blob_size(repo, digest)
            .await?
            .ok_or_else(|| blob_unknown(repo, digest))
    }

    /// Size and digest of a blob `repo` serves (needs pull).
    pub async fn stat_blob(
        &self,
        caller: &Caller,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> RegistryResult<BlobInfo> {
        self.authorize(caller, Action::Pull, &Resource::Repository(repo))?;
        if let Some(proxy) = self.proxy_of(repo) {
            return self.proxy_stat_blob(proxy, repo, digest).await;
        }
        let size = self.linked_size(repo, digest).await?;
        Ok(BlobInfo {
            digest: digest.clone(),
            size,
            modified: None,
        })
    }

    /// The bytes of a blob `repo` serves, or of `range` of it (needs pull).
    /// A range that selects nothing of the blob is
    /// [`RegistryError::RangeNotSatisfiable`].
    pub async fn get_blob(
        &self,
        caller: &Caller,
        repo: &RepositoryName,
        digest: &Digest,
        range: Option<BlobRange>,
    ) -> RegistryResult<BlobBody> {
        self.authorize(caller, Action::Pull, &Resource::Repository(repo))?;
        if let Some(proxy) = self.proxy_of(repo) {
            return self.proxy_get_blob(proxy, repo, digest, range).await;
        }
        self.serve_blob(repo, digest, range).await
    }

    /// The bytes of a blob `repo` links, or of `range` of it, from the
    /// store (no permission check: the caller made it).
    pub(crate) async fn serve_blob(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        range: Option<BlobRange>,
    ) -> RegistryResult<BlobBody> {
        // The size clips or places the range.
        let range = match range {
            None => {
                self.ensure_linked(repo, digest).await?;
                None
            }
            Some(range) => {
                let size = self.linked_size(repo, digest).await?;
                Some(
                    range
                        .resolve(size)
                        .ok_or(RegistryError::RangeNotSatisfiable { size })?,
                )
            }
        };
        match self.blobs().get(digest, range).await {
            Ok(body) => Ok(body),
            Err(StorageError::NotFound { .. }) => Err(blob_unknown(repo, digest)),
            Err(e) => Err(e.into()),
        }
    }

    /// Checks that `repo` links `digest`.
    async fn ensure_linked(&self, repo: &RepositoryName, digest: &Digest) -> RegistryResult<()> {
        if self.metadata().blob_linked(repo, digest).await? {
            Ok(())
        } else {
            Err(blob_unknown(repo, digest))
        }
    }

    /// Removes `repo`'s link to a blob (needs delete); the bytes go when
    /// garbage collection finds nothing else referencing them.
    pub async fn delete_blob(
        &self,
        caller: &Caller,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> RegistryResult<()> {
        self.authorize(caller, Action::Delete, &Resource::Repository(repo))?;
        self.refuse_proxy_writes(repo)?;
        match self.metadata().unlink_blob(repo, digest).await {
            Ok(()) => {
                tracing::info!(target: "audit", actor = %caller.subject(), repository = %repo,
                    digest = %digest, "blob unlinked");
                Ok(())
            }
            Err(StorageError::NotFound { .. }) => Err(blob_unknown(repo, digest)),
            Err(e) => Err(e.into()),
        }
    }
}
