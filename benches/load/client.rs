//! The HTTP side: a hyper client bound to one registry URL, with optional
//! credentials used either directly (Basic) or through the Docker token flow.

use std::sync::{Arc, RwLock};

use base64::Engine as _;
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, AUTHORIZATION, LOCATION, WWW_AUTHENTICATE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt};
use hyper::body::Incoming;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;

use crate::data;

/// Errors of the harness: anything that stops a test.
pub type Error = Box<dyn std::error::Error + Send + Sync>;
/// Result with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
/// Request body type: streamed or in-memory, never failing.
pub type Body = BoxBody<Bytes, std::convert::Infallible>;

/// How credentials are presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthMode {
    /// Bearer token when the registry challenges with Bearer, else Basic.
    Auto,
    /// `Authorization: Basic` on every request.
    Basic,
    /// Docker token flow: Basic to the token realm, then `Authorization: Bearer`.
    Token,
}

/// Where tokens come from (the Bearer challenge's parameters).
#[derive(Debug, Clone)]
struct Realm {
    realm: String,
    service: Option<String>,
}

/// A registry reached over HTTP/1.1 keep-alive connections.
#[derive(Clone)]
pub struct Registry {
    client: Client<HttpConnector, Body>,
    base: String,
    authority: String,
    credentials: Option<(String, String)>,
    realm: Option<Realm>,
    authorization: Arc<RwLock<Option<HeaderValue>>>,
}

impl Registry {
    /// Probes `GET /v2/` and settles how to authenticate.
    pub async fn connect(
        url: &str,
        credentials: Option<(String, String)>,
        mode: AuthMode,
    ) -> Result<Self> {
        let base = url.trim_end_matches('/').to_string();
        let uri: http::Uri = base.parse()?;
        if uri.scheme_str() != Some("http") {
            return Err(format!("only http:// URLs are supported, got {url}").into());
        }
        let authority = uri
            .authority()
            .ok_or_else(|| format!("no host in {url}"))?
            .to_string();
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(64)
            .build(connector);
        let mut registry = Registry {
            client,
            base,
            authority,
            credentials,
            realm: None,
            authorization: Arc::new(RwLock::new(None)),
        };
        let probe = registry
            .send(Method::GET, "/v2/", &[], data::empty())
            .await?;
        let status = probe.status();
        let challenge = probe
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        drain(probe).await?;
        match status {
            StatusCode::OK => {}
            StatusCode::UNAUTHORIZED => {
                if registry.credentials.is_none() {
                    return Err("the registry requires credentials: pass --user/--password".into());
                }
                let bearer = challenge.as_deref().and_then(parse_bearer);
                registry.realm = match (mode, bearer) {
                    (AuthMode::Basic, _) => None,
                    (_, Some(realm)) => Some(realm),
                    (AuthMode::Token, None) => {
                        return Err(
                            "--auth token, but the registry offers no Bearer challenge".into()
                        )
                    }
                    (AuthMode::Auto, None) => None,
                };
            }
            other => return Err(format!("GET /v2/ answered {other}").into()),
        }
        Ok(registry)
    }

    /// `true` when requests carry credentials.
    pub fn authenticated(&self) -> bool {
        self.credentials.is_some()
    }

    /// How requests authenticate, for the report.
    pub fn auth_label(&self) -> &'static str {
        match (&self.credentials, &self.realm) {
            (None, _) => "none",
            (Some(_), None) => "basic",
            (Some(_), Some(_)) => "token",
        }
    }

    /// `host:port`, for raw connections.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// Gets ready to act on `repository` (pull and push): fetches a token for
    /// that scope in token mode, sets the Basic header otherwise.
    pub async fn authorize(&self, repository: &str) -> Result<()> {
        let Some((user, password)) = &self.credentials else {
            return Ok(());
        };
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        );
        let value = match &self.realm {
            None => basic,
            Some(realm) => {
                let mut url = format!("{}?scope=repository:{repository}:pull,push", realm.realm);
                if let Some(service) = &realm.service {
                    url.push_str(&format!("&service={service}"));
                }
                let request = Request::get(url)
                    .header(AUTHORIZATION, basic)
                    .body(data::empty())?;
                let response = self.client.request(request).await?;
                let status = response.status();
                let body = response.into_body().collect().await?.to_bytes();
                if status != StatusCode::OK {
                    return Err(format!("token endpoint answered {status}").into());
                }
                let json: serde_json::Value = serde_json::from_slice(&body)?;
                let token = json
                    .get("token")
                    .or_else(|| json.get("access_token"))
                    .and_then(|t| t.as_str())
                    .ok_or("token response without a token")?;
                format!("Bearer {token}")
            }
        };
        *self.authorization.write().expect("lock") = Some(HeaderValue::from_str(&value)?);
        Ok(())
    }

    /// The current `Authorization` value, if any.
    pub fn authorization(&self) -> Option<HeaderValue> {
        self.authorization.read().expect("lock").clone()
    }

    /// An absolute URL for `path_or_url` (a path, or a `Location` that may be absolute).
    pub fn url(&self, path_or_url: &str) -> String {
        if path_or_url.starts_with("http://") || path_or_url.starts_with("https://") {
            path_or_url.to_string()
        } else {
            format!("{}{path_or_url}", self.base)
        }
    }

    /// Sends one request with the current credentials.
    pub async fn send(
        &self,
        method: Method,
        path_or_url: &str,
        headers: &[(HeaderName, String)],
        body: Body,
    ) -> Result<Response<Incoming>> {
        let mut request = Request::builder().method(method).uri(self.url(path_or_url));
        for (name, value) in headers {
            request = request.header(name, value);
        }
        if let Some(auth) = self.authorization() {
            request = request.header(AUTHORIZATION, auth);
        }
        Ok(self.client.request(request.body(body)?).await?)
    }
}

/// Parses `Bearer realm="…",service="…"`.
fn parse_bearer(challenge: &str) -> Option<Realm> {
    let rest = challenge
        .strip_prefix("Bearer ")
        .or_else(|| challenge.strip_prefix("bearer "))?;
    let mut realm = None;
    let mut service = None;
    for part in rest.split(',') {
        let (key, value) = part.trim().split_once('=')?;
        let value = value.trim_matches('"').to_string();
        match key {
            "realm" => realm = Some(value),
            "service" => service = Some(value),
            _ => {}
        }
    }
    Some(Realm {
        realm: realm?,
        service,
    })
}

/// Reads a response body to the end, counting its bytes without keeping them.
pub async fn drain(response: Response<Incoming>) -> Result<u64> {
    let mut body = response.into_body();
    let mut total = 0u64;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            total += data.len() as u64;
        }
    }
    Ok(total)
}

/// Fails unless the response has `expected` status; the error carries the body.
pub async fn expect(
    response: Response<Incoming>,
    expected: StatusCode,
    what: &str,
) -> Result<Response<Incoming>> {
    if response.status() == expected {
        return Ok(response);
    }
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    let text = String::from_utf8_lossy(&body[..body.len().min(400)]).into_owned();
    Err(format!("{what}: expected {expected}, got {status}: {text}").into())
}

/// The `Location` header of an upload response.
pub fn location(response: &Response<Incoming>) -> Result<String> {
    Ok(response
        .headers()
        .get(LOCATION)
        .ok_or("upload response without Location")?
        .to_str()?
        .to_string())
}

/// Appends a query parameter to a URL that may already have a query.
pub fn with_query(url: &str, key: &str, value: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{key}={value}")
}
