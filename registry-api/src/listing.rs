//! Listings: tags, the catalog and referrers.

use axum::body::Body;
use axum::http::{header, StatusCode};
use axum::response::Response;
use registry_auth::NamespaceFilter;
use registry_core::{media_type, Descriptor, Digest, ErrorCode, Namespace, RepositoryName, Tag};
use registry_storage::StorageError;
use serde::Serialize;

use crate::error::{ApiError, ApiResult};
use crate::http_util::{header_value, page_size, query_get, OCI_FILTERS_APPLIED};
use crate::model::distribution::{Catalog, ReferrersIndex, TagList};
use crate::state::Registry;

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

/// `GET /v2/<name>/tags/list?n=&last=`.
pub(crate) async fn tags(
    registry: &Registry,
    repo: &RepositoryName,
    query: &[(String, String)],
) -> ApiResult<Response> {
    let n = page_size(query, registry.limits().max_page)?;
    let last = match query_get(query, "last").filter(|l| !l.is_empty()) {
        Some(l) => Some(l.parse::<Tag>().map_err(|e| {
            ApiError::new(ErrorCode::Unsupported, format!("invalid last={l:?}: {e}"))
                .with_status(StatusCode::BAD_REQUEST)
        })?),
        None => None,
    };
    if registry.metadata().repository(repo).await?.is_none() {
        return Err(ApiError::new(
            ErrorCode::NameUnknown,
            format!("repository {repo} unknown"),
        ));
    }
    let mut tags = registry
        .metadata()
        .list_tags(repo, last.as_ref(), n + 1)
        .await?;
    let more = tags.len() > n;
    tags.truncate(n);
    let next = if more && n > 0 {
        tags.last().map(|t| t.to_string())
    } else {
        None
    };
    let body = TagList::new(repo.clone(), tags);
    let response = json_response(StatusCode::OK, "application/json", &body)?;
    Ok(with_next(
        response,
        &format!("/v2/{repo}/tags/list"),
        n,
        next.as_deref(),
        &[],
    ))
}

/// `GET /v2/_catalog?n=&last=`, showing only repositories in the
/// namespaces `visible` admits. `last` is an opaque cursor, as in
/// Distribution: any string, the page holds the names sorting after it.
pub(crate) async fn catalog(
    registry: &Registry,
    query: &[(String, String)],
    visible: &NamespaceFilter,
) -> ApiResult<Response> {
    let n = page_size(query, registry.limits().max_page)?;
    let last = query_get(query, "last").filter(|l| !l.is_empty());
    let mut names = visible_repositories(registry, visible, last, n + 1).await?;
    let more = names.len() > n;
    names.truncate(n);
    let next = if more && n > 0 {
        names.last().map(|r| r.to_string())
    } else {
        None
    };
    let body = Catalog::new(names);
    let response = json_response(StatusCode::OK, "application/json", &body)?;
    Ok(with_next(response, "/v2/_catalog", n, next.as_deref(), &[]))
}

/// Up to `limit` repository names after the cursor `last` (any string,
/// compared byte-wise) in the namespaces `filter` admits, in lexical order.
/// The one listing behind `/v2/_catalog` and the Image API's repositories.
///
/// For a set of namespaces the store is paged one namespace at a time, in
/// the order their names sort: a namespace wholly before the cursor costs
/// nothing, and listing stops as soon as the page is full, so the work is
/// the page plus the namespaces passed, never the whole registry.
pub(crate) async fn visible_repositories(
    registry: &Registry,
    filter: &NamespaceFilter,
    last: Option<&str>,
    limit: usize,
) -> Result<Vec<RepositoryName>, StorageError> {
    let namespaces = match filter {
        NamespaceFilter::All => {
            return registry
                .metadata()
                .list_repositories(None, last, limit)
                .await
        }
        NamespaceFilter::Only(namespaces) => namespaces,
    };
    // A namespace's names all start with `ns/`, so namespaces ordered by
    // that prefix (not by bare name: `a-b/` sorts before `a/`) list their
    // repositories in global lexical order.
    let mut prefixes: Vec<(String, &Namespace)> =
        namespaces.iter().map(|ns| (format!("{ns}/"), ns)).collect();
    prefixes.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let mut names = Vec::new();
    for (prefix, ns) in &prefixes {
        if names.len() >= limit {
            break;
        }
        let after = match last {
            // The cursor is inside this namespace: continue after it.
            Some(last) if last.starts_with(prefix.as_str()) => Some(last),
            // The whole namespace sorts before the cursor.
            Some(last) if last > prefix.as_str() => continue,
            // The whole namespace sorts after the cursor.
            _ => None,
        };
        names.extend(
            registry
                .metadata()
                .list_repositories(Some(ns), after, limit - names.len())
                .await?,
        );
    }
    Ok(names)
}

/// `GET /v2/<name>/referrers/<digest>?artifactType=&n=&last=`: an OCI index
/// of the manifests whose subject is `digest`, by digest, a page at a time
/// (`n` defaults to and is capped by `Limits::max_page`).
pub(crate) async fn referrers(
    registry: &Registry,
    repo: &RepositoryName,
    subject: &Digest,
    query: &[(String, String)],
) -> ApiResult<Response> {
    let filter = query_get(query, "artifactType").filter(|a| !a.is_empty());
    let n = page_size(query, registry.limits().max_page)?;
    let last = match query_get(query, "last").filter(|l| !l.is_empty()) {
        Some(l) => Some(l.parse::<Digest>().map_err(|e| {
            ApiError::new(ErrorCode::Unsupported, format!("invalid last={l:?}: {e}"))
                .with_status(StatusCode::BAD_REQUEST)
        })?),
        None => None,
    };
    let mut found = registry
        .metadata()
        .referrers(repo, subject, filter, last.as_ref(), n + 1)
        .await?;
    let more = found.len() > n;
    found.truncate(n);
    let next = if more && n > 0 {
        found.last().map(|r| r.digest.to_string())
    } else {
        None
    };
    let manifests: Vec<Descriptor> = found
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
