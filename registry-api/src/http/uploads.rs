//! Blob uploads over HTTP: `POST`/`PATCH`/`PUT`/`GET`/`DELETE` on
//! `/v2/<name>/blobs/uploads/…`. The rules live in the service; this maps
//! headers and query parameters onto its calls and its answers onto
//! `Location`, `Range` and `Docker-Upload-UUID`.

use axum::body::Body;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use registry_core::{Algorithm, Digest, RepositoryName};
use registry_storage::{UploadId, UploadStatus};

use super::error::{range_value, ApiError, ApiResult};
use super::util::{
    body_stream, header_str, header_value, query_get, DOCKER_CONTENT_DIGEST, DOCKER_UPLOAD_UUID,
};
use crate::service::{Caller, Chunk, MountFrom, Registry, RegistryError, UploadStarted};

fn session_response(
    status: StatusCode,
    repo: &RepositoryName,
    s: &UploadStatus,
) -> ApiResult<Response> {
    Response::builder()
        .status(status)
        .header(
            header::LOCATION,
            header_value(format!("/v2/{repo}/blobs/uploads/{}", s.id)),
        )
        .header(header::RANGE, range_value(s.offset))
        .header(header::CONTENT_LENGTH, 0)
        .header(DOCKER_UPLOAD_UUID, s.id.as_str())
        .body(Body::empty())
        .map_err(ApiError::internal)
}

fn created(repo: &RepositoryName, digest: &Digest) -> ApiResult<Response> {
    Response::builder()
        .status(StatusCode::CREATED)
        .header(
            header::LOCATION,
            header_value(format!("/v2/{repo}/blobs/{digest}")),
        )
        .header(header::CONTENT_LENGTH, 0)
        .header(DOCKER_CONTENT_DIGEST, digest.as_str())
        .body(Body::empty())
        .map_err(ApiError::internal)
}

fn parse_digest(what: &str, value: &str) -> Result<Digest, RegistryError> {
    value
        .parse()
        .map_err(|e| RegistryError::invalid_digest(format!("{what} {value:?}"), e))
}

fn digest_param(query: &[(String, String)]) -> Result<Option<Digest>, RegistryError> {
    query_get(query, "digest")
        .map(|d| parse_digest("digest", d))
        .transpose()
}

/// Whether a request carries body bytes.
fn has_body(headers: &HeaderMap) -> bool {
    match header_str(headers, header::CONTENT_LENGTH.as_str()) {
        Some(len) => len.trim() != "0",
        None => headers.contains_key(header::TRANSFER_ENCODING),
    }
}

/// `POST /v2/<name>/blobs/uploads/`: a mount (`?mount=&from=`), a
/// monolithic upload (`?digest=` with the body), or a new session.
pub(crate) async fn start(
    registry: &Registry,
    caller: &Caller,
    repo: &RepositoryName,
    query: &[(String, String)],
    headers: &HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let mount = match query_get(query, "mount") {
        Some(mount) => Some(MountFrom {
            digest: parse_digest("mount digest", mount)?,
            from: query_get(query, "from").and_then(|f| f.parse().ok()),
        }),
        None => None,
    };
    if mount.is_none() {
        if let Some(digest) = digest_param(query)? {
            let body = body_stream(body);
            registry.push_blob(caller, repo, &digest, body).await?;
            return created(repo, &digest);
        }
        if has_body(headers) {
            return Err(RegistryError::invalid_digest(
                "request",
                "a POST with a body needs ?digest= (monolithic upload)",
            )
            .into());
        }
    }
    let announced = match query_get(query, "digest-algorithm") {
        Some(name) => Some(name.parse::<Algorithm>().map_err(|e| {
            RegistryError::invalid_digest(
                "digest-algorithm",
                format!("{e}; this registry takes sha256 or sha512"),
            )
        })?),
        None => None,
    };
    match registry
        .start_upload(caller, repo, mount, announced)
        .await?
    {
        UploadStarted::Mounted(digest) => created(repo, &digest),
        UploadStarted::Session(session) => session_response(StatusCode::ACCEPTED, repo, &session),
    }
}

/// Parses `Content-Range: <start>-<end>` (also `bytes <start>-<end>/*`).
fn content_range(headers: &HeaderMap) -> ApiResult<Option<(u64, u64)>> {
    let Some(v) = header_str(headers, header::CONTENT_RANGE.as_str()) else {
        return Ok(None);
    };
    let bad = || {
        ApiError::new(
            registry_core::ErrorCode::BlobUploadInvalid,
            format!("malformed Content-Range {v:?}"),
        )
        .with_status(StatusCode::RANGE_NOT_SATISFIABLE)
    };
    let spec = v
        .trim()
        .trim_start_matches("bytes ")
        .trim_start_matches("bytes=");
    let spec = spec.split('/').next().unwrap_or(spec);
    let (a, b) = spec.split_once('-').ok_or_else(bad)?;
    let a: u64 = a.trim().parse().map_err(|_| bad())?;
    let b: u64 = b.trim().parse().map_err(|_| bad())?;
    if b < a {
        return Err(bad());
    }
    Ok(Some((a, b)))
}

/// A request body as a chunk: at the offset its `Content-Range` says (and
/// held to that length, which `Content-Length` must match), or at the
/// session's offset.
fn chunk(headers: &HeaderMap, body: Body) -> ApiResult<Chunk> {
    let body = body_stream(body);
    let Some((start, end)) = content_range(headers)? else {
        return Ok(Chunk::streamed(body));
    };
    // `end >= start` (content_range checks); `0-u64::MAX` saturates.
    let announced = (end - start).saturating_add(1);
    if let Some(len) = header_str(headers, header::CONTENT_LENGTH.as_str())
        .and_then(|l| l.trim().parse::<u64>().ok())
    {
        if len != announced {
            return Err(ApiError::new(
                registry_core::ErrorCode::SizeInvalid,
                format!("Content-Length {len} does not match Content-Range {start}-{end}"),
            ));
        }
    }
    Ok(Chunk {
        offset: Some(start),
        length: Some(announced),
        body,
    })
}

/// `PATCH /v2/<name>/blobs/uploads/<id>`: streamed or chunked append.
pub(crate) async fn patch(
    registry: &Registry,
    caller: &Caller,
    repo: &RepositoryName,
    id: &UploadId,
    headers: &HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let chunk = chunk(headers, body)?;
    let status = registry.append_upload(caller, repo, id, chunk).await?;
    session_response(StatusCode::ACCEPTED, repo, &status)
}

/// `PUT /v2/<name>/blobs/uploads/<id>?digest=`: optional last chunk, then commit.
pub(crate) async fn finish(
    registry: &Registry,
    caller: &Caller,
    repo: &RepositoryName,
    id: &UploadId,
    query: &[(String, String)],
    headers: &HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let digest = digest_param(query)?.ok_or_else(|| {
        RegistryError::invalid_digest("request", "PUT of an upload needs ?digest=")
    })?;
    let last = if has_body(headers) {
        Some(chunk(headers, body)?)
    } else {
        None
    };
    registry
        .commit_upload(caller, repo, id, &digest, last)
        .await?;
    created(repo, &digest)
}

/// `GET /v2/<name>/blobs/uploads/<id>`: where the session stands.
pub(crate) async fn status(
    registry: &Registry,
    caller: &Caller,
    repo: &RepositoryName,
    id: &UploadId,
) -> ApiResult<Response> {
    let current = registry.upload_status(caller, repo, id).await?;
    session_response(StatusCode::NO_CONTENT, repo, &current)
}

/// `DELETE /v2/<name>/blobs/uploads/<id>`: cancel.
pub(crate) async fn cancel(
    registry: &Registry,
    caller: &Caller,
    repo: &RepositoryName,
    id: &UploadId,
) -> ApiResult<Response> {
    registry.cancel_upload(caller, repo, id).await?;
    Response::builder()
        .status(StatusCode::NO_CONTENT)
        .body(Body::empty())
        .map_err(ApiError::internal)
}
