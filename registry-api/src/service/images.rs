//! The Image API's image metadata by digest, and the repositories a
//! caller may pull.

use std::time::SystemTime;

use futures::StreamExt;
use registry_auth::{Action, NamespaceFilter, Resource};
use registry_core::{
    media_type, Descriptor, Digest, ImageConfig, Manifest, Reference, RepositoryName,
};

use super::image_streams::rfc3339;
use super::{Caller, Paged, Registry, RegistryError, RegistryResult};
use crate::model::image::{
    Image, ImageConfigView, ImageRepository, ListMeta, ObjectMeta, RepositoryItem, RepositoryList,
    API_VERSION,
};

/// Largest config blob read for `imageConfig`. Real configs are a few KiB;
/// the cap keeps a hostile "config" from being loaded into memory.
const MAX_CONFIG_BYTES: u64 = 4 * 1024 * 1024;

impl Registry {
    /// A manifest's metadata by digest: the repositories holding it that
    /// the caller may pull (unknown when none), and for image manifests
    /// what their config says.
    pub async fn image(&self, caller: &Caller, digest: &Digest) -> RegistryResult<Image> {
        let digest = digest.clone();
        let reference = Reference::Digest(digest.clone());
        let mut stored = None;
        let mut created: Option<SystemTime> = None;
        let mut repositories = Vec::new();
        for repo in self.metadata().find_manifest(&digest).await? {
            if !self.allows(caller, Action::Pull, &Resource::Repository(&repo)) {
                continue;
            }
            // Deleted since `find_manifest`: not a holder any more.
            let Some(manifest) = self.metadata().get_manifest(&repo, &reference).await? else {
                continue;
            };
            let tags = self
                .metadata()
                // Not paged: which tags point here needs them all (a
                // by-digest tag lookup in the store would bound it).
                .tags(&repo, None, usize::MAX)
                .await?
                .into_iter()
                .filter(|t| t.digest == digest)
                .map(|t| t.tag)
                .collect();
            created = Some(created.map_or(manifest.created, |c| c.min(manifest.created)));
            repositories.push(ImageRepository {
                name: repo,
                tags,
                created: rfc3339(manifest.created),
            });
            stored.get_or_insert(manifest);
        }
        let Some(stored) = stored else {
            return Err(self.hidden(caller, RegistryError::ImageUnknown(digest)));
        };
        // The bytes were validated when pushed; failing now means corruption.
        let manifest = Manifest::parse(Some(&stored.media_type), &stored.bytes)
            .map_err(RegistryError::internal)?;
        let image_config = match &manifest.config {
            Some(config) => read_config(self, config).await?,
            None => None,
        };
        let image = Image {
            kind: Image::KIND.to_owned(),
            api_version: API_VERSION.to_owned(),
            metadata: ObjectMeta {
                name: digest.to_string(),
                namespace: None,
                creation_timestamp: created.map(rfc3339),
            },
            digest,
            media_type: stored.media_type,
            size: stored.bytes.len() as u64,
            artifact_type: manifest.artifact_type,
            annotations: manifest.annotations,
            subject: manifest.subject,
            repositories,
            config: manifest.config,
            layers: manifest.layers,
            manifests: manifest.manifests,
            image_config,
        };
        Ok(image)
    }
}

/// Reads and parses an image config blob. `None` when the descriptor is not
/// an image config (artifacts), is too large, is not stored, or does not
/// parse: the rest of the image's metadata is still worth showing.
async fn read_config(
    registry: &Registry,
    config: &Descriptor,
) -> RegistryResult<Option<ImageConfigView>> {
    if !matches!(
        config.media_type.as_str(),
        media_type::OCI_CONFIG | media_type::DOCKER_CONFIG
    ) || config.size > MAX_CONFIG_BYTES
    {
        return Ok(None);
    }
    let mut body = match registry.blobs().get(&config.digest, None).await {
        Ok(body) => body,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    if body.total_size > MAX_CONFIG_BYTES {
        return Ok(None);
    }
    let mut bytes = Vec::with_capacity(usize::try_from(body.len()).unwrap_or(0));
    while let Some(chunk) = body.stream.next().await {
        let chunk: bytes::Bytes = chunk?;
        if (bytes.len() + chunk.len()) as u64 > MAX_CONFIG_BYTES {
            return Ok(None);
        }
        bytes.extend_from_slice(&chunk);
    }
    match ImageConfig::parse(&bytes) {
        Ok(parsed) => Ok(Some(ImageConfigView {
            labels: parsed.labels(),
            os: parsed.os,
            architecture: parsed.architecture,
            variant: parsed.variant,
            created: parsed.created,
            author: parsed.author,
            history: parsed.history,
        })),
        Err(e) => {
            tracing::debug!(digest = %config.digest, error = %e, "image config does not parse");
            Ok(None)
        }
    }
}

impl Registry {
    /// The repositories `caller` may pull, in lexical order after the
    /// opaque cursor `last`, paged like the catalog. An anonymous caller
    /// who may pull nothing is asked to log in.
    pub async fn repositories(
        &self,
        caller: &Caller,
        last: Option<&str>,
        n: Option<usize>,
    ) -> RegistryResult<RepositoryList> {
        let n = self.page_size(n);
        let filter = self.visible_namespaces(caller);
        // An authenticated caller who may pull nothing sees an empty list.
        if matches!(&filter, NamespaceFilter::Only(set) if set.is_empty()) {
            self.require_login(caller)?;
        }
        let found = self.visible_repositories(&filter, last, n + 1).await?;
        let page = Paged::of(found, n, RepositoryName::to_string);
        let mut items = Vec::with_capacity(page.items.len());
        for name in page.items {
            let created = self
                .metadata()
                .repository(&name)
                .await?
                .map(|info| rfc3339(info.created));
            items.push(RepositoryItem {
                namespace: name.namespace().to_owned(),
                image_stream: name.stream().to_owned(),
                name,
                created,
            });
        }
        Ok(RepositoryList {
            kind: RepositoryList::KIND.to_owned(),
            api_version: API_VERSION.to_owned(),
            metadata: ListMeta {
                continue_from: page.next,
            },
            items,
        })
    }

    /// What a caller who found nothing they may see is told: to log in
    /// when they are anonymous and access control is on, else `not_found`.
    fn hidden(&self, caller: &Caller, not_found: RegistryError) -> RegistryError {
        match self.require_login(caller) {
            Err(e) => e,
            Ok(()) => not_found,
        }
    }
}
