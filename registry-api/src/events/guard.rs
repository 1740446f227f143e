//! The server-side request forgery guard of webhook deliveries: URLs are
//! checked when a webhook is created (scheme, no userinfo, a host), and
//! every delivery resolves the host again and refuses loopback, private,
//! link-local, unique-local, unspecified, multicast and other non-global
//! addresses (IPv4-mapped IPv6 forms included) unless private receivers
//! are allowed. The delivery then connects to the address that was checked.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use url::Url;

/// Why a webhook URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UrlRefused {
    /// Not a URL.
    #[error("webhook url is not a valid URL: {0}")]
    Invalid(String),
    /// Not `http` or `https`.
    #[error("webhook url must be http or https, not {0}")]
    Scheme(String),
    /// Has `user:password@`: secrets do not belong in URLs (use `secret`).
    #[error("webhook url must not carry credentials (user:password@); deliveries are signed with the webhook's secret instead")]
    Userinfo,
    /// No host.
    #[error("webhook url has no host")]
    NoHost,
    /// Longer than allowed.
    #[error("webhook url is longer than {0} bytes")]
    TooLong(usize),
    /// Resolves to (or is) an address deliveries may not reach.
    #[error("webhook host {host} resolves to {addr}, a {kind} address: refused (the server allows private receivers only with --webhook-allow-private)")]
    Private {
        /// The host.
        host: String,
        /// The refused address.
        addr: IpAddr,
        /// What kind of address it is.
        kind: &'static str,
    },
    /// The host did not resolve.
    #[error("webhook host {host} does not resolve: {reason}")]
    Unresolved {
        /// The host.
        host: String,
        /// Why.
        reason: String,
    },
}

/// Longest webhook URL accepted.
pub const MAX_URL_LEN: usize = 2048;

/// Checks a webhook URL's form (not its address): `http`/`https`, a host,
/// no userinfo, bounded length. A literal IP address is classified too.
pub fn validate_url(text: &str, allow_private: bool) -> Result<Url, UrlRefused> {
    if text.len() > MAX_URL_LEN {
        return Err(UrlRefused::TooLong(MAX_URL_LEN));
    }
    let url = Url::parse(text).map_err(|e| UrlRefused::Invalid(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(UrlRefused::Scheme(url.scheme().to_owned()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UrlRefused::Userinfo);
    }
    let host = match url.host() {
        None => return Err(UrlRefused::NoHost),
        Some(url::Host::Domain("")) => return Err(UrlRefused::NoHost),
        Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
        Some(url::Host::Domain(_)) => None,
    };
    if let (Some(addr), false) = (host, allow_private) {
        if let Some(kind) = non_global(addr) {
            return Err(UrlRefused::Private {
                host: url.host_str().unwrap_or_default().to_owned(),
                addr,
                kind,
            });
        }
    }
    Ok(url)
}

/// Resolves a webhook URL's host and picks the address to connect to: the
/// first one, after refusing the lot if any is non-global (a name that
/// resolves to a public and a private address is refused, since the
/// resolver's order is not ours to trust).
pub async fn resolve(url: &Url, allow_private: bool) -> Result<SocketAddr, UrlRefused> {
    let host = url.host_str().ok_or(UrlRefused::NoHost)?;
    let port = url.port_or_known_default().unwrap_or(80);
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((bare, port))
        .await
        .map_err(|e| UrlRefused::Unresolved {
            host: host.to_owned(),
            reason: e.to_string(),
        })?
        .collect();
    if !allow_private {
        for addr in &addrs {
            if let Some(kind) = non_global(addr.ip()) {
                return Err(UrlRefused::Private {
                    host: host.to_owned(),
                    addr: addr.ip(),
                    kind,
                });
            }
        }
    }
    addrs
        .first()
        .copied()
        .ok_or_else(|| UrlRefused::Unresolved {
            host: host.to_owned(),
            reason: "no address".to_owned(),
        })
}

/// What kind of non-global address `addr` is, or `None` for a global one.
pub fn non_global(addr: IpAddr) -> Option<&'static str> {
    match addr {
        IpAddr::V4(v4) => non_global_v4(v4),
        IpAddr::V6(v6) => {
            // ::ffff:a.b.c.d and the deprecated ::a.b.c.d reach IPv4.
            if let Some(v4) = v6.to_ipv4_mapped() {
                return non_global_v4(v4);
            }
            non_global_v6(v6)
        }
    }
}

fn non_global_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    Some(if ip.is_unspecified() || a == 0 {
        "unspecified (0.0.0.0/8)"
    } else if ip.is_loopback() {
        "loopback"
    } else if ip.is_private() {
        "private"
    } else if ip.is_link_local() {
        "link-local"
    } else if a == 100 && (64..128).contains(&b) {
        "shared (carrier-grade NAT)"
    } else if ip.is_multicast() || ip.is_broadcast() || a >= 240 {
        "multicast or reserved"
    } else if ip.is_documentation() || (a == 198 && (b == 18 || b == 19)) {
        "documentation or benchmarking"
    } else if a == 192 && b == 0 && ip.octets()[2] == 0 {
        "IETF protocol assignment"
    } else {
        return None;
    })
}

fn non_global_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let first = ip.segments()[0];
    Some(if ip.is_unspecified() {
        "unspecified"
    } else if ip.is_loopback() {
        "loopback"
    } else if first & 0xfe00 == 0xfc00 {
        "unique-local"
    } else if first & 0xffc0 == 0xfe80 {
        "link-local"
    } else if ip.is_multicast() {
        "multicast"
    } else if first == 0x2001 && ip.segments()[1] == 0x0db8 {
        "documentation"
    } else if first == 0x0064 && ip.segments()[1] == 0xff9b {
        // NAT64 (64:ff9b::/96) embeds an IPv4 address: judge that one.
        let s = ip.segments();
        let v4 = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
        return non_global_v4(v4);
    } else if ip.segments()[..6] == [0; 6] {
        // ::a.b.c.d (IPv4-compatible, deprecated).
        "IPv4-compatible"
    } else {
        return None;
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn classifies_addresses() {
        for refused in [
            "127.0.0.1",
            "127.255.0.9",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "0.1.2.3",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "192.0.2.1",
            "198.18.0.1",
            "::",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:1",
            "2001:db8::1",
        ] {
            assert!(
                non_global(ip(refused)).is_some(),
                "{refused} must be refused"
            );
        }
        for allowed in [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert_eq!(non_global(ip(allowed)), None, "{allowed} is global");
        }
    }

    #[test]
    fn validates_urls() {
        assert!(validate_url("https://hooks.example.com/x", false).is_ok());
        assert!(matches!(
            validate_url("ftp://hooks.example.com/", false),
            Err(UrlRefused::Scheme(_))
        ));
        assert_eq!(
            validate_url("https://u:p@hooks.example.com/", false),
            Err(UrlRefused::Userinfo)
        );
        assert!(matches!(
            validate_url("not a url", false),
            Err(UrlRefused::Invalid(_))
        ));
        assert!(matches!(
            validate_url("http://127.0.0.1:9000/", false),
            Err(UrlRefused::Private { .. })
        ));
        assert!(matches!(
            validate_url("http://[::ffff:7f00:1]/", false),
            Err(UrlRefused::Private { .. })
        ));
        assert!(validate_url("http://127.0.0.1:9000/", true).is_ok());
        let long = format!("https://a.example/{}", "x".repeat(MAX_URL_LEN));
        assert_eq!(
            validate_url(&long, false),
            Err(UrlRefused::TooLong(MAX_URL_LEN))
        );
    }

    #[tokio::test]
    async fn resolving_refuses_loopback_names() {
        let url = Url::parse("http://localhost:1/").unwrap();
        assert!(matches!(
            resolve(&url, false).await,
            Err(UrlRefused::Private { .. })
        ));
        let allowed = resolve(&url, true).await.unwrap();
        assert!(allowed.ip().is_loopback());
    }
}
