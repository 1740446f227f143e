//! A hand-written upstream registry (anonymous, repository `team/app`)
//! that misbehaves on request: manifests naming blobs it does not have,
//! endless or trickling blob bodies, answers without optional headers,
//! endless tag lists. What the well-behaved in-process upstream of
//! `proxy_support` cannot do.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use bytes::Bytes;
use registry_core::{media_type, Digest};

/// Blob bodies as they are.
pub const BLOBS_NORMAL: u8 = 0;
/// `Content-Length: 10^13` and zeros for ever.
pub const BLOBS_ENDLESS: u8 = 1;
/// The right length announced, one byte every 100 ms.
pub const BLOBS_TRICKLE: u8 = 2;

/// Tag lists in pages of 10 as they are.
pub const TAGS_NORMAL: u8 = 0;
/// Pages of ten new tags with a `Link` to the next, for ever.
pub const TAGS_ENDLESS: u8 = 1;
/// Empty pages whose `Link` moves on, for ever.
pub const TAGS_EMPTY_PAGES: u8 = 2;

#[derive(Default)]
pub struct Fake {
    /// Manifests by tag or digest: media type and bytes.
    pub manifests: Mutex<HashMap<String, (String, Bytes)>>,
    pub blobs: Mutex<HashMap<Digest, Bytes>>,
    pub tags: Mutex<Vec<String>>,
    pub blob_mode: AtomicU8,
    pub tag_mode: AtomicU8,
    /// Leave `Docker-Content-Digest` out of manifest `HEAD`s.
    pub no_head_digest: AtomicBool,
    /// Leave `Content-Length` out of blob `HEAD`s.
    pub no_head_length: AtomicBool,
    pub blob_gets: AtomicUsize,
    pub blob_heads: AtomicUsize,
    /// `GET`s of a blob's first byte (`Range: bytes=0-0`).
    pub blob_ranges: AtomicUsize,
    pub manifest_gets: AtomicUsize,
    pub manifest_heads: AtomicUsize,
    pub tag_pages: AtomicUsize,
    /// Bytes of endless or trickling bodies sent so far.
    pub streamed: Arc<AtomicU64>,
    /// Bodies being streamed right now (endless or trickling).
    pub streaming: Arc<AtomicUsize>,
}

impl Fake {
    /// Serves a manifest as `tag` and by its digest.
    pub fn put_manifest(&self, tag: &str, bytes: Vec<u8>) -> Digest {
        let bytes = Bytes::from(bytes);
        let digest = Digest::sha256_of(&bytes);
        let entry = (media_type::OCI_MANIFEST.to_owned(), bytes);
        let mut manifests = self.manifests.lock().unwrap();
        manifests.insert(tag.to_owned(), entry.clone());
        manifests.insert(digest.to_string(), entry);
        let mut tags = self.tags.lock().unwrap();
        if !tags.iter().any(|t| t == tag) {
            tags.push(tag.to_owned());
            tags.sort();
        }
        digest
    }

    pub fn put_blob(&self, bytes: Bytes) -> Digest {
        let digest = Digest::sha256_of(&bytes);
        self.blobs.lock().unwrap().insert(digest.clone(), bytes);
        digest
    }
}

/// Counts a body being streamed while it lives.
struct Streaming(Arc<AtomicUsize>);

impl Drop for Streaming {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn v2(
    State(fake): State<Arc<Fake>>,
    method: Method,
    headers: HeaderMap,
    Path(rest): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let Some(rest) = rest.strip_prefix("team/app/") else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if let Some(reference) = rest.strip_prefix("manifests/") {
        return manifest(&fake, &method, reference);
    }
    if let Some(digest) = rest.strip_prefix("blobs/") {
        let Ok(digest) = digest.parse::<Digest>() else {
            return StatusCode::BAD_REQUEST.into_response();
        };
        return blob(&fake, &method, &headers, &digest);
    }
    if rest == "tags/list" {
        return tags(&fake, &query);
    }
    StatusCode::NOT_FOUND.into_response()
}

fn manifest(fake: &Fake, method: &Method, reference: &str) -> Response {
    let found = fake.manifests.lock().unwrap().get(reference).cloned();
    let Some((media, bytes)) = found else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let digest = Digest::sha256_of(&bytes).to_string();
    let mut headers = HeaderMap::new();
    headers.insert("content-type", media.parse().unwrap());
    headers.insert("content-length", bytes.len().into());
    if *method == Method::HEAD {
        fake.manifest_heads.fetch_add(1, Ordering::SeqCst);
        if !fake.no_head_digest.load(Ordering::SeqCst) {
            headers.insert("docker-content-digest", digest.parse().unwrap());
        }
        return (headers, Body::empty()).into_response();
    }
    fake.manifest_gets.fetch_add(1, Ordering::SeqCst);
    headers.insert("docker-content-digest", digest.parse().unwrap());
    (headers, bytes).into_response()
}

fn blob(fake: &Fake, method: &Method, headers: &HeaderMap, digest: &Digest) -> Response {
    let found = fake.blobs.lock().unwrap().get(digest).cloned();
    let mode = fake.blob_mode.load(Ordering::SeqCst);
    let length: u64 = match (&found, mode) {
        (_, BLOBS_ENDLESS) => 10_000_000_000_000,
        (Some(bytes), _) => bytes.len() as u64,
        (None, _) => return StatusCode::NOT_FOUND.into_response(),
    };
    if *method == Method::HEAD {
        fake.blob_heads.fetch_add(1, Ordering::SeqCst);
        // hyper would fill in the length of an empty body: a streamed
        // empty body has none.
        if fake.no_head_length.load(Ordering::SeqCst) {
            let empty = futures::stream::empty::<Result<Bytes, std::io::Error>>();
            return Body::from_stream(empty).into_response();
        }
        return ([("content-length", length.to_string())], Body::empty()).into_response();
    }
    if let (Some(bytes), Some(b"bytes=0-0")) = (&found, headers.get("range").map(|r| r.as_bytes()))
    {
        fake.blob_ranges.fetch_add(1, Ordering::SeqCst);
        let range = format!("bytes 0-0/{}", bytes.len());
        return (
            StatusCode::PARTIAL_CONTENT,
            [("content-range", range)],
            bytes.slice(..1),
        )
            .into_response();
    }
    fake.blob_gets.fetch_add(1, Ordering::SeqCst);
    let streamed = Arc::clone(&fake.streamed);
    fake.streaming.fetch_add(1, Ordering::SeqCst);
    let guard = Streaming(Arc::clone(&fake.streaming));
    let body = match (mode, found) {
        (BLOBS_ENDLESS, _) => {
            let chunk = Bytes::from(vec![0u8; 64 * 1024]);
            let stream = futures::stream::unfold(guard, move |guard| {
                let chunk = chunk.clone();
                let streamed = Arc::clone(&streamed);
                async move {
                    streamed.fetch_add(chunk.len() as u64, Ordering::SeqCst);
                    Some((Ok::<_, std::io::Error>(chunk), guard))
                }
            });
            Body::from_stream(stream)
        }
        (BLOBS_TRICKLE, Some(bytes)) => {
            let stream = futures::stream::unfold((guard, 0usize), move |(guard, at)| {
                let bytes = bytes.clone();
                let streamed = Arc::clone(&streamed);
                async move {
                    if at >= bytes.len() {
                        return None;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    streamed.fetch_add(1, Ordering::SeqCst);
                    Some((
                        Ok::<_, std::io::Error>(bytes.slice(at..at + 1)),
                        (guard, at + 1),
                    ))
                }
            });
            Body::from_stream(stream)
        }
        (_, Some(bytes)) => {
            drop(guard);
            Body::from(bytes)
        }
        (_, None) => unreachable!(),
    };
    ([("content-length", length.to_string())], body).into_response()
}

fn tags(fake: &Fake, query: &HashMap<String, String>) -> Response {
    fake.tag_pages.fetch_add(1, Ordering::SeqCst);
    let mode = fake.tag_mode.load(Ordering::SeqCst);
    let last = query.get("last").cloned();
    let page: Vec<String> = match mode {
        TAGS_ENDLESS => {
            let start = last
                .as_deref()
                .and_then(|l| l.trim_start_matches('t').parse::<u64>().ok())
                .map_or(0, |n| n + 1);
            (start..start + 10).map(|i| format!("t{i:08}")).collect()
        }
        TAGS_EMPTY_PAGES => Vec::new(),
        _ => fake
            .tags
            .lock()
            .unwrap()
            .iter()
            .filter(|t| last.as_ref().is_none_or(|l| t.as_str() > l.as_str()))
            .take(10)
            .cloned()
            .collect(),
    };
    let next = match mode {
        TAGS_ENDLESS => page.last().cloned(),
        TAGS_EMPTY_PAGES => {
            let n = last
                .as_deref()
                .and_then(|l| l.trim_start_matches('e').parse::<u64>().ok())
                .map_or(0, |n| n + 1);
            Some(format!("e{n:08}"))
        }
        _ => (page.len() == 10).then(|| page.last().cloned()).flatten(),
    };
    let body = serde_json::json!({"name": "team/app", "tags": page});
    let mut response = axum::Json(body).into_response();
    if let Some(next) = next {
        let link = format!("</v2/team/app/tags/list?n=10&last={next}>; rel=\"next\"");
        response.headers_mut().insert("link", link.parse().unwrap());
    }
    response
}

/// Serves a fake upstream; it and its URL.
pub async fn start() -> (Arc<Fake>, String) {
    let fake = Arc::new(Fake::default());
    let app = axum::Router::new()
        .route("/v2/", get(|| async { "{}" }))
        .route("/v2/{*rest}", any(v2))
        .with_state(Arc::clone(&fake));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (fake, url)
}
