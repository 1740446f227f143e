//! The tower layer that records every request into a [`Metrics`], and
//! wraps blob download and upload bodies to count their bytes.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::response::Response;
use http_body_util::BodyExt;

use super::{method_index, EndpointClass, Metrics, Pending};
use crate::service::Registry;

/// The tower layer that records every request into a registry's [`Metrics`].
#[derive(Debug, Clone)]
pub(crate) struct MetricsLayer {
    metrics: Arc<Metrics>,
}

impl MetricsLayer {
    /// A layer recording into `registry`'s metrics.
    pub(crate) fn new(registry: &Registry) -> Self {
        MetricsLayer {
            metrics: registry.inner.metrics.clone(),
        }
    }
}

impl<S> tower::Layer<S> for MetricsLayer {
    type Service = MetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MetricsService {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// The service of [`MetricsLayer`].
#[derive(Debug, Clone)]
pub(crate) struct MetricsService<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S> tower::Service<Request<Body>> for MetricsService<S>
where
    S: tower::Service<Request<Body>, Response = Response>,
    S::Future: Unpin,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let pending = Pending {
            endpoint: EndpointClass::of_path(request.uri().path()),
            method: method_index(request.method()),
            credentials: request.headers().contains_key(header::AUTHORIZATION),
            start: Instant::now(),
        };
        let request = if pending.endpoint == EndpointClass::Upload
            && matches!(
                *request.method(),
                Method::POST | Method::PUT | Method::PATCH
            ) {
            let metrics = self.metrics.clone();
            request.map(|body| {
                Body::new(body.map_frame(move |frame| {
                    if let Some(data) = frame.data_ref() {
                        metrics
                            .blob_bytes_received
                            .fetch_add(data.len() as u64, Relaxed);
                    }
                    frame
                }))
            })
        } else {
            request
        };
        self.metrics.in_flight.fetch_add(1, Relaxed);
        ResponseFuture {
            inner: self.inner.call(request),
            metrics: Some(self.metrics.clone()),
            pending,
        }
    }
}

/// Future of [`MetricsService`]: records the response when it is ready.
#[derive(Debug)]
pub(crate) struct ResponseFuture<F> {
    inner: F,
    /// `None` once recorded.
    metrics: Option<Arc<Metrics>>,
    pending: Pending,
}

impl<F, E> std::future::Future for ResponseFuture<F>
where
    F: std::future::Future<Output = Result<Response, E>> + Unpin,
{
    type Output = Result<Response, E>;

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let result = std::task::ready!(std::pin::Pin::new(&mut self.inner).poll(cx));
        let Some(metrics) = self.metrics.take() else {
            return Poll::Ready(result);
        };
        metrics.in_flight.fetch_sub(1, Relaxed);
        let pending = self.pending;
        Poll::Ready(result.map(|response| {
            metrics.finish(&pending, response.status());
            count_sent(metrics, &pending, response)
        }))
    }
}

impl<F> Drop for ResponseFuture<F> {
    fn drop(&mut self) {
        // A request dropped before its response (the client went away).
        if let Some(metrics) = &self.metrics {
            metrics.in_flight.fetch_sub(1, Relaxed);
        }
    }
}

/// Wraps the body of a successful blob download to count its bytes.
fn count_sent(metrics: Arc<Metrics>, pending: &Pending, response: Response) -> Response {
    let status = response.status();
    if pending.endpoint != EndpointClass::Blob
        || pending.method != 0
        || !(status == StatusCode::OK || status == StatusCode::PARTIAL_CONTENT)
    {
        return response;
    }
    response.map(|body| {
        Body::new(body.map_frame(move |frame| {
            if let Some(data) = frame.data_ref() {
                metrics
                    .blob_bytes_sent
                    .fetch_add(data.len() as u64, Relaxed);
            }
            frame
        }))
    })
}
