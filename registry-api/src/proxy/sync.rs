//! Mirroring ahead of time: copy an upstream repository's matching tags
//! (manifests, an index's children for the platforms asked for, blobs)
//! into a proxy namespace through the same fetches a pull makes. What is
//! stored already is skipped, so a sync interrupted half-way resumes where
//! it stopped when run again.

use std::sync::Arc;
use std::time::Duration;

use registry_auth::{Action, Resource};
use registry_core::{Digest, Manifest, Namespace, Reference, RepositoryName, Tag};
use registry_storage::TagPattern;

use super::fetch::FetchError;
use super::tee::{self, Joined};
use super::ProxyNamespace;
use crate::model::admin::{MirrorSyncEvent, MirrorSyncRequest, SyncedTag};
use crate::service::{Caller, MaintenanceHandle, Registry, RegistryError, RegistryResult};

/// Most upstream tags one sync looks at: the upstream's list is read no
/// further (an endless one included); the glob picks among these.
pub const MAX_SYNC_TAGS: usize = 10_000;

/// A repository (and tag glob) a proxy namespace mirrors on a schedule:
/// `library/alpine:3.*`, or `library/alpine` for every tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncRule {
    /// The repository under the namespace, as the upstream names it.
    pub repository: String,
    /// Which tags; all when `None`.
    pub tags: Option<TagPattern>,
}

/// Why a [`SyncRule`] does not parse.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncRuleError {
    /// The repository part is not a repository name.
    #[error("sync rule {rule:?}: invalid repository: {source}")]
    Repository {
        /// The rule as written.
        rule: String,
        /// Why.
        #[source]
        source: registry_core::NameError,
    },
    /// The glob is not a tag pattern.
    #[error("sync rule {rule:?}: {reason}")]
    Pattern {
        /// The rule as written.
        rule: String,
        /// Why.
        reason: String,
    },
}

impl std::str::FromStr for SyncRule {
    type Err = SyncRuleError;

    fn from_str(rule: &str) -> Result<Self, Self::Err> {
        let (repository, tags) = match rule.rsplit_once(':') {
            Some((repo, glob)) => (repo, Some(glob)),
            None => (rule, None),
        };
        // Checked as a name under some namespace, as it will be used.
        RepositoryName::from_parts("ns", repository).map_err(|source| {
            SyncRuleError::Repository {
                rule: rule.to_owned(),
                source,
            }
        })?;
        let tags = tags
            .map(str::parse::<TagPattern>)
            .transpose()
            .map_err(|e| SyncRuleError::Pattern {
                rule: rule.to_owned(),
                reason: e.to_string(),
            })?;
        Ok(SyncRule {
            repository: repository.to_owned(),
            tags,
        })
    }
}

/// A sync whose caller and arguments were checked.
#[derive(Debug)]
pub(crate) struct PreparedSync {
    proxy: Arc<ProxyNamespace>,
    repo: RepositoryName,
    tags: Option<TagPattern>,
    all_platforms: bool,
}

/// The OCI name of the architecture this server runs on.
fn own_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

impl Registry {
    /// Copies the tags of `request.repository` matching `request.tags`
    /// from the upstream of proxy namespace `ns` (needs `ManagePolicy`
    /// there: registry-admin), reporting each step to `progress`; stops
    /// early when `progress` returns `false` (the client went away).
    pub async fn mirror_sync(
        &self,
        caller: &Caller,
        ns: &Namespace,
        request: &MirrorSyncRequest,
        progress: impl FnMut(MirrorSyncEvent) -> bool + Send,
    ) -> RegistryResult<()> {
        let prepared = self.prepare_mirror_sync(caller, ns, request)?;
        self.run_mirror_sync(prepared, progress).await
    }

    /// The checks of [`mirror_sync`](Self::mirror_sync), before anything
    /// is fetched (so that the HTTP layer answers them with their status).
    pub(crate) fn prepare_mirror_sync(
        &self,
        caller: &Caller,
        ns: &Namespace,
        request: &MirrorSyncRequest,
    ) -> RegistryResult<PreparedSync> {
        self.authorize(caller, Action::ManagePolicy, &Resource::Namespace(ns))?;
        let proxy = self.inner.proxies.of_namespace(ns).ok_or_else(|| {
            RegistryError::invalid("namespace", format!("{ns} is not a proxy namespace"))
        })?;
        let repo = RepositoryName::from_parts(ns.as_str(), &request.repository)
            .map_err(|e| RegistryError::invalid_name("repository", e))?;
        // A name the upstream cannot have (one component, but the upstream
        // is not Docker Hub) is refused here, before the answer starts.
        proxy.upstream_repo(&repo)?;
        let tags = request
            .tags
            .as_deref()
            .map(str::parse::<TagPattern>)
            .transpose()
            .map_err(|e| RegistryError::invalid("tags", e))?;
        tracing::info!(target: "audit", actor = %caller.subject(), repository = %repo,
            tags = ?request.tags, "mirror sync started");
        Ok(PreparedSync {
            proxy: Arc::clone(proxy),
            repo,
            tags,
            all_platforms: request.all_platforms,
        })
    }

    /// Runs a checked sync.
    pub(crate) async fn run_mirror_sync(
        &self,
        prepared: PreparedSync,
        progress: impl FnMut(MirrorSyncEvent) -> bool + Send,
    ) -> RegistryResult<()> {
        let PreparedSync {
            proxy,
            repo,
            tags,
            all_platforms,
        } = prepared;
        let mut progress = progress;
        let mut reported = false;
        let tracked = |event: MirrorSyncEvent| {
            reported |= matches!(event, MirrorSyncEvent::Failed { .. });
            progress(event)
        };
        let result = self
            .sync_repository(&proxy, &repo, tags.as_ref(), all_platforms, tracked)
            .await;
        // Whatever went wrong is said in the answer: an HTTP caller sees
        // the events only (its status was sent before the sync started).
        if let Err(e) = &result {
            if !reported {
                progress(MirrorSyncEvent::Failed {
                    message: e.to_string(),
                });
            }
        }
        result
    }

    /// The sync itself, for a caller already allowed (or the scheduler).
    async fn sync_repository(
        &self,
        proxy: &Arc<ProxyNamespace>,
        repo: &RepositoryName,
        pattern: Option<&TagPattern>,
        all_platforms: bool,
        mut progress: impl FnMut(MirrorSyncEvent) -> bool + Send,
    ) -> RegistryResult<()> {
        let upstream_repo = proxy.upstream_repo(repo)?;
        // One more than is looked at: whether the list goes on.
        let mut listed = match proxy
            .client
            .tags_up_to(&upstream_repo, MAX_SYNC_TAGS + 1)
            .await
        {
            Ok(tags) => tags,
            Err(e) => {
                let error = proxy.refusal(
                    FetchError::of_client(e),
                    RegistryError::RepositoryUnknown(repo.clone()),
                );
                progress(MirrorSyncEvent::Failed {
                    message: error.to_string(),
                });
                return Err(error);
            }
        };
        let cut = listed.len() > MAX_SYNC_TAGS;
        listed.truncate(MAX_SYNC_TAGS);
        let tags: Vec<Tag> = listed
            .into_iter()
            .filter(|t| pattern.is_none_or(|p| p.matches(t)))
            .collect();
        let started = MirrorSyncEvent::Started {
            repository: repo.clone(),
            upstream: proxy.upstream_repository(repo).unwrap_or_default(),
            tags: tags.len() as u64,
        };
        if !progress(started) {
            return Ok(());
        }
        if cut {
            // Said as a report of no tag (not counted as a failed one).
            let notice = format!(
                "the upstream lists more than {MAX_SYNC_TAGS} tags: only its first \
                 {MAX_SYNC_TAGS} were looked at (narrow the glob, or sync again later)"
            );
            tracing::warn!(repository = %repo, "mirror sync: {notice}");
            let report = SyncedTag {
                error: Some(notice),
                ..SyncedTag::default()
            };
            if !progress(MirrorSyncEvent::Tag(report)) {
                return Ok(());
            }
        }
        let (mut synced, mut failed) = (0, 0);
        let (mut fetched, mut cached, mut bytes) = (0, 0, 0);
        for tag in tags {
            let mut report = SyncedTag {
                tag: Some(tag.clone()),
                ..SyncedTag::default()
            };
            match self
                .sync_tag(
                    proxy,
                    repo,
                    &upstream_repo,
                    &tag,
                    all_platforms,
                    &mut report,
                )
                .await
            {
                Ok(()) => synced += 1,
                Err(e) => {
                    failed += 1;
                    report.error = Some(e.to_string());
                }
            }
            fetched += report.blobs_fetched;
            cached += report.blobs_cached;
            bytes += report.bytes_fetched;
            if !progress(MirrorSyncEvent::Tag(report)) {
                return Ok(());
            }
        }
        tracing::info!(repository = %repo, tags_synced = synced, tags_failed = failed,
            blobs_fetched = fetched, blobs_cached = cached, bytes_fetched = bytes,
            "mirror sync finished");
        progress(MirrorSyncEvent::Finished {
            tags_synced: synced,
            tags_failed: failed,
            blobs_fetched: fetched,
            blobs_cached: cached,
            bytes_fetched: bytes,
        });
        Ok(())
    }

    /// One tag: its manifest, an index's children for the platforms asked
    /// for, and every blob they reference.
    async fn sync_tag(
        &self,
        proxy: &Arc<ProxyNamespace>,
        repo: &RepositoryName,
        upstream_repo: &RepositoryName,
        tag: &Tag,
        all_platforms: bool,
        report: &mut SyncedTag,
    ) -> RegistryResult<()> {
        let top = self
            .proxy_get_manifest(proxy, repo, &Reference::Tag(tag.clone()))
            .await?;
        report.digest = Some(top.digest.clone());
        let mut pending = vec![top];
        while let Some(pulled) = pending.pop() {
            report.manifests += 1;
            let manifest = Manifest::parse(Some(pulled.kind.media_type()), &pulled.bytes)
                .map_err(|e| RegistryError::internal(format!("cached manifest: {e}")))?;
            let children: Vec<Digest> = manifest
                .manifest_references()
                .filter(|d| {
                    all_platforms
                        || d.platform.as_ref().is_some_and(|p| {
                            p.os == "linux" && p.architecture == own_architecture()
                        })
                })
                .map(|d| d.digest.clone())
                .collect();
            for child in children {
                let child = self
                    .proxy_get_manifest(proxy, repo, &Reference::Digest(child))
                    .await?;
                pending.push(child);
            }
            for d in manifest.blob_references() {
                if self.cached_blob(proxy, repo, &d.digest).await?.is_some() {
                    report.blobs_cached += 1;
                    continue;
                }
                let size = self
                    .fetch_blob_to_store(proxy, repo, upstream_repo, &d.digest)
                    .await?;
                report.blobs_fetched += 1;
                report.bytes_fetched += size;
            }
        }
        Ok(())
    }

    /// Fetches a blob into the store (or waits for the fetch running); its
    /// size.
    async fn fetch_blob_to_store(
        &self,
        proxy: &ProxyNamespace,
        repo: &RepositoryName,
        upstream_repo: &RepositoryName,
        digest: &Digest,
    ) -> RegistryResult<u64> {
        let unknown = || RegistryError::BlobUnknown {
            repository: repo.clone(),
            digest: digest.clone(),
        };
        let waiting = match proxy.blobs.join(repo, digest) {
            Joined::Follower(rx) => rx,
            Joined::Leader(leader) => {
                let rx = leader
                    .subscribe()
                    .ok_or_else(|| RegistryError::internal("blob fetch ended before it started"))?;
                self.metrics().proxy.record_miss();
                if let Err(e) = self
                    .start_blob_fetch(proxy, repo, upstream_repo, digest, leader, false)
                    .await
                {
                    return Err(proxy.refusal(e, unknown()));
                }
                rx
            }
        };
        tee::wait(waiting, self.limits().body_idle_timeout)
            .await
            .map_err(|e| proxy.refusal(e, unknown()))?;
        Ok(self.blobs().stat(digest).await?.ok_or_else(unknown)?.size)
    }

    /// Starts the scheduled syncs of every proxy namespace whose config has
    /// [`ProxyConfig::sync`](super::ProxyConfig::sync) rules, each every
    /// `sync_interval` (the first run right away). Failures are logged and
    /// retried at the next run. The tasks stop when the handles are
    /// dropped, or once the registry is.
    pub fn spawn_mirror_sync(&self) -> Vec<MaintenanceHandle> {
        let mut handles = Vec::new();
        for proxy in self.inner.proxies.all() {
            let (Some(every), false) = (proxy.config.sync_interval, proxy.config.sync.is_empty())
            else {
                continue;
            };
            let every = every.max(Duration::from_secs(1));
            let proxy = Arc::clone(proxy);
            handles.push(
                self.spawn_every(tokio::time::Instant::now(), every, move |registry| {
                    let proxy = Arc::clone(&proxy);
                    async move { registry.scheduled_sync(&proxy).await }
                }),
            );
        }
        handles
    }

    async fn scheduled_sync(&self, proxy: &Arc<ProxyNamespace>) {
        for rule in &proxy.config.sync {
            let ns = &proxy.config.namespace;
            let repo = match RepositoryName::from_parts(ns.as_str(), &rule.repository) {
                Ok(repo) => repo,
                Err(e) => {
                    tracing::warn!(namespace = %ns, rule = %rule.repository, error = %e,
                        "scheduled mirror sync: bad repository");
                    continue;
                }
            };
            let progress = |event: MirrorSyncEvent| {
                if let MirrorSyncEvent::Tag(t) = &event {
                    if let Some(error) = &t.error {
                        tracing::warn!(repository = %repo, tag = ?t.tag, %error,
                            "scheduled mirror sync: tag failed");
                    }
                }
                true
            };
            if let Err(e) = self
                .sync_repository(proxy, &repo, rule.tags.as_ref(), false, progress)
                .await
            {
                tracing::warn!(repository = %repo, error = %e, "scheduled mirror sync failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Any error of a sync is said in its events, even one before the
    /// first (an HTTP caller sees nothing else: the status went first).
    #[tokio::test]
    async fn an_error_before_the_first_event_is_a_failed_event() {
        let config = super::super::ProxyConfig::new(
            "quay".parse().unwrap(),
            "http://127.0.0.1:9".parse().unwrap(),
        );
        let registry = Registry::builder(registry_storage::Stores::in_memory())
            .proxy(config)
            .build()
            .await
            .unwrap();
        let proxy = Arc::clone(
            registry
                .inner
                .proxies
                .of_namespace(&"quay".parse().unwrap())
                .unwrap(),
        );
        // One component, on an upstream that is not Docker Hub: refused by
        // `prepare_mirror_sync` over HTTP, here made past it.
        let prepared = PreparedSync {
            proxy,
            repo: "quay/alpine".parse().unwrap(),
            tags: None,
            all_platforms: false,
        };
        let mut events = Vec::new();
        let result = registry
            .run_mirror_sync(prepared, |e| {
                events.push(e);
                true
            })
            .await;
        assert!(result.is_err());
        // Before: no event at all (an empty 200 answer).
        assert!(
            matches!(events.as_slice(), [MirrorSyncEvent::Failed { message }]
                if message.contains("two or more components")),
            "{events:?}"
        );
    }

    #[test]
    fn sync_rules_parse_or_say_why() {
        let r: SyncRule = "library/alpine:3.*".parse().unwrap();
        assert_eq!(r.repository, "library/alpine");
        assert_eq!(r.tags.unwrap().as_str(), "3.*");
        let r: SyncRule = "team/app".parse().unwrap();
        assert!(r.tags.is_none());
        assert!("Team/App:v1"
            .parse::<SyncRule>()
            .unwrap_err()
            .to_string()
            .contains("invalid repository"));
        assert!("team/app:v/1".parse::<SyncRule>().is_err());
    }
}
