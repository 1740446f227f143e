//! Image metadata by digest, and the repositories a caller may pull.

use std::time::SystemTime;

use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::StreamExt;
use registry_auth::NamespaceFilter;
use registry_core::{media_type, Descriptor, Digest, ErrorCode, ImageConfig, Manifest, Reference};

use super::{json_page, rfc3339, Access, PREFIX};
use crate::error::{ApiError, ApiResult};
use crate::http_util::{page_size, query_get, query_pairs};
use crate::listing;
use crate::model::image::{
    Image, ImageConfigView, ImageRepository, ListMeta, ObjectMeta, RepositoryItem, RepositoryList,
    API_VERSION,
};
use crate::state::Registry;

/// Largest config blob read for `imageConfig`. Real configs are a few KiB;
/// the cap keeps a hostile "config" from being loaded into memory.
const MAX_CONFIG_BYTES: u64 = 4 * 1024 * 1024;

/// `GET /apis/image/v1/images/{digest}`: a manifest's metadata, the
/// repositories holding it that the caller may pull (404 when none), and
/// for image manifests what their config says.
pub(super) async fn show(
    State(registry): State<Registry>,
    Path(digest): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let digest: Digest = digest.parse().map_err(|e| {
        ApiError::new(
            ErrorCode::DigestInvalid,
            format!("invalid digest {digest:?}: {e}"),
        )
    })?;
    let access = Access::of(&registry, &headers).await?;
    let reference = Reference::Digest(digest.clone());
    let mut stored = None;
    let mut created: Option<SystemTime> = None;
    let mut repositories = Vec::new();
    for repo in registry.metadata().find_manifest(&digest).await? {
        if !access.may_pull(&repo) {
            continue;
        }
        // Deleted since `find_manifest`: not a holder any more.
        let Some(manifest) = registry.metadata().get_manifest(&repo, &reference).await? else {
            continue;
        };
        let tags = registry
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
        let unknown = ApiError::new(
            ErrorCode::ManifestUnknown,
            format!("image {digest} unknown"),
        );
        return Err(access.hidden(&headers, unknown));
    };
    // The bytes were validated when pushed; failing now means corruption.
    let manifest =
        Manifest::parse(Some(&stored.media_type), &stored.bytes).map_err(ApiError::internal)?;
    let image_config = match &manifest.config {
        Some(config) => read_config(&registry, config).await?,
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
    Ok(Json(image).into_response())
}

/// Reads and parses an image config blob. `None` when the descriptor is not
/// an image config (artifacts), is too large, is not stored, or does not
/// parse: the rest of the image's metadata is still worth showing.
async fn read_config(
    registry: &Registry,
    config: &Descriptor,
) -> ApiResult<Option<ImageConfigView>> {
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
        let chunk: bytes::Bytes = chunk.map_err(ApiError::from)?;
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

/// `GET /apis/image/v1/repositories?n=&last=`: the repositories the caller
/// may pull, in lexical order, paged like `/v2/_catalog`. An anonymous
/// caller who may pull nothing gets 401 with a challenge.
pub(super) async fn repositories(
    State(registry): State<Registry>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let access = Access::of(&registry, &headers).await?;
    let query = query_pairs(query.as_deref());
    let n = page_size(&query, registry.limits().max_page)?;
    // An opaque cursor, as on `/v2/_catalog`.
    let last = query_get(&query, "last").filter(|l| !l.is_empty());
    let filter = access.visible();
    // An authenticated caller who may pull nothing sees an empty list.
    if matches!(&filter, NamespaceFilter::Only(set) if set.is_empty()) {
        if let Some(challenge) = access.anonymous_challenge(&headers) {
            return Err(challenge);
        }
    }
    let mut names = listing::visible_repositories(&registry, &filter, last, n + 1).await?;
    let more = names.len() > n;
    names.truncate(n);
    let next = names
        .last()
        .filter(|_| more && n > 0)
        .map(|r| r.to_string());
    let mut items = Vec::with_capacity(names.len());
    for name in names {
        let created = registry
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
    let list = RepositoryList {
        kind: RepositoryList::KIND.to_owned(),
        api_version: API_VERSION.to_owned(),
        metadata: ListMeta {
            continue_from: next.clone(),
        },
        items,
    };
    Ok(json_page(
        &list,
        &format!("{PREFIX}/repositories"),
        n,
        next.as_deref(),
    ))
}
