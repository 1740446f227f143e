//! [`BlobStream`]: a blob's bytes, checked against its digest while read.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use registry_core::{Digest, Digester};

use super::ClientError;

/// A blob's body as it arrives. Every chunk is hashed; when the body ends
/// the last item is [`ClientError::DigestMismatch`] (or
/// [`ClientError::SizeMismatch`]) if the bytes are not the blob asked
/// for, so a consumer that reads to the end never accepts wrong bytes.
pub struct BlobStream {
    inner: BoxStream<'static, Result<Bytes, reqwest::Error>>,
    url: reqwest::Url,
    expected: Digest,
    size: Option<u64>,
    digester: Option<Digester>,
}

impl std::fmt::Debug for BlobStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobStream")
            .field("expected", &self.expected)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl BlobStream {
    pub(crate) fn new(response: reqwest::Response, expected: Digest) -> Self {
        BlobStream {
            url: response.url().clone(),
            size: response.content_length(),
            digester: Some(Digester::new(expected.algorithm())),
            expected,
            inner: response.bytes_stream().boxed(),
        }
    }

    /// The size the server announced (`Content-Length`), if it did.
    pub fn size(&self) -> Option<u64> {
        self.size
    }

    /// The digest the bytes are checked against.
    pub fn digest(&self) -> &Digest {
        &self.expected
    }

    /// Reads the whole blob into memory (for small blobs: configs,
    /// manifests' neighbours), verified.
    pub async fn bytes(mut self) -> Result<Bytes, ClientError> {
        let mut out = Vec::with_capacity(
            self.size
                .and_then(|s| usize::try_from(s).ok())
                .unwrap_or(0)
                .min(64 << 20),
        );
        while let Some(chunk) = self.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(out.into())
    }

    /// The verdict once the body has ended.
    fn finish(&mut self) -> Option<ClientError> {
        let digester = self.digester.take()?;
        let received = digester.bytes_hashed();
        if let Some(size) = self.size.filter(|s| *s != received) {
            return Some(ClientError::SizeMismatch {
                digest: self.expected.clone(),
                expected: size,
                actual: received,
            });
        }
        let actual = digester.finish();
        (actual != self.expected).then(|| ClientError::DigestMismatch {
            expected: self.expected.clone(),
            actual,
        })
    }
}

impl Stream for BlobStream {
    type Item = Result<Bytes, ClientError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.digester.is_none() {
            return Poll::Ready(None);
        }
        match self.inner.poll_next_unpin(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(chunk))) => {
                if let Some(d) = self.digester.as_mut() {
                    d.update(&chunk);
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(e))) => {
                // A broken body is final: nothing after it is checked.
                self.digester = None;
                Poll::Ready(Some(Err(ClientError::transport(&self.url, e))))
            }
            Poll::Ready(None) => Poll::Ready(self.finish().map(Err)),
        }
    }
}
