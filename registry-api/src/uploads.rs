//! Blob uploads: monolithic, `POST` + `PUT`, streamed and chunked `PATCH`,
//! status, cancel and cross-repository mount.

use axum::body::Body;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use futures::stream::{self, StreamExt};
use registry_core::{Digest, ErrorCode, RepositoryName};
use registry_storage::{ByteStream, StorageError, UploadId, UploadStatus};

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
    // The ticket comes first: a put that finds the bytes present (a no-op)
    // must not be acknowledged if a prune deletes them meanwhile.
    let ticket = registry.metadata().blob_ticket(digest).await?;
    registry
        .blobs()
        .put(
            digest,
            body_stream(body, registry.limits().body_idle_timeout),
        )
        .await?;
    registry.metadata().link_blob_with(repo, &ticket).await?;
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
    // Ticket before the checks: a prune deleting the blob after them makes
    // the link fail, and the client uploads instead.
    let ticket = match registry.metadata().blob_ticket(&digest).await {
        Ok(ticket) => ticket,
        Err(StorageError::BlobDeleted { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let linked = registry.metadata().blob_linked(&from, &digest).await?;
    if !linked || registry.blobs().stat(&digest).await?.is_none() {
        return Ok(None);
    }
    match registry.metadata().link_blob_with(repo, &ticket).await {
        Ok(()) => created(repo, &digest).map(Some),
        Err(StorageError::BlobDeleted { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
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

/// A chunk body that is longer or shorter than its `Content-Range` says.
#[derive(Debug)]
enum ChunkLengthMismatch {
    /// More bytes arrived than announced.
    Longer { announced: u64 },
    /// The body ended early.
    Shorter { announced: u64, received: u64 },
}

impl std::fmt::Display for ChunkLengthMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChunkLengthMismatch::Longer { announced } => write!(
                f,
                "the chunk body is longer than the {announced} bytes its Content-Range announces"
            ),
            ChunkLengthMismatch::Shorter {
                announced,
                received,
            } => write!(
                f,
                "the chunk body ended after {received} of the {announced} bytes its Content-Range announces"
            ),
        }
    }
}

impl std::error::Error for ChunkLengthMismatch {}

/// `body` failing as soon as it yields more than `announced` bytes, and at
/// its end when it yielded fewer: a chunk sent without `Content-Length`
/// (chunked transfer coding) is held to its `Content-Range`. The store then
/// sees a stream that failed part-way, which leaves the session as it was.
fn exactly(body: ByteStream, announced: u64) -> ByteStream {
    let mismatch = |e: ChunkLengthMismatch| StorageError::Incoming {
        source: Box::new(e),
    };
    // State: the body (until it ends or fails) and the bytes seen so far.
    stream::unfold(Some((body, 0u64)), move |state| async move {
        let (mut body, received) = state?;
        match body.next().await {
            Some(Ok(chunk)) => {
                let received = received + chunk.len() as u64;
                if received > announced {
                    Some((
                        Err(mismatch(ChunkLengthMismatch::Longer { announced })),
                        None,
                    ))
                } else {
                    Some((Ok::<Bytes, _>(chunk), Some((body, received))))
                }
            }
            Some(Err(e)) => Some((Err(e), None)),
            None if received < announced => Some((
                Err(mismatch(ChunkLengthMismatch::Shorter {
                    announced,
                    received,
                })),
                None,
            )),
            None => None,
        }
    })
    .boxed()
}

/// The answer to a chunk the store refused for its length or its offset:
/// 416 with the session's unchanged range, as for a wrong offset.
fn chunk_refused(repo: &RepositoryName, id: &UploadId, offset: u64, message: String) -> ApiError {
    ApiError::new(ErrorCode::BlobUploadInvalid, message)
        .with_status(StatusCode::RANGE_NOT_SATISFIABLE)
        .with_header(header::RANGE, header_value(range_value(offset)))
        .with_header(
            header::LOCATION,
            header_value(format!("/v2/{repo}/blobs/uploads/{id}")),
        )
}

/// Appends a request body at the session's offset, checking `Content-Range`
/// against `Content-Length` when there is one, and against the body's
/// actual length in any case.
async fn append(
    registry: &Registry,
    repo: &RepositoryName,
    current: &UploadStatus,
    headers: &HeaderMap,
    body: Body,
) -> ApiResult<UploadStatus> {
    let mut stream = body_stream(body, registry.limits().body_idle_timeout);
    let offset = match content_range(headers)? {
        Some((start, end)) => {
            // `end >= start` (content_range checks); `0-u64::MAX` saturates.
            let announced = (end - start).saturating_add(1);
            if let Some(len) = header_str(headers, header::CONTENT_LENGTH.as_str())
                .and_then(|l| l.trim().parse::<u64>().ok())
            {
                if len != announced {
                    return Err(ApiError::new(
                        ErrorCode::SizeInvalid,
                        format!("Content-Length {len} does not match Content-Range {start}-{end}"),
                    ));
                }
            }
            stream = exactly(stream, announced);
            start
        }
        None => current.offset,
    };
    match registry.uploads().append(&current.id, offset, stream).await {
        Ok(s) => Ok(s),
        Err(StorageError::InvalidOffset { expected, got }) => Err(chunk_refused(
            repo,
            &current.id,
            expected,
            format!("chunk starts at {got}, upload is at {expected}"),
        )),
        Err(StorageError::Incoming { source }) if source.is::<ChunkLengthMismatch>() => {
            Err(chunk_refused(repo, &current.id, offset, source.to_string()))
        }
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
    // Before the commit, which may find the bytes present already.
    let ticket = registry.metadata().blob_ticket(&digest).await?;
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
    registry.metadata().link_blob_with(repo, &ticket).await?;
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
