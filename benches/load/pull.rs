//! The single-stream pull of a large blob, read straight off the socket.
//!
//! The other tests go through hyper's client. A pull does not: hyper's
//! client hands every body frame from its connection task to the reader
//! through a channel, in reads of at most ~400 KiB, and on this 2-core
//! machine that hand-off capped a 1 GiB pull near 1.6–1.9 GB/s while `curl`
//! took 2.8–3.4 GB/s from the same server. A pull here is one HTTP/1.1
//! `GET` on its own connection (`Connection: close`), its body read in
//! 1 MiB `read`s into one reused buffer and counted, not kept: the client
//! then costs about what `curl -o /dev/null` costs, whichever server it
//! measures.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::client::{Registry, Result};

/// Read size for the body (and the most a response head may take).
const READ_SIZE: usize = 1024 * 1024;

/// What one `GET` answered.
enum Answer {
    /// A redirect to this `Location`.
    Redirect(String),
    /// `200 OK` with a body of this many bytes (all read).
    Body(u64),
}

/// Pulls `digest` from `repo` once (following up to two redirects), counting
/// the bytes without keeping or hashing them; fails unless exactly `size`
/// came.
pub async fn pull(registry: &Registry, repo: &str, digest: &str, size: u64) -> Result<Duration> {
    let start = Instant::now();
    let mut url = registry.url(&format!("/v2/{repo}/blobs/{digest}"));
    for _ in 0..3 {
        let (authority, path) = split_url(&url)?;
        // Credentials go to the registry only, never to where it redirects
        // (a presigned storage URL refuses a second authentication).
        let auth = if authority == registry.authority() {
            registry.authorization()
        } else {
            None
        };
        let auth = auth.map(|v| v.to_str().map(str::to_string)).transpose()?;
        match get(authority, path, auth.as_deref()).await? {
            Answer::Redirect(location) => {
                url = if location.starts_with('/') {
                    format!("http://{authority}{location}")
                } else {
                    location
                };
            }
            Answer::Body(got) if got == size => return Ok(start.elapsed()),
            Answer::Body(got) => {
                return Err(format!("pulled {got} bytes, expected {size}").into());
            }
        }
    }
    Err("too many redirects".into())
}

/// `http://authority/path` → (`authority`, `/path`).
fn split_url(url: &str) -> Result<(&str, &str)> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("the pull follows http:// URLs only, got {url}"))?;
    Ok(match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    })
}

/// One `GET` on a new connection.
async fn get(authority: &str, path: &str, auth: Option<&str>) -> Result<Answer> {
    let mut stream = TcpStream::connect(authority).await?;
    stream.set_nodelay(true)?;
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n");
    if let Some(auth) = auth {
        request.push_str(&format!("Authorization: {auth}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await?;

    let mut buf = vec![0u8; READ_SIZE];
    let mut filled = 0;
    let head_end = loop {
        if let Some(i) = buf[..filled].windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if filled == buf.len() {
            return Err("response head larger than 1 MiB".into());
        }
        let n = stream.read(&mut buf[filled..]).await?;
        if n == 0 {
            return Err(format!("GET {path}: connection closed before the response head").into());
        }
        filled += n;
    };
    let head = Head::parse(&buf[..head_end])?;
    if (300..400).contains(&head.status) {
        let location = head
            .location
            .ok_or_else(|| format!("GET {path}: {} without Location", head.status))?;
        return Ok(Answer::Redirect(location));
    }
    if head.status != 200 {
        let shown = String::from_utf8_lossy(&buf[head_end..filled.min(head_end + 400)]);
        return Err(format!("GET {path}: expected 200, got {}: {shown}", head.status).into());
    }
    if head.chunked {
        return Err(format!("GET {path}: chunked bodies are not read by the pull test").into());
    }
    let length = head
        .content_length
        .ok_or_else(|| format!("GET {path}: 200 without Content-Length"))?;
    let mut got = (filled - head_end) as u64;
    while got < length {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        got += n as u64;
    }
    Ok(Answer::Body(got))
}

/// What the pull needs of a response head.
struct Head {
    status: u16,
    content_length: Option<u64>,
    location: Option<String>,
    chunked: bool,
}

impl Head {
    fn parse(head: &[u8]) -> Result<Self> {
        let text = std::str::from_utf8(head).map_err(|_| "response head is not UTF-8")?;
        let mut lines = text.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line {status_line:?}"))?;
        let mut parsed = Head {
            status,
            content_length: None,
            location: None,
            chunked: false,
        };
        for line in lines {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => parsed.content_length = Some(value.parse()?),
                "location" => parsed.location = Some(value.to_string()),
                "transfer-encoding" => {
                    parsed.chunked = value.to_ascii_lowercase().contains("chunked")
                }
                _ => {}
            }
        }
        Ok(parsed)
    }
}
