//! `registryctl login --oidc`: the OAuth 2.0 device authorization grant
//! (RFC 8628) against the registry's OpenID Connect issuer. The user opens
//! the verification URI on any device and enters the code shown; the ID
//! token the issuer then hands out is what the registry accepts as a
//! password (`--oidc-issuer-url` on the server).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use registry::auth::oidc::{discover, https_client, IssuerUrl, OidcError, ProviderMetadata};
use serde::{Deserialize, Serialize};

use crate::cli::OidcLogin;
use crate::config::Context;
use crate::{say, CliError, Io};

/// The grant type of RFC 8628, section 3.4.
const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// Longest any single call to the issuer may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The issuer settings of a context, so that `login --oidc` needs them once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct OidcContext {
    /// `--oidc-issuer-url`.
    pub issuer: String,
    /// `--oidc-client-id`.
    pub client_id: String,
    /// `--oidc-ca-file`, as an absolute path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// Scopes asked for besides `openid`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
}

impl OidcContext {
    /// The flags over what `context` remembers.
    pub fn resolve(args: &OidcLogin, context: Option<&Context>) -> Result<Self, CliError> {
        let saved = context.and_then(|c| c.oidc.as_ref());
        let issuer = args
            .oidc_issuer_url
            .clone()
            .or_else(|| saved.map(|s| s.issuer.clone()))
            .ok_or(CliError::OidcSetting("--oidc-issuer-url"))?;
        let client_id = args
            .oidc_client_id
            .clone()
            .or_else(|| saved.map(|s| s.client_id.clone()))
            .ok_or(CliError::OidcSetting("--oidc-client-id"))?;
        let ca_file = match &args.oidc_ca_file {
            Some(f) => Some(std::path::absolute(f).map_err(|source| CliError::Read {
                path: f.clone(),
                source,
            })?),
            None => saved.and_then(|s| s.ca_file.clone()),
        };
        let scopes = match (&args.oidc_scopes, saved) {
            (given, _) if !given.is_empty() => given.clone(),
            (_, Some(s)) => s.scopes.clone(),
            _ => Vec::new(),
        };
        Ok(OidcContext {
            issuer,
            client_id,
            ca_file,
            scopes,
        })
    }

    /// `openid` and the extra scopes, space-separated.
    fn scope(&self) -> String {
        let mut scope = vec!["openid"];
        scope.extend(
            self.scopes
                .iter()
                .map(String::as_str)
                .filter(|s| *s != "openid"),
        );
        scope.join(" ")
    }
}

/// An issuer ready for the device flow: its client and endpoints.
#[derive(Debug)]
pub(crate) struct Issuer {
    http: reqwest::Client,
    device_endpoint: String,
    token_endpoint: String,
}

impl Issuer {
    /// Reads the issuer's discovery document (over HTTPS, its CA file or the
    /// system roots: `--insecure` never applies to the issuer).
    pub async fn discover(settings: &OidcContext) -> Result<Self, CliError> {
        let issuer: IssuerUrl = settings
            .issuer
            .parse()
            .map_err(|e| CliError::Oidc(OidcError::Config(e)))?;
        let ca = match &settings.ca_file {
            Some(path) => Some(read(path)?),
            None => None,
        };
        let http = https_client(ca.as_deref(), REQUEST_TIMEOUT).map_err(CliError::Oidc)?;
        let metadata = discover(&http, &issuer).await.map_err(CliError::Oidc)?;
        Self::from_metadata(http, &metadata)
    }

    /// The endpoints of `metadata`, which must offer the device flow over
    /// HTTPS.
    pub fn from_metadata(
        http: reqwest::Client,
        metadata: &ProviderMetadata,
    ) -> Result<Self, CliError> {
        let device_endpoint = metadata
            .device_authorization_endpoint
            .clone()
            .ok_or_else(|| CliError::OidcNoDeviceFlow(metadata.issuer.clone()))?;
        let token_endpoint = metadata
            .token_endpoint
            .clone()
            .ok_or_else(|| CliError::OidcNoDeviceFlow(metadata.issuer.clone()))?;
        for endpoint in [&device_endpoint, &token_endpoint] {
            if !endpoint.starts_with("https://") {
                return Err(CliError::Oidc(OidcError::NotHttps(endpoint.clone())));
            }
        }
        Ok(Issuer {
            http,
            device_endpoint,
            token_endpoint,
        })
    }

    /// An issuer at explicit endpoints (tests: a plain-HTTP stand-in).
    #[cfg(test)]
    pub fn at(http: reqwest::Client, device_endpoint: &str, token_endpoint: &str) -> Self {
        Issuer {
            http,
            device_endpoint: device_endpoint.to_owned(),
            token_endpoint: token_endpoint.to_owned(),
        }
    }
}

/// The device authorization response (RFC 8628, section 3.2).
#[derive(Debug, Deserialize)]
struct DeviceAuthorization {
    device_code: String,
    user_code: String,
    /// `verification_url` in some older issuers.
    #[serde(alias = "verification_url")]
    verification_uri: String,
    #[serde(default)]
    verification_uri_complete: Option<String>,
    expires_in: u64,
    #[serde(default)]
    interval: Option<u64>,
}

/// A token response (RFC 6749, section 5.1, with OpenID Connect's ID token).
#[derive(Debug, Deserialize)]
struct TokenAnswer {
    #[serde(default)]
    id_token: Option<String>,
}

/// An error response (RFC 6749, section 5.2).
#[derive(Debug, Deserialize)]
struct ErrorAnswer {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

/// How the token endpoint is polled.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Polling {
    /// When the issuer names no interval (RFC 8628: 5 s).
    pub default_interval: Duration,
    /// Added to the interval on every `slow_down` (RFC 8628: 5 s).
    pub slow_down_step: Duration,
    /// The longest wait, whatever the issuer's `expires_in`.
    pub max_wait: Duration,
}

impl Default for Polling {
    fn default() -> Self {
        Polling {
            default_interval: Duration::from_secs(5),
            slow_down_step: Duration::from_secs(5),
            max_wait: Duration::from_secs(30 * 60),
        }
    }
}

/// Runs the device flow for `settings`: prints where to go and the code
/// (on standard error), polls until the user has signed in, and returns the
/// ID token.
pub(crate) async fn device_flow(
    issuer: &Issuer,
    settings: &OidcContext,
    polling: Polling,
    io: &mut Io<'_>,
) -> Result<String, CliError> {
    let scope = settings.scope();
    let form = [
        ("client_id", settings.client_id.as_str()),
        ("scope", scope.as_str()),
    ];
    let response = post_form(issuer, &issuer.device_endpoint, &form).await?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|e| request_error(&issuer.device_endpoint, e))?;
    if !status.is_success() {
        return Err(refused(&body, status));
    }
    let auth: DeviceAuthorization =
        serde_json::from_slice(&body).map_err(|source| CliError::OidcAnswer {
            endpoint: issuer.device_endpoint.clone(),
            source,
        })?;
    match &auth.verification_uri_complete {
        Some(complete) => say!(io.err, "To log in, open {complete}")?,
        None => say!(io.err, "To log in, open {}", auth.verification_uri)?,
    }
    say!(
        io.err,
        "and enter the code {} (at {}). Waiting for you to sign in...",
        auth.user_code,
        auth.verification_uri
    )?;
    io.err.flush().map_err(CliError::Output)?;
    poll(issuer, settings, &auth, polling).await
}

/// Polls the token endpoint (RFC 8628, section 3.4 and 3.5).
async fn poll(
    issuer: &Issuer,
    settings: &OidcContext,
    auth: &DeviceAuthorization,
    polling: Polling,
) -> Result<String, CliError> {
    let mut interval = auth
        .interval
        .map(Duration::from_secs)
        .unwrap_or(polling.default_interval);
    let deadline = Instant::now() + Duration::from_secs(auth.expires_in).min(polling.max_wait);
    let form = [
        ("grant_type", DEVICE_GRANT),
        ("device_code", auth.device_code.as_str()),
        ("client_id", settings.client_id.as_str()),
    ];
    loop {
        if Instant::now() + interval > deadline {
            return Err(CliError::OidcExpired);
        }
        tokio::time::sleep(interval).await;
        let response = post_form(issuer, &issuer.token_endpoint, &form).await?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| request_error(&issuer.token_endpoint, e))?;
        if status.is_success() {
            let answer: TokenAnswer =
                serde_json::from_slice(&body).map_err(|source| CliError::OidcAnswer {
                    endpoint: issuer.token_endpoint.clone(),
                    source,
                })?;
            return answer.id_token.ok_or(CliError::OidcNoIdToken);
        }
        match serde_json::from_slice::<ErrorAnswer>(&body) {
            Ok(e) if e.error == "authorization_pending" => {}
            Ok(e) if e.error == "slow_down" => interval += polling.slow_down_step,
            Ok(e) if e.error == "expired_token" => return Err(CliError::OidcExpired),
            _ => return Err(refused(&body, status)),
        }
    }
}

async fn post_form(
    issuer: &Issuer,
    endpoint: &str,
    form: &[(&str, &str)],
) -> Result<reqwest::Response, CliError> {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    issuer
        .http
        .post(endpoint)
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .header(reqwest::header::ACCEPT, "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| request_error(endpoint, e))
}

fn request_error(endpoint: &str, source: reqwest::Error) -> CliError {
    CliError::OidcRequest {
        endpoint: endpoint.to_owned(),
        source,
    }
}

/// An OAuth2 error answer (`access_denied`, `invalid_client`, ...).
fn refused(body: &[u8], status: reqwest::StatusCode) -> CliError {
    match serde_json::from_slice::<ErrorAnswer>(body) {
        Ok(e) => CliError::OidcRefused {
            error: e.error,
            description: e.error_description.unwrap_or_default(),
        },
        Err(_) => CliError::OidcRefused {
            error: format!("HTTP {}", status.as_u16()),
            description: String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
        },
    }
}

fn read(path: &Path) -> Result<Vec<u8>, CliError> {
    std::fs::read(path).map_err(|source| CliError::Read {
        path: path.to_owned(),
        source,
    })
}

/// How long an ID token has left, read from its (unverified) payload: the
/// registry verifies it; this only tells the user how long the login lasts.
pub(crate) fn lifetime(id_token: &str) -> Option<Duration> {
    use base64::Engine as _;
    #[derive(Deserialize)]
    struct Exp {
        exp: u64,
    }
    let payload = id_token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let exp: Exp = serde_json::from_slice(&bytes).ok()?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
    Some(Duration::from_secs(exp.exp.saturating_sub(now)))
}

#[cfg(test)]
#[path = "oidc_tests.rs"]
mod tests;
