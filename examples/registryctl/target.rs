//! Which server to talk to and how: parsing a `SERVER` argument into a base
//! URL and the auth-file key, and the `--insecure` / `--ca-file` policy.

use reqwest::Url;

/// The URL scheme of a registry server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Plain HTTP: only with `--insecure`.
    Http,
    /// HTTPS, the default when `SERVER` has no scheme.
    Https,
}

impl Scheme {
    /// The scheme as written in a URL.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// A registry server named on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    scheme: Scheme,
    /// `host[:port]` as the user wrote it (without scheme or path).
    authority: String,
}

/// Paths accepted (and ignored) after `host[:port]` in `SERVER`.
const IGNORED_PATHS: [&str; 4] = ["", "/", "/v2", "/v2/"];

impl Server {
    /// Parses `host[:port]` (HTTPS assumed) or `http[s]://host[:port]`, with
    /// an optional trailing `/` or `/v2/`.
    pub fn parse(input: &str) -> Result<Self, String> {
        let input = input.trim();
        let (scheme, rest) = match input.split_once("://") {
            Some((s, rest)) if s.eq_ignore_ascii_case("https") => (Scheme::Https, rest),
            Some((s, rest)) if s.eq_ignore_ascii_case("http") => (Scheme::Http, rest),
            Some((s, _)) => {
                return Err(format!(
                    "unsupported scheme {s:?} in server {input:?}: use https:// or http://"
                ))
            }
            None => (Scheme::Https, input),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if !IGNORED_PATHS.contains(&path) {
            return Err(format!(
                "server {input:?} must be host[:port] or a URL without a path"
            ));
        }
        if authority.is_empty() {
            return Err(format!("server {input:?} has no host"));
        }
        if let Some(bad) = authority
            .chars()
            .find(|c| matches!(c, '@' | '?' | '#' | '\\') || c.is_whitespace() || c.is_control())
        {
            return Err(format!(
                "server {input:?} contains {bad:?}: give host[:port] only"
            ));
        }
        let server = Server {
            scheme,
            authority: authority.to_owned(),
        };
        // Let the URL parser check the host and port syntax.
        let url = Url::parse(&format!("{}://{}/", scheme.as_str(), authority))
            .map_err(|e| format!("invalid server {input:?}: {e}"))?;
        if url.host_str().is_none_or(str::is_empty) {
            return Err(format!("server {input:?} has no host"));
        }
        Ok(server)
    }

    /// The scheme used to reach the server.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The key of this server in an auth file's `auths`: `host[:port]`
    /// without scheme, which is what docker, podman and skopeo look up for
    /// an image reference `host[:port]/repo`.
    pub fn key(&self) -> &str {
        &self.authority
    }

    /// The `registryctl login ...` command line that stores credentials for
    /// this server (with `http://` and `--insecure` for a plain-HTTP one).
    pub fn login_command(&self) -> String {
        match self.scheme {
            Scheme::Https => format!("registryctl login {}", self.authority),
            Scheme::Http => format!("registryctl login http://{} --insecure", self.authority),
        }
    }

    /// `scheme://host[:port]/`.
    pub fn base_url(&self) -> Url {
        Url::parse(&format!("{}://{}/", self.scheme.as_str(), self.authority))
            .expect("validated in Server::parse")
    }
}

/// How the HTTP client treats the server's transport security.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// HTTPS, certificate verified against the system roots (and `--ca-file`).
    Verified,
    /// HTTPS without certificate verification (`--insecure`).
    Unverified,
    /// Plain HTTP (`--insecure` with an `http://` server).
    PlainHttp,
}

/// The transport decided for a server, with warnings to print on stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportDecision {
    /// What the client will do.
    pub transport: Transport,
    /// Whole lines (`warning: ...`) to show the user.
    pub warnings: Vec<String>,
}

/// Decides how to reach `server` given `--insecure` and whether `--ca-file`
/// was given. Plain HTTP is refused without `--insecure`; `--insecure` always
/// warns because it weakens security.
pub fn decide_transport(
    server: &Server,
    insecure: bool,
    has_ca_file: bool,
) -> Result<TransportDecision, String> {
    let key = server.key();
    let mut warnings = Vec::new();
    let transport = match (server.scheme(), insecure) {
        (Scheme::Http, false) => {
            return Err(format!(
                "http://{key} is plain HTTP: credentials would travel unencrypted; \
                 pass --insecure to allow plain HTTP, or use https://"
            ))
        }
        (Scheme::Http, true) => {
            warnings.push(format!(
                "warning: --insecure: using plain HTTP to {key}; credentials and tokens \
                 are sent unencrypted"
            ));
            if has_ca_file {
                warnings.push(format!(
                    "warning: --ca-file is ignored for plain HTTP server http://{key}"
                ));
            }
            Transport::PlainHttp
        }
        (Scheme::Https, true) => {
            warnings.push(format!(
                "warning: --insecure: not verifying the TLS certificate of {key}; \
                 anyone on the network path could impersonate the server \
                 (prefer --ca-file for a private CA)"
            ));
            Transport::Unverified
        }
        (Scheme::Https, false) => Transport::Verified,
    };
    Ok(TransportDecision {
        transport,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> String {
        Server::parse(s).unwrap().key().to_owned()
    }

    #[test]
    fn key_is_host_and_port_without_scheme() {
        assert_eq!(key("registry.example.com"), "registry.example.com");
        assert_eq!(key("localhost:5000"), "localhost:5000");
        assert_eq!(key("http://localhost:5000"), "localhost:5000");
        assert_eq!(key("https://reg.example:8443/"), "reg.example:8443");
        assert_eq!(key("HTTPS://reg.example/v2/"), "reg.example");
        assert_eq!(key("127.0.0.1:5000"), "127.0.0.1:5000");
        assert_eq!(key("[::1]:5000"), "[::1]:5000");
        // An explicit default port stays: podman looks up `reg:443` as typed.
        assert_eq!(key("https://reg:443"), "reg:443");
    }

    #[test]
    fn scheme_defaults_to_https() {
        let s = Server::parse("localhost:5000").unwrap();
        assert_eq!(s.scheme(), Scheme::Https);
        assert_eq!(s.base_url().as_str(), "https://localhost:5000/");
        let s = Server::parse("http://localhost:5000").unwrap();
        assert_eq!(s.scheme(), Scheme::Http);
        assert_eq!(s.base_url().as_str(), "http://localhost:5000/");
        assert_eq!(
            s.login_command(),
            "registryctl login http://localhost:5000 --insecure"
        );
        let s = Server::parse("https://reg:8443/").unwrap();
        assert_eq!(s.login_command(), "registryctl login reg:8443");
    }

    #[test]
    fn rejects_bad_servers() {
        for bad in [
            "",
            "ftp://host",
            "https://",
            "host/some/path",
            "user@host",
            "https://user:pw@host",
            "host:notaport",
            "host:70000",
            "ho st",
        ] {
            assert!(Server::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn plain_http_needs_insecure() {
        let http = Server::parse("http://localhost:5000").unwrap();
        let err = decide_transport(&http, false, false).unwrap_err();
        assert!(err.contains("--insecure"), "{err}");
        let ok = decide_transport(&http, true, false).unwrap();
        assert_eq!(ok.transport, Transport::PlainHttp);
        assert_eq!(ok.warnings.len(), 1);
        assert!(ok.warnings[0].starts_with("warning: --insecure: "));
        let with_ca = decide_transport(&http, true, true).unwrap();
        assert_eq!(with_ca.warnings.len(), 2);
    }

    #[test]
    fn https_verifies_unless_insecure() {
        let https = Server::parse("localhost:5000").unwrap();
        let d = decide_transport(&https, false, true).unwrap();
        assert_eq!(d.transport, Transport::Verified);
        assert!(d.warnings.is_empty());
        let d = decide_transport(&https, true, false).unwrap();
        assert_eq!(d.transport, Transport::Unverified);
        assert!(d.warnings[0].starts_with("warning: --insecure: "));
    }
}
