//! The HTTP side: a reqwest client configured for the decided transport, and
//! a small JSON API wrapper that turns OCI error envelopes into messages.

use std::path::Path;
use std::time::Duration;

use reqwest::{Certificate, Method, StatusCode, Url};
use serde_json::Value;

use crate::authfile::Credentials;
use crate::target::Transport;

/// Builds the HTTP client: system roots plus `ca_file` for
/// [`Transport::Verified`], no verification for [`Transport::Unverified`].
pub fn http_client(
    transport: Transport,
    ca_file: Option<&Path>,
) -> Result<reqwest::Client, String> {
    // reqwest is built without a bundled crypto provider; use ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("registryctl/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(60));
    match transport {
        Transport::Verified => {
            // Never follow a redirect down to plain HTTP.
            builder = builder.https_only(true);
            if let Some(path) = ca_file {
                let pem = std::fs::read(path)
                    .map_err(|e| format!("cannot read --ca-file {}: {e}", path.display()))?;
                let certs = Certificate::from_pem_bundle(&pem)
                    .map_err(|e| format!("--ca-file {}: {e}", path.display()))?;
                if certs.is_empty() {
                    return Err(format!(
                        "--ca-file {} holds no PEM certificate",
                        path.display()
                    ));
                }
                builder = builder.tls_certs_merge(certs);
            }
        }
        Transport::Unverified => {
            builder = builder
                .https_only(true)
                .tls_danger_accept_invalid_certs(true);
        }
        Transport::PlainHttp => {}
    }
    builder
        .build()
        .map_err(|e| format!("cannot set up the HTTP client: {}", error_chain(&e)))
}

/// An error and its sources, joined with `: `.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        source = s.source();
    }
    msg
}

/// Describes a failed request (no answer at all) for the user.
fn transport_error(url: &Url, e: &reqwest::Error) -> String {
    let mut msg = format!("cannot reach {url}: {}", error_chain(e));
    let lower = msg.to_ascii_lowercase();
    if lower.contains("certificate") || lower.contains("unknownissuer") {
        msg.push_str(" (for a private CA pass --ca-file FILE; --insecure skips verification)");
    }
    if lower.contains("invalidcontenttype") || lower.contains("corrupt message") {
        msg.push_str(" (the server may speak plain HTTP: use http://... with --insecure)");
    }
    msg
}

/// Turns an error answer into `message (CODE, HTTP status)` from the OCI
/// envelope `{"errors":[{"code","message"}]}`, or the status and a short
/// excerpt of the body when there is no envelope.
pub fn describe_error(status: StatusCode, body: &[u8]) -> String {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let errors = parsed
        .as_ref()
        .and_then(|v| v.get("errors"))
        .and_then(Value::as_array)
        .filter(|e| !e.is_empty());
    if let Some(errors) = errors {
        let parts: Vec<String> = errors
            .iter()
            .map(|e| {
                let code = e.get("code").and_then(Value::as_str).unwrap_or("UNKNOWN");
                match e.get("message").and_then(Value::as_str) {
                    Some(m) if !m.is_empty() => format!("{m} ({code})"),
                    _ => code.to_owned(),
                }
            })
            .collect();
        return format!("{} [HTTP {}]", parts.join("; "), status.as_u16());
    }
    let text = String::from_utf8_lossy(body);
    let excerpt: String = text.trim().chars().take(200).collect();
    if excerpt.is_empty() {
        format!("server answered HTTP {status}")
    } else {
        format!("server answered HTTP {status}: {excerpt}")
    }
}

/// A server's JSON API reached with one set of credentials.
pub struct Api {
    http: reqwest::Client,
    base: Url,
    credentials: Option<Credentials>,
}

/// Why a request failed.
pub enum SendError {
    /// The server answered with a non-success status.
    Refused {
        /// The HTTP status.
        status: StatusCode,
        /// The envelope rendered by [`describe_error`].
        message: String,
    },
    /// No usable answer: connection, TLS or body problems.
    Failed(String),
}

impl Api {
    /// An API at `base` (`scheme://host[:port]/`).
    pub fn new(http: reqwest::Client, base: Url, credentials: Option<Credentials>) -> Self {
        Api {
            http,
            base,
            credentials,
        }
    }

    /// `base` followed by `segments`, each percent-encoded as one segment,
    /// plus the `query` pairs.
    pub fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("http(s) URLs have a path")
            .pop_if_empty()
            .extend(segments);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// Sends a request with the credentials (HTTP Basic) and a JSON body;
    /// the body of a success answer, whatever it holds.
    pub async fn send_raw(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
    ) -> Result<bytes::Bytes, SendError> {
        let mut request = self.http.request(method, url.clone());
        if let Some(c) = &self.credentials {
            request = request.basic_auth(&c.username, Some(&c.password));
        }
        if let Some(b) = body {
            request = request.json(b);
        }
        let response = request
            .send()
            .await
            .map_err(|e| SendError::Failed(transport_error(&url, &e)))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| SendError::Failed(transport_error(&url, &e)))?;
        if !status.is_success() {
            return Err(SendError::Refused {
                status,
                message: describe_error(status, &bytes),
            });
        }
        Ok(bytes)
    }

    /// Like [`Api::send_raw`], for a JSON answer (`Value::Null` when empty).
    pub async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
    ) -> Result<Value, SendError> {
        let bytes = self.send_raw(method, url.clone(), body).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| SendError::Failed(format!("{url} answered with invalid JSON: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_message_and_code() {
        let body = br#"{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}"#;
        assert_eq!(
            describe_error(StatusCode::FORBIDDEN, body),
            "requested access to the resource is denied (DENIED) [HTTP 403]"
        );
        let two = br#"{"errors":[{"code":"NAME_UNKNOWN"},{"code":"X","message":"m"}]}"#;
        assert_eq!(
            describe_error(StatusCode::NOT_FOUND, two),
            "NAME_UNKNOWN; m (X) [HTTP 404]"
        );
    }

    #[test]
    fn non_envelope_bodies() {
        assert_eq!(
            describe_error(StatusCode::BAD_GATEWAY, b""),
            "server answered HTTP 502 Bad Gateway"
        );
        assert_eq!(
            describe_error(StatusCode::NOT_FOUND, b"404 page not found\n"),
            "server answered HTTP 404 Not Found: 404 page not found"
        );
        assert_eq!(
            describe_error(StatusCode::BAD_REQUEST, br#"{"errors":[]}"#),
            r#"server answered HTTP 400 Bad Request: {"errors":[]}"#
        );
    }

    #[test]
    fn urls_encode_segments_and_queries() {
        let http = http_client(Transport::PlainHttp, None).unwrap();
        let api = Api::new(http, Url::parse("http://h:1/").unwrap(), None);
        assert_eq!(
            api.url(&["apis", "admin", "v1", "namespaces"], &[])
                .as_str(),
            "http://h:1/apis/admin/v1/namespaces"
        );
        assert_eq!(api.url(&["v2", ""], &[]).as_str(), "http://h:1/v2/");
        assert_eq!(
            api.url(
                &["x", "a b"],
                &[("role", "registry-viewer"), ("subject", "user:alice")]
            )
            .as_str(),
            "http://h:1/x/a%20b?role=registry-viewer&subject=user%3Aalice"
        );
    }
}
