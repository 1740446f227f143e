//! Where a request came from: the peer address (axum's
//! `ConnectInfo<SocketAddr>`), whether the listener was TLS
//! ([`SecureListener`]), and what forwarded headers may be believed
//! (only from a peer in the trusted proxies).
//!
//! The router's outermost layer copies these from the request extensions
//! into a task-local for the request's life, so the authentication code,
//! which is handed only the headers, can read them without every handler
//! passing them along.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use axum::extract::ConnectInfo;
use axum::http::{header, HeaderMap};

/// Request extension a TLS listener inserts: the request arrived over HTTPS
/// (the listener's own scheme, not anything the client claims).
#[derive(Debug, Clone, Copy, Default)]
pub struct SecureListener;

/// The connection facts of the request being served.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Connection {
    /// The TCP peer, when the server recorded it.
    pub(crate) peer: Option<SocketAddr>,
    /// Whether the listener was TLS.
    pub(crate) https: bool,
}

tokio::task_local! {
    static CONNECTION: Connection;
}

/// The outermost layer: makes the connection facts of each request
/// available to [`current`] while it is served. A plain tower layer rather
/// than `axum::middleware::from_fn`, which boxes the inner service and the
/// future on every request (benches/callgrind_requests.sh counted it).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ScopeLayer;

impl<S> tower::Layer<S> for ScopeLayer {
    type Service = Scope<S>;

    fn layer(&self, inner: S) -> Scope<S> {
        Scope { inner }
    }
}

/// The service of [`ScopeLayer`].
#[derive(Debug, Clone)]
pub(crate) struct Scope<S> {
    inner: S,
}

impl<S, B> tower::Service<axum::http::Request<B>> for Scope<S>
where
    S: tower::Service<axum::http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = tokio::task::futures::TaskLocalFuture<Connection, S::Future>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: axum::http::Request<B>) -> Self::Future {
        let connection = Connection {
            peer: request
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0),
            https: request.extensions().get::<SecureListener>().is_some(),
        };
        CONNECTION.scope(connection, self.inner.call(request))
    }
}

/// The connection facts of the current request (none outside a request).
pub(crate) fn current() -> Connection {
    CONNECTION.try_with(|c| *c).unwrap_or_default()
}

/// An address range in CIDR notation (`10.0.0.0/8`, `::1/128`; a bare
/// address is a single host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpCidr {
    addr: IpAddr,
    prefix: u8,
}

/// Why a CIDR range did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IpCidrError {
    /// The address part is not an IPv4 or IPv6 address.
    #[error("`{0}` is not an IP address")]
    Address(String),
    /// The prefix length is not a number within the address's bits.
    #[error("`{0}` is not a prefix length for this address (0-32 for IPv4, 0-128 for IPv6)")]
    Prefix(String),
}

impl FromStr for IpCidr {
    type Err = IpCidrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (addr_text, prefix_text) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr_text
            .parse()
            .map_err(|_| IpCidrError::Address(addr_text.to_owned()))?;
        let bits = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix_text {
            None => bits,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= bits)
                .ok_or_else(|| IpCidrError::Prefix(p.to_owned()))?,
        };
        Ok(IpCidr { addr, prefix })
    }
}

impl std::fmt::Display for IpCidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl IpCidr {
    /// Whether `ip` is inside the range (an IPv4-mapped IPv6 address counts
    /// as its IPv4 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        let mask = |bits: u32, value: u128| -> u128 {
            if self.prefix == 0 {
                0
            } else {
                value >> (bits - u32::from(self.prefix))
            }
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                mask(32, u32::from(net).into()) == mask(32, u32::from(ip).into())
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                mask(128, u128::from(net)) == mask(128, u128::from(ip))
            }
            _ => false,
        }
    }
}

/// Whether `ip` is in any of `ranges`.
pub(crate) fn trusted(ranges: &[IpCidr], ip: IpAddr) -> bool {
    ranges.iter().any(|r| r.contains(ip))
}

/// The client's address: the peer, or, when the peer is a trusted proxy,
/// the right-most address of `X-Forwarded-For` that is not itself trusted.
pub(crate) fn client_ip(ranges: &[IpCidr], headers: &HeaderMap) -> Option<IpAddr> {
    let peer = current().peer?.ip();
    if !trusted(ranges, peer) {
        return Some(peer);
    }
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|a| a.trim().parse::<IpAddr>().ok())
        .collect::<Vec<_>>();
    Some(
        forwarded
            .into_iter()
            .rev()
            .find(|ip| !trusted(ranges, *ip))
            .unwrap_or(peer),
    )
}

/// A host (and port) fit to put in a URL and a quoted header parameter.
fn plausible_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b))
}

/// First value of a comma-separated forwarded header.
fn first_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let v = headers.get(name)?.to_str().ok()?;
    Some(v.split(',').next()?.trim())
}

/// `proto` and `host` of the first element of an RFC 7239 `Forwarded`.
fn rfc7239(headers: &HeaderMap) -> (Option<String>, Option<String>) {
    let Some(first) = first_value(headers, "forwarded") else {
        return (None, None);
    };
    let (mut proto, mut host) = (None, None);
    for pair in first.split(';') {
        if let Some((k, v)) = pair.trim().split_once('=') {
            let v = v.trim().trim_matches('"').to_owned();
            match k.trim().to_ascii_lowercase().as_str() {
                "proto" => proto = Some(v),
                "host" => host = Some(v),
                _ => {}
            }
        }
    }
    (proto, host)
}

/// The scheme and host clients reach this registry at, for a request
/// without a configured public URL: the listener's scheme and the `Host`
/// header, overridden by `Forwarded` / `X-Forwarded-Proto` /
/// `X-Forwarded-Host` only when the peer is a trusted proxy.
pub(crate) fn request_base(ranges: &[IpCidr], headers: &HeaderMap) -> String {
    let connection = current();
    let mut scheme = if connection.https { "https" } else { "http" }.to_owned();
    let mut host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| plausible_host(h))
        .unwrap_or("localhost")
        .to_owned();
    if connection.peer.is_some_and(|p| trusted(ranges, p.ip())) {
        let (proto, fhost) = rfc7239(headers);
        let proto = proto.or_else(|| first_value(headers, "x-forwarded-proto").map(str::to_owned));
        let fhost = fhost.or_else(|| first_value(headers, "x-forwarded-host").map(str::to_owned));
        if let Some(p) = proto.filter(|p| p == "http" || p == "https") {
            scheme = p;
        }
        if let Some(h) = fhost.filter(|h| plausible_host(h)) {
            host = h;
        }
    }
    format!("{scheme}://{host}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_ranges() {
        let net: IpCidr = "10.1.0.0/16".parse().unwrap();
        assert!(net.contains("10.1.200.3".parse().unwrap()));
        assert!(!net.contains("10.2.0.1".parse().unwrap()));
        assert!(net.contains("::ffff:10.1.0.9".parse().unwrap()));
        let host: IpCidr = "::1".parse().unwrap();
        assert!(host.contains("::1".parse().unwrap()));
        assert!(!host.contains("::2".parse().unwrap()));
        let all: IpCidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("192.0.2.1".parse().unwrap()));
        assert!(matches!(
            "10.0.0.0/33".parse::<IpCidr>(),
            Err(IpCidrError::Prefix(_))
        ));
        assert!(matches!(
            "nope/8".parse::<IpCidr>(),
            Err(IpCidrError::Address(_))
        ));
    }
}
