//! A request body that stalls ends its request and rolls the upload back
//! (`Limits::body_idle_timeout`); a data directory is private to its owner.

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, StatusCode};
use bytes::Bytes;
use common::Client;
use futures::StreamExt;
use registry_api::Limits;
use registry_core::Digest;

const IDLE: Duration = Duration::from_millis(300);

/// A body that sends `first` and then nothing, for ever.
fn stalling_body(first: &[u8]) -> Body {
    let first = Bytes::copy_from_slice(first);
    let stream =
        futures::stream::iter([Ok::<_, std::io::Error>(first)]).chain(futures::stream::pending());
    Body::from_stream(stream)
}

fn limits() -> Limits {
    {
        let mut l = Limits::default();
        l.body_idle_timeout = IDLE;
        l
    }
}

/// Opens a session, appends `head`, then PATCHes a body that stalls after
/// some bytes: 408 naming the timeout, the session still at `head.len()`,
/// and the upload goes on and commits.
async fn stalled_patch_rolls_back(c: &Client) {
    let data: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
    let r = c.bare(Method::POST, "/v2/ns/app/blobs/uploads/", &[]).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let location = r.header("location").to_owned();
    let r = c
        .call(Method::PATCH, &location, &[], data[..1000].to_vec())
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(r.header("range"), "0-999");

    let stalled = c.call(
        Method::PATCH,
        &location,
        &[],
        stalling_body(&data[1000..3000]),
    );
    let r = tokio::time::timeout(Duration::from_secs(10), stalled)
        .await
        .expect("a stalled body must end its request");
    assert_eq!(r.status, StatusCode::REQUEST_TIMEOUT, "{:?}", r.json());
    assert_eq!(r.code(), "BLOB_UPLOAD_INVALID");
    let message = r.json()["errors"][0]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.contains("no byte"), "{message}");
    assert_eq!(r.header("connection"), "close");

    let r = c.bare(Method::GET, &location, &[]).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        r.header("range"),
        "0-999",
        "the stalled request is rolled back"
    );

    let r = c
        .call(Method::PATCH, &location, &[], data[1000..].to_vec())
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let digest = Digest::sha256_of(&data);
    let sep = if location.contains('?') { '&' } else { '?' };
    let r = c
        .bare(Method::PUT, &format!("{location}{sep}digest={digest}"), &[])
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = c.get(&format!("/v2/ns/app/blobs/{digest}")).await;
    assert_eq!(&r.body[..], &data[..]);
}

#[tokio::test]
async fn stalled_patch_body_times_out_and_rolls_back_in_memory() {
    stalled_patch_rolls_back(&Client::with(common::limited(limits()).await)).await;
}

#[tokio::test]
async fn stalled_patch_body_times_out_and_rolls_back_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let registry = common::data_dir(dir.path(), limits()).await;
    stalled_patch_rolls_back(&Client::with(registry)).await;
}

#[tokio::test]
async fn stalled_monolithic_push_times_out_and_stores_nothing() {
    let c = Client::with(common::limited(limits()).await);
    let data = vec![7u8; 4000];
    let digest = Digest::sha256_of(&data);
    let uri = format!("/v2/ns/app/blobs/uploads/?digest={digest}");
    let push = c.call(
        Method::POST,
        &uri,
        &[("content-length", "4000")],
        stalling_body(&data[..1000]),
    );
    let r = tokio::time::timeout(Duration::from_secs(10), push)
        .await
        .expect("a stalled body must end its request");
    assert_eq!(r.status, StatusCode::REQUEST_TIMEOUT);
    let r = c
        .bare(Method::HEAD, &format!("/v2/ns/app/blobs/{digest}"), &[])
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[cfg(unix)]
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[cfg(unix)]
#[tokio::test]
async fn a_new_data_dir_is_private() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("data");
    let c = Client::with(common::data_dir(&dir, Limits::default()).await);
    c.push_blob("ns/app", b"some layer").await;
    let r = c.bare(Method::POST, "/v2/ns/app/blobs/uploads/", &[]).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let id = r.header("docker-upload-uuid").to_owned();
    let location = r.header("location").to_owned();
    // The session's file appears with its first bytes.
    assert!(!dir.join("uploads").join(&id).exists());
    let r = c
        .call(
            Method::PATCH,
            &location,
            &[("content-range", "0-4"), ("content-length", "5")],
            "bytes",
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);

    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("uploads")), 0o700);
    for file in [
        "registry.db",
        "registry.db-wal",
        "registry.db-shm",
        "registry-uploads.db",
        "registry-uploads.db-wal",
        "registry-uploads.db-shm",
    ] {
        assert_eq!(mode(&dir.join(file)), 0o600, "{file}");
    }
    assert_eq!(
        mode(&dir.join("uploads").join(&id)),
        0o600,
        "the session's bytes"
    );
}

#[cfg(unix)]
#[tokio::test]
async fn an_existing_loose_data_dir_is_tightened() {
    use std::os::unix::fs::PermissionsExt;
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("data");
    drop(common::data_dir(&dir, Limits::default()).await);
    let loosen = |p: std::path::PathBuf, m: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap()
    };
    loosen(dir.clone(), 0o755);
    loosen(dir.join("uploads"), 0o755);
    loosen(dir.join("registry.db"), 0o644);
    loosen(dir.join("registry-uploads.db"), 0o644);
    // Made if missing, never truncated: the first registry's connections
    // may still be closing (on their own threads), with frames in it.
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("registry.db-wal"))
        .unwrap();
    loosen(dir.join("registry.db-wal"), 0o664);

    let c = Client::with(common::data_dir(&dir, Limits::default()).await);
    c.push_blob("ns/app", b"still works").await;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("uploads")), 0o700);
    assert_eq!(mode(&dir.join("registry.db")), 0o600);
    assert_eq!(mode(&dir.join("registry.db-wal")), 0o600);
    assert_eq!(mode(&dir.join("registry-uploads.db")), 0o600);
}
