//! Proxy namespaces: pull-through caches of upstream registries.
//!
//! A namespace configured with a [`ProxyConfig`] stands for an upstream
//! registry (Docker Hub, quay.io, ghcr.io, another instance of this one):
//! `GET /v2/<ns>/<rest>/manifests/<ref>` serves `<rest>` of the upstream,
//! fetched on a miss through the upstream's token flow and stored through
//! the same store calls a push uses, so links, quotas, retention, the Image
//! API and metrics see cached content like any other. Pulling needs a
//! viewer role on the namespace, like any namespace; pushes and deletes by
//! clients are refused ([`RegistryError::ProxyReadOnly`]).
//!
//! - **Blobs** are immutable: a linked, stored blob is served from the
//!   store. On a miss the upstream body is streamed to the client *while*
//!   it is stored (one upstream read feeds both, with bounded buffers); the
//!   store verifies the digest, and the last chunk reaches the client only
//!   once it did, so wrong bytes are never stored and the client's
//!   connection is cut instead. Requests for a blob already being fetched
//!   wait for that fetch and are then served from the store: one upstream
//!   `GET` per blob, however many pull it at once.
//! - **Manifests** by digest are immutable too. A tag is served from the
//!   store while it was validated less than [`ProxyConfig::tag_ttl`] ago,
//!   then revalidated with a `HEAD` (fetched again only when it moved).
//!   When the upstream fails, is rate-limited (429) or unreachable, the
//!   cached tag is served anyway (stale-if-error) with a `Warning: 110`
//!   header and a log line. An index is cached as it is; its children are
//!   fetched when asked for, and each one cached is listed as the index's
//!   child, so retention keeps it with the index (`children.rs` says how).
//! - **containerd mirror mode**: `?ns=docker.io` on a manifest or blob
//!   request selects the proxy namespace whose [`ProxyConfig::hosts`] hold
//!   that host, and the name as sent is looked up under it.
//!
//! Freshness (when each tag was last validated) is kept in memory: after a
//! restart, or on another replica, a tag's first pull revalidates it.
//!
//! [`RegistryError::ProxyReadOnly`]: crate::RegistryError::ProxyReadOnly
//!
//! ```
//! use registry_api::proxy::ProxyConfig;
//! use registry_api::Registry;
//! use registry_storage::Stores;
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let mut hub = ProxyConfig::new(
//!     "hub".parse().unwrap(),
//!     "https://registry-1.docker.io".parse().unwrap(),
//! );
//! hub.hosts.push("docker.io".into());
//! let registry = Registry::builder(Stores::in_memory())
//!     .proxy(hub)
//!     .build()
//!     .await
//!     .unwrap();
//! let ns = registry.proxy_for_host("docker.io").unwrap();
//! assert_eq!(ns.to_string(), "hub");
//! # });
//! ```

mod children;
mod fetch;
mod inflight;
mod links;
mod sync;
mod tee;

pub use sync::{SyncRule, SyncRuleError, MAX_SYNC_TAGS};

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use registry_core::{Namespace, RepositoryName, Tag};
use url::Url;

use crate::client::{Client, ClientError};

pub(crate) use inflight::Inflight;

/// How one proxy namespace reaches its upstream. Start from
/// [`ProxyConfig::new`] and set the fields you need.
#[derive(Clone)]
#[non_exhaustive]
pub struct ProxyConfig {
    /// The namespace that stands for the upstream (`hub`).
    pub namespace: Namespace,
    /// The upstream registry's base URL (`https://registry-1.docker.io`).
    pub upstream: Url,
    /// The user name to present upstream (anonymous when `None`).
    pub username: Option<String>,
    /// The password or access token to present with `username`.
    pub password: Option<String>,
    /// Extra CA certificates (PEM) to trust for the upstream, besides the
    /// system roots.
    pub ca_pem: Option<Vec<u8>>,
    /// How long a cached tag is served before it is revalidated upstream
    /// (default 5 minutes).
    pub tag_ttl: Duration,
    /// The registry host names this namespace stands for in containerd's
    /// mirror mode (`?ns=docker.io`); the upstream URL's own `host[:port]`
    /// always is one of them.
    pub hosts: Vec<String>,
    /// How long connecting to the upstream may take (default 10 s).
    pub connect_timeout: Duration,
    /// How long the upstream may stay silent while an answer or a body is
    /// read (default 30 s): a stalled upstream fails the request instead
    /// of holding it.
    pub read_timeout: Duration,
    /// Largest blob fetched from the upstream (default
    /// [`DEFAULT_MAX_BLOB_BYTES`]): a larger `Content-Length` is refused
    /// before the body is read, and a body longer than its
    /// `Content-Length` is cut. A namespace quota, when set, bounds it
    /// further (what is left of the quota).
    pub max_blob_bytes: u64,
    /// The least an upstream must send of a blob, in bytes a second
    /// averaged over every `read_timeout` (default
    /// [`DEFAULT_MIN_FETCH_RATE`]; 0 turns the check off): a fetch below it
    /// is cut and stores nothing, so an upstream that trickles (never
    /// silent for `read_timeout`) cannot hold the fetch, and the requests
    /// waiting for it, for ever.
    pub min_fetch_rate: u64,
    /// Repositories (and tag globs) to mirror ahead of time, every
    /// `sync_interval` ([`Registry::spawn_mirror_sync`](crate::Registry::spawn_mirror_sync)).
    pub sync: Vec<SyncRule>,
    /// How often `sync` runs; never when `None`.
    pub sync_interval: Option<Duration>,
}

impl fmt::Debug for ProxyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyConfig")
            .field("namespace", &self.namespace)
            .field("upstream", &self.upstream.as_str())
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("ca_pem", &self.ca_pem.as_ref().map(Vec::len))
            .field("tag_ttl", &self.tag_ttl)
            .field("hosts", &self.hosts)
            .field("max_blob_bytes", &self.max_blob_bytes)
            .field("min_fetch_rate", &self.min_fetch_rate)
            .finish_non_exhaustive()
    }
}

/// The default [`ProxyConfig::tag_ttl`].
pub const DEFAULT_TAG_TTL: Duration = Duration::from_secs(300);

/// The default [`ProxyConfig::max_blob_bytes`]: 32 GiB, above the largest
/// layers real images have.
pub const DEFAULT_MAX_BLOB_BYTES: u64 = 32 << 30;

/// The default [`ProxyConfig::min_fetch_rate`]: 16 KiB/s.
pub const DEFAULT_MIN_FETCH_RATE: u64 = 16 << 10;

impl ProxyConfig {
    /// `namespace` standing for the registry at `upstream`, anonymously,
    /// with the default TTL and timeouts.
    pub fn new(namespace: Namespace, upstream: Url) -> Self {
        ProxyConfig {
            namespace,
            upstream,
            username: None,
            password: None,
            ca_pem: None,
            tag_ttl: DEFAULT_TAG_TTL,
            hosts: Vec::new(),
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
            max_blob_bytes: DEFAULT_MAX_BLOB_BYTES,
            min_fetch_rate: DEFAULT_MIN_FETCH_RATE,
            sync: Vec::new(),
            sync_interval: None,
        }
    }

    /// The upstream URL's `host[:port]` (the port only when the URL names
    /// one), as containerd sends it in `?ns=`.
    pub fn upstream_host(&self) -> String {
        let host = self.upstream.host_str().unwrap_or_default();
        match self.upstream.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        }
    }

    /// Every host name this namespace stands for, lowercased: the upstream's
    /// own and [`hosts`](Self::hosts).
    pub fn all_hosts(&self) -> Vec<String> {
        let mut all = vec![self.upstream_host().to_ascii_lowercase()];
        for h in &self.hosts {
            let h = h.trim().to_ascii_lowercase();
            if !all.contains(&h) {
                all.push(h);
            }
        }
        all
    }

    /// Whether the upstream is Docker Hub, whose official images live under
    /// `library/` (`hub/alpine` is `library/alpine` there).
    fn is_docker_hub(&self) -> bool {
        self.all_hosts().iter().any(|h| {
            matches!(
                h.as_str(),
                "docker.io" | "registry-1.docker.io" | "index.docker.io"
            )
        })
    }
}

/// Why a [`ProxyConfig`] cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyConfigError {
    /// The upstream URL is neither `http://` nor `https://`.
    #[error("proxy namespace {namespace}: upstream {url} must be an http:// or https:// URL")]
    UnsupportedScheme {
        /// The namespace.
        namespace: Namespace,
        /// The URL given.
        url: String,
    },
    /// The upstream URL carries a query, a fragment or credentials.
    #[error(
        "proxy namespace {namespace}: upstream {url} must be a plain base URL \
         (no user:password@, query or fragment; set username and password instead)"
    )]
    NotABaseUrl {
        /// The namespace.
        namespace: Namespace,
        /// The URL given.
        url: String,
    },
    /// Two proxy configurations name one namespace.
    #[error("namespace {0} is configured as a proxy twice")]
    DuplicateNamespace(Namespace),
    /// Two proxy namespaces claim one host for mirror mode.
    #[error("host {host} is claimed by proxy namespaces {first} and {second}")]
    DuplicateHost {
        /// The host.
        host: String,
        /// The first namespace claiming it.
        first: Namespace,
        /// The second.
        second: Namespace,
    },
    /// A password without a user name.
    #[error("proxy namespace {0}: a password needs a username")]
    PasswordWithoutUser(Namespace),
    /// The upstream client cannot be built (CA certificates, TLS setup).
    #[error("proxy namespace {namespace}: {source}")]
    Client {
        /// The namespace.
        namespace: Namespace,
        /// Why.
        #[source]
        source: ClientError,
    },
}

/// One proxy namespace at run time: its settings, upstream client,
/// in-flight fetches and tag freshness.
#[derive(Debug)]
pub(crate) struct ProxyNamespace {
    pub(crate) config: ProxyConfig,
    pub(crate) client: Client,
    /// Manifest fetches and revalidations in flight, by repository and
    /// reference: concurrent requests share one.
    pub(crate) manifests: Inflight<(RepositoryName, String), fetch::ManifestOutcome>,
    /// Blob fetches in flight, by repository and digest.
    pub(crate) blobs: tee::BlobFetches,
    /// The index each child was last served in, to list the child in it
    /// once cached.
    pub(crate) parents: children::ParentHints,
    /// Links a cached manifest's put made and is removing: not cached.
    pub(crate) unverified: links::UnverifiedLinks,
    /// When each cached tag was last validated upstream.
    fresh: Mutex<HashMap<(RepositoryName, Tag), Instant>>,
}

/// Most tags whose validation time is remembered; past it the map is
/// cleared (every tag then revalidates once), which bounds it without an
/// eviction order.
const MAX_FRESH_ENTRIES: usize = 100_000;

impl ProxyNamespace {
    fn new(config: ProxyConfig, max_manifest_bytes: usize) -> Result<Self, ProxyConfigError> {
        let namespace = config.namespace.clone();
        let scheme_ok = matches!(config.upstream.scheme(), "http" | "https");
        if !scheme_ok || config.upstream.host_str().is_none() {
            return Err(ProxyConfigError::UnsupportedScheme {
                namespace,
                url: config.upstream.to_string(),
            });
        }
        if config.upstream.query().is_some()
            || config.upstream.fragment().is_some()
            || !config.upstream.username().is_empty()
            || config.upstream.password().is_some()
        {
            return Err(ProxyConfigError::NotABaseUrl {
                namespace,
                url: config.upstream.to_string(),
            });
        }
        let mut builder = Client::builder(config.upstream.as_str())
            .connect_timeout(config.connect_timeout)
            .read_timeout(config.read_timeout)
            // A longer manifest would be refused here anyway: not read past it.
            .max_manifest_bytes(max_manifest_bytes)
            .user_agent(concat!("registry-proxy/", env!("CARGO_PKG_VERSION")));
        match (&config.username, &config.password) {
            (Some(user), password) => {
                builder = builder.basic_auth(user, password.clone().unwrap_or_default());
            }
            (None, Some(_)) => return Err(ProxyConfigError::PasswordWithoutUser(namespace)),
            (None, None) => {}
        }
        if let Some(pem) = &config.ca_pem {
            builder = builder.ca_pem(pem.clone());
        }
        let client = builder.build().map_err(|source| ProxyConfigError::Client {
            namespace: namespace.clone(),
            source,
        })?;
        Ok(ProxyNamespace {
            config,
            client,
            manifests: Inflight::default(),
            blobs: tee::BlobFetches::default(),
            parents: children::ParentHints::default(),
            unverified: links::UnverifiedLinks::default(),
            fresh: Mutex::default(),
        })
    }

    /// The upstream's name for `repo` (which is in this namespace):
    /// `hub/library/alpine` → `library/alpine`; on Docker Hub a one-part
    /// name is an official image (`hub/alpine` → `library/alpine`).
    pub(crate) fn upstream_name(&self, repo: &RepositoryName) -> Option<RepositoryName> {
        let rest = repo.stream();
        if let Ok(name) = rest.parse() {
            return Some(name);
        }
        if self.config.is_docker_hub() {
            return RepositoryName::from_parts("library", rest).ok();
        }
        None
    }

    /// `host[:port]/<upstream name>` of `repo`, as shown in the Image API.
    pub(crate) fn upstream_repository(&self, repo: &RepositoryName) -> Option<String> {
        let name = self.upstream_name(repo)?;
        Some(format!("{}/{name}", self.config.upstream_host()))
    }

    /// Whether `tag` of `repo` was validated less than the TTL ago.
    pub(crate) fn is_fresh(&self, repo: &RepositoryName, tag: &Tag) -> bool {
        let fresh = self.fresh.lock().unwrap_or_else(|e| e.into_inner());
        fresh
            .get(&(repo.clone(), tag.clone()))
            .is_some_and(|at| at.elapsed() < self.config.tag_ttl)
    }

    /// Records that `tag` of `repo` was validated now.
    pub(crate) fn mark_fresh(&self, repo: &RepositoryName, tag: &Tag) {
        let mut fresh = self.fresh.lock().unwrap_or_else(|e| e.into_inner());
        if fresh.len() >= MAX_FRESH_ENTRIES {
            fresh.clear();
        }
        fresh.insert((repo.clone(), tag.clone()), Instant::now());
    }
}

/// The proxy namespaces of a registry.
#[derive(Debug, Default)]
pub(crate) struct Proxies {
    by_namespace: HashMap<Namespace, std::sync::Arc<ProxyNamespace>>,
    by_host: HashMap<String, Namespace>,
}

impl Proxies {
    /// Checks and sets up `configs`; their clients read upstream manifests
    /// of up to `max_manifest_bytes`.
    pub(crate) fn new(
        configs: Vec<ProxyConfig>,
        max_manifest_bytes: usize,
    ) -> Result<Self, ProxyConfigError> {
        let mut proxies = Proxies::default();
        for config in configs {
            let ns = config.namespace.clone();
            if proxies.by_namespace.contains_key(&ns) {
                return Err(ProxyConfigError::DuplicateNamespace(ns));
            }
            for host in config.all_hosts() {
                if let Some(first) = proxies.by_host.get(&host) {
                    return Err(ProxyConfigError::DuplicateHost {
                        host,
                        first: first.clone(),
                        second: ns,
                    });
                }
                proxies.by_host.insert(host, ns.clone());
            }
            let proxy = ProxyNamespace::new(config, max_manifest_bytes)?;
            proxies.by_namespace.insert(ns, std::sync::Arc::new(proxy));
        }
        Ok(proxies)
    }

    /// The proxy namespace holding `repo`, if it is in one.
    pub(crate) fn of_repo(&self, repo: &RepositoryName) -> Option<&std::sync::Arc<ProxyNamespace>> {
        if self.by_namespace.is_empty() {
            return None;
        }
        self.by_namespace.get(&repo.to_namespace())
    }

    /// The proxy namespace `ns`, if it is one.
    pub(crate) fn of_namespace(&self, ns: &Namespace) -> Option<&std::sync::Arc<ProxyNamespace>> {
        self.by_namespace.get(ns)
    }

    /// Every proxy namespace.
    pub(crate) fn all(&self) -> impl Iterator<Item = &std::sync::Arc<ProxyNamespace>> {
        self.by_namespace.values()
    }

    /// Whether `ns` is a proxy namespace.
    pub(crate) fn is_proxy(&self, ns: &Namespace) -> bool {
        self.by_namespace.contains_key(ns)
    }

    /// The proxy namespace standing for `host` in mirror mode.
    pub(crate) fn for_host(&self, host: &str) -> Option<&Namespace> {
        self.by_host.get(&host.trim().to_ascii_lowercase())
    }

    /// Every proxy namespace's settings.
    pub(crate) fn configs(&self) -> impl Iterator<Item = &ProxyConfig> {
        self.by_namespace.values().map(|p| &p.config)
    }
}
