//! Listings: tags, the catalog and referrers.

use axum::body::Body;
use axum::http::{header, StatusCode};
use axum::response::Response;
use registry_core::{media_type, Digest, ErrorCode, RepositoryName, Tag};
use serde_json::json;

use crate::error::{ApiError, ApiResult};
use crate::http_util::{header_value, page_size, query_get, OCI_FILTERS_APPLIED};
use crate::state::Registry;

fn json_response(
    status: StatusCode,
    content_type: &str,
    value: &serde_json::Value,
) -> ApiResult<Response> {
    let body = serde_json::to_vec(value).map_err(ApiError::internal)?;
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, header_value(content_type))
        .header(header::CONTENT_LENGTH, body.len())
        .body(Body::from(body))
        .map_err(ApiError::internal)
}

/// Adds `Link: <url>; rel="next"` when a page was full.
fn with_next(mut response: Response, path: &str, n: usize, last: Option<&str>) -> Response {
    if let Some(last) = last {
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
    let body = json!({ "name": repo, "tags": tags });
    let response = json_response(StatusCode::OK, "application/json", &body)?;
    Ok(with_next(
        response,
        &format!("/v2/{repo}/tags/list"),
        n,
        next.as_deref(),
    ))
}

/// `GET /v2/_catalog?n=&last=`, showing only repositories `visible` admits.
pub(crate) async fn catalog(
    registry: &Registry,
    query: &[(String, String)],
    visible: &(dyn Fn(&RepositoryName) -> bool + Send + Sync),
) -> ApiResult<Response> {
    let n = page_size(query, registry.limits().max_page)?;
    let mut last = match query_get(query, "last").filter(|l| !l.is_empty()) {
        Some(l) => Some(l.parse::<RepositoryName>().map_err(|e| {
            ApiError::new(ErrorCode::Unsupported, format!("invalid last={l:?}: {e}"))
                .with_status(StatusCode::BAD_REQUEST)
        })?),
        None => None,
    };
    // Fetch pages until `n + 1` visible names are found or the store ends.
    let mut names: Vec<RepositoryName> = Vec::new();
    let batch = (n + 1).clamp(16, registry.limits().max_page);
    loop {
        let page = registry
            .metadata()
            .list_repositories(None, last.as_ref(), batch)
            .await?;
        let exhausted = page.len() < batch;
        last = page.last().cloned();
        names.extend(page.into_iter().filter(|r| visible(r)));
        if exhausted || names.len() > n {
            break;
        }
    }
    let more = names.len() > n;
    names.truncate(n);
    let next = if more && n > 0 {
        names.last().map(|r| r.to_string())
    } else {
        None
    };
    let body = json!({ "repositories": names });
    let response = json_response(StatusCode::OK, "application/json", &body)?;
    Ok(with_next(response, "/v2/_catalog", n, next.as_deref()))
}

/// `GET /v2/<name>/referrers/<digest>?artifactType=`: an OCI index of the
/// manifests whose subject is `digest`.
pub(crate) async fn referrers(
    registry: &Registry,
    repo: &RepositoryName,
    subject: &Digest,
    query: &[(String, String)],
) -> ApiResult<Response> {
    let filter = query_get(query, "artifactType").filter(|a| !a.is_empty());
    let found = registry.metadata().referrers(repo, subject, filter).await?;
    let manifests: Vec<serde_json::Value> = found
        .into_iter()
        .map(|r| {
            let mut d = json!({
                "mediaType": r.media_type,
                "digest": r.digest,
                "size": r.size,
            });
            if let Some(a) = r.artifact_type {
                d["artifactType"] = json!(a);
            }
            if !r.annotations.is_empty() {
                d["annotations"] = json!(r.annotations);
            }
            d
        })
        .collect();
    let body = json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_INDEX,
        "manifests": manifests,
    });
    let mut response = json_response(StatusCode::OK, media_type::OCI_INDEX, &body)?;
    if filter.is_some() {
        response
            .headers_mut()
            .insert(OCI_FILTERS_APPLIED, header_value("artifactType"));
    }
    Ok(response)
}
