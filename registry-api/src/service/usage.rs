//! Namespace usage: what a namespace stores against its quota, read by its
//! viewers; the recount (after a crash or an upgrade) by a cluster-admin.

use registry_auth::{Action, Resource};
use registry_core::{Digest, Namespace};

use super::{Caller, Registry, RegistryError, RegistryResult};
use crate::model::image::{ImageNamespace, NamespaceStatus, ObjectMeta, API_VERSION};
use crate::model::usage::{NamespaceUsage, UsageRecomputed};

/// Blobs of unknown size stat'ed per round of a recount: one round's work
/// and memory are bounded by it.
const SIZES_PER_ROUND: usize = 256;

impl Registry {
    /// A namespace's usage and quota (needs `ReadImageStreams` there:
    /// viewer).
    pub async fn namespace_usage(
        &self,
        caller: &Caller,
        ns: &Namespace,
    ) -> RegistryResult<NamespaceUsage> {
        self.authorize(caller, Action::ReadImageStreams, &Resource::Namespace(ns))?;
        let quota_bytes = self.stored_policy(ns).await?.quota_bytes;
        let usage = self.metadata().namespace_usage(ns).await?;
        Ok(NamespaceUsage {
            namespace: ns.clone(),
            quota_bytes,
            usage: usage.into(),
        })
    }

    /// The Image API's namespace document (needs `ReadImageStreams`).
    pub async fn image_namespace(
        &self,
        caller: &Caller,
        ns: &Namespace,
    ) -> RegistryResult<ImageNamespace> {
        let usage = self.namespace_usage(caller, ns).await?;
        Ok(ImageNamespace {
            kind: ImageNamespace::KIND.to_owned(),
            api_version: API_VERSION.to_owned(),
            metadata: ObjectMeta {
                name: ns.to_string(),
                namespace: None,
                creation_timestamp: None,
            },
            status: NamespaceStatus {
                quota_bytes: usage.quota_bytes,
                usage: usage.usage,
            },
        })
    }

    /// Rebuilds a namespace's usage counters from its links (needs
    /// `SetQuota`: cluster-admin). Sizes the metadata does not know yet
    /// (blobs linked before usage was recorded) are read from the blob
    /// store first, in bounded rounds.
    pub async fn recompute_usage(
        &self,
        caller: &Caller,
        ns: &Namespace,
    ) -> RegistryResult<UsageRecomputed> {
        let cluster = &Resource::Cluster;
        self.authorize_as(caller, Action::SetQuota, cluster, "recount usage")?;
        if !self.metadata().namespace_exists(ns).await? {
            return Err(RegistryError::NamespaceUnknown(ns.clone()));
        }
        let (mut learned, mut missing) = (0u64, 0u64);
        let mut last: Option<Digest> = None;
        loop {
            let round = self
                .metadata()
                .unsized_blobs(ns, last.as_ref(), SIZES_PER_ROUND)
                .await?;
            let Some(end) = round.last().cloned() else {
                break;
            };
            let mut sizes = Vec::with_capacity(round.len());
            for digest in round {
                match self.blobs().stat(&digest).await? {
                    Some(info) => sizes.push((digest, info.size)),
                    None => missing += 1,
                }
            }
            learned += sizes.len() as u64;
            self.metadata().record_blob_sizes(&sizes).await?;
            // Digests of known size leave the listing; missing ones stay,
            // so the cursor moves past them.
            last = Some(end);
        }
        let recount = self.metadata().recount_usage(ns).await?;
        if recount.before != recount.after {
            tracing::warn!(namespace = %ns, before = ?recount.before, after = ?recount.after,
                "namespace usage recomputed: the counters had drifted");
        }
        tracing::info!(target: "audit", actor = %caller.subject(), namespace = %ns,
            bytes = recount.after.bytes, sizes_learned = learned, "namespace usage recomputed");
        Ok(UsageRecomputed {
            after: recount.after.into(),
            before: recount.before.into(),
            namespace: ns.clone(),
            sizes_learned: learned,
            sizes_missing: missing,
        })
    }
}
