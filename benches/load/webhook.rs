//! `--webhook`: a local receiver (answers 204 to every delivery) and one
//! webhook on the bench namespace pointing at it, so push throughput with
//! one webhook can be compared with none. The server must allow private
//! receivers (`--webhook-allow-private`). Reports how many deliveries
//! arrived (`RESULT webhook_deliveries`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use http::{Method, StatusCode};
use http_body_util::{BodyExt, Full};

use crate::client::{expect, Registry, Result};

/// The receiver: its delivery count.
pub struct Receiver {
    pub received: Arc<AtomicU64>,
    url: String,
}

impl Receiver {
    /// Serves on a free port of 127.0.0.1.
    pub async fn start() -> Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/hook", listener.local_addr()?);
        let received = Arc::new(AtomicU64::new(0));
        let counter = received.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move || {
                counter.fetch_add(1, Ordering::Relaxed);
                async { StatusCode::NO_CONTENT }
            }),
        );
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Receiver { received, url })
    }

    /// Creates the webhook in `namespace` (which must exist: push first).
    pub async fn configure(&self, registry: &Registry, namespace: &str) -> Result<()> {
        let body = format!(
            "{{\"url\":\"{}\",\"events\":[\"io.registry.manifest.pushed\"]}}",
            self.url
        );
        let response = registry
            .send(
                Method::POST,
                &format!("/apis/admin/v1/namespaces/{namespace}/webhooks"),
                &[(http::header::CONTENT_TYPE, "application/json".to_owned())],
                Full::new(bytes::Bytes::from(body)).boxed(),
            )
            .await?;
        expect(response, StatusCode::CREATED, "creating the webhook").await?;
        Ok(())
    }
}
