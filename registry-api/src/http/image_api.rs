//! The Image API (JSON) under `/apis/image/v1`: ImageStreams (the
//! repositories of a namespace), tag history, image metadata and the
//! repositories a caller may pull. Read-only. `docs/image-api.md` shows
//! every route and document; the documents are [`crate::model::image`].
//!
//! Authorization (in the service): ImageStream routes need
//! `ListImageStreams` / `ReadImageStreams` on the namespace
//! (`registry-viewer` and up); image metadata and the repository list show
//! only repositories the caller may pull. An anonymous caller without the
//! right gets 401 with a Bearer challenge, anyone else 403.

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use registry_core::{Digest, Namespace, RepositoryName, Tag};
use serde::Serialize;

use super::error::ApiResult;
use super::util::{header_value, page_size, query_get, query_pairs};
use crate::auth::{base_url, Origin};
use crate::service::{Caller, Registry, RegistryError};

/// Where the Image API lives.
const PREFIX: &str = "/apis/image/v1";

/// The Image API routes (state applied by the caller).
pub(crate) fn routes() -> Router<Registry> {
    Router::new()
        .route("/apis/image/v1/namespaces/{ns}", get(show_namespace))
        .route(
            "/apis/image/v1/namespaces/{ns}/imagestreams",
            get(list_streams),
        )
        .route(
            "/apis/image/v1/namespaces/{ns}/imagestreams/{*name}",
            get(show_stream).delete(delete_stream),
        )
        .route(
            "/apis/image/v1/namespaces/{ns}/imagestreamtags/{*name_tag}",
            get(show_tag),
        )
        .route("/apis/image/v1/images/{digest}", get(show_image))
        .route("/apis/image/v1/repositories", get(repositories))
}

/// The host (and port) clients pull from, for the pull specs: the
/// registry's base URL without its scheme.
fn pull_host(registry: &Registry, origin: &Origin) -> String {
    let base = base_url(registry, origin);
    base.split_once("://")
        .map_or(base.as_str(), |(_, host)| host)
        .to_owned()
}

fn parse_namespace(ns: &str) -> Result<Namespace, RegistryError> {
    ns.parse()
        .map_err(|e| RegistryError::invalid_name("namespace", e))
}

/// `{ns}/{stream}` as a repository name (streams may contain `/`).
fn parse_repository(ns: &Namespace, stream: &str) -> Result<RepositoryName, RegistryError> {
    RepositoryName::from_parts(ns.as_str(), stream.trim_matches('/'))
        .map_err(|e| RegistryError::invalid_name(format!("ImageStream name {stream:?}"), e))
}

/// `n` and the raw `last` of a query.
fn paging(query: Option<&str>) -> Result<(Option<usize>, Option<String>), RegistryError> {
    let query = query_pairs(query);
    let n = page_size(&query)?;
    let last = query_get(&query, "last")
        .filter(|l| !l.is_empty())
        .map(str::to_owned);
    Ok((n, last))
}

/// A JSON answer, with `Link: <path?n=&last=>; rel="next"` when a page
/// was full (the same paging as `/v2/_catalog`).
fn json_page(value: &impl Serialize, path: &str, n: usize, next: Option<&str>) -> Response {
    let mut response = Json(value).into_response();
    if let Some(last) = next {
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("n", &n.to_string())
            .append_pair("last", last)
            .finish();
        response.headers_mut().insert(
            header::LINK,
            header_value(format!("<{path}?{query}>; rel=\"next\"")),
        );
    }
    response
}

/// `GET …/namespaces/{ns}`: the namespace with its usage and quota.
async fn show_namespace(
    State(registry): State<Registry>,
    caller: Caller,
    Path(ns): Path<String>,
) -> ApiResult<Response> {
    let ns = parse_namespace(&ns)?;
    Ok(Json(registry.image_namespace(&caller, &ns).await?).into_response())
}

/// `GET …/namespaces/{ns}/imagestreams?n=&last=` (`last`: a stream name).
async fn list_streams(
    State(registry): State<Registry>,
    caller: Caller,
    origin: Origin,
    Path(ns): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    let ns = parse_namespace(&ns)?;
    let (n, last) = paging(query.as_deref())?;
    let last = match last {
        Some(l) => Some(
            parse_repository(&ns, &l)
                .map_err(|e| RegistryError::invalid(format!("last={l:?}"), e))?,
        ),
        None => None,
    };
    let host = pull_host(&registry, &origin);
    let list = registry
        .image_streams(&caller, &ns, &host, last.as_ref(), n)
        .await?;
    let next = list.metadata.continue_from.clone();
    let path = format!("{PREFIX}/namespaces/{ns}/imagestreams");
    Ok(json_page(
        &list,
        &path,
        registry.page_size(n),
        next.as_deref(),
    ))
}

/// `GET …/namespaces/{ns}/imagestreams/{name}?n=&last=` (`last`: a tag).
async fn show_stream(
    State(registry): State<Registry>,
    caller: Caller,
    origin: Origin,
    Path((ns, name)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    let ns = parse_namespace(&ns)?;
    let (n, last) = paging(query.as_deref())?;
    let repo = parse_repository(&ns, &name)?;
    let last: Option<Tag> = match last {
        Some(l) => Some(
            l.parse()
                .map_err(|e| RegistryError::invalid(format!("last={l:?}"), e))?,
        ),
        None => None,
    };
    let host = pull_host(&registry, &origin);
    let stream = registry
        .image_stream(&caller, &repo, &host, last.as_ref(), n)
        .await?;
    let next = stream.status.tags_continue.clone();
    let path = format!("{PREFIX}/namespaces/{ns}/imagestreams/{}", repo.stream());
    Ok(json_page(
        &stream,
        &path,
        registry.page_size(n),
        next.as_deref(),
    ))
}

/// `DELETE …/namespaces/{ns}/imagestreams/{name}`: the ImageStream with
/// its tags and manifests (registry-admin); its blobs go at the next prune.
async fn delete_stream(
    State(registry): State<Registry>,
    caller: Caller,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult<Response> {
    let ns = parse_namespace(&ns)?;
    let repo = parse_repository(&ns, &name)?;
    registry.delete_image_stream(&caller, &repo).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET …/namespaces/{ns}/imagestreamtags/{name}:{tag}?n=&last=` (`last`:
/// the `historyContinue` of the previous page).
async fn show_tag(
    State(registry): State<Registry>,
    caller: Caller,
    origin: Origin,
    Path((ns, name_tag)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    let ns = parse_namespace(&ns)?;
    let (name, tag) = name_tag
        .rsplit_once(':')
        .ok_or_else(|| RegistryError::invalid_name("ImageStreamTag", "expected NAME:TAG"))?;
    let repo = parse_repository(&ns, name)?;
    let tag: Tag = tag.parse().map_err(|e| RegistryError::InvalidArgument {
        what: format!("tag {tag:?}"),
        reason: format!("{e}"),
        kind: crate::service::ArgumentKind::Manifest,
    })?;
    let (n, last) = paging(query.as_deref())?;
    let before = match last {
        Some(l) => Some(l.parse::<u64>().map_err(|_| {
            RegistryError::invalid(format!("last={l:?}"), "not a history position")
        })?),
        None => None,
    };
    let host = pull_host(&registry, &origin);
    let document = registry
        .image_stream_tag(&caller, &repo, tag, &host, before, n)
        .await?;
    let next = document.history_continue.clone();
    let path = format!(
        "{PREFIX}/namespaces/{ns}/imagestreamtags/{}:{}",
        repo.stream(),
        document.tag
    );
    Ok(json_page(
        &document,
        &path,
        registry.page_size(n),
        next.as_deref(),
    ))
}

/// `GET /apis/image/v1/images/{digest}`.
async fn show_image(
    State(registry): State<Registry>,
    caller: Caller,
    Path(digest): Path<String>,
) -> ApiResult<Response> {
    let digest: Digest = digest
        .parse()
        .map_err(|e| RegistryError::invalid_digest(format!("digest {digest:?}"), e))?;
    Ok(Json(registry.image(&caller, &digest).await?).into_response())
}

/// `GET /apis/image/v1/repositories?n=&last=`.
async fn repositories(
    State(registry): State<Registry>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    let (n, last) = paging(query.as_deref())?;
    let list = registry.repositories(&caller, last.as_deref(), n).await?;
    let next = list.metadata.continue_from.clone();
    Ok(json_page(
        &list,
        &format!("{PREFIX}/repositories"),
        registry.page_size(n),
        next.as_deref(),
    ))
}
