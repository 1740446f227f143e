//! Manifests: read by tag or digest, put (with the tags it gets), delete.

use bytes::Bytes;
use registry_auth::{Action, Resource};
use registry_core::{Algorithm, Digest, Manifest, ManifestKind, Reference, RepositoryName, Tag};
use registry_storage::{
    EventType, NamespacePolicy, NewEvent, NewManifest, StorageError, StoredManifest, TagRecord,
};

use super::{Caller, Registry, RegistryError, RegistryResult};

/// A manifest as stored: the exact bytes pushed, and what they are.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PulledManifest {
    /// The digest of `bytes`.
    pub digest: Digest,
    /// What kind of manifest it is (its media type).
    pub kind: ManifestKind,
    /// The bytes, exactly as pushed.
    pub bytes: Bytes,
    /// Served from a proxy namespace's cache because its upstream failed
    /// while the tag was due for revalidation (the HTTP layer adds a
    /// `Warning: 110` header).
    pub stale: bool,
}

impl PulledManifest {
    /// A stored manifest as served; `stale` as the field says. Only
    /// accepted kinds are stored: another media type is corruption.
    pub(crate) fn from_stored(stored: StoredManifest, stale: bool) -> RegistryResult<Self> {
        let kind = ManifestKind::from_media_type(&stored.media_type).ok_or_else(|| {
            RegistryError::internal(format!(
                "stored manifest {} has unknown media type {:?}",
                stored.digest, stored.media_type
            ))
        })?;
        Ok(PulledManifest {
            digest: stored.digest,
            kind,
            bytes: stored.bytes,
            stale,
        })
    }
}

/// What [`Registry::put_manifest`] stored.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ManifestPushed {
    /// The manifest's digest.
    pub digest: Digest,
    /// The manifest it refers to (signatures, SBOMs), if any.
    pub subject: Option<Digest>,
    /// The tags now pointing at it.
    pub tags: Vec<Tag>,
}

impl Registry {
    /// Looks a manifest up; `RepositoryUnknown` when the repository does
    /// not exist.
    async fn load_manifest(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
    ) -> RegistryResult<StoredManifest> {
        if let Some(m) = self.metadata().get_manifest(repo, reference).await? {
            return Ok(m);
        }
        if self.metadata().repository(repo).await?.is_none() {
            return Err(RegistryError::RepositoryUnknown(repo.clone()));
        }
        Err(RegistryError::ManifestUnknown {
            repository: repo.clone(),
            reference: reference.clone(),
        })
    }

    /// A manifest by tag or digest (needs pull): a pull, recorded as an
    /// event for the webhooks that want pulls.
    pub async fn get_manifest(
        &self,
        caller: &Caller,
        repo: &RepositoryName,
        reference: &Reference,
    ) -> RegistryResult<PulledManifest> {
        let m = self.find_manifest(caller, repo, reference).await?;
        self.pulled(caller, repo, reference, &m).await;
        Ok(m)
    }

    /// What [`get_manifest`](Self::get_manifest) would serve, for a `HEAD`:
    /// the same checks, but not a pull (clients check a tag with `HEAD`
    /// before deciding to pull), so no event.
    pub async fn head_manifest(
        &self,
        caller: &Caller,
        repo: &RepositoryName,
        reference: &Reference,
    ) -> RegistryResult<PulledManifest> {
        self.find_manifest(caller, repo, reference).await
    }

    async fn find_manifest(
        &self,
        caller: &Caller,
        repo: &RepositoryName,
        reference: &Reference,
    ) -> RegistryResult<PulledManifest> {
        self.authorize(caller, Action::Pull, &Resource::Repository(repo))?;
        if let Some(proxy) = self.proxy_of(repo) {
            return self.proxy_get_manifest(proxy, repo, reference).await;
        }
        let stored = self.load_manifest(repo, reference).await?;
        PulledManifest::from_stored(stored, false)
    }

    /// Records a pull when some webhook wants the namespace's pulls (a
    /// cached flag: no store round trip when none does).
    async fn pulled(
        &self,
        caller: &Caller,
        repo: &RepositoryName,
        reference: &Reference,
        pulled: &PulledManifest,
    ) {
        let ns = repo.to_namespace();
        match self.events() {
            Some(events) if events.wants_pulls(&ns).await => {}
            _ => return,
        }
        let tags: Vec<&str> = reference.as_tag().map(Tag::as_str).into_iter().collect();
        let data = serde_json::json!({
            "repository": repo.as_str(),
            "tags": tags,
            "digest": pulled.digest.as_str(),
            "media_type": pulled.kind.media_type(),
            "size": pulled.bytes.len(),
        });
        let subject = format!("{repo}{}", reference_suffix(reference));
        self.record_event(caller, EventType::ManifestPulled, Some(&ns), subject, data)
            .await;
    }

    /// Stores a manifest under `reference` (needs push): the bytes as
    /// given, once everything they reference is in `repo`. A tag
    /// reference and every tag of `extra_tags` then point at it; a digest
    /// reference must be the digest of the bytes. `content_type` is the
    /// media type the client declared, checked against the document.
    pub async fn put_manifest(
        &self,
        caller: &Caller,
        repo: &RepositoryName,
        reference: &Reference,
        content_type: Option<&str>,
        bytes: Bytes,
        extra_tags: &[Tag],
    ) -> RegistryResult<ManifestPushed> {
        self.authorize(caller, Action::Push, &Resource::Repository(repo))?;
        self.refuse_proxy_writes(repo)?;
        self.ensure_namespace(caller, repo).await?;
        let limit = self.limits().max_manifest_bytes;
        if bytes.len() > limit {
            return Err(RegistryError::ManifestTooLarge { limit });
        }
        let manifest = Manifest::parse(content_type, &bytes)
            .map_err(|e| RegistryError::ManifestInvalid(e.to_string()))?;
        // Before any lookup: accepting a manifest costs store work per reference.
        let references = manifest.reference_count();
        let max_references = self.limits().max_manifest_references;
        if references > max_references {
            return Err(RegistryError::ManifestInvalid(format!(
                "manifest references {references} descriptors (config, layers, manifests, \
                 subject); this registry accepts at most {max_references}"
            )));
        }
        let algorithm = reference
            .as_digest()
            .map_or(Algorithm::Sha256, Digest::algorithm);
        let digest = Digest::of(algorithm, &bytes);
        if let Some(expected) = reference.as_digest() {
            if expected != &digest {
                return Err(RegistryError::DigestMismatch {
                    expected: expected.clone(),
                    actual: digest,
                });
            }
        }
        let mut tags: Vec<Tag> = reference.as_tag().cloned().into_iter().collect();
        for tag in extra_tags {
            if !tags.contains(tag) {
                tags.push(tag.clone());
            }
        }
        // Independent reads: side by side.
        let (policy, ()) =
            tokio::try_join!(self.policy_of(repo), self.check_references(repo, &manifest))?;
        let fixed_tags: Vec<Tag> = tags
            .iter()
            .filter(|t| policy.immutable_rule(t).is_some())
            .cloned()
            .collect();
        let subject = manifest.subject.as_ref().map(|s| s.digest.clone());
        let (events, tag_moved) = self.push_events(
            caller,
            repo,
            &digest,
            manifest.media_type(),
            bytes.len(),
            &tags,
        );
        let record = NewManifest {
            tags: tags.clone(),
            fixed_tags,
            events: events.clone(),
            tag_moved: tag_moved.clone(),
            ..manifest_record(repo, &digest, &manifest, bytes, caller.actor())
        };
        match self.metadata().put_manifest(record).await {
            Ok(moved) => {
                let mut raised: Vec<NewEvent> = tag_moved
                    .into_iter()
                    .filter(|(tag, _)| moved.iter().any(|m| &m.tag == tag))
                    .map(|(_, event)| event)
                    .collect();
                raised.extend(events);
                self.raised(&raised);
                tracing::info!(target: "audit", actor = %caller.subject(), repository = %repo,
                    digest = %digest, tags = ?tags, "manifest pushed");
                Ok(ManifestPushed {
                    digest,
                    subject,
                    tags,
                })
            }
            Err(StorageError::TagImmutable { tag, current }) => Err(immutable_refusal(
                caller,
                repo,
                &policy,
                tag,
                Some(current),
                "push",
            )),
            // A prune's retention removed a child after `check_references`
            // saw it.
            Err(StorageError::ManifestMissing { digest }) => {
                Err(RegistryError::ManifestReferenceUnknown(format!(
                    "manifest {digest} is not in repository {repo} (removed by retention); \
                     push it again"
                )))
            }
            // A prune deleted a blob after `check_references` saw it.
            Err(StorageError::BlobDeleted { digest }) => {
                Err(RegistryError::ManifestReferenceUnknown(format!(
                    "blob {digest} was deleted by garbage collection; push it again"
                )))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes by digest the manifest and its tags, by tag only the tag
    /// (needs delete). The move is recorded in tag history as the caller's.
    pub async fn delete_manifest(
        &self,
        caller: &Caller,
        repo: &RepositoryName,
        reference: &Reference,
    ) -> RegistryResult<()> {
        self.authorize(caller, Action::Delete, &Resource::Repository(repo))?;
        self.refuse_proxy_writes(repo)?;
        let policy = self.policy_of(repo).await?;
        // A tag a rule protects is refused here; an image such a tag points
        // at is refused by the store, under its write lock, so a tag moved
        // there meanwhile is protected too.
        if let Reference::Tag(tag) = reference {
            if policy.immutable_rule(tag).is_some() {
                return Err(immutable_refusal(
                    caller,
                    repo,
                    &policy,
                    tag.clone(),
                    None,
                    "delete",
                ));
            }
        }
        let actor = caller.actor();
        let ns = repo.to_namespace();
        let (event_type, subject, data) = match reference {
            Reference::Digest(d) => (
                EventType::ManifestDeleted,
                format!("{repo}@{d}"),
                serde_json::json!({ "repository": repo.as_str(), "digest": d.as_str() }),
            ),
            Reference::Tag(t) => (
                EventType::TagDeleted,
                format!("{repo}:{t}"),
                serde_json::json!({ "repository": repo.as_str(), "tags": [t.as_str()] }),
            ),
        };
        let events = self.raise(caller, event_type, Some(&ns), subject, data);
        let result = match reference {
            Reference::Digest(d) => {
                self.metadata()
                    .delete_manifest_raising(repo, d, &actor, events.clone())
                    .await
            }
            Reference::Tag(t) => {
                self.metadata()
                    .delete_tag_raising(repo, t, &actor, events.clone())
                    .await
            }
        };
        match result {
            Ok(()) => {
                self.raised(&events);
                tracing::info!(target: "audit", actor = %caller.subject(), repository = %repo,
                    reference = %reference, "manifest deleted");
                Ok(())
            }
            Err(StorageError::TagImmutable { tag, current }) => Err(immutable_refusal(
                caller,
                repo,
                &policy,
                tag,
                Some(current),
                "delete",
            )),
            Err(StorageError::NotFound { .. }) => {
                self.load_manifest(repo, reference).await?;
                Err(RegistryError::ManifestUnknown {
                    repository: repo.clone(),
                    reference: reference.clone(),
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes an ImageStream (a repository) with its tags, manifests and
    /// blob links (needs delete: registry-admin); refused while an
    /// immutable-tags rule protects one of its tags. Its blobs become
    /// garbage for the next prune.
    pub async fn delete_image_stream(
        &self,
        caller: &Caller,
        repo: &RepositoryName,
    ) -> RegistryResult<()> {
        self.authorize(caller, Action::Delete, &Resource::Repository(repo))?;
        let policy = self.policy_of(repo).await?;
        if let Some((record, rule)) = self.protected_tag(repo, &policy).await? {
            return Err(RegistryError::TagImmutable {
                repository: repo.clone(),
                tag: record.tag,
                rule,
                current: Some(record.digest),
            });
        }
        let events = self.raise(
            caller,
            EventType::ImageStreamDeleted,
            Some(&repo.to_namespace()),
            repo.as_str(),
            serde_json::json!({ "repository": repo.as_str() }),
        );
        match self
            .metadata()
            .delete_repository_raising(repo, events.clone())
            .await
        {
            Ok(()) => self.raised(&events),
            Err(StorageError::NotFound { .. }) => {
                return Err(RegistryError::RepositoryUnknown(repo.clone()))
            }
            Err(e) => return Err(e.into()),
        }
        tracing::info!(target: "audit", actor = %caller.subject(), repository = %repo,
            "image stream deleted");
        Ok(())
    }

    /// The events of a push: `manifest.pushed` with every tag, and a
    /// `tag.moved` for each tag, which the store records only if the push
    /// moves that tag from another manifest (decided in its transaction).
    fn push_events(
        &self,
        caller: &Caller,
        repo: &RepositoryName,
        digest: &Digest,
        media_type: &str,
        size: usize,
        tags: &[Tag],
    ) -> (Vec<NewEvent>, Vec<(Tag, NewEvent)>) {
        if self.events().is_none() {
            return (Vec::new(), Vec::new());
        }
        let ns = repo.to_namespace();
        let mut tag_moved = Vec::new();
        for tag in tags {
            tag_moved.extend(
                self.raise(
                    caller,
                    EventType::TagMoved,
                    Some(&ns),
                    format!("{repo}:{tag}"),
                    serde_json::json!({
                        "repository": repo.as_str(),
                        "tags": [tag.as_str()],
                        "digest": digest.as_str(),
                    }),
                )
                .into_iter()
                .map(|event| (tag.clone(), event)),
            );
        }
        let subject = match tags.first() {
            Some(tag) => format!("{repo}:{tag}"),
            None => format!("{repo}@{digest}"),
        };
        let pushed = self.raise(
            caller,
            EventType::ManifestPushed,
            Some(&ns),
            subject,
            serde_json::json!({
                "repository": repo.as_str(),
                "tags": tags.iter().map(Tag::as_str).collect::<Vec<_>>(),
                "digest": digest.as_str(),
                "media_type": media_type,
                "size": size,
            }),
        );
        (pushed, tag_moved)
    }

    /// The policy of a repository's namespace (the default one when the
    /// namespace is gone).
    pub(crate) async fn policy_of(&self, repo: &RepositoryName) -> RegistryResult<NamespacePolicy> {
        let ns = repo.to_namespace();
        match self.metadata().namespace_policy(&ns).await {
            Ok(policy) => Ok(policy),
            Err(StorageError::NotFound { .. }) => Ok(NamespacePolicy::default()),
            Err(e) => Err(e.into()),
        }
    }

    /// The first tag of `repo` that an immutable-tags rule protects, with
    /// the rule. Pages through the tags only when the policy has such rules.
    async fn protected_tag(
        &self,
        repo: &RepositoryName,
        policy: &NamespacePolicy,
    ) -> RegistryResult<Option<(TagRecord, String)>> {
        const PAGE: usize = 1000;
        if policy.immutable_tags.is_empty() {
            return Ok(None);
        }
        let mut last: Option<Tag> = None;
        loop {
            let page = self.metadata().tags(repo, last.as_ref(), PAGE).await?;
            let found = page
                .iter()
                .find_map(|r| policy.immutable_rule(&r.tag).map(|rule| (r, rule)));
            if let Some((record, rule)) = found {
                return Ok(Some((record.clone(), rule.to_string())));
            }
            match page.last() {
                Some(record) if page.len() == PAGE => last = Some(record.tag.clone()),
                _ => return Ok(None),
            }
        }
    }
}

/// `:tag` or `@digest`, as a reference follows a repository name.
fn reference_suffix(reference: &Reference) -> String {
    match reference {
        Reference::Tag(t) => format!(":{t}"),
        Reference::Digest(d) => format!("@{d}"),
    }
}

/// The refusal of a push or delete that would move or remove `tag`, which
/// an immutable-tags rule of `policy` protects, with its audit line.
fn immutable_refusal(
    caller: &Caller,
    repo: &RepositoryName,
    policy: &NamespacePolicy,
    tag: Tag,
    current: Option<Digest>,
    refused: &str,
) -> RegistryError {
    let rule = policy
        .immutable_rule(&tag)
        .map(ToString::to_string)
        .unwrap_or_default();
    tracing::warn!(target: "audit", actor = %caller.subject(), repository = %repo,
        tag = %tag, rule = %rule, "{refused} refused: immutable tag");
    RegistryError::TagImmutable {
        repository: repo.clone(),
        tag,
        rule,
        current,
    }
}

/// The store record of a parsed manifest as every way into the store makes
/// it (a push, a proxy's cache): its blobs and child manifests as
/// references, no tags and no events (the caller sets those).
pub(crate) fn manifest_record(
    repo: &RepositoryName,
    digest: &Digest,
    manifest: &Manifest,
    bytes: Bytes,
    actor: String,
) -> NewManifest {
    NewManifest {
        repository: repo.clone(),
        digest: digest.clone(),
        media_type: manifest.media_type().to_owned(),
        bytes,
        subject: manifest.subject.as_ref().map(|s| s.digest.clone()),
        // What the referrers API lists and filters on (spec: the config's
        // media type when `artifactType` is absent).
        artifact_type: manifest.referrers_artifact_type().map(str::to_owned),
        annotations: manifest.annotations.clone(),
        config: manifest.config.as_ref().map(|c| c.digest.clone()),
        blobs: manifest
            .blob_references()
            .map(|d| d.digest.clone())
            .collect(),
        children: manifest
            .manifest_references()
            .map(|d| d.digest.clone())
            .collect(),
        tags: Vec::new(),
        fixed_tags: Vec::new(),
        actor,
        events: Vec::new(),
        tag_moved: Vec::new(),
    }
}
