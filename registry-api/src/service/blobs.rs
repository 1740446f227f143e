//! Blob reads and deletes. A repository serves only the blobs linked to it
//! (layer authorization).

use registry_auth::{Action, Resource};
use registry_core::{Digest, RepositoryName};
use registry_storage::{BlobBody, BlobInfo, ByteRange, StorageError};

use super::{Caller, Registry, RegistryError, RegistryResult};

fn blob_unknown(repo: &RepositoryName, digest: &Digest) -> RegistryError {
    RegistryError::BlobUnknown {
        repository: repo.clone(),
        digest: digest.clone(),
    }
}

impl Registry {
    /// Checks that `repo` may serve `digest`: only blobs linked to the
    /// repository are visible through it.
    async fn ensure_linked(&self, repo: &RepositoryName, digest: &Digest) -> RegistryResult<()> {
        if self.metadata().blob_linked(repo, digest).await? {
            Ok(())
        } else {
            Err(blob_unknown(repo, digest))
        }
    }

    /// Size and digest of a blob `repo` serves (needs pull).
    pub async fn stat_blob(
        &self,
        caller: &Caller,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> RegistryResult<BlobInfo> {
        self.authorize(caller, Action::Pull, &Resource::Repository(repo))?;
        self.ensure_linked(repo, digest).await?;
        self.blobs()
            .stat(digest)
            .await?
            .ok_or_else(|| blob_unknown(repo, digest))
    }

    /// The bytes of a blob `repo` serves, or of `range` of it (needs pull).
    /// The range must lie inside the blob (see
    /// [`BlobBody`]); one past its end is
    /// [`RegistryError::RangeNotSatisfiable`].
    pub async fn get_blob(
        &self,
        caller: &Caller,
        repo: &RepositoryName,
        digest: &Digest,
        range: Option<ByteRange>,
    ) -> RegistryResult<BlobBody> {
        self.authorize(caller, Action::Pull, &Resource::Repository(repo))?;
        self.ensure_linked(repo, digest).await?;
        match self.blobs().get(digest, range).await {
            Ok(body) => Ok(body),
            Err(StorageError::NotFound { .. }) => Err(blob_unknown(repo, digest)),
            Err(e) => Err(e.into()),
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
