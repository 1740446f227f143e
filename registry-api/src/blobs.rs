//! Blob reads and deletes: `HEAD`/`GET`/`DELETE /v2/<name>/blobs/<digest>`.

use axum::body::Body;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use registry_core::{Digest, ErrorCode, RepositoryName};
use registry_storage::{ByteRange, StorageError};

use crate::error::{ApiError, ApiResult};
use crate::http_util::{header_str, header_value, DOCKER_CONTENT_DIGEST};
use crate::state::Registry;

fn blob_unknown(digest: &Digest, repo: &RepositoryName) -> ApiError {
    ApiError::new(
        ErrorCode::BlobUnknown,
        format!("blob {digest} unknown in repository {repo}"),
    )
}

/// Parses a `Range: bytes=a-b` / `bytes=a-` header. `Err` carries a 416.
fn parse_range(value: &str) -> Result<ByteRange, ()> {
    let spec = value.trim().strip_prefix("bytes=").ok_or(())?;
    let (start, end) = spec.split_once('-').ok_or(())?;
    let start: u64 = start.trim().parse().map_err(|_| ())?;
    let end = match end.trim() {
        "" => None,
        e => Some(e.parse::<u64>().map_err(|_| ())?.checked_add(1).ok_or(())?),
    };
    Ok(ByteRange { start, end })
}

fn unsatisfiable(size: Option<u64>) -> ApiError {
    let err = ApiError::new(ErrorCode::SizeInvalid, "requested range not satisfiable")
        .with_status(StatusCode::RANGE_NOT_SATISFIABLE);
    match size {
        Some(size) => err.with_header(
            header::CONTENT_RANGE,
            header_value(format!("bytes */{size}")),
        ),
        None => err,
    }
}

/// Checks that `repo` may serve `digest` (layer authorization: only blobs
/// linked to the repository are visible through it).
pub(crate) async fn ensure_linked(
    registry: &Registry,
    repo: &RepositoryName,
    digest: &Digest,
) -> ApiResult<()> {
    if registry.metadata().blob_linked(repo, digest).await? {
        Ok(())
    } else {
        Err(blob_unknown(digest, repo))
    }
}

/// `HEAD` or `GET` a blob, honouring `Range`.
pub(crate) async fn get(
    registry: &Registry,
    repo: &RepositoryName,
    digest: &Digest,
    headers: &HeaderMap,
    head: bool,
) -> ApiResult<Response> {
    ensure_linked(registry, repo, digest).await?;
    let range = header_str(headers, header::RANGE.as_str())
        .map(parse_range)
        .transpose()
        .map_err(|()| unsatisfiable(None))?;
    let common = |status: StatusCode, len: u64| {
        let mut r = Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .header(header::CONTENT_LENGTH, len)
            .header(header::ACCEPT_RANGES, "bytes")
            .header(header::ETAG, format!("\"{digest}\""))
            .header(DOCKER_CONTENT_DIGEST, digest.as_str());
        r = r.header(header::CACHE_CONTROL, "max-age=31536000");
        r
    };
    if head && range.is_none() {
        let info = registry
            .blobs()
            .stat(digest)
            .await?
            .ok_or_else(|| blob_unknown(digest, repo))?;
        return common(StatusCode::OK, info.size)
            .body(Body::empty())
            .map_err(ApiError::internal);
    }
    let body = match registry.blobs().get(digest, range).await {
        Ok(body) => body,
        Err(StorageError::NotFound { .. }) => return Err(blob_unknown(digest, repo)),
        Err(StorageError::RangeNotSatisfiable { size, .. }) => {
            return Err(unsatisfiable(Some(size)))
        }
        Err(e) => return Err(e.into()),
    };
    let (status, len) = if range.is_some() {
        (StatusCode::PARTIAL_CONTENT, body.len())
    } else {
        (StatusCode::OK, body.total_size)
    };
    let mut builder = common(status, len);
    if range.is_some() {
        builder = builder.header(
            header::CONTENT_RANGE,
            format!(
                "bytes {}-{}/{}",
                body.range.0,
                body.range.1 - 1,
                body.total_size
            ),
        );
    }
    let payload = if head {
        Body::empty()
    } else {
        Body::from_stream(body.stream)
    };
    builder.body(payload).map_err(ApiError::internal)
}

/// `DELETE` a blob from a repository: removes the repository's link; the
/// bytes go when garbage collection finds nothing else referencing them.
pub(crate) async fn delete(
    registry: &Registry,
    repo: &RepositoryName,
    digest: &Digest,
) -> ApiResult<Response> {
    match registry.metadata().unlink_blob(repo, digest).await {
        Ok(()) => Ok(StatusCode::ACCEPTED.into_response()),
        Err(StorageError::NotFound { .. }) => Err(blob_unknown(digest, repo)),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        let r = parse_range("bytes=0-9").unwrap();
        assert_eq!((r.start, r.end), (0, Some(10)));
        let r = parse_range("bytes=5-").unwrap();
        assert_eq!((r.start, r.end), (5, None));
        assert!(parse_range("bytes=a-b").is_err());
        assert!(parse_range("items=0-1").is_err());
        assert!(parse_range("bytes=0-18446744073709551615").is_err());
    }
}
