//! Reading whole answer bodies with a bound, so that a server (or a proxy's
//! upstream) cannot make the client hold more than a limit in memory: the
//! announced `Content-Length` is checked first, then the bytes as they
//! arrive (a body without a length, or a lying one, is cut at the limit).

use bytes::{Bytes, BytesMut};
use reqwest::Response;

use super::ClientError;

/// Most bytes of a JSON answer (lists, tokens, admin documents).
pub(crate) const MAX_DOCUMENT_BYTES: usize = 64 << 20;

/// Most bytes of an error answer read; the rest is not read (its envelope
/// is then lost and the status alone speaks).
pub(crate) const MAX_ERROR_BYTES: usize = 64 << 10;

/// The body of `response`, refused with [`ClientError::TooLarge`] past
/// `limit` bytes.
pub(crate) async fn read_within(
    mut response: Response,
    limit: usize,
) -> Result<Bytes, ClientError> {
    let url = response.url().clone();
    let too_large = || ClientError::TooLarge {
        url: url.to_string(),
        limit: limit as u64,
    };
    let announced = response.content_length();
    if announced.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let capacity = announced.map_or(0, |n| n as usize);
    let mut body = BytesMut::with_capacity(capacity);
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| ClientError::transport(&url, e))?
    {
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// At most the first `limit` bytes of the body of `response` (an error
/// answer: what is past the limit is not needed to sort it).
pub(crate) async fn read_prefix(
    mut response: Response,
    limit: usize,
) -> Result<Bytes, reqwest::Error> {
    let mut body = BytesMut::new();
    while body.len() < limit {
        let Some(chunk) = response.chunk().await? else {
            break;
        };
        let take = chunk.len().min(limit - body.len());
        body.extend_from_slice(&chunk[..take]);
    }
    Ok(body.freeze())
}
