//! Blob uploads: monolithic, `POST` + `PUT`, streamed and chunked `PATCH`,
//! status, cancel and cross-repository mount.

use axum::body::Body;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use registry_core::{Digest, ErrorCode, RepositoryName};
use registry_storage::{StorageError, UploadId, UploadStatus};

use crate::error::{ApiError, ApiResult};
use crate::http_util::{
    body_stream, header_str, header_value, query_get, DOCKER_CONTENT_DIGEST, DOCKER_UPLOAD_UUID,
};
use crate::state::Registry;

/// `Range` value for a session holding `offset` bytes (Distribution's form:
/// `0-<last byte>`, `0-0` when empty).
fn range_value(offset: u64) -> String {
    format!("0-{}", offset.saturating_sub(1))
}

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

fn digest_param(query: &[(String, String)]) -> ApiResult<Option<Digest>> {
    query_get(query, "digest")
        .map(|d| {
            d.parse().map_err(|e| {
                ApiError::new(
                    ErrorCode::DigestInvalid,
                    format!("invalid digest {d:?}: {e}"),
                )
            })
        })
        .transpose()
}

/// Whether a request carries body bytes.
fn has_body(headers: &HeaderMap) -> bool {
    match header_str(headers, header::CONTENT_LENGTH.as_str()) {
        Some(len) => len.trim() != "0",
        None => headers.contains_key(header::TRANSFER_ENCODING),
    }
}

/// Puts a whole blob and links it to `repo`.
async fn put_blob(
    registry: &Registry,
    repo: &RepositoryName,
    digest: &Digest,
    body: Body,
) -> ApiResult<Response> {
    registry.blobs().put(digest, body_stream(body)).await?;
    registry.metadata().link_blob(repo, digest).await?;
    created(repo, digest)
}

/// `POST /v2/<name>/blobs/uploads/`.
pub(crate) async fn start(
    registry: &Registry,
    repo: &RepositoryName,
    query: &[(String, String)],
    headers: &HeaderMap,
    body: Body,
    owner: &str,
) -> ApiResult<Response> {
    if let Some(mount) = query_get(query, "mount") {
        if let Some(response) = try_mount(registry, repo, mount, query_get(query, "from")).await? {
            return Ok(response);
        }
    } else if let Some(digest) = digest_param(query)? {
        return put_blob(registry, repo, &digest, body).await;
    } else if has_body(headers) {
        return Err(ApiError::new(
            ErrorCode::DigestInvalid,
            "a POST with a body needs ?digest= (monolithic upload)",
        ));
    }
    let session = crate::upload_limits::create_session(registry, repo, owner).await?;
    session_response(StatusCode::ACCEPTED, repo, &session)
}

/// Cross-repository mount; `Ok(None)` means "cannot mount, start a session".
async fn try_mount(
    registry: &Registry,
    repo: &RepositoryName,
    mount: &str,
    from: Option<&str>,
) -> ApiResult<Option<Response>> {
    let digest: Digest = mount.parse().map_err(|e| {
        ApiError::new(
            ErrorCode::DigestInvalid,
            format!("invalid mount digest {mount:?}: {e}"),
        )
    })?;
    let Some(from) = from.and_then(|f| f.parse::<RepositoryName>().ok()) else {
        return Ok(None);
    };
    let linked = registry.metadata().blob_linked(&from, &digest).await?;
    if !linked || registry.blobs().stat(&digest).await?.is_none() {
        return Ok(None);
    }
    registry.metadata().link_blob(repo, &digest).await?;
    created(repo, &digest).map(Some)
}

/// Loads a session and checks it belongs to `repo`.
async fn session(
    registry: &Registry,
    repo: &RepositoryName,
    id: &UploadId,
) -> ApiResult<UploadStatus> {
    let unknown = || ApiError::new(ErrorCode::BlobUploadUnknown, format!("upload {id} unknown"));
    match registry.uploads().status(id).await {
        Ok(s) if &s.repository == repo => Ok(s),
        Ok(_) | Err(StorageError::UploadUnknown { .. } | StorageError::NotFound { .. }) => {
            Err(unknown())
        }
        Err(e) => Err(e.into()),
    }
}

/// Parses `Content-Range: <start>-<end>` (also `bytes <start>-<end>/*`).
fn content_range(headers: &HeaderMap) -> ApiResult<Option<(u64, u64)>> {
    let Some(v) = header_str(headers, header::CONTENT_RANGE.as_str()) else {
        return Ok(None);
    };
    let bad = || {
        ApiError::new(
            ErrorCode::BlobUploadInvalid,
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

/// Appends a request body at the session's offset, checking `Content-Range`.
async fn append(
    registry: &Registry,
    repo: &RepositoryName,
    current: &UploadStatus,
    headers: &HeaderMap,
    body: Body,
) -> ApiResult<UploadStatus> {
    let offset = match content_range(headers)? {
        Some((start, end)) => {
            if let Some(len) = header_str(headers, header::CONTENT_LENGTH.as_str())
                .and_then(|l| l.trim().parse::<u64>().ok())
            {
                if len != end - start + 1 {
                    return Err(ApiError::new(
                        ErrorCode::SizeInvalid,
                        format!("Content-Length {len} does not match Content-Range {start}-{end}"),
                    ));
                }
            }
            start
        }
        None => current.offset,
    };
    match registry
        .uploads()
        .append(&current.id, offset, body_stream(body))
        .await
    {
        Ok(s) => Ok(s),
        Err(StorageError::InvalidOffset { expected, got }) => Err(ApiError::new(
            ErrorCode::BlobUploadInvalid,
            format!("chunk starts at {got}, upload is at {expected}"),
        )
        .with_status(StatusCode::RANGE_NOT_SATISFIABLE)
        .with_header(header::RANGE, header_value(range_value(expected)))
        .with_header(
            header::LOCATION,
            header_value(format!("/v2/{repo}/blobs/uploads/{}", current.id)),
        )),
        Err(e) => Err(e.into()),
    }
}

/// `PATCH /v2/<name>/blobs/uploads/<id>`: streamed or chunked append.
pub(crate) async fn patch(
    registry: &Registry,
    repo: &RepositoryName,
    id: &UploadId,
    headers: &HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let current = session(registry, repo, id).await?;
    let status = append(registry, repo, &current, headers, body).await?;
    session_response(StatusCode::ACCEPTED, repo, &status)
}

/// `PUT /v2/<name>/blobs/uploads/<id>?digest=`: optional last chunk, then commit.
pub(crate) async fn finish(
    registry: &Registry,
    repo: &RepositoryName,
    id: &UploadId,
    query: &[(String, String)],
    headers: &HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let current = session(registry, repo, id).await?;
    let digest = digest_param(query)?.ok_or_else(|| {
        ApiError::new(ErrorCode::DigestInvalid, "PUT of an upload needs ?digest=")
    })?;
    if has_body(headers) {
        append(registry, repo, &current, headers, body).await?;
    }
    match registry.uploads().commit(id, &digest).await {
        Ok(_) => {}
        Err(StorageError::UploadUnknown { .. }) => {
            return Err(ApiError::new(
                ErrorCode::BlobUploadUnknown,
                format!("upload {id} unknown"),
            ))
        }
        Err(e) => return Err(e.into()),
    }
    registry.metadata().link_blob(repo, &digest).await?;
    created(repo, &digest)
}

/// `GET /v2/<name>/blobs/uploads/<id>`: where the session stands.
pub(crate) async fn status(
    registry: &Registry,
    repo: &RepositoryName,
    id: &UploadId,
) -> ApiResult<Response> {
    let current = session(registry, repo, id).await?;
    session_response(StatusCode::NO_CONTENT, repo, &current)
}

/// `DELETE /v2/<name>/blobs/uploads/<id>`: cancel.
pub(crate) async fn cancel(
    registry: &Registry,
    repo: &RepositoryName,
    id: &UploadId,
) -> ApiResult<Response> {
    session(registry, repo, id).await?;
    match registry.uploads().cancel(id).await {
        Ok(()) => Response::builder()
            .status(StatusCode::NO_CONTENT)
            .body(Body::empty())
            .map_err(ApiError::internal),
        Err(StorageError::UploadUnknown { .. }) => Err(ApiError::new(
            ErrorCode::BlobUploadUnknown,
            format!("upload {id} unknown"),
        )),
        Err(e) => Err(e.into()),
    }
}
