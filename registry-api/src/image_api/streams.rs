//! ImageStreams and ImageStreamTags of a namespace.

use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use registry_auth::Action;
use registry_core::{ErrorCode, RepositoryName, Tag};

use super::model::{
    ImageStream, ImageStreamList, ImageStreamStatus, ImageStreamTag, ListMeta, NamedTagEventList,
    ObjectMeta, TagHistoryItem, TagItem, API_VERSION,
};
use super::{
    bad_query, json_page, parse_namespace, parse_repository, pull_host, rfc3339, Access, PREFIX,
};
use crate::error::{ApiError, ApiResult};
use crate::http_util::{page_size, query_get, query_pairs};
use crate::state::Registry;

/// `GET /apis/image/v1/namespaces/{ns}/imagestreams?n=&last=`: the
/// ImageStreams of a namespace, by name; `last` is an ImageStream name.
pub(super) async fn list(
    State(registry): State<Registry>,
    Path(ns): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let ns = parse_namespace(&ns)?;
    let access = Access::of(&registry, &headers).await?;
    access.require(&headers, Action::ListImageStreams, &ns)?;
    let query = query_pairs(query.as_deref());
    let n = page_size(&query, registry.limits().max_page)?;
    let last = match query_get(&query, "last").filter(|l| !l.is_empty()) {
        Some(l) => {
            Some(parse_repository(&ns, l).map_err(|_| bad_query(format!("invalid last={l:?}")))?)
        }
        None => None,
    };
    let mut names = registry
        .metadata()
        .list_repositories(Some(&ns), last.as_ref(), n + 1)
        .await?;
    // Repositories imply their namespace; only an empty first page needs
    // to tell "no ImageStreams yet" from "no such namespace".
    if names.is_empty() && last.is_none() && !registry.metadata().namespace_exists(&ns).await? {
        return Err(ApiError::new(
            ErrorCode::NameUnknown,
            format!("namespace {ns} does not exist"),
        ));
    }
    let more = names.len() > n;
    names.truncate(n);
    let next = names
        .last()
        .filter(|_| more && n > 0)
        .map(|r| r.stream().to_owned());
    let host = pull_host(&registry, &headers);
    let mut items = Vec::with_capacity(names.len());
    for name in &names {
        // A repository deleted between the listing and now is skipped.
        if let Some(stream) = image_stream(&registry, &host, name).await? {
            items.push(stream);
        }
    }
    let list = ImageStreamList {
        kind: "ImageStreamList",
        api_version: API_VERSION,
        metadata: ListMeta {
            continue_from: next.clone(),
        },
        items,
    };
    Ok(json_page(
        &list,
        &format!("{PREFIX}/namespaces/{ns}/imagestreams"),
        n,
        next.as_deref(),
    ))
}

/// `GET /apis/image/v1/namespaces/{ns}/imagestreams/{name}` (`name` may
/// hold `/`): one ImageStream, 404 `NAME_UNKNOWN` when missing.
pub(super) async fn show(
    State(registry): State<Registry>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let ns = parse_namespace(&ns)?;
    let access = Access::of(&registry, &headers).await?;
    access.require(&headers, Action::ReadImageStreams, &ns)?;
    let repo = parse_repository(&ns, &name)?;
    let host = pull_host(&registry, &headers);
    match image_stream(&registry, &host, &repo).await? {
        Some(stream) => Ok(Json(stream).into_response()),
        None => Err(unknown_stream(&repo)),
    }
}

/// `GET /apis/image/v1/namespaces/{ns}/imagestreamtags/{name}:{tag}`: the
/// tag's current target and its whole history, newest first. A deleted tag
/// is still shown (with `image: null`) because its history is not lost.
pub(super) async fn tag(
    State(registry): State<Registry>,
    Path((ns, name_tag)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let ns = parse_namespace(&ns)?;
    let access = Access::of(&registry, &headers).await?;
    access.require(&headers, Action::ReadImageStreams, &ns)?;
    let (name, tag) = name_tag.rsplit_once(':').ok_or_else(|| {
        ApiError::new(
            ErrorCode::NameInvalid,
            format!("expected NAME:TAG, got {name_tag:?}"),
        )
    })?;
    let repo = parse_repository(&ns, name)?;
    let tag: Tag = tag.parse().map_err(|e| {
        ApiError::new(
            ErrorCode::ManifestInvalid,
            format!("invalid tag {tag:?}: {e}"),
        )
    })?;
    if registry.metadata().repository(&repo).await?.is_none() {
        return Err(unknown_stream(&repo));
    }
    let events = registry.metadata().tag_history(&repo, &tag).await?;
    let (Some(newest), Some(oldest)) = (events.first(), events.last()) else {
        return Err(ApiError::new(
            ErrorCode::ManifestUnknown,
            format!("tag {tag} of {repo} has never existed"),
        ));
    };
    let host = pull_host(&registry, &headers);
    let current = newest.digest.clone();
    let document = ImageStreamTag {
        kind: "ImageStreamTag",
        api_version: API_VERSION,
        metadata: ObjectMeta {
            name: format!("{}:{tag}", repo.stream()),
            namespace: Some(ns.to_string()),
            creation_timestamp: Some(rfc3339(oldest.at)),
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
            })
            .collect(),
    };
    Ok(Json(document).into_response())
}

fn unknown_stream(repo: &RepositoryName) -> ApiError {
    ApiError::new(
        ErrorCode::NameUnknown,
        format!(
            "ImageStream {} unknown in namespace {}",
            repo.stream(),
            repo.namespace()
        ),
    )
}

/// The ImageStream of `repo`, or `None` when it does not exist.
async fn image_stream(
    registry: &Registry,
    host: &str,
    repo: &RepositoryName,
) -> ApiResult<Option<ImageStream>> {
    let Some(info) = registry.metadata().repository(repo).await? else {
        return Ok(None);
    };
    let tags = registry.metadata().tags(repo).await?;
    let tags = tags
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
        kind: "ImageStream",
        api_version: API_VERSION,
        metadata: ObjectMeta {
            name: repo.stream().to_owned(),
            namespace: Some(repo.namespace().to_owned()),
            creation_timestamp: Some(rfc3339(info.created)),
        },
        status: ImageStreamStatus {
            repository: repo.clone(),
            docker_image_repository: format!("{host}/{repo}"),
            tags,
        },
    }))
}
