//! Manifests: `HEAD`/`GET`/`PUT`/`DELETE /v2/<name>/manifests/<reference>`.

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use registry_auth::{Action, Resource};
use registry_core::{ErrorCode, Reference, ReferenceError, RepositoryName, Tag};

use super::body::{read_body, stalled_answer, BodyError};
use super::error::{ApiError, ApiResult};
use super::util::{header_str, header_value, DOCKER_CONTENT_DIGEST, OCI_SUBJECT, OCI_TAG};
use crate::service::{ArgumentKind, Caller, Registry, RegistryError};

/// The answer to a manifest reference that is neither a tag nor a digest,
/// once the caller may do what the method asks on the repository (so the
/// answer says nothing to a caller who may not read it): nothing is stored
/// under it, so reads and deletes find nothing (404 `MANIFEST_UNKNOWN`:
/// clients probe with such names), while a `PUT` under it is a malformed
/// request (400 `MANIFEST_INVALID`).
pub(crate) async fn invalid_reference(
    registry: &Registry,
    caller: &Caller,
    repo: &RepositoryName,
    reference: &str,
    error: &ReferenceError,
    method: &Method,
) -> ApiError {
    let action = match *method {
        Method::PUT => Action::Push,
        Method::DELETE => Action::Delete,
        _ => Action::Pull,
    };
    if let Err(e) = registry.authorize(caller, action, &Resource::Repository(repo)) {
        return e.into();
    }
    if method == Method::PUT {
        ApiError::new(
            ErrorCode::ManifestInvalid,
            format!("invalid reference {reference:?}: {error}"),
        )
        .with_status(StatusCode::BAD_REQUEST)
    } else {
        ApiError::new(
            ErrorCode::ManifestUnknown,
            format!("manifest {reference:?} unknown in repository {repo}: {error}"),
        )
    }
}

/// Whether the client's `Accept` headers allow `media_type`. No `Accept`
/// (or a wildcard) accepts everything.
fn accepts(headers: &HeaderMap, media_type: &str) -> bool {
    let mut any = false;
    for value in headers.get_all(header::ACCEPT) {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mt = item.split(';').next().unwrap_or("").trim();
            if mt.is_empty() {
                continue;
            }
            any = true;
            if mt == media_type || mt == "*/*" || mt == "application/*" {
                return true;
            }
        }
    }
    !any
}

/// `HEAD` or `GET` a manifest by tag or digest.
pub(crate) async fn get(
    registry: &Registry,
    caller: &Caller,
    repo: &RepositoryName,
    reference: &Reference,
    headers: &HeaderMap,
    head: bool,
) -> ApiResult<Response> {
    let m = match head {
        true => registry.head_manifest(caller, repo, reference).await?,
        false => registry.get_manifest(caller, repo, reference).await?,
    };
    let media_type = m.kind.media_type();
    // A digest names exact bytes: there is nothing to negotiate, so they
    // are served with their own type whatever `Accept` says (clients that
    // never list the OCI types still read an OCI index by digest).
    if reference.as_tag().is_some() && !accepts(headers, media_type) {
        return Err(ApiError::new(
            ErrorCode::ManifestUnknown,
            format!(
                "manifest {reference} is {media_type}, which the request's Accept header excludes"
            ),
        ));
    }
    let builder = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, media_type)
        .header(header::CONTENT_LENGTH, m.bytes.len())
        .header(header::ETAG, format!("\"{}\"", m.digest))
        .header(DOCKER_CONTENT_DIGEST, m.digest.as_str());
    // RFC 9111 §5.5: served from a cache whose upstream could not
    // revalidate it.
    let builder = match m.stale {
        true => builder.header(header::WARNING, "110 - \"Response is stale\""),
        false => builder,
    };
    let body = if head {
        Body::empty()
    } else {
        Body::from(m.bytes)
    };
    builder.body(body).map_err(ApiError::internal)
}

/// Reads a manifest body up to the size limit (413 above it, 408 when it
/// stalls).
async fn read_limited(body: Body, limit: usize) -> ApiResult<Bytes> {
    match read_body(body, limit).await {
        Ok(bytes) => Ok(bytes),
        Err(BodyError::TooLarge) => Err(RegistryError::ManifestTooLarge { limit }.into()),
        Err(BodyError::Stalled(timeout)) => {
            Err(stalled_answer(ErrorCode::ManifestInvalid, &timeout))
        }
        Err(BodyError::Failed(e)) => Err(ApiError::new(
            ErrorCode::ManifestInvalid,
            format!("reading manifest body failed: {e}"),
        )),
    }
}

/// `PUT /v2/<name>/manifests/<reference>[?tag=…]`.
pub(crate) async fn put(
    registry: &Registry,
    caller: &Caller,
    repo: &RepositoryName,
    reference: &Reference,
    query: &[(String, String)],
    headers: &HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    // The caller may push before the body is read: a refused client does
    // not get to make the server read a manifest.
    registry.authorize(caller, Action::Push, &Resource::Repository(repo))?;
    let mut tags = Vec::new();
    for (k, v) in query {
        if k == "tag" {
            let tag: Tag = v.parse().map_err(|e| RegistryError::InvalidArgument {
                what: format!("tag {v:?}"),
                reason: format!("{e}"),
                kind: ArgumentKind::Manifest,
            })?;
            tags.push(tag);
        }
    }
    let bytes = read_limited(body, registry.limits().max_manifest_bytes).await?;
    let content_type = header_str(headers, header::CONTENT_TYPE.as_str());
    let pushed = registry
        .put_manifest(caller, repo, reference, content_type, bytes, &tags)
        .await?;
    let digest = &pushed.digest;
    let mut builder = Response::builder()
        .status(StatusCode::CREATED)
        .header(
            header::LOCATION,
            header_value(format!("/v2/{repo}/manifests/{digest}")),
        )
        .header(header::CONTENT_LENGTH, 0)
        .header(DOCKER_CONTENT_DIGEST, digest.as_str());
    if let Some(subject) = &pushed.subject {
        builder = builder.header(OCI_SUBJECT, subject.as_str());
    }
    // One `OCI-Tag` per tag applied (distribution-spec v1.1): a client that
    // pushed with `?tag=` sees the tags took and need not tag one by one.
    for tag in &pushed.tags {
        builder = builder.header(OCI_TAG, tag.as_str());
    }
    builder.body(Body::empty()).map_err(ApiError::internal)
}

/// `DELETE /v2/<name>/manifests/<reference>`.
pub(crate) async fn delete(
    registry: &Registry,
    caller: &Caller,
    repo: &RepositoryName,
    reference: &Reference,
) -> ApiResult<Response> {
    registry.delete_manifest(caller, repo, reference).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

#[cfg(test)]
mod tests {
    use super::accepts;
    use axum::http::{header, HeaderMap, HeaderValue};

    #[test]
    fn accept_negotiation() {
        let oci = "application/vnd.oci.image.manifest.v1+json";
        let mut h = HeaderMap::new();
        assert!(accepts(&h, oci));
        h.append(
            header::ACCEPT,
            HeaderValue::from_static("application/vnd.docker.distribution.manifest.v2+json"),
        );
        assert!(!accepts(&h, oci));
        h.append(
            header::ACCEPT,
            HeaderValue::from_static("application/vnd.oci.image.manifest.v1+json; q=0.5"),
        );
        assert!(accepts(&h, oci));
        let mut w = HeaderMap::new();
        w.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        assert!(accepts(&w, oci));
    }
}
