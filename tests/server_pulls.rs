//! Blob pulls from the `registry-server` binary on plain HTTP: whole blobs
//! and ranges across the read chunks (1 MiB), a client that stops reading
//! for a while (the server's sends wait), other requests and errors on the
//! same keep-alive connection, pulls in parallel — every byte compared.
#![cfg(target_os = "linux")]

#[path = "common/examples.rs"]
mod examples;
#[path = "common/http_api.rs"]
mod http_api;

use std::time::Duration;

use examples::ServerProcess;
use http_api::{data, digest, Api};
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const REPO: &str = "pulls/app";

/// Pushes `blob` to `REPO` in one chunk.
async fn push(api: &Api, blob: &[u8]) {
    let location = api.start_upload(REPO).await;
    let location = api.patch(&location, 0, blob).await;
    api.finish(&location, blob).await;
}

/// Writes `request` and reads one response off `tcp`: status, body.
async fn exchange(tcp: &mut TcpStream, request: &str, pause: Duration) -> (u16, Vec<u8>) {
    tcp.write_all(request.as_bytes()).await.unwrap();
    // A client that does not read yet: the server's socket buffer fills
    // and its sends wait.
    tokio::time::sleep(pause).await;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tcp.read(&mut byte).await.unwrap();
        assert_eq!(
            n,
            1,
            "connection closed in the head: {:?}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    if !request.starts_with("HEAD") {
        tcp.read_exact(&mut body).await.unwrap();
    }
    (status, body)
}

fn request(method: &str, path: &str, range: Option<&str>) -> String {
    let range = range.map(|r| format!("range: {r}\r\n")).unwrap_or_default();
    format!("{method} {path} HTTP/1.1\r\nhost: registry\r\n{range}\r\n")
}

/// A `GET` (of `range`, if any) read at once: status, body.
async fn get(tcp: &mut TcpStream, path: &str, range: Option<&str>) -> (u16, Vec<u8>) {
    exchange(tcp, &request("GET", path, range), Duration::ZERO).await
}

#[tokio::test]
async fn plain_http_pulls_return_every_byte_on_one_connection() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, url) = ServerProcess::start(dir.path(), &["--no-auth"]);
    let api = Api::new(&url);
    let big = data((20 << 20) + 4321, 3);
    let small = data(1000, 5);
    push(&api, &big).await;
    push(&api, &small).await;
    let (big_path, small_path) = (
        format!("/v2/{REPO}/blobs/{}", digest(&big)),
        format!("/v2/{REPO}/blobs/{}", digest(&small)),
    );
    let addr = url.strip_prefix("http://").unwrap();
    let mut tcp = TcpStream::connect(addr).await.unwrap();

    let (status, body) = get(&mut tcp, &big_path, None).await;
    assert!(
        status == 200 && body == big,
        "whole blob: {status}, {} bytes",
        body.len()
    );
    let (status, body) = get(&mut tcp, &small_path, None).await;
    assert!(status == 200 && body == small, "small blob: {status}");
    let (status, _) = exchange(&mut tcp, &request("HEAD", &big_path, None), Duration::ZERO).await;
    assert_eq!(status, 200);
    // Across many chunk boundaries; the suffix; one byte.
    let (start, end) = ((8 << 20) - 10, (16 << 20) + 10);
    let range = format!("bytes={start}-{}", end - 1);
    let (status, body) = get(&mut tcp, &big_path, Some(&range)).await;
    assert!(
        status == 206 && body == big[start..end],
        "range {range}: {status}"
    );
    let (status, body) = get(&mut tcp, &big_path, Some("bytes=-5000")).await;
    assert!(
        status == 206 && body == big[big.len() - 5000..],
        "suffix: {status}"
    );
    let (status, body) = get(&mut tcp, &small_path, Some("bytes=7-7")).await;
    assert!(status == 206 && body == small[7..8], "one byte: {status}");
    // A reader that lets the server's sends block for a while.
    let (status, body) = exchange(
        &mut tcp,
        &request("GET", &big_path, None),
        Duration::from_millis(300),
    )
    .await;
    assert!(status == 200 && body == big, "after a pause: {status}");
    // Errors and other endpoints still answer on the same connection.
    let missing = format!("/v2/{REPO}/blobs/{}", digest(b"never pushed"));
    let (status, _) = get(&mut tcp, &missing, None).await;
    assert_eq!(status, 404);
    let (status, body) = get(&mut tcp, "/v2/", None).await;
    assert!(
        status == 200,
        "{status}: {}",
        String::from_utf8_lossy(&body)
    );

    // In parallel, each on its own connection.
    let pulls = (0..4).map(|_| {
        let (big_path, addr) = (big_path.clone(), addr.to_owned());
        tokio::spawn(async move {
            let mut tcp = TcpStream::connect(addr).await.unwrap();
            get(&mut tcp, &big_path, None).await
        })
    });
    for pull in futures::future::join_all(pulls).await {
        let (status, body) = pull.unwrap();
        assert!(status == 200 && body == big, "parallel pull: {status}");
    }
    // And through an HTTP client.
    let (status, body) = api.get(&big_path, None).await;
    assert!(status == StatusCode::OK && body == big);
}
