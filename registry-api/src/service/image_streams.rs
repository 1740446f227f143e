//! The Image API's ImageStreams and ImageStreamTags of a namespace.
//! Reading them needs `ListImageStreams` / `ReadImageStreams` on the
//! namespace (`registry-viewer` and up).

use std::collections::HashSet;
use std::time::SystemTime;

use registry_auth::{Action, Resource};
use registry_core::{Digest, Namespace, RepositoryName, Tag};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::{Caller, Paged, Registry, RegistryError, RegistryResult};
use crate::model::image::{
    ImageStream, ImageStreamList, ImageStreamStatus, ImageStreamTag, ListMeta, NamedTagEventList,
    ObjectMeta, TagHistoryItem, TagItem, API_VERSION,
};

/// How many tags each ImageStream of an `ImageStreamList` shows (the rest
/// are paged on the ImageStream itself): a list page costs at most this
/// many tags per stream.
const TAGS_PER_LISTED_STREAM: usize = 100;

/// A stored time as RFC 3339 (UTC).
pub(crate) fn rfc3339(t: SystemTime) -> String {
    OffsetDateTime::from(t).format(&Rfc3339).unwrap_or_default()
}

fn unknown_stream(repo: &RepositoryName) -> RegistryError {
    RegistryError::RecordUnknown(format!(
        "ImageStream {} unknown in namespace {}",
        repo.stream(),
        repo.namespace()
    ))
}

impl Registry {
    /// The ImageStreams of `ns` after the ImageStream named `last`, by
    /// name, each with its first tags. `host` is where clients pull from
    /// (`registry.example:5000`), for the pull specs.
    pub async fn image_streams(
        &self,
        caller: &Caller,
        ns: &Namespace,
        host: &str,
        last: Option<&RepositoryName>,
        n: Option<usize>,
    ) -> RegistryResult<ImageStreamList> {
        self.authorize(caller, Action::ListImageStreams, &Resource::Namespace(ns))?;
        let n = self.page_size(n);
        let names = self
            .metadata()
            .list_repositories(Some(ns), last.map(RepositoryName::as_str), n + 1)
            .await?;
        // Repositories imply their namespace; only an empty first page
        // needs to tell "no ImageStreams yet" from "no such namespace".
        if names.is_empty() && last.is_none() && !self.metadata().namespace_exists(ns).await? {
            return Err(RegistryError::NamespaceUnknown(ns.clone()));
        }
        let page = Paged::of(names, n, |r| r.stream().to_owned());
        let mut items = Vec::with_capacity(page.items.len());
        let tags_each = TAGS_PER_LISTED_STREAM.min(self.limits().max_page);
        for name in &page.items {
            // A repository deleted between the listing and now is skipped.
            if let Some(stream) = self.stream_document(host, name, None, tags_each).await? {
                items.push(stream);
            }
        }
        Ok(ImageStreamList {
            kind: ImageStreamList::KIND.to_owned(),
            api_version: API_VERSION.to_owned(),
            metadata: ListMeta {
                continue_from: page.next,
            },
            items,
        })
    }

    /// One ImageStream with a page of its tags after `last`.
    pub async fn image_stream(
        &self,
        caller: &Caller,
        repo: &RepositoryName,
        host: &str,
        last: Option<&Tag>,
        n: Option<usize>,
    ) -> RegistryResult<ImageStream> {
        let ns = repo.to_namespace();
        self.authorize(caller, Action::ReadImageStreams, &Resource::Namespace(&ns))?;
        let n = self.page_size(n);
        self.stream_document(host, repo, last, n)
            .await?
            .ok_or_else(|| unknown_stream(repo))
    }

    /// A tag's current target and a page of its history, newest first,
    /// before the history position `before` (the `historyContinue` of the
    /// previous page). A deleted tag is still shown (with `image: null`):
    /// its history is not lost.
    pub async fn image_stream_tag(
        &self,
        caller: &Caller,
        repo: &RepositoryName,
        tag: Tag,
        host: &str,
        before: Option<u64>,
        n: Option<usize>,
    ) -> RegistryResult<ImageStreamTag> {
        let ns = repo.to_namespace();
        self.authorize(caller, Action::ReadImageStreams, &Resource::Namespace(&ns))?;
        let n = self.page_size(n);
        if self.metadata().repository(repo).await?.is_none() {
            return Err(unknown_stream(repo));
        }
        // The current target is the newest event, whichever page is asked for.
        let newest = match before {
            None => None,
            Some(_) => self
                .metadata()
                .tag_history(repo, &tag, None, 1)
                .await?
                .pop(),
        };
        let found = self
            .metadata()
            .tag_history(repo, &tag, before, n + 1)
            .await?;
        let Paged {
            items: events,
            next,
            ..
        } = Paged::of(found, n, |e| e.seq.to_string());
        let Some(newest) = newest.as_ref().or(events.first()) else {
            return Err(RegistryError::ManifestUnknown {
                repository: repo.clone(),
                reference: registry_core::Reference::Tag(tag),
            });
        };
        // When the tag was first set is known only on the page reaching it.
        let created = events
            .last()
            .filter(|_| next.is_none())
            .map(|e| rfc3339(e.at));
        let current = newest.digest.clone();
        // Which images of the page are gone: one store lookup for the page.
        let images: Vec<Digest> = events.iter().filter_map(|e| e.digest.clone()).collect();
        let present = self.metadata().manifests_present(repo, &images).await?;
        let gone: HashSet<&Digest> = images
            .iter()
            .zip(present)
            .filter(|(_, present)| !present)
            .map(|(d, _)| d)
            .collect();
        Ok(ImageStreamTag {
            kind: ImageStreamTag::KIND.to_owned(),
            api_version: API_VERSION.to_owned(),
            metadata: ObjectMeta {
                name: format!("{}:{tag}", repo.stream()),
                namespace: Some(ns.to_string()),
                creation_timestamp: created,
            },
            repository: repo.clone(),
            docker_image_reference: current.as_ref().map(|d| format!("{host}/{repo}@{d}")),
            image: current,
            updated: rfc3339(newest.at),
            tag,
            history: events
                .iter()
                .map(|e| TagHistoryItem {
                    image: e.digest.clone(),
                    created: rfc3339(e.at),
                    actor: e.actor.clone(),
                    pruned: e.digest.as_ref().is_some_and(|d| gone.contains(d)),
                })
                .collect(),
            history_continue: next,
        })
    }

    /// The ImageStream of `repo` with up to `n` of its tags after `last`,
    /// or `None` when it does not exist.
    async fn stream_document(
        &self,
        host: &str,
        repo: &RepositoryName,
        last: Option<&Tag>,
        n: usize,
    ) -> RegistryResult<Option<ImageStream>> {
        let Some(info) = self.metadata().repository(repo).await? else {
            return Ok(None);
        };
        let found = self
            .metadata()
            .tags(repo, last, n.saturating_add(1))
            .await?;
        let page = Paged::of(found, n, |t| t.tag.to_string());
        let tags_continue = page.next;
        let tags = page
            .items
            .into_iter()
            .map(|t| NamedTagEventList {
                items: vec![TagItem {
                    docker_image_reference: format!("{host}/{repo}@{}", t.digest),
                    image: t.digest,
                    created: rfc3339(t.updated),
                }],
                tag: t.tag,
            })
            .collect();
        Ok(Some(ImageStream {
            kind: ImageStream::KIND.to_owned(),
            api_version: API_VERSION.to_owned(),
            metadata: ObjectMeta {
                name: repo.stream().to_owned(),
                namespace: Some(repo.namespace().to_owned()),
                creation_timestamp: Some(rfc3339(info.created)),
            },
            status: ImageStreamStatus {
                repository: repo.clone(),
                docker_image_repository: format!("{host}/{repo}"),
                tags,
                tags_continue,
                usage: self.metadata().repository_usage(repo).await?.into(),
                upstream: self
                    .proxy_of(repo)
                    .and_then(|p| p.upstream_repository(repo)),
            },
        }))
    }
}
