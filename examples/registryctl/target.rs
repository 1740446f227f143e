//! Which server to talk to and how: parsing a `SERVER` argument into a base
//! URL and the auth-file key, and the `--insecure` / `--ca-file` policy.

use reqwest::Url;

use crate::CliError;

/// Why a `SERVER` argument is refused.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A scheme other than http or https.
    #[error("unsupported scheme {scheme:?} in server {input:?}: use https:// or http://")]
    Scheme {
        /// The argument.
        input: String,
        /// Its scheme.
        scheme: String,
    },
    /// A path after the host.
    #[error("server {0:?} must be host[:port] or a URL without a path")]
    Path(String),
    /// No host.
    #[error("server {0:?} has no host")]
    NoHost(String),
    /// A character that has no place in `host[:port]`.
    #[error("server {input:?} contains {bad:?}: give host[:port] only")]
    Character {
        /// The argument.
        input: String,
        /// The character.
        bad: char,
    },
    /// Host or port syntax.
    #[error("invalid server {input:?}: {source}")]
    Invalid {
        /// The argument.
        input: String,
        /// What the URL parser says.
        source: url::ParseError,
    },
}

/// A registry server named on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    https: bool,
    /// `host[:port]` as the user wrote it (without scheme or path).
    authority: String,
}

/// Paths accepted (and ignored) after `host[:port]` in `SERVER`.
const IGNORED_PATHS: [&str; 4] = ["", "/", "/v2", "/v2/"];

impl Server {
    /// Parses `host[:port]` (HTTPS assumed) or `http[s]://host[:port]`, with
    /// an optional trailing `/` or `/v2/`.
    pub fn parse(input: &str) -> Result<Self, ServerError> {
        let input = input.trim();
        let (https, rest) = match input.split_once("://") {
            Some((s, rest)) if s.eq_ignore_ascii_case("https") => (true, rest),
            Some((s, rest)) if s.eq_ignore_ascii_case("http") => (false, rest),
            Some((s, _)) => {
                return Err(ServerError::Scheme {
                    input: input.to_owned(),
                    scheme: s.to_owned(),
                })
            }
            None => (true, input),
        };
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if !IGNORED_PATHS.contains(&path) {
            return Err(ServerError::Path(input.to_owned()));
        }
        if let Some(bad) = authority
            .chars()
            .find(|c| matches!(c, '@' | '?' | '#' | '\\') || c.is_whitespace() || c.is_control())
        {
            return Err(ServerError::Character {
                input: input.to_owned(),
                bad,
            });
        }
        let server = Server {
            https,
            authority: authority.to_owned(),
        };
        // Let the URL parser check the host and port syntax.
        let url = Url::parse(&server.base_url()).map_err(|source| ServerError::Invalid {
            input: input.to_owned(),
            source,
        })?;
        if authority.is_empty() || url.host_str().is_none_or(str::is_empty) {
            return Err(ServerError::NoHost(input.to_owned()));
        }
        Ok(server)
    }

    /// Whether the server is reached over HTTPS.
    pub fn is_https(&self) -> bool {
        self.https
    }

    /// The key of this server in an auth file's `auths`: `host[:port]`
    /// without scheme, which is what docker, podman and skopeo look up for
    /// an image reference `host[:port]/repo`. Also the context's name.
    pub fn key(&self) -> &str {
        &self.authority
    }

    /// The `registryctl login ...` command line that stores credentials for
    /// this server (with `http://` and `--insecure` for a plain-HTTP one).
    pub fn login_command(&self) -> String {
        if self.https {
            format!("registryctl login {}", self.authority)
        } else {
            format!("registryctl login http://{} --insecure", self.authority)
        }
    }

    /// `scheme://host[:port]/`.
    pub fn base_url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}/", self.authority)
    }
}

/// Decides how to reach `server` given `--insecure` and whether `--ca-file`
/// was given: whether to skip certificate verification, and the warnings to
/// print. Plain HTTP is refused without `--insecure`; `--insecure` always
/// warns because it weakens security.
pub fn decide_transport(
    server: &Server,
    insecure: bool,
    has_ca_file: bool,
) -> Result<(bool, Vec<String>), CliError> {
    let key = server.key();
    match (server.is_https(), insecure) {
        (false, false) => Err(CliError::PlainHttp(key.to_owned())),
        (false, true) => {
            let mut warnings = vec![format!(
                "warning: --insecure: using plain HTTP to {key}; credentials and tokens \
                 are sent unencrypted"
            )];
            if has_ca_file {
                warnings.push(format!(
                    "warning: --ca-file is ignored for plain HTTP server http://{key}"
                ));
            }
            Ok((false, warnings))
        }
        (true, true) => Ok((
            true,
            vec![format!(
                "warning: --insecure: not verifying the TLS certificate of {key}; \
                 anyone on the network path could impersonate the server \
                 (prefer --ca-file for a private CA)"
            )],
        )),
        (true, false) => Ok((false, Vec::new())),
    }
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
        assert!(s.is_https());
        assert_eq!(s.base_url(), "https://localhost:5000/");
        let s = Server::parse("http://localhost:5000").unwrap();
        assert!(!s.is_https());
        assert_eq!(s.base_url(), "http://localhost:5000/");
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
        assert!(err.to_string().contains("--insecure"), "{err}");
        let (skip_verify, warnings) = decide_transport(&http, true, false).unwrap();
        assert!(!skip_verify);
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].starts_with("warning: --insecure: "));
        assert_eq!(decide_transport(&http, true, true).unwrap().1.len(), 2);
    }

    #[test]
    fn https_verifies_unless_insecure() {
        let https = Server::parse("localhost:5000").unwrap();
        assert_eq!(
            decide_transport(&https, false, true).unwrap(),
            (false, vec![])
        );
        let (skip_verify, warnings) = decide_transport(&https, true, false).unwrap();
        assert!(skip_verify);
        assert!(warnings[0].starts_with("warning: --insecure: "));
    }
}
