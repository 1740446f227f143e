//! Request-rate tests (GET manifest by tag, HEAD blob) over N keep-alive
//! connections.

use std::time::{Duration, Instant};

use http::header::{ACCEPT, AUTHORIZATION, HOST};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::client::{Registry, Result};
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
