//! An async client of the registry's HTTP APIs (feature `client`): the
//! distribution API basics (blob and manifest push and pull with digest
//! verification, tags, catalog, referrers, delete), the Image API and the
//! admin API, all with the typed documents of [`crate::model`].
//!
//! The client works against this registry and against others:
//! - Admin and Image API calls carry the primary credentials (HTTP Basic,
//!   or an access token as a Bearer token).
//! - Distribution API calls follow the Docker token flow: on a 401 with
//!   `WWW-Authenticate: Bearer realm=…,service=…,scope=…` the client gets
//!   a token for that scope from the realm with its credentials and retries
//!   once; tokens are kept per scope and fetched up front once the realm is
//!   known. A `Basic` challenge (or a 401 without any) is answered with
//!   the primary credentials, once.
//! - Blob and manifest bytes are checked against their digest while they
//!   are read ([`ClientError::DigestMismatch`]).
//! - [`DockerConfig`] reads (and writes) the credentials `docker login`
//!   stored, for [`ClientBuilder::credentials`].
//!
//! TLS is rustls with *ring*: [`ClientBuilder::build`] installs ring as the
//! process's default crypto provider unless one is installed already.
//!
//! ```
//! use bytes::Bytes;
//! use registry_api::client::Client;
//! use registry_api::{router, Registry};
//! use registry_core::{media_type, Reference, RepositoryName};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! // A registry served in process on a loopback port.
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
//! let url = format!("http://{}", listener.local_addr().unwrap());
//! let app = router(&Registry::in_memory());
//! tokio::spawn(async move { axum::serve(listener, app).await });
//!
//! let client = Client::builder(&url).build().unwrap();
//! client.ping().await.unwrap();
//! let repo: RepositoryName = "team/app".parse().unwrap();
//!
//! // Push a config blob and a manifest referring to it, tagged v1.
//! let config = Bytes::from_static(br#"{"architecture":"amd64","os":"linux"}"#);
//! let config_digest = client.push_blob(&repo, config.clone()).await.unwrap();
//! let manifest = format!(
//!     r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{}","size":{}}},"layers":[]}}"#,
//!     media_type::OCI_MANIFEST, media_type::OCI_CONFIG, config_digest, config.len(),
//! );
//! let tag = Reference::Tag("v1".parse().unwrap());
//! let digest = client
//!     .put_manifest(&repo, &tag, media_type::OCI_MANIFEST, Bytes::from(manifest.clone()))
//!     .await
//!     .unwrap();
//!
//! // Pull them back: both are verified against their digests.
//! let pulled = client.get_manifest(&repo, &tag).await.unwrap();
//! assert_eq!(pulled.digest, digest);
//! assert_eq!(pulled.bytes, manifest.as_bytes());
//! assert_eq!(client.pull_blob_bytes(&repo, &config_digest).await.unwrap(), config);
//! assert_eq!(client.all_tags(&repo).await.unwrap(), vec!["v1".parse().unwrap()]);
//! # });
//! ```

mod admin;
mod auth;
mod body;
mod distribution;
mod docker_config;
mod error;
mod identity;
mod image;
mod verify;
mod webhooks;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Certificate, Url};

pub use distribution::{Manifest, Paged};
pub use docker_config::{DockerConfig, DockerConfigError};
pub use error::{CaError, ClientError};
pub use verify::BlobStream;

/// The credentials a [`Client`] presents.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Credentials {
    /// HTTP Basic: a user name and a password (or an access token as the
    /// password, with any user name).
    Basic {
        /// The user name.
        username: String,
        /// The password or access token.
        password: String,
    },
    /// An access token sent as `Authorization: Bearer`.
    AccessToken(String),
}

impl Credentials {
    /// HTTP Basic credentials.
    pub fn basic(username: impl Into<String>, password: impl Into<String>) -> Self {
        Credentials::Basic {
            username: username.into(),
            password: password.into(),
        }
    }

    /// An access token, sent as a Bearer token.
    pub fn access_token(token: impl Into<String>) -> Self {
        Credentials::AccessToken(token.into())
    }

    fn apply(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self {
            Credentials::Basic { username, password } => {
                request.basic_auth(username, Some(password))
            }
            Credentials::AccessToken(token) => request.bearer_auth(token),
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
            Credentials::AccessToken(_) => f.write_str("AccessToken(<redacted>)"),
        }
    }
}

/// Configures a [`Client`]: credentials, TLS, timeouts.
#[derive(Debug, Clone)]
#[must_use]
pub struct ClientBuilder {
    base: String,
    credentials: Option<Credentials>,
    ca_pem: Vec<Vec<u8>>,
    insecure: bool,
    connect_timeout: Duration,
    read_timeout: Duration,
    timeout: Option<Duration>,
    user_agent: String,
    max_manifest_bytes: usize,
}

impl ClientBuilder {
    /// Presents `credentials`.
    pub fn credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// Presents HTTP Basic credentials.
    pub fn basic_auth(self, username: impl Into<String>, password: impl Into<String>) -> Self {
        self.credentials(Credentials::basic(username, password))
    }

    /// Presents an access token (as a Bearer token).
    pub fn access_token(self, token: impl Into<String>) -> Self {
        self.credentials(Credentials::access_token(token))
    }

    /// Also trusts the CA certificates of this PEM bundle (besides the
    /// system roots).
    pub fn ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_pem.push(pem.into());
        self
    }

    /// Skips verification of the server's TLS certificate. Anyone on the
    /// network path could impersonate the server: for tests only.
    pub fn insecure(mut self, insecure: bool) -> Self {
        self.insecure = insecure;
        self
    }

    /// How long connecting may take (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long the server may stay silent while an answer is read
    /// (default 60 s).
    pub fn read_timeout(mut self, timeout: Duration) -> Self {
        self.read_timeout = timeout;
        self
    }

    /// A limit on whole requests, bodies included (default none: large
    /// blobs take as long as they take).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The largest manifest [`Client::get_manifest`] reads (default 4 MiB,
    /// the registry's own default limit); a longer one is
    /// [`ClientError::TooLarge`], read no further than the limit.
    pub fn max_manifest_bytes(mut self, limit: usize) -> Self {
        self.max_manifest_bytes = limit;
        self
    }

    /// The `User-Agent` header.
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = user_agent.into();
        self
    }

    /// The client.
    pub fn build(self) -> Result<Client, ClientError> {
        let mut base = Url::parse(&self.base).map_err(|source| ClientError::InvalidUrl {
            url: self.base.clone(),
            source,
        })?;
        let https = match base.scheme() {
            "https" => true,
            "http" => false,
            _ => return Err(ClientError::UnsupportedScheme { url: self.base }),
        };
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        // reqwest is built without a bundled crypto provider.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut http = reqwest::Client::builder()
            .user_agent(self.user_agent)
            .connect_timeout(self.connect_timeout)
            .read_timeout(self.read_timeout)
            // Never follow a redirect from HTTPS down to plain HTTP.
            .https_only(https)
            .tls_danger_accept_invalid_certs(self.insecure);
        if let Some(timeout) = self.timeout {
            http = http.timeout(timeout);
        }
        for pem in &self.ca_pem {
            let certs = Certificate::from_pem_bundle(pem).map_err(|e| ClientError::InvalidCa {
                source: CaError::Pem(e),
            })?;
            if certs.is_empty() {
                return Err(ClientError::InvalidCa {
                    source: CaError::Empty,
                });
            }
            http = http.tls_certs_merge(certs);
        }
        let http = http
            .build()
            .map_err(|source| ClientError::Setup { source })?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base,
                credentials: self.credentials,
                tokens: auth::TokenCache::default(),
                max_manifest_bytes: self.max_manifest_bytes,
            }),
        })
    }
}

/// An async client of one registry. Cheap to clone (clones share their
/// connections and tokens).
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    base: Url,
    credentials: Option<Credentials>,
    tokens: auth::TokenCache,
    max_manifest_bytes: usize,
}

impl Client {
    /// A builder for a client of the registry at `base_url`
    /// (`https://registry.example.com`, `http://127.0.0.1:5000`).
    pub fn builder(base_url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            base: base_url.into(),
            credentials: None,
            ca_pem: Vec::new(),
            insecure: false,
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(60),
            timeout: None,
            user_agent: concat!("registry-api/", env!("CARGO_PKG_VERSION")).to_owned(),
            max_manifest_bytes: 4 * 1024 * 1024,
        }
    }

    /// The registry's base URL.
    pub fn base_url(&self) -> &Url {
        &self.inner.base
    }

    /// `base` followed by `segments` (each percent-encoded as one path
    /// segment) and `query`.
    fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.inner.base.clone();
        url.path_segments_mut()
            .expect("http(s) URLs have a path")
            .pop_if_empty()
            .extend(segments);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }
}

/// Which page of a listing to ask for: at most `n` entries after `last`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use]
pub struct Page {
    n: Option<usize>,
    last: Option<String>,
}

impl Page {
    /// The first page, of the server's default size.
    pub fn first() -> Self {
        Page::default()
    }

    /// The page after `last` (the previous page's `next`).
    pub fn after(last: impl Into<String>) -> Self {
        Page {
            n: None,
            last: Some(last.into()),
        }
    }

    /// At most `n` entries.
    pub fn size(mut self, n: usize) -> Self {
        self.n = Some(n);
        self
    }

    fn query(&self) -> Vec<(&'static str, String)> {
        let mut query = Vec::new();
        if let Some(n) = self.n {
            query.push(("n", n.to_string()));
        }
        if let Some(last) = &self.last {
            query.push(("last", last.clone()));
        }
        query
    }
}

/// `query` pairs as the borrowed form [`Client::url`] takes.
fn pairs<'a>(query: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    query.iter().map(|(k, v)| (*k, v.as_str())).collect()
}
