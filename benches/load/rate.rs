//! Request-rate tests (GET manifest by tag, HEAD blob) over N keep-alive
//! connections, and the single-stream pull of a large blob.

use std::time::{Duration, Instant};

use http::header::{ACCEPT, AUTHORIZATION, HOST, LOCATION};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::client::{drain, expect, Registry, Result};
use crate::data;
use crate::push::MANIFEST_TYPE;

/// What a rate test measured.
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    /// Successful requests per second over the whole run.
    pub per_second: f64,
    /// Median latency.
    pub p50: Duration,
    /// 99th percentile latency.
    pub p99: Duration,
    /// Requests that did not answer 200 (not counted in the rate).
    pub errors: u64,
}

/// Pulls `digest` from `repo` once (following a redirect), counting the
/// bytes without keeping or hashing them; fails unless exactly `size` came.
pub async fn pull(registry: &Registry, repo: &str, digest: &str, size: u64) -> Result<Duration> {
    let start = Instant::now();
    let mut target = format!("/v2/{repo}/blobs/{digest}");
    for _ in 0..3 {
        let response = registry
            .send(Method::GET, &target, &[], data::empty())
            .await?;
        if response.status().is_redirection() {
            target = response
                .headers()
                .get(LOCATION)
                .ok_or("redirect without Location")?
                .to_str()?
                .to_string();
            drain(response).await?;
            continue;
        }
        let response = expect(response, StatusCode::OK, "GET blob").await?;
        let got = drain(response).await?;
        if got != size {
            return Err(format!("pulled {got} bytes, expected {size}").into());
        }
        return Ok(start.elapsed());
    }
    Err("too many redirects".into())
}

/// Sends `method path` for `duration` on `concurrency` connections, one task
/// and one HTTP/1.1 keep-alive connection each, and measures every request.
pub async fn run(
    registry: &Registry,
    method: Method,
    path: &str,
    concurrency: usize,
    duration: Duration,
) -> Result<Rate> {
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (registry, method, path) = (registry.clone(), method.clone(), path.to_string());
        tasks.push(tokio::spawn(async move {
            worker(&registry, method, &path, deadline).await
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (lat, err) = task.await??;
        latencies.extend(lat);
        errors += err;
    }
    let elapsed = start.elapsed();
    if latencies.is_empty() {
        return Err(format!("no successful {method} {path} ({errors} errors)").into());
    }
    latencies.sort_unstable();
    let at = |q: f64| {
        let i = ((latencies.len() as f64 * q) as usize).min(latencies.len() - 1);
        Duration::from_nanos(latencies[i])
    };
    Ok(Rate {
        per_second: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50: at(0.50),
        p99: at(0.99),
        errors,
    })
}

/// One connection's loop: returns the latencies (ns) of successful requests
/// and the count of failed ones. Reconnects when the server closes.
async fn worker(
    registry: &Registry,
    method: Method,
    path: &str,
    deadline: Instant,
) -> Result<(Vec<u64>, u64)> {
    let mut latencies = Vec::with_capacity(64 * 1024);
    let mut errors = 0u64;
    let auth = registry.authorization();
    'connect: while Instant::now() < deadline {
        let stream = TcpStream::connect(registry.authority()).await?;
        stream.set_nodelay(true)?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        while Instant::now() < deadline {
            let mut request = Request::builder()
                .method(method.clone())
                .uri(path)
                .header(HOST, registry.authority())
                .header(ACCEPT, MANIFEST_TYPE);
            if let Some(auth) = &auth {
                request = request.header(AUTHORIZATION, auth.clone());
            }
            let request = request.body(Empty::<bytes::Bytes>::new())?;
            let sent = Instant::now();
            let response = match sender.send_request(request).await {
                Ok(r) => r,
                Err(_) => {
                    errors += 1;
                    continue 'connect;
                }
            };
            let ok = response.status() == StatusCode::OK;
            let mut body = response.into_body();
            while let Some(frame) = body.frame().await {
                if frame.is_err() {
                    errors += 1;
                    continue 'connect;
                }
            }
            if ok {
                latencies.push(sent.elapsed().as_nanos() as u64);
            } else {
                errors += 1;
            }
            if sender.ready().await.is_err() {
                continue 'connect;
            }
        }
    }
    Ok((latencies, errors))
}
