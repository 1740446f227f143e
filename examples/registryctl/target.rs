//! Which server to talk to and how: parsing a `SERVER` argument into a base
//! URL and the auth-file key, and the `--insecure` / `--ca-file` policy.

use std::path::Path;

use reqwest::Url;

use crate::CliError;

/// Why a `SERVER` argument is refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ServerError {
    /// A scheme other than http or https.
    #[error("unsupported scheme {1:?} in server {0:?}: use https:// or http://")]
    Scheme(String, String),
    /// A path after the host.
    #[error("server {0:?} must be host[:port] or a URL without a path")]
    Path(String),
    /// No host.
    #[error("server {0:?} has no host")]
    NoHost(String),
    /// A character that has no place in `host[:port]`.
    #[error("server {0:?} contains {1:?}: give host[:port] only")]
    Character(String, char),
    /// A `:` with no port after it.
    #[error("server {0:?} has an empty port: give host:PORT or leave out the ':'")]
    EmptyPort(String),
    /// Host or port syntax.
    #[error("invalid server {0:?}: {1}")]
    Invalid(String, url::ParseError),
}

/// A registry server named on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Server {
    https: bool,
    /// `host[:port]` as the user wrote it (without scheme or path).
    authority: String,
}

/// Paths accepted (and ignored) after `host[:port]` in `SERVER`.
const IGNORED_PATHS: [&str; 4] = ["", "/", "/v2", "/v2/"];

impl Server {
    /// Parses `host[:port]` (HTTPS assumed) or `http[s]://host[:port]`, with
    /// an optional trailing `/` or `/v2/`.
    pub(crate) fn parse(input: &str) -> Result<Self, ServerError> {
        let input = input.trim();
        let (https, rest) = match input.split_once("://") {
            Some((s, rest)) if s.eq_ignore_ascii_case("https") => (true, rest),
            Some((s, rest)) if s.eq_ignore_ascii_case("http") => (false, rest),
            Some((s, _)) => return Err(ServerError::Scheme(input.to_owned(), s.to_owned())),
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
            return Err(ServerError::Character(input.to_owned(), bad));
        }
        let server = Server {
            https,
            authority: authority.to_owned(),
        };
        // Let the URL parser check the host and port syntax.
        let url = Url::parse(&server.base_url())
            .map_err(|e| ServerError::Invalid(input.to_owned(), e))?;
        if authority.is_empty() || url.host_str().is_none_or(str::is_empty) {
            return Err(ServerError::NoHost(input.to_owned()));
        }
        // `host:` parses (an empty port is the default one), but would be
        // stored under a key no client looks up.
        if authority.ends_with(':') {
            return Err(ServerError::EmptyPort(input.to_owned()));
        }
        Ok(server)
    }

    /// Whether the server is reached over HTTPS.
    pub(crate) fn is_https(&self) -> bool {
        self.https
    }

    /// The key of this server in an auth file's `auths`: `host[:port]`
    /// without scheme, which is what docker, podman and skopeo look up for
    /// an image reference `host[:port]/repo`. Also the context's name.
    pub(crate) fn key(&self) -> &str {
        &self.authority
    }

    /// The `registryctl login ...` command line that stores credentials for
    /// this server with the TLS choice in effect: `http://` and
    /// `--insecure` for a plain-HTTP one, else `--insecure` or
    /// `--ca-file FILE` when one of them is how the server is reached.
    pub(crate) fn login_command(&self, insecure: bool, ca_file: Option<&Path>) -> String {
        match (self.https, insecure, ca_file) {
            (false, _, _) => format!("registryctl login http://{} --insecure", self.authority),
            (true, true, _) => format!("registryctl login {} --insecure", self.authority),
            (true, false, Some(file)) => format!(
                "registryctl login {} --ca-file {}",
                self.authority,
                file.display()
            ),
            (true, false, None) => format!("registryctl login {}", self.authority),
        }
    }

    /// `scheme://host[:port]/`.
    pub(crate) fn base_url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}/", self.authority)
    }
}

/// Decides how to reach `server` given `--insecure` and whether `--ca-file`
/// was given: whether to skip certificate verification, and the warnings to
/// print. Plain HTTP is refused without `--insecure`; `--insecure` always
/// warns because it weakens security.
pub(crate) fn decide_transport(
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
#[path = "target_tests.rs"]
mod tests;
