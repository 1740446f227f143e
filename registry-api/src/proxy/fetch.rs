//! The proxy's reads: manifests and blobs of a proxy namespace, from the
//! store when cached and fresh, else from the upstream (stored on the way).

use std::sync::Arc;

use bytes::Bytes;
use registry_core::{Digest, Manifest, ManifestKind, Namespace, Reference, RepositoryName, Tag};
use registry_storage::{BlobBody, BlobInfo, NewManifest, StorageError};

use super::tee::{self, Joined, Tee};
use super::ProxyNamespace;
use crate::client::ClientError;
use crate::service::{PulledManifest, Registry, RegistryError, RegistryResult};

/// Why a fetch from the upstream did not give what was asked. Cloned to
/// every request that shared the fetch.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum FetchError {
    /// The upstream has no such manifest or blob.
    #[error("not found upstream")]
    NotFound,
    /// The upstream failed, refused, was rate-limited, unreachable or too
    /// slow, or served wrong bytes: a cached copy may stand in.
    #[error("{0}")]
    Upstream(Arc<str>),
    /// Storing what was fetched failed here.
    #[error("{0}")]
    Local(Arc<str>),
    /// Storing what was fetched would take the proxy namespace past its
    /// quota: nothing was cached.
    #[error("namespace {namespace} is over its quota")]
    OverQuota {
        /// The proxy namespace.
        namespace: Namespace,
        /// Bytes it stores.
        usage: u64,
        /// Its quota in bytes.
        limit: u64,
        /// Bytes the fetched content would add.
        needed: u64,
    },
    /// The fetch ended without an outcome (its task died).
    #[error("the upstream fetch was interrupted")]
    Aborted,
}

impl FetchError {
    pub(crate) fn upstream(reason: impl Into<Arc<str>>) -> Self {
        FetchError::Upstream(reason.into())
    }

    pub(crate) fn local(reason: impl Into<Arc<str>>) -> Self {
        FetchError::Local(reason.into())
    }

    /// A store's refusal of what was fetched: a quota refusal keeps its
    /// meaning (every request sharing the fetch gets the same clear
    /// refusal), anything else is a local failure.
    pub(crate) fn stored(e: StorageError) -> Self {
        match e {
            StorageError::QuotaExceeded {
                namespace,
                usage,
                limit,
                needed,
            } => FetchError::OverQuota {
                namespace,
                usage,
                limit,
                needed,
            },
            e => FetchError::local(e.to_string()),
        }
    }

    /// The client's error sorted by meaning.
    pub(super) fn of_client(e: ClientError) -> Self {
        match e {
            ClientError::NotFound { .. } => FetchError::NotFound,
            ClientError::Api { status, .. } if status.as_u16() == 429 => {
                FetchError::upstream(format!("rate-limited by the upstream (429): {e}"))
            }
            e => FetchError::upstream(e.to_string()),
        }
    }
}

/// A manifest fetch's outcome: the manifest, and whether it came from the
/// upstream (`true`) or was revalidated unchanged (`false`).
pub(crate) type ManifestOutcome = Result<(PulledManifest, bool), FetchError>;

impl ProxyNamespace {
    /// The error a client sees for a failed fetch of `what`.
    pub(super) fn refusal(&self, e: FetchError, unknown: RegistryError) -> RegistryError {
        match e {
            FetchError::NotFound => unknown,
            FetchError::Upstream(reason) => RegistryError::UpstreamUnavailable {
                namespace: self.config.namespace.clone(),
                upstream: self.config.upstream_host(),
                reason: reason.to_string(),
            },
            FetchError::Local(reason) => RegistryError::internal(reason.to_string()),
            FetchError::OverQuota {
                namespace,
                usage,
                limit,
                needed,
            } => RegistryError::QuotaExceeded {
                namespace,
                usage,
                limit,
                needed,
            },
            FetchError::Aborted => RegistryError::UpstreamUnavailable {
                namespace: self.config.namespace.clone(),
                upstream: self.config.upstream_host(),
                reason: "the fetch was interrupted; retry".into(),
            },
        }
    }

    /// The store record of a manifest cached from the upstream, as a push
    /// would make it (blob links, usage), pointed at by `tag` and listing
    /// `children` (cached children of an index). The upstream decides
    /// where its tags point, so no tag is fixed here.
    pub(super) fn cached_record(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        manifest: &Manifest,
        bytes: Bytes,
        tag: Option<Tag>,
        children: Vec<Digest>,
    ) -> NewManifest {
        let actor = format!("system:proxy:{}", self.config.namespace);
        NewManifest {
            children,
            tags: tag.into_iter().collect(),
            ..crate::service::manifest_record(repo, digest, manifest, bytes, actor)
        }
    }

    pub(super) fn upstream_repo(&self, repo: &RepositoryName) -> RegistryResult<RepositoryName> {
        self.upstream_name(repo).ok_or_else(|| {
            RegistryError::invalid_name(
                "repository",
                format!(
                    "{repo}: the upstream of proxy namespace {} needs a name of two or more \
                     components after the namespace",
                    self.config.namespace
                ),
            )
        })
    }
}

impl Registry {
    /// A manifest of a proxy namespace (the caller may pull).
    pub(crate) async fn proxy_get_manifest(
        &self,
        proxy: &Arc<ProxyNamespace>,
        repo: &RepositoryName,
        reference: &Reference,
    ) -> RegistryResult<PulledManifest> {
        let local = self.metadata().get_manifest(repo, reference).await?;
        let counters = &self.metrics().proxy;
        if let Some(stored) = &local {
            let fresh = match reference {
                Reference::Digest(_) => true,
                Reference::Tag(tag) => proxy.is_fresh(repo, tag),
            };
            if fresh {
                counters.record_hit();
                return PulledManifest::from_stored(stored.clone(), false)
                    .inspect(|served| proxy.parents.note(repo, served));
            }
        }
        let upstream_repo = proxy.upstream_repo(repo)?;
        let local_digest = local.as_ref().map(|m| m.digest.clone());
        let work = {
            let registry = self.clone();
            let proxy = Arc::clone(proxy);
            let repo = repo.clone();
            let reference = reference.clone();
            async move {
                registry
                    .fetch_manifest(&proxy, &repo, &upstream_repo, &reference, local_digest)
                    .await
            }
        };
        let outcome = proxy
            .manifests
            .run((repo.clone(), reference.to_string()), work)
            .await
            .unwrap_or(Err(FetchError::Aborted));
        match (outcome, local) {
            (Ok((manifest, fetched)), _) => {
                match fetched {
                    true => counters.record_miss(),
                    false => counters.record_hit(),
                }
                proxy.parents.note(repo, &manifest);
                Ok(manifest)
            }
            // The upstream is authoritative when it answers: a tag gone
            // there is gone here.
            (Err(FetchError::NotFound), _) => Err(RegistryError::ManifestUnknown {
                repository: repo.clone(),
                reference: reference.clone(),
            }),
            (Err(e @ (FetchError::Upstream(_) | FetchError::Aborted)), Some(stored)) => {
                counters.record_stale();
                tracing::warn!(namespace = %proxy.config.namespace, repository = %repo,
                    reference = %reference, upstream = %proxy.config.upstream_host(),
                    error = %e, "upstream failed; serving the cached manifest (stale)");
                PulledManifest::from_stored(stored, true)
                    .inspect(|served| proxy.parents.note(repo, served))
            }
            (Err(e), _) => {
                counters.record_error();
                let unknown = RegistryError::ManifestUnknown {
                    repository: repo.clone(),
                    reference: reference.clone(),
                };
                Err(proxy.refusal(e, unknown))
            }
        }
    }

    /// Revalidates a cached tag (a `HEAD`), or fetches and stores the
    /// manifest when it is not cached or moved.
    async fn fetch_manifest(
        &self,
        proxy: &ProxyNamespace,
        repo: &RepositoryName,
        upstream_repo: &RepositoryName,
        reference: &Reference,
        local: Option<Digest>,
    ) -> ManifestOutcome {
        let client = &proxy.client;
        if let (Reference::Tag(tag), Some(local)) = (reference, &local) {
            match client.manifest_digest(upstream_repo, reference).await {
                Ok(Some(current)) if current == *local => {
                    proxy.mark_fresh(repo, tag);
                    let stored = self
                        .metadata()
                        .get_manifest(repo, &Reference::Digest(current))
                        .await
                        .map_err(FetchError::stored)?;
                    if let Some(stored) = stored {
                        let manifest = PulledManifest::from_stored(stored, false)
                            .map_err(|e| FetchError::local(e.to_string()))?;
                        return Ok((manifest, false));
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) => return Err(FetchError::NotFound),
                // A `HEAD` without `Docker-Content-Digest` (optional in
                // the spec): the `GET` below says which manifest it is.
                Err(crate::client::ClientError::Protocol { .. }) => {}
                Err(e) => return Err(FetchError::of_client(e)),
            }
        }
        let fetched = client
            .get_manifest(upstream_repo, reference)
            .await
            .map_err(FetchError::of_client)?;
        let manifest = self
            .store_proxied_manifest(proxy, repo, reference, fetched)
            .await?;
        match reference {
            Reference::Tag(tag) => proxy.mark_fresh(repo, tag),
            Reference::Digest(digest) => self.list_in_parent(proxy, repo, digest).await,
        }
        Ok((manifest, true))
    }

    /// Stores a manifest fetched from the upstream as a push would (same
    /// store call: blob links, tag history, usage), tagged when fetched by
    /// tag. Its blobs are linked before they are stored (they are fetched
    /// when asked for); an index lists the children already cached (see
    /// [`super::children`]).
    async fn store_proxied_manifest(
        &self,
        proxy: &ProxyNamespace,
        repo: &RepositoryName,
        reference: &Reference,
        fetched: crate::client::Manifest,
    ) -> Result<PulledManifest, FetchError> {
        // The client read no more than the registry's manifest limit.
        let manifest = Manifest::parse(Some(&fetched.media_type), &fetched.bytes)
            .map_err(|e| FetchError::upstream(format!("the upstream's manifest: {e}")))?;
        let kind = ManifestKind::from_media_type(manifest.media_type())
            .ok_or_else(|| FetchError::upstream("the upstream's manifest has an unknown kind"))?;
        self.ensure_proxy_namespace(proxy)
            .await
            .map_err(|e| FetchError::local(e.to_string()))?;
        // Children cached before their index (pulled by digest, or kept
        // from an earlier index) are listed at once.
        let children = match kind.is_index() {
            true => self
                .cached_children(repo, &manifest)
                .await
                .map_err(FetchError::stored)?,
            false => Vec::new(),
        };
        let tag = reference.as_tag().cloned();
        let record = proxy.cached_record(
            repo,
            &fetched.digest,
            &manifest,
            fetched.bytes.clone(),
            tag.clone(),
            children,
        );
        let stored = match self.put_cached_manifest(proxy, record).await {
            // A child pruned between the check and the put: stored without
            // children (it is listed when fetched again).
            Err(StorageError::ManifestMissing { .. }) => {
                let record = proxy.cached_record(
                    repo,
                    &fetched.digest,
                    &manifest,
                    fetched.bytes.clone(),
                    tag,
                    Vec::new(),
                );
                self.put_cached_manifest(proxy, record).await
            }
            stored => stored,
        };
        stored.map_err(FetchError::stored)?;
        tracing::info!(target: "audit", actor = %format!("system:proxy:{}", proxy.config.namespace),
            repository = %repo, digest = %fetched.digest, reference = %reference,
            "manifest cached from upstream");
        Ok(PulledManifest {
            digest: fetched.digest,
            kind,
            bytes: fetched.bytes,
            stale: false,
        })
    }

    /// Creates the proxy namespace if it is missing (removed by an admin
    /// since start-up).
    pub(crate) async fn ensure_proxy_namespace(
        &self,
        proxy: &ProxyNamespace,
    ) -> RegistryResult<()> {
        let ns = &proxy.config.namespace;
        if self.metadata().namespace_exists(ns).await? {
            return Ok(());
        }
        match self.metadata().create_namespace(ns).await {
            Ok(()) | Err(StorageError::AlreadyExists { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Size of a blob of a proxy namespace: from the store when cached,
    /// else the upstream's `HEAD`.
    pub(crate) async fn proxy_stat_blob(
        &self,
        proxy: &ProxyNamespace,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> RegistryResult<BlobInfo> {
        let counters = &self.metrics().proxy;
        if let Some(info) = self.cached_blob(proxy, repo, digest).await? {
            counters.record_hit();
            return Ok(info);
        }
        let unknown = || RegistryError::BlobUnknown {
            repository: repo.clone(),
            digest: digest.clone(),
        };
        let upstream_repo = proxy.upstream_repo(repo)?;
        match proxy.client.blob_size(&upstream_repo, digest).await {
            Ok(Some(size)) => {
                counters.record_miss();
                Ok(BlobInfo {
                    digest: digest.clone(),
                    size,
                    modified: None,
                })
            }
            Ok(None) => Err(unknown()),
            Err(e) => {
                counters.record_error();
                Err(proxy.refusal(FetchError::of_client(e), unknown()))
            }
        }
    }

    /// A blob of a proxy namespace, or `range` of it: from the store when
    /// cached; else streamed from the upstream while stored (the whole
    /// blob), or, for a range or while another request fetches it, served
    /// from the store once the fetch ended.
    pub(crate) async fn proxy_get_blob(
        &self,
        proxy: &ProxyNamespace,
        repo: &RepositoryName,
        digest: &Digest,
        range: Option<crate::service::BlobRange>,
    ) -> RegistryResult<BlobBody> {
        let unknown = || RegistryError::BlobUnknown {
            repository: repo.clone(),
            digest: digest.clone(),
        };
        let counters = &self.metrics().proxy;
        if self.cached_blob(proxy, repo, digest).await?.is_some() {
            counters.record_hit();
            return self.serve_blob(repo, digest, range).await;
        }
        let upstream_repo = proxy.upstream_repo(repo)?;
        let waiting = match proxy.blobs.join(repo, digest) {
            Joined::Follower(rx) => rx,
            Joined::Leader(leader) => {
                // Finished by another request between the check and the join.
                if self.cached_blob(proxy, repo, digest).await?.is_some() {
                    leader.finish(Ok(()));
                    counters.record_hit();
                    return self.serve_blob(repo, digest, range).await;
                }
                counters.record_miss();
                let rx = leader.subscribe();
                let with_client = range.is_none();
                let started = self
                    .start_blob_fetch(proxy, repo, &upstream_repo, digest, leader, with_client)
                    .await;
                match started {
                    Ok(Some(body)) => return Ok(body),
                    Ok(None) => {}
                    Err(e) => {
                        counters.record_error();
                        return Err(proxy.refusal(e, unknown()));
                    }
                }
                rx.ok_or_else(|| RegistryError::internal("blob fetch ended before it started"))?
            }
        };
        match tee::wait(waiting, self.limits().body_idle_timeout).await {
            Ok(()) => self.serve_blob(repo, digest, range).await,
            Err(e) => Err(proxy.refusal(e, unknown())),
        }
    }

    /// Whether a blob of `size` bytes announced by the upstream may be
    /// fetched into `repo`: within [`ProxyConfig::max_blob_bytes`] and
    /// what is left of the namespace's quota, when it has one.
    ///
    /// [`ProxyConfig::max_blob_bytes`]: super::ProxyConfig::max_blob_bytes
    async fn check_fetch_size(
        &self,
        proxy: &ProxyNamespace,
        repo: &RepositoryName,
        size: u64,
    ) -> Result<(), FetchError> {
        let policy = self
            .policy_of(repo)
            .await
            .map_err(|e| FetchError::local(e.to_string()))?;
        if let Some(limit) = policy.quota_bytes {
            let namespace = repo.to_namespace();
            let usage = self
                .metadata()
                .namespace_usage(&namespace)
                .await
                .map_err(FetchError::stored)?
                .bytes;
            if size > limit.saturating_sub(usage) {
                return Err(FetchError::OverQuota {
                    namespace,
                    usage,
                    limit,
                    needed: size,
                });
            }
        }
        let max = proxy.config.max_blob_bytes;
        if size > max {
            return Err(FetchError::upstream(format!(
                "the upstream's blob is {size} bytes, more than the {max} this proxy fetches"
            )));
        }
        Ok(())
    }

    /// Asks the upstream for the blob and starts the tee; the client's body
    /// when `with_client` (else the fetch runs for the store alone).
    pub(super) async fn start_blob_fetch(
        &self,
        proxy: &ProxyNamespace,
        repo: &RepositoryName,
        upstream_repo: &RepositoryName,
        digest: &Digest,
        leader: tee::Leader,
        with_client: bool,
    ) -> Result<Option<BlobBody>, FetchError> {
        // Taken before the bytes are stored, as a push does: a prune that
        // starts deleting the blob meanwhile makes the link fail.
        let ticket = match self.metadata().blob_ticket(digest).await {
            Ok(ticket) => ticket,
            Err(e) => {
                let e = FetchError::stored(e);
                leader.finish(Err(e.clone()));
                return Err(e);
            }
        };
        let response = match proxy.client.pull_blob_response(upstream_repo, digest).await {
            Ok(response) => response,
            Err(e) => {
                let e = FetchError::of_client(e);
                leader.finish(Err(e.clone()));
                return Err(e);
            }
        };
        // The client is told the size before the bytes arrive.
        let Some(size) = response.content_length() else {
            let e = FetchError::upstream("the upstream sent a blob without a Content-Length");
            leader.finish(Err(e.clone()));
            return Err(e);
        };
        // Refused before the body is read (dropping the answer closes the
        // connection): an upstream cannot fill the disk past what the
        // namespace may hold.
        if let Err(e) = self.check_fetch_size(proxy, repo, size).await {
            leader.finish(Err(e.clone()));
            return Err(e);
        }
        let tee = Tee {
            registry: self.clone(),
            repo: repo.clone(),
            digest: digest.clone(),
            ticket,
            leader,
            client_idle: self.limits().body_idle_timeout,
            upstream: proxy.config.upstream_host(),
            size,
            min_rate: proxy.config.min_fetch_rate,
            window: proxy.config.read_timeout,
        };
        let stream = tee.start(response.bytes_stream(), with_client);
        Ok(stream.map(|stream| BlobBody {
            total_size: size,
            range: (0, size),
            stream,
        }))
    }
}
