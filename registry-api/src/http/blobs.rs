//! Blob reads and deletes: `HEAD`/`GET`/`DELETE /v2/<name>/blobs/<digest>`.

use axum::body::Body;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use registry_core::{Digest, RepositoryName};
use registry_storage::ByteRange;

use super::error::{ApiError, ApiResult};
use super::util::{header_str, header_value, DOCKER_CONTENT_DIGEST};
use crate::service::{BlobRange, Caller, Registry, RegistryError};

/// Decimal digits as a number; more than `u64` holds saturates (an end
/// that large is clipped to the blob anyway, a start that large is past it).
fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.parse().unwrap_or(u64::MAX))
}

/// Parses a `Range` header. `None` means "serve the whole blob": a server
/// may ignore any `Range` (RFC 9110 §14.2), and this one ignores what it
/// does not serve — other units, several ranges, malformed specs.
fn parse_range(value: &str) -> Option<BlobRange> {
    let (unit, spec) = value.trim().split_once('=')?;
    if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
        return None;
    }
    let (first, last) = spec.trim().split_once('-')?;
    match (first.trim(), last.trim()) {
        ("", n) => digits(n).map(BlobRange::Suffix),
        (first, "") => digits(first).map(|first| BlobRange::From { first, last: None }),
        (first, last) => {
            let (first, last) = (digits(first)?, digits(last)?);
            // `last < first` is syntactically invalid: ignored, not 416.
            (last >= first).then_some(BlobRange::From {
                first,
                last: Some(last),
            })
        }
    }
}

/// `HEAD` or `GET` a blob, honouring a single-range `Range` (206, or 416
/// when it starts past the end) and serving the whole blob for any other.
pub(crate) async fn get(
    registry: &Registry,
    caller: &Caller,
    repo: &RepositoryName,
    digest: &Digest,
    headers: &HeaderMap,
    head: bool,
) -> ApiResult<Response> {
    let requested = header_str(headers, header::RANGE.as_str()).and_then(parse_range);
    let common = |status: StatusCode, len: u64| {
        Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .header(header::CONTENT_LENGTH, len)
            .header(header::ACCEPT_RANGES, "bytes")
            .header(header::ETAG, format!("\"{digest}\""))
            .header(DOCKER_CONTENT_DIGEST, digest.as_str())
            .header(header::CACHE_CONTROL, "max-age=31536000")
    };
    let content_range = |start: u64, end: u64, total: u64| {
        header_value(format!("bytes {start}-{}/{total}", end - 1))
    };
    if head {
        let size = registry.stat_blob(caller, repo, digest).await?.size;
        let range = match requested {
            Some(spec) => Some(
                spec.resolve(size)
                    .ok_or(RegistryError::RangeNotSatisfiable { size })?,
            ),
            None => None,
        };
        let builder = match range {
            Some(ByteRange { start, end }) => {
                let end = end.unwrap_or(size);
                common(StatusCode::PARTIAL_CONTENT, end - start)
                    .header(header::CONTENT_RANGE, content_range(start, end, size))
            }
            None => common(StatusCode::OK, size),
        };
        return builder.body(Body::empty()).map_err(ApiError::internal);
    }
    let body = registry.get_blob(caller, repo, digest, requested).await?;
    let builder = if requested.is_some() {
        common(StatusCode::PARTIAL_CONTENT, body.len()).header(
            header::CONTENT_RANGE,
            content_range(body.range.0, body.range.1, body.total_size),
        )
    } else {
        common(StatusCode::OK, body.total_size)
    };
    builder
        .body(Body::from_stream(body.stream))
        .map_err(ApiError::internal)
}

/// `DELETE` a blob from a repository.
pub(crate) async fn delete(
    registry: &Registry,
    caller: &Caller,
    repo: &RepositoryName,
    digest: &Digest,
) -> ApiResult<Response> {
    registry.delete_blob(caller, repo, digest).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

#[cfg(test)]
mod tests {
    use super::{parse_range, BlobRange};

    fn resolved(header: &str, size: u64) -> Option<Option<(u64, u64)>> {
        parse_range(header).map(|spec| {
            spec.resolve(size)
                .map(|r| (r.start, r.end.unwrap_or(u64::MAX)))
        })
    }

    #[test]
    fn single_ranges_are_parsed() {
        let from = |first, last| Some(BlobRange::From { first, last });
        assert_eq!(parse_range("bytes=0-9"), from(0, Some(9)));
        assert_eq!(parse_range("bytes=5-"), from(5, None));
        assert_eq!(parse_range(" Bytes = 5 - 7 "), from(5, Some(7)));
        assert_eq!(parse_range("bytes=-500"), Some(BlobRange::Suffix(500)));
        assert_eq!(
            parse_range("bytes=0-99999999999999999999999"),
            from(0, Some(u64::MAX))
        );
    }

    #[test]
    fn what_is_not_one_byte_range_is_ignored() {
        for header in [
            "bytes=0-1,5-9",
            "bytes=-1,-2",
            "items=0-1",
            "bytes 0-1",
            "bytes=a-b",
            "bytes=9-5",
            "bytes=-",
            "bytes=--1",
            "bytes=+1-2",
            "",
        ] {
            assert_eq!(parse_range(header), None, "{header:?}");
        }
    }

    #[test]
    fn ranges_are_clipped_to_the_blob() {
        assert_eq!(resolved("bytes=0-99999999", 1024), Some(Some((0, 1024))));
        assert_eq!(resolved("bytes=10-19", 1024), Some(Some((10, 20))));
        assert_eq!(resolved("bytes=1023-", 1024), Some(Some((1023, 1024))));
        assert_eq!(resolved("bytes=-500", 1024), Some(Some((524, 1024))));
        assert_eq!(resolved("bytes=-5000", 1024), Some(Some((0, 1024))));
        // Unsatisfiable: a start at or past the end, an empty suffix, an empty blob.
        assert_eq!(resolved("bytes=1024-", 1024), Some(None));
        assert_eq!(resolved("bytes=2000-3000", 1024), Some(None));
        assert_eq!(resolved("bytes=-0", 1024), Some(None));
        assert_eq!(resolved("bytes=0-", 0), Some(None));
        assert_eq!(resolved("bytes=-5", 0), Some(None));
    }
}
