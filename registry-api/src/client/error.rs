//! [`ClientError`]: what can go wrong talking to a registry, by meaning.

use std::fmt;

use http::StatusCode;
use registry_core::Digest;
use serde::Deserialize;

/// Why a client call failed.
///
/// The server's refusals are sorted by meaning ([`Unauthorized`],
/// [`Denied`], [`NotFound`], else [`Api`]), each with the OCI error code and
/// message of the answer's `{"errors":[…]}` envelope; `code` is empty when
/// the answer had no envelope (then `message` is an excerpt of its body).
///
/// [`Unauthorized`]: ClientError::Unauthorized
/// [`Denied`]: ClientError::Denied
/// [`NotFound`]: ClientError::NotFound
/// [`Api`]: ClientError::Api
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// 401: no credentials, wrong ones, or a token the server refused.
    #[error("{}", Refusal::new(StatusCode::UNAUTHORIZED, code, message))]
    Unauthorized {
        /// The OCI error code (`UNAUTHORIZED`).
        code: String,
        /// The server's message.
        message: String,
    },
    /// 403: authenticated, but not allowed.
    #[error("{}", Refusal::new(StatusCode::FORBIDDEN, code, message))]
    Denied {
        /// The OCI error code (`DENIED`).
        code: String,
        /// The server's message.
        message: String,
    },
    /// 404: no such repository, manifest, blob, namespace, user….
    #[error("{}", Refusal::new(StatusCode::NOT_FOUND, code, message))]
    NotFound {
        /// The OCI error code (`NAME_UNKNOWN`, `MANIFEST_UNKNOWN`, …).
        code: String,
        /// The server's message.
        message: String,
    },
    /// Any other error answer.
    #[error("{}", Refusal::new(*status, code, message))]
    Api {
        /// The HTTP status.
        status: StatusCode,
        /// The OCI error code.
        code: String,
        /// The server's message.
        message: String,
    },
    /// No answer: connection, TLS, timeout, or a body cut short.
    #[error("cannot reach {url}: {source}")]
    Transport {
        /// What was asked for.
        url: String,
        /// What failed.
        #[source]
        source: reqwest::Error,
    },
    /// The bytes received (or sent) do not have the digest they must have.
    #[error("digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// The digest asked for (or computed before sending).
        expected: Digest,
        /// The digest of the bytes (or the one the server reported).
        actual: Digest,
    },
    /// A blob's body is longer or shorter than announced.
    #[error("size mismatch for {digest}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        /// The blob.
        digest: Digest,
        /// The announced size.
        expected: u64,
        /// The bytes received.
        actual: u64,
    },
    /// An answer longer than the client reads (a manifest past
    /// [`ClientBuilder::max_manifest_bytes`](super::ClientBuilder::max_manifest_bytes),
    /// a JSON document past 64 MiB): not read further.
    #[error("{url} answered with more than {limit} bytes, more than this client reads")]
    TooLarge {
        /// What was asked for.
        url: String,
        /// The limit in bytes.
        limit: u64,
    },
    /// A success answer whose JSON does not decode into the expected type.
    #[error("{url} answered with a document that does not decode: {source}")]
    Decode {
        /// What was asked for.
        url: String,
        /// Why it does not decode.
        #[source]
        source: serde_json::Error,
    },
    /// A success answer missing something the protocol requires (a
    /// `Location` after starting an upload, a digest header…).
    #[error("{url}: unexpected answer: {problem}")]
    Protocol {
        /// What was asked for.
        url: String,
        /// What is wrong with the answer.
        problem: &'static str,
    },
    /// The base URL is not an `http://` or `https://` URL.
    #[error("invalid registry URL {url:?}: {source}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// Why it does not parse.
        #[source]
        source: url::ParseError,
    },
    /// The base URL has a scheme other than `http` or `https`.
    #[error("unsupported scheme in registry URL {url:?}: use https:// or http://")]
    UnsupportedScheme {
        /// The URL as given.
        url: String,
    },
    /// The extra CA certificates are not PEM, or hold no certificate.
    #[error("the extra CA certificates are not usable: {source}")]
    InvalidCa {
        /// Why.
        #[source]
        source: CaError,
    },
    /// The HTTP client could not be set up.
    #[error("cannot set up the HTTP client: {source}")]
    Setup {
        /// Why.
        #[source]
        source: reqwest::Error,
    },
}

/// Why extra CA certificates cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaError {
    /// The PEM does not parse.
    #[error(transparent)]
    Pem(reqwest::Error),
    /// The PEM holds no certificate.
    #[error("no PEM certificate found")]
    Empty,
}

impl ClientError {
    /// The HTTP status of a server's refusal, `None` for other errors.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ClientError::Unauthorized { .. } => Some(StatusCode::UNAUTHORIZED),
            ClientError::Denied { .. } => Some(StatusCode::FORBIDDEN),
            ClientError::NotFound { .. } => Some(StatusCode::NOT_FOUND),
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The OCI error code of a server's refusal (empty when the answer had
    /// no envelope), `None` for other errors.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Unauthorized { code, .. }
            | ClientError::Denied { code, .. }
            | ClientError::NotFound { code, .. }
            | ClientError::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The error answer `status` with `body`, sorted by meaning.
    pub(crate) fn from_answer(status: StatusCode, body: &[u8]) -> Self {
        let (code, message) = envelope(body);
        match status {
            StatusCode::UNAUTHORIZED => ClientError::Unauthorized { code, message },
            StatusCode::FORBIDDEN => ClientError::Denied { code, message },
            StatusCode::NOT_FOUND => ClientError::NotFound { code, message },
            status => ClientError::Api {
                status,
                code,
                message,
            },
        }
    }

    pub(crate) fn transport(url: &url::Url, source: reqwest::Error) -> Self {
        ClientError::Transport {
            url: url.to_string(),
            source,
        }
    }
}

/// The first error of an OCI envelope `{"errors":[{"code","message"}]}`
/// (registries may use codes this crate does not know, so they stay
/// strings), or no code and an excerpt of a body that is not one.
fn envelope(body: &[u8]) -> (String, String) {
    #[derive(Deserialize)]
    struct Envelope {
        errors: Vec<Entry>,
    }
    #[derive(Deserialize)]
    struct Entry {
        code: String,
        #[serde(default)]
        message: Option<String>,
    }
    match serde_json::from_slice::<Envelope>(body) {
        Ok(Envelope { errors }) if !errors.is_empty() => {
            let first = errors.into_iter().next().expect("not empty");
            (first.code, first.message.unwrap_or_default())
        }
        _ => (String::new(), excerpt(&String::from_utf8_lossy(body))),
    }
}

/// The start of a body that is no error document, on one line: an HTML
/// page from a web server or a proxy, say. Runs of white space become one
/// space; past [`EXCERPT_CHARS`] characters it is cut, ending in `…`.
fn excerpt(text: &str) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(EXCERPT_CHARS) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line,
    }
}

/// How much of a body that is no error document [`ClientError`] keeps.
const EXCERPT_CHARS: usize = 160;

/// A refusal as text: `message (CODE) [HTTP 404]`, or `server answered HTTP
/// 502 Bad Gateway: excerpt` without an envelope.
struct Refusal<'a> {
    status: StatusCode,
    code: &'a str,
    message: &'a str,
}

impl<'a> Refusal<'a> {
    fn new(status: StatusCode, code: &'a str, message: &'a str) -> Self {
        Refusal {
            status,
            code,
            message,
        }
    }
}

impl fmt::Display for Refusal<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = self.status.as_u16();
        match (self.code.is_empty(), self.message.is_empty()) {
            (false, false) => write!(f, "{} ({}) [HTTP {status}]", self.message, self.code),
            (false, true) => write!(f, "{} [HTTP {status}]", self.code),
            (true, true) => write!(f, "server answered HTTP {}", self.status),
            (true, false) => write!(f, "server answered HTTP {}: {}", self.status, self.message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_by_meaning_and_as_text() {
        let body = br#"{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}"#;
        let e = ClientError::from_answer(StatusCode::FORBIDDEN, body);
        assert!(matches!(&e, ClientError::Denied { code, .. } if code == "DENIED"));
        assert_eq!(
            e.to_string(),
            "requested access to the resource is denied (DENIED) [HTTP 403]"
        );
        let e = ClientError::from_answer(
            StatusCode::NOT_FOUND,
            br#"{"errors":[{"code":"NAME_UNKNOWN"}]}"#,
        );
        assert_eq!(e.to_string(), "NAME_UNKNOWN [HTTP 404]");
        assert_eq!(e.code(), Some("NAME_UNKNOWN"));
        let e = ClientError::from_answer(StatusCode::BAD_GATEWAY, b"");
        assert_eq!(e.to_string(), "server answered HTTP 502 Bad Gateway");
        assert_eq!(e.status(), Some(StatusCode::BAD_GATEWAY));
        let e = ClientError::from_answer(StatusCode::NOT_FOUND, b"404 page not found\n");
        assert_eq!(
            e.to_string(),
            "server answered HTTP 404 Not Found: 404 page not found"
        );
        let page = format!(
            "<!DOCTYPE HTML>\n<html lang=\"en\">\n<head>\n  <title>Error response</title>\n</head>\n{}",
            "<p>Nothing matches the given URI.</p>\n".repeat(20)
        );
        let e = ClientError::from_answer(StatusCode::NOT_FOUND, page.as_bytes());
        let text = e.to_string();
        let excerpt = text
            .strip_prefix("server answered HTTP 404 Not Found: ")
            .expect("an excerpt");
        assert!(
            excerpt.starts_with("<!DOCTYPE HTML> <html lang=\"en\"> <head> <title>Error response"),
            "{text}"
        );
        assert!(!excerpt.contains('\n'), "{text}");
        assert_eq!(excerpt.chars().count(), EXCERPT_CHARS + 1, "{text}");
        assert!(excerpt.ends_with('…'), "{text}");
        let e = ClientError::from_answer(StatusCode::BAD_REQUEST, br#"{"errors":[]}"#);
        assert_eq!(
            e.to_string(),
            r#"server answered HTTP 400 Bad Request: {"errors":[]}"#
        );
        let e = ClientError::from_answer(StatusCode::UNAUTHORIZED, b"{}");
        assert!(matches!(e, ClientError::Unauthorized { .. }));
    }
}
