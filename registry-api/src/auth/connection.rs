//! Where a request came from: the peer address (axum's
//! `ConnectInfo<SocketAddr>`), whether the listener was TLS
//! ([`SecureListener`]), and what forwarded headers may be believed
//! (only from a peer in the trusted proxies).

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use axum::extract::ConnectInfo;
use axum::http::{header, Extensions, HeaderMap, HeaderValue};

/// Request extension a TLS listener inserts: the request arrived over HTTPS
/// (the listener's own scheme, not anything the client claims).
#[derive(Debug, Clone, Copy, Default)]
pub struct SecureListener;

/// Where a request came from, as the server saw it: the TCP peer and
/// whether the listener was TLS (request extensions the server inserted),
/// plus the headers that name the host clients used. Cheap to take: a few
/// reference-counted header values.
#[derive(Debug, Clone, Default)]
pub(crate) struct Origin {
    /// The TCP peer, when the server recorded it.
    pub(crate) peer: Option<SocketAddr>,
    /// Whether the listener was TLS.
    pub(crate) https: bool,
    host: Option<HeaderValue>,
    forwarded: Option<HeaderValue>,
    forwarded_proto: Option<HeaderValue>,
    forwarded_host: Option<HeaderValue>,
    forwarded_for: Vec<HeaderValue>,
}

impl Origin {
    /// The origin of a request, from its extensions and headers.
    pub(crate) fn of(extensions: &Extensions, headers: &HeaderMap) -> Self {
        Self::with_proxies(extensions, headers, None)
    }

    /// [`Origin::of`], keeping the forwarded headers only when the peer is
    /// in `trusted` (`None`: keep them; whoever reads them checks): on the
    /// hot path most requests come from peers whose forwarded headers no
    /// answer would believe.
    pub(crate) fn with_proxies(
        extensions: &Extensions,
        headers: &HeaderMap,
        trusted_proxies: Option<&[IpCidr]>,
    ) -> Self {
        let peer = extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
        let https = extensions.get::<SecureListener>().is_some();
        let host = headers.get(header::HOST).cloned();
        let forwarded_believable = match (trusted_proxies, peer) {
            (None, _) => true,
            (Some(ranges), Some(peer)) => trusted(ranges, peer.ip()),
            (Some(_), None) => false,
        };
        if !forwarded_believable {
            return Origin {
                peer,
                https,
                host,
                ..Origin::default()
            };
        }
        Origin {
            peer,
            https,
            host,
            forwarded: headers.get("forwarded").cloned(),
            forwarded_proto: headers.get("x-forwarded-proto").cloned(),
            forwarded_host: headers.get("x-forwarded-host").cloned(),
            forwarded_for: headers.get_all("x-forwarded-for").iter().cloned().collect(),
        }
    }

    /// The client's address: the peer, or, when the peer is a trusted
    /// proxy, the right-most address of `X-Forwarded-For` that is not
    /// itself trusted.
    pub(crate) fn client_ip(&self, ranges: &[IpCidr]) -> Option<IpAddr> {
        let peer = self.peer?.ip();
        if !trusted(ranges, peer) {
            return Some(peer);
        }
        let forwarded = self
            .forwarded_for
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

    /// The scheme and host clients reach this registry at, without a
    /// configured public URL: the listener's scheme and the `Host` header,
    /// overridden by `Forwarded` / `X-Forwarded-Proto` / `X-Forwarded-Host`
    /// only when the peer is a trusted proxy.
    pub(crate) fn base(&self, ranges: &[IpCidr]) -> String {
        let mut scheme = if self.https { "https" } else { "http" }.to_owned();
        let mut host = self
            .host
            .as_ref()
            .and_then(|h| h.to_str().ok())
            .filter(|h| plausible_host(h))
            .unwrap_or("localhost")
            .to_owned();
        if self.peer.is_some_and(|p| trusted(ranges, p.ip())) {
            let (proto, fhost) = rfc7239(self.forwarded.as_ref());
            let proto = proto.or_else(|| first_value(self.forwarded_proto.as_ref()));
            let fhost = fhost.or_else(|| first_value(self.forwarded_host.as_ref()));
            if let Some(p) = proto.filter(|p| p == "http" || p == "https") {
                scheme = p;
            }
            if let Some(h) = fhost.filter(|h| plausible_host(h)) {
                host = h;
            }
        }
        format!("{scheme}://{host}")
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Origin {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Origin::of(&parts.extensions, &parts.headers))
    }
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

/// A host (and port) fit to put in a URL and a quoted header parameter.
fn plausible_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b))
}

/// First value of a comma-separated forwarded header.
fn first_value(value: Option<&HeaderValue>) -> Option<String> {
    let v = value?.to_str().ok()?;
    Some(v.split(',').next()?.trim().to_owned())
}

/// `proto` and `host` of the first element of an RFC 7239 `Forwarded`.
fn rfc7239(value: Option<&HeaderValue>) -> (Option<String>, Option<String>) {
    let Some(first) = first_value(value) else {
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
