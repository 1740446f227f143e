//! A real HTTP webhook receiver on 127.0.0.1 for the events tests: it
//! checks every delivery's signature, keeps what it received (in order,
//! per path), and can be told to answer 503 or to close its port.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use registry_api::events::{signature, CloudEvent, SIGNATURE_HEADER};

/// One delivery as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub event: CloudEvent,
}

#[derive(Default)]
struct Shared {
    secret: Mutex<String>,
    received: Mutex<Vec<Received>>,
    bad_signatures: Mutex<u32>,
    failing: Mutex<bool>,
}

/// The receiver; serving until dropped or [`Receiver::close`]d.
pub struct Receiver {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    server: Option<tokio::task::JoinHandle<()>>,
}

impl Receiver {
    /// Serves on a free port of 127.0.0.1, checking signatures with `secret`.
    pub async fn start(secret: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let shared = Arc::new(Shared::default());
        *shared.secret.lock().unwrap() = secret.to_owned();
        let addr = listener.local_addr().unwrap();
        let mut receiver = Receiver {
            addr,
            shared,
            server: None,
        };
        receiver.serve(listener);
        receiver
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let app = Router::new()
            .route("/{*path}", post(receive))
            .with_state(self.shared.clone());
        self.server = Some(tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        }));
    }

    /// The URL of `path` on it.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{path}", self.addr)
    }

    /// Checks signatures with this secret from now on.
    pub fn set_secret(&self, secret: &str) {
        *self.shared.secret.lock().unwrap() = secret.to_owned();
    }

    /// Answers 503 to every delivery while `on`.
    pub fn fail(&self, on: bool) {
        *self.shared.failing.lock().unwrap() = on;
    }

    /// Stops listening: connections are refused until [`reopen`](Self::reopen).
    pub async fn close(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
            let _ = server.await;
        }
    }

    /// Listens again on the same port.
    pub async fn reopen(&mut self) {
        let listener = tokio::net::TcpListener::bind(self.addr).await.unwrap();
        self.serve(listener);
    }

    /// What arrived with a valid signature, in order.
    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    /// What arrived at `path`, in order.
    pub fn received_at(&self, path: &str) -> Vec<CloudEvent> {
        self.received()
            .into_iter()
            .filter(|r| r.path == path)
            .map(|r| r.event)
            .collect()
    }

    /// Deliveries whose signature did not verify.
    pub fn bad_signatures(&self) -> u32 {
        *self.shared.bad_signatures.lock().unwrap()
    }

    /// Waits until `done` holds for what arrived, or panics after `limit`.
    pub async fn wait_for(&self, limit: Duration, what: &str, done: impl Fn(&[Received]) -> bool) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if done(&self.received()) {
                return;
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "timed out waiting for {what}; received {} deliveries: {:?}",
                    self.received().len(),
                    self.received()
                        .iter()
                        .map(|r| (&r.path, &r.event.event_type))
                        .collect::<Vec<_>>()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(server) = &self.server {
            server.abort();
        }
    }
}

async fn receive(
    State(shared): State<Arc<Shared>>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    if *shared.failing.lock().unwrap() {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let expected = signature(&shared.secret.lock().unwrap(), &body);
    let got = headers
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if got != expected {
        *shared.bad_signatures.lock().unwrap() += 1;
        return StatusCode::UNAUTHORIZED;
    }
    assert_eq!(
        headers.get("content-type").unwrap(),
        "application/cloudevents+json"
    );
    let event: CloudEvent = serde_json::from_slice(&body).expect("a CloudEvents document");
    shared
        .received
        .lock()
        .unwrap()
        .push(Received { path, event });
    StatusCode::NO_CONTENT
}
