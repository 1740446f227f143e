//! Request bodies that cannot stall a connection: every router wraps each
//! request's body so that it fails when no byte arrives for
//! [`Limits::body_idle_timeout`](crate::Limits), and the handlers that read
//! a whole body at once answer that failure with 408 and close the
//! connection. Without it a client could send the headers and a few bytes
//! of a body and then nothing, holding a connection (and a handler) for as
//! long as it liked: the server's own timeouts only cover connections with
//! no request in progress.

use std::error::Error as StdError;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderValue, StatusCode};
use http_body::{Frame, SizeHint};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use registry_core::ErrorCode;
use tokio::time::{Instant, Sleep};
use tower::{Layer, Service};

use super::error::ApiError;
use crate::service::{BodyIdleTimeout, Registry};
use registry_storage::BoxError;

/// A request body that fails with [`BodyIdleTimeout`] when no byte arrives
/// for `idle` while it is being read. The clock starts when a read first
/// waits, not when the request arrives, so time a handler spends before it
/// reads (a lock, a check) is not the client's; empty frames are no
/// progress.
struct IdleBody {
    inner: Body,
    idle: Duration,
    /// The timer, made when a read first waits and reset after that (a
    /// long upload waits once per frame or so).
    timer: Option<Pin<Box<Sleep>>>,
    /// Whether the timer runs: set when a read waits, cleared by every byte
    /// that arrives.
    armed: bool,
}

impl http_body::Body for IdleBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if frame.data_ref().is_some_and(|d| !d.is_empty()) {
                    this.armed = false;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into_inner()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let (idle, deadline) = (this.idle, Instant::now() + this.idle);
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if !this.armed {
                    timer.as_mut().reset(deadline);
                    this.armed = true;
                }
                ready!(timer.as_mut().poll(cx));
                Poll::Ready(Some(Err(Box::new(BodyIdleTimeout { idle }))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The layer every router applies: each request's body becomes an
/// [`IdleBody`] with the registry's
/// [`body_idle_timeout`](crate::Limits::body_idle_timeout).
#[derive(Debug, Clone, Copy)]
pub(crate) struct IdleBodyLayer {
    idle: Duration,
}

impl IdleBodyLayer {
    pub(crate) fn new(registry: &Registry) -> Self {
        IdleBodyLayer {
            idle: registry.limits().body_idle_timeout,
        }
    }
}

impl<S> Layer<S> for IdleBodyLayer {
    type Service = IdleBodyService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        IdleBodyService {
            inner,
            idle: self.idle,
        }
    }
}

/// The service of [`IdleBodyLayer`].
#[derive(Debug, Clone)]
pub(crate) struct IdleBodyService<S> {
    inner: S,
    idle: Duration,
}

impl<S: Service<Request>> Service<Request> for IdleBodyService<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // No body (a GET, a HEAD): nothing to wait for, nothing to wrap.
        if http_body::Body::is_end_stream(request.body()) {
            return self.inner.call(request);
        }
        let idle = self.idle;
        self.inner.call(request.map(|inner| {
            Body::new(IdleBody {
                inner,
                idle,
                timer: None,
                armed: false,
            })
        }))
    }
}

/// Whether `error`, or an error it was caused by, is a stalled body.
pub(crate) fn stalled<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a BodyIdleTimeout> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(timeout) = e.downcast_ref::<BodyIdleTimeout>() {
            return Some(timeout);
        }
        next = e.source();
    }
    None
}

/// 408 with `code`: the body stalled. The connection is closed, since the
/// rest of the body may still be on its way.
pub(crate) fn stalled_answer(code: ErrorCode, timeout: &BodyIdleTimeout) -> ApiError {
    ApiError::new(code, timeout.to_string())
        .with_status(StatusCode::REQUEST_TIMEOUT)
        .with_header(header::CONNECTION, HeaderValue::from_static("close"))
}

/// Why [`read_body`] failed.
pub(crate) enum BodyError {
    /// Longer than the limit.
    TooLarge,
    /// No byte for the idle timeout.
    Stalled(BodyIdleTimeout),
    /// The connection failed part-way.
    Failed(BoxError),
}

/// Reads a whole request body of at most `limit` bytes, reading no further
/// than the limit.
pub(crate) async fn read_body(body: Body, limit: usize) -> Result<Bytes, BodyError> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(BodyError::TooLarge),
        Err(e) => match stalled(&*e) {
            Some(timeout) => Err(BodyError::Stalled(BodyIdleTimeout { idle: timeout.idle })),
            None => Err(BodyError::Failed(e)),
        },
    }
}

/// The largest body of the admin API and the token endpoint's form.
pub(crate) const SMALL_BODY_LIMIT: usize = 1024 * 1024;

/// A small request body (JSON, a form) read whole, at most
/// [`SMALL_BODY_LIMIT`] bytes: 413 above it, 408 when it stalls, 400 when
/// it fails, each in the OCI error envelope with `UNSUPPORTED`.
pub(crate) struct SmallBody(pub(crate) Bytes);

impl<S: Send + Sync> FromRequest<S> for SmallBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, _: &S) -> Result<Self, ApiError> {
        read_small_body(request.into_body()).await.map(SmallBody)
    }
}

/// Reads a [`SmallBody`]'s bytes, answering as it does.
pub(crate) async fn read_small_body(body: Body) -> Result<Bytes, ApiError> {
    read_body(body, SMALL_BODY_LIMIT)
        .await
        .map_err(small_body_error)
}

/// The answer to a [`SmallBody`] that could not be read.
fn small_body_error(e: BodyError) -> ApiError {
    match e {
        BodyError::TooLarge => ApiError::new(
            ErrorCode::Unsupported,
            format!("request body larger than {SMALL_BODY_LIMIT} bytes"),
        )
        .with_status(StatusCode::PAYLOAD_TOO_LARGE),
        BodyError::Stalled(timeout) => stalled_answer(ErrorCode::Unsupported, &timeout),
        BodyError::Failed(e) => ApiError::new(
            ErrorCode::Unsupported,
            format!("reading the request body failed: {e}"),
        )
        .with_status(StatusCode::BAD_REQUEST),
    }
}

#[cfg(test)]
#[path = "body_tests.rs"]
mod tests;
