//! Listings over HTTP: tags, the catalog and referrers, paged with `n`,
//! `last` and `Link`.

use axum::body::Body;
use axum::http::{header, StatusCode};
use axum::response::Response;
use registry_core::{media_type, Descriptor, Digest, RepositoryName, Tag};
use serde::Serialize;

use super::error::{ApiError, ApiResult};
use super::util::{header_value, page_size, query_get, OCI_FILTERS_APPLIED};
use crate::model::distribution::{Catalog, ReferrersIndex, TagList};
use crate::service::{Caller, Registry, RegistryError};

fn json_response(
    status: StatusCode,
    content_type: &str,
    value: &impl Serialize,
) -> ApiResult<Response> {
    let body = serde_json::to_vec(value).map_err(ApiError::internal)?;
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, header_value(content_type))
        .header(header::CONTENT_LENGTH, body.len())
        .body(Body::from(body))
        .map_err(ApiError::internal)
}

/// Adds `Link: <url>; rel="next"` when a page was full. `extra` query
/// pairs (a filter) are carried over to the next page.
fn with_next(
    mut response: Response,
    path: &str,
    n: usize,
    last: Option<&str>,
    extra: &[(&str, &str)],
) -> Response {
    if let Some(last) = last {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        query
            .append_pair("n", &n.to_string())
            .append_pair("last", last);
        for (k, v) in extra {
            query.append_pair(k, v);
        }
        let query = query.finish();
        response.headers_mut().insert(
            header::LINK,
            header_value(format!("<{path}?{query}>; rel=\"next\"")),
        );
    }
    response
}

/// The `last` query parameter, parsed (absent or empty: `None`).
fn last_param<T: std::str::FromStr>(query: &[(String, String)]) -> Result<Option<T>, RegistryError>
where
    T::Err: std::fmt::Display,
{
    match query_get(query, "last").filter(|l| !l.is_empty()) {
        Some(l) => l
            .parse()
            .map(Some)
            .map_err(|e| RegistryError::invalid(format!("last={l:?}"), e)),
        None => Ok(None),
    }
}

/// `GET /v2/<name>/tags/list?n=&last=`.
pub(crate) async fn tags(
    registry: &Registry,
    caller: &Caller,
    repo: &RepositoryName,
    query: &[(String, String)],
) -> ApiResult<Response> {
    let n = page_size(query)?;
    let last: Option<Tag> = last_param(query)?;
    let page = registry.list_tags(caller, repo, last.as_ref(), n).await?;
    let body = TagList::new(repo.clone(), page.items);
    let response = json_response(StatusCode::OK, "application/json", &body)?;
    Ok(with_next(
        response,
        &format!("/v2/{repo}/tags/list"),
        page.n,
        page.next.as_deref(),
        &[],
    ))
}

/// `GET /v2/_catalog?n=&last=`, showing only repositories the caller may
/// pull from. `last` is an opaque cursor, as in Distribution.
pub(crate) async fn catalog(
    registry: &Registry,
    caller: &Caller,
    query: &[(String, String)],
) -> ApiResult<Response> {
    let n = page_size(query)?;
    let last = query_get(query, "last").filter(|l| !l.is_empty());
    let page = registry.catalog(caller, last, n).await?;
    let body = Catalog::new(page.items);
    let response = json_response(StatusCode::OK, "application/json", &body)?;
    Ok(with_next(
        response,
        "/v2/_catalog",
        page.n,
        page.next.as_deref(),
        &[],
    ))
}

/// `GET /v2/<name>/referrers/<digest>?artifactType=&n=&last=`: an OCI index
/// of the manifests whose subject is `digest`, by digest, a page at a time
/// (`n` defaults to and is capped by `Limits::max_page`).
pub(crate) async fn referrers(
    registry: &Registry,
    caller: &Caller,
    repo: &RepositoryName,
    subject: &Digest,
    query: &[(String, String)],
) -> ApiResult<Response> {
    let filter = query_get(query, "artifactType").filter(|a| !a.is_empty());
    let n = page_size(query)?;
    let last: Option<Digest> = last_param(query)?;
    let page = registry
        .referrers(caller, repo, subject, filter, last.as_ref(), n)
        .await?;
    let (n, next) = (page.n, page.next);
    let manifests: Vec<Descriptor> = page
        .items
        .into_iter()
        .map(|r| Descriptor {
            media_type: r.media_type,
            digest: r.digest,
            size: r.size,
            artifact_type: r.artifact_type,
            annotations: r.annotations,
            platform: None,
            urls: Vec::new(),
        })
        .collect();
    let body = ReferrersIndex::new(manifests);
    let mut response = json_response(StatusCode::OK, media_type::OCI_INDEX, &body)?;
    if filter.is_some() {
        response
            .headers_mut()
            .insert(OCI_FILTERS_APPLIED, header_value("artifactType"));
    }
    // The distribution spec lets a registry page referrers with a `Link`
    // to the next page; the filter goes with it.
    let extra: Vec<(&str, &str)> = filter.map(|f| ("artifactType", f)).into_iter().collect();
    Ok(with_next(
        response,
        &format!("/v2/{repo}/referrers/{subject}"),
        n,
        next.as_deref(),
        &extra,
    ))
}
