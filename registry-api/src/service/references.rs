//! What a pushed manifest references must be in its repository: blobs
//! linked to it and stored, child manifests stored in it.

use futures::stream::{self, StreamExt, TryStreamExt};
use registry_core::{Digest, Manifest, Reference, RepositoryName};

use super::{Registry, RegistryError, RegistryResult};

/// Lookups of one manifest's references in flight at once: a manifest may
/// name up to `Limits::max_manifest_references` of them.
const REFERENCE_LOOKUPS: usize = 8;

impl Registry {
    /// Checks that everything the manifest references is present in
    /// `repo`: blobs linked to it, child manifests stored in it. Up to
    /// [`REFERENCE_LOOKUPS`] lookups at once; the first missing reference
    /// in the manifest's order is the one reported.
    pub(crate) async fn check_references(
        &self,
        repo: &RepositoryName,
        m: &Manifest,
    ) -> RegistryResult<()> {
        // Futures collected first: a stream mapping a borrowing closure
        // would not be `Send` for every lifetime, as handlers must be.
        let lookups: Vec<_> = m
            .blob_references()
            .map(|d| self.referenced_blob(repo, &d.digest))
            .collect();
        let blobs: Vec<(Digest, Option<u64>, u64)> = stream::iter(lookups)
            .buffered(REFERENCE_LOOKUPS)
            .try_collect()
            .await?;
        let unknown_sizes: Vec<(Digest, u64)> = blobs
            .into_iter()
            .filter(|(_, recorded, _)| recorded.is_none())
            .map(|(digest, _, stored)| (digest, stored))
            .collect();
        // Sizes as stored, for usage: the put's quota check counts blobs
        // new to the namespace with them. A size once known stays, and an
        // upload or mount records it when it links the blob, so this
        // write is only for blobs linked before sizes were recorded.
        if !unknown_sizes.is_empty() {
            self.metadata().record_blob_sizes(&unknown_sizes).await?;
        }
        let lookups: Vec<_> = m
            .manifest_references()
            .map(|d| self.referenced_manifest(repo, &d.digest))
            .collect();
        stream::iter(lookups)
            .buffered(REFERENCE_LOOKUPS)
            .try_collect()
            .await
    }

    /// A blob a manifest references: its digest, its recorded size (if
    /// any) and its stored size; `ManifestReferenceUnknown` unless it is
    /// linked to `repo` and stored.
    async fn referenced_blob(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> RegistryResult<(Digest, Option<u64>, u64)> {
        let linked = self.metadata().linked_blob(repo, digest).await?;
        let stored = match &linked {
            Some(_) => self.blobs().stat(digest).await?,
            None => None,
        };
        match (linked, stored) {
            (Some(linked), Some(stored)) => Ok((digest.clone(), linked.size, stored.size)),
            _ => Err(RegistryError::ManifestReferenceUnknown(format!(
                "blob {digest} is not in repository {repo}"
            ))),
        }
    }

    /// `ManifestReferenceUnknown` unless manifest `digest` is in `repo`.
    async fn referenced_manifest(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> RegistryResult<()> {
        let reference = Reference::Digest(digest.clone());
        match self.metadata().get_manifest(repo, &reference).await? {
            Some(_) => Ok(()),
            None => Err(RegistryError::ManifestReferenceUnknown(format!(
                "manifest {digest} is not in repository {repo}"
            ))),
        }
    }
}
