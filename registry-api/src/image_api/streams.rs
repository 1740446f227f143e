//! ImageStreams and ImageStreamTags of a namespace.

use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use registry_auth::Action;
use registry_core::{ErrorCode, RepositoryName, Tag};

use super::{
    bad_query, json_page, parse_namespace, parse_repository, pull_host, rfc3339, Access, PREFIX,
};
use crate::error::{ApiError, ApiResult};
use crate::http_util::{page_size, query_get, query_pairs};
use crate::model::image::{
    ImageStream, ImageStreamList, ImageStreamStatus, ImageStreamTag, ListMeta, NamedTagEventList,
    ObjectMeta, TagHistoryItem, TagItem, API_VERSION,
};
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
        .list_repositories(Some(&ns), last.as_ref().map(RepositoryName::as_str), n + 1)
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
    // Each listed stream shows its first tags only, so a page costs at
    // most `n` times that; the stream's own document pages the rest.
    let tags_each = TAGS_PER_LISTED_STREAM.min(registry.limits().max_page);
    for name in &names {
        // A repository deleted between the listing and now is skipped.
        if let Some(stream) = image_stream(&registry, &host, name, None, tags_each).await? {
            items.push(stream);
        }
    }
    let list = ImageStreamList {
        kind: ImageStreamList::KIND.to_owned(),
        api_version: API_VERSION.to_owned(),
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

/// `GET /apis/image/v1/namespaces/{ns}/imagestreams/{name}?n=&last=`
/// (`name` may hold `/`): one ImageStream with a page of its tags (`last`
/// is a tag), 404 `NAME_UNKNOWN` when missing.
pub(super) async fn show(
    State(registry): State<Registry>,
    Path((ns, name)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let ns = parse_namespace(&ns)?;
    let access = Access::of(&registry, &headers).await?;
    access.require(&headers, Action::ReadImageStreams, &ns)?;
    let repo = parse_repository(&ns, &name)?;
    let query = query_pairs(query.as_deref());
    let n = page_size(&query, registry.limits().max_page)?;
    let last = match query_get(&query, "last").filter(|l| !l.is_empty()) {
        Some(l) => Some(
            l.parse::<Tag>()
                .map_err(|e| bad_query(format!("invalid last={l:?}: {e}")))?,
        ),
        None => None,
    };
    let host = pull_host(&registry, &headers);
    match image_stream(&registry, &host, &repo, last.as_ref(), n).await? {
        Some(stream) => {
            let next = stream.status.tags_continue.clone();
            Ok(json_page(
                &stream,
                &format!("{PREFIX}/namespaces/{ns}/imagestreams/{}", repo.stream()),
                n,
                next.as_deref(),
            ))
        }
        None => Err(unknown_stream(&repo)),
    }
}

/// `GET /apis/image/v1/namespaces/{ns}/imagestreamtags/{name}:{tag}?n=&last=`:
/// the tag's current target and a page of its history, newest first
/// (`last` is the `historyContinue` of the previous page). A deleted tag
/// is still shown (with `image: null`) because its history is not lost.
pub(super) async fn tag(
    State(registry): State<Registry>,
    Path((ns, name_tag)): Path<(String, String)>,
    RawQuery(query): RawQuery,
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
    let query = query_pairs(query.as_deref());
    let n = page_size(&query, registry.limits().max_page)?;
    let before = match query_get(&query, "last").filter(|l| !l.is_empty()) {
        Some(l) => Some(
            l.parse::<u64>()
                .map_err(|_| bad_query(format!("invalid last={l:?}: not a history position")))?,
        ),
        None => None,
    };
    if registry.metadata().repository(&repo).await?.is_none() {
        return Err(unknown_stream(&repo));
    }
    // The current target is the newest event, whichever page is asked for.
    let newest = match before {
        None => None,
        Some(_) => registry
            .metadata()
            .tag_history(&repo, &tag, None, 1)
            .await?
            .pop(),
    };
    let mut events = registry
        .metadata()
        .tag_history(&repo, &tag, before, n + 1)
        .await?;
    let more = events.len() > n;
    events.truncate(n);
    let next = events
        .last()
        .filter(|_| more && n > 0)
        .map(|e| e.seq.to_string());
    let Some(newest) = newest.as_ref().or(events.first()) else {
        return Err(ApiError::new(
            ErrorCode::ManifestUnknown,
            format!("tag {tag} of {repo} has never existed"),
        ));
    };
    // When the tag was first set is known only on the page reaching it.
    let created = events.last().filter(|_| !more).map(|e| rfc3339(e.at));
    let host = pull_host(&registry, &headers);
    let current = newest.digest.clone();
    let document = ImageStreamTag {
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
            })
            .collect(),
        history_continue: next.clone(),
    };
    Ok(json_page(
        &document,
        &format!(
            "{PREFIX}/namespaces/{ns}/imagestreamtags/{}:{}",
            document.repository.stream(),
            document.tag
        ),
        n,
        next.as_deref(),
    ))
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

/// How many tags each ImageStream of an `ImageStreamList` shows (the rest
/// are paged on the ImageStream itself): a list page costs at most this
/// many tags per stream.
const TAGS_PER_LISTED_STREAM: usize = 100;

/// The ImageStream of `repo` with up to `n` of its tags after `last`, or
/// `None` when it does not exist.
async fn image_stream(
    registry: &Registry,
    host: &str,
    repo: &RepositoryName,
    last: Option<&Tag>,
    n: usize,
) -> ApiResult<Option<ImageStream>> {
    let Some(info) = registry.metadata().repository(repo).await? else {
        return Ok(None);
    };
    let mut tags = registry
        .metadata()
        .tags(repo, last, n.saturating_add(1))
        .await?;
    let more = tags.len() > n;
    tags.truncate(n);
    let tags_continue = tags
        .last()
        .filter(|_| more && n > 0)
        .map(|t| t.tag.to_string());
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
        },
    }))
}
