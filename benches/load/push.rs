//! Pushes: one large blob monolithically or in chunks, and many small images.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE};
use http::{Method, StatusCode};

use crate::client::{drain, expect, location, with_query, Registry, Result};
use crate::data::{self, Pattern};

/// Media type of the manifests pushed.
pub const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
const CONFIG_TYPE: &str = "application/vnd.oci.image.config.v1+json";
const LAYER_TYPE: &str = "application/vnd.oci.image.layer.v1.tar";
const OCTETS: &str = "application/octet-stream";

/// `POST /v2/<repo>/blobs/uploads/`: opens an upload session, returns its Location.
async fn start_upload(registry: &Registry, repo: &str) -> Result<String> {
    let response = registry
        .send(
            Method::POST,
            &format!("/v2/{repo}/blobs/uploads/"),
            &[(CONTENT_LENGTH, "0".into())],
            data::empty(),
        )
        .await?;
    let response = expect(response, StatusCode::ACCEPTED, "POST upload").await?;
    let loc = location(&response)?;
    drain(response).await?;
    Ok(loc)
}

/// Monolithic push of blob `(seed, size)`: POST, then one PUT carrying every
/// byte and the digest. Returns the time of the two requests (the digest is
/// computed beforehand, outside the timing).
pub async fn monolithic(
    registry: &Registry,
    pattern: &Pattern,
    repo: &str,
    seed: u64,
    size: u64,
) -> Result<Duration> {
    let digest = pattern.digest(seed, size);
    let start = Instant::now();
    let loc = start_upload(registry, repo).await?;
    let response = registry
        .send(
            Method::PUT,
            &with_query(&loc, "digest", &digest),
            &[
                (CONTENT_LENGTH, size.to_string()),
                (CONTENT_TYPE, OCTETS.into()),
            ],
            pattern.body(seed, 0, size),
        )
        .await?;
    let response = expect(response, StatusCode::CREATED, "PUT blob").await?;
    drain(response).await?;
    Ok(start.elapsed())
}

/// Chunked push of blob `(seed, size)`: POST, one PATCH per `chunk` bytes
/// (with `Content-Range`), then a PUT with the digest and no body.
pub async fn chunked(
    registry: &Registry,
    pattern: &Pattern,
    repo: &str,
    seed: u64,
    size: u64,
    chunk: u64,
) -> Result<Duration> {
    let digest = pattern.digest(seed, size);
    let start = Instant::now();
    let mut loc = start_upload(registry, repo).await?;
    let mut offset = 0;
    while offset < size {
        let len = chunk.min(size - offset);
        let response = registry
            .send(
                Method::PATCH,
                &loc,
                &[
                    (CONTENT_LENGTH, len.to_string()),
                    (CONTENT_TYPE, OCTETS.into()),
                    (CONTENT_RANGE, format!("{offset}-{}", offset + len - 1)),
                ],
                pattern.body(seed, offset, len),
            )
            .await?;
        let response = expect(response, StatusCode::ACCEPTED, "PATCH chunk").await?;
        loc = location(&response)?;
        drain(response).await?;
        offset += len;
    }
    let response = registry
        .send(
            Method::PUT,
            &with_query(&loc, "digest", &digest),
            &[(CONTENT_LENGTH, "0".into())],
            data::empty(),
        )
        .await?;
    let response = expect(response, StatusCode::CREATED, "PUT close upload").await?;
    drain(response).await?;
    Ok(start.elapsed())
}

/// Whether `repo` serves blob `digest` (`HEAD`).
pub async fn blob_exists(registry: &Registry, repo: &str, digest: &str) -> Result<bool> {
    let response = registry
        .send(
            Method::HEAD,
            &format!("/v2/{repo}/blobs/{digest}"),
            &[],
            data::empty(),
        )
        .await?;
    let status = response.status();
    drain(response).await?;
    match status {
        StatusCode::OK => Ok(true),
        StatusCode::NOT_FOUND => Ok(false),
        other => Err(format!("HEAD blob answered {other}").into()),
    }
}

/// Pushes a small in-memory blob the way clients do: HEAD, and when
/// missing POST + PUT with the bytes.
async fn push_small_blob(registry: &Registry, repo: &str, bytes: Bytes) -> Result<String> {
    let digest = data::digest_of(&bytes);
    if blob_exists(registry, repo, &digest).await? {
        return Ok(digest);
    }
    let loc = start_upload(registry, repo).await?;
    let response = registry
        .send(
            Method::PUT,
            &with_query(&loc, "digest", &digest),
            &[
                (CONTENT_LENGTH, bytes.len().to_string()),
                (CONTENT_TYPE, OCTETS.into()),
            ],
            data::full(bytes),
        )
        .await?;
    let response = expect(response, StatusCode::CREATED, "PUT small blob").await?;
    drain(response).await?;
    Ok(digest)
}

/// Pushes one small image (a config, one layer of `layer_size` bytes from
/// blob `seed`, an OCI manifest) tagged `tag`; returns the manifest's digest.
pub async fn push_image(
    registry: &Registry,
    pattern: &Pattern,
    repo: &str,
    tag: &str,
    seed: u64,
    layer_size: u64,
) -> Result<String> {
    let layer = pattern.bytes(seed, layer_size);
    let layer_digest = push_small_blob(registry, repo, layer).await?;
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": { "Labels": { "bench.seed": seed.to_string() } },
        "rootfs": { "type": "layers", "diff_ids": [layer_digest] },
        "history": [{ "created_by": "registry load harness" }],
    })
    .to_string();
    let config = Bytes::from(config);
    let config_size = config.len();
    let config_digest = push_small_blob(registry, repo, config).await?;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": { "mediaType": CONFIG_TYPE, "digest": config_digest, "size": config_size },
        "layers": [{ "mediaType": LAYER_TYPE, "digest": layer_digest, "size": layer_size }],
    })
    .to_string();
    let manifest = Bytes::from(manifest);
    let manifest_digest = data::digest_of(&manifest);
    let response = registry
        .send(
            Method::PUT,
            &format!("/v2/{repo}/manifests/{tag}"),
            &[
                (CONTENT_LENGTH, manifest.len().to_string()),
                (CONTENT_TYPE, MANIFEST_TYPE.into()),
            ],
            data::full(manifest),
        )
        .await?;
    let response = expect(response, StatusCode::CREATED, "PUT manifest").await?;
    drain(response).await?;
    Ok(manifest_digest)
}

/// Pushes `count` distinct small images (tags `img-0…`) to `repo` with
/// `workers` images in flight at once; returns the total time.
pub async fn small_images(
    registry: &Registry,
    pattern: &Pattern,
    repo: &str,
    seed: u64,
    count: usize,
    workers: usize,
    layer_size: u64,
) -> Result<Duration> {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..workers.max(1) {
        let (registry, pattern, next) = (registry.clone(), pattern.clone(), next.clone());
        let repo = repo.to_string();
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return Ok::<(), crate::client::Error>(());
                }
                let image_seed = seed.wrapping_mul(1_000_003).wrapping_add(i as u64);
                push_image(
                    &registry,
                    &pattern,
                    &repo,
                    &format!("img-{i}"),
                    image_seed,
                    layer_size,
                )
                .await?;
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(start.elapsed())
}
