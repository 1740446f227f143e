//! The issuer over HTTPS: OpenID Connect discovery and its JWKS document,
//! with timeouts, a size cap on every answer and no plain-HTTP fallback.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::keys::KeySource;
use super::{IssuerUrl, OidcConfig, OidcConfigError, OidcError};

/// Largest discovery or JWKS document read, in bytes.
pub const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

/// The parts of an issuer's discovery document
/// (`/.well-known/openid-configuration`) the registry and `registryctl`
/// use.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct ProviderMetadata {
    /// The issuer identifier; must equal the configured issuer exactly.
    pub issuer: String,
    /// Where the signing keys are (JWKS).
    pub jwks_uri: String,
    /// The token endpoint.
    #[serde(default)]
    pub token_endpoint: Option<String>,
    /// The device authorization endpoint (RFC 8628), if the issuer has the
    /// device flow.
    #[serde(default)]
    pub device_authorization_endpoint: Option<String>,
    /// The grant types the issuer supports, if it says.
    #[serde(default)]
    pub grant_types_supported: Option<Vec<String>>,
}

impl ProviderMetadata {
    /// Checks that the document belongs to `issuer` and names its keys
    /// over HTTPS.
    pub fn check(&self, issuer: &IssuerUrl) -> Result<(), OidcError> {
        if self.issuer != issuer.as_str() {
            return Err(OidcError::IssuerMismatch {
                expected: issuer.to_string(),
                found: self.issuer.clone(),
            });
        }
        if !self.jwks_uri.starts_with("https://") {
            return Err(OidcError::NotHttps(self.jwks_uri.clone()));
        }
        Ok(())
    }
}

#[derive(Deserialize)]
struct JwksDocument {
    keys: Vec<serde_json::Value>,
}

/// Fetches the issuer's keys over HTTPS: discovery first (once it has
/// succeeded, its `jwks_uri` is remembered), then the JWKS document.
#[derive(Debug)]
pub struct HttpKeySource {
    http: reqwest::Client,
    issuer: IssuerUrl,
    jwks_uri: tokio::sync::Mutex<Option<String>>,
}

impl HttpKeySource {
    /// A source for `config`'s issuer, trusting its CA bundle (else the
    /// system roots), each call bounded by its request timeout.
    pub fn new(config: &OidcConfig) -> Result<Self, OidcError> {
        Ok(HttpKeySource {
            http: https_client(config.ca_pem.as_deref(), config.limits.request_timeout)?,
            issuer: config.issuer.clone(),
            jwks_uri: tokio::sync::Mutex::new(None),
        })
    }

    /// Reads and checks the discovery document.
    pub async fn discover(&self) -> Result<ProviderMetadata, OidcError> {
        discover(&self.http, &self.issuer).await
    }
}

/// Reads `issuer`'s discovery document with `http` (see [`https_client`])
/// and checks that it is the issuer's and names its keys over HTTPS.
pub async fn discover(
    http: &reqwest::Client,
    issuer: &IssuerUrl,
) -> Result<ProviderMetadata, OidcError> {
    let metadata: ProviderMetadata = get_json(http, &issuer.discovery_url()).await?;
    metadata.check(issuer)?;
    Ok(metadata)
}

#[async_trait::async_trait]
impl KeySource for HttpKeySource {
    async fn fetch(&self) -> Result<Vec<serde_json::Value>, OidcError> {
        let mut jwks_uri = self.jwks_uri.lock().await;
        let uri = match jwks_uri.as_ref() {
            Some(uri) => uri.clone(),
            None => {
                let uri = self.discover().await?.jwks_uri;
                *jwks_uri = Some(uri.clone());
                uri
            }
        };
        match get_json::<JwksDocument>(&self.http, &uri).await {
            Ok(doc) => Ok(doc.keys),
            Err(e) => {
                // The issuer may have moved its keys: discover again next time.
                *jwks_uri = None;
                Err(e)
            }
        }
    }
}

/// An HTTPS-only client: `ca_pem` replaces the system roots when given.
/// Installs rustls's *ring* provider as the process default unless one is
/// installed (the workspace builds reqwest without a provider).
pub fn https_client(
    ca_pem: Option<&[u8]>,
    timeout: Duration,
) -> Result<reqwest::Client, OidcError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut builder = reqwest::Client::builder()
        .https_only(true)
        .connect_timeout(timeout)
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::limited(3))
        .user_agent(concat!("registry/", env!("CARGO_PKG_VERSION")));
    if let Some(pem) = ca_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(OidcError::Client)?;
        if certs.is_empty() {
            return Err(OidcConfigError::EmptyCaBundle.into());
        }
        builder = builder.tls_certs_only(certs);
    }
    builder.build().map_err(OidcError::Client)
}

/// GETs `url` and parses its JSON body, reading at most
/// [`MAX_DOCUMENT_BYTES`].
pub(crate) async fn get_json<T: DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
) -> Result<T, OidcError> {
    let fetch = |source| OidcError::Fetch {
        url: url.to_owned(),
        source,
    };
    let mut response = http
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(fetch)?;
    let status = response.status();
    if !status.is_success() {
        return Err(OidcError::Status {
            url: url.to_owned(),
            status: status.as_u16(),
        });
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(fetch)? {
        if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
            return Err(OidcError::TooLarge {
                url: url.to_owned(),
                limit: MAX_DOCUMENT_BYTES,
            });
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map_err(|source| OidcError::InvalidDocument {
        url: url.to_owned(),
        source,
    })
}
