//! [`LdapProvider`]: users and groups from an LDAP directory (OpenLDAP,
//! 389 DS, Active Directory), over `ldap://`, StartTLS or `ldaps://`.
//!
//! A login binds as the service account, searches the user (exactly one
//! entry must match the user filter), reads the user's groups (their `cn`),
//! and binds as the user's DN with the password. Users are `ldap:<uid>`
//! ([`ExternalUserName`]), groups `ldap:<cn>`
//! ([`GroupName`]), which bindings name as
//! `ldap:alice` and `group:ldap:ops`.
//!
//! ```no_run
//! use std::sync::Arc;
//! use registry_auth::ldap::{LdapConfig, LdapProvider};
//! use registry_auth::{LoginGuard, LoginLimits, Password};
//!
//! # fn main() -> Result<(), registry_auth::ldap::LdapConfigError> {
//! let mut config = LdapConfig::new("ldaps://ldap.example.com", "ou=people,dc=example,dc=com")
//!     .with_bind("cn=registry,ou=services,dc=example,dc=com", Password::new("secret"))
//!     .with_group_base("ou=groups,dc=example,dc=com");
//! config.ca_file = Some("/etc/registry/ldap-ca.pem".into());
//! let guard = Arc::new(LoginGuard::new(LoginLimits::default()));
//! let provider = LdapProvider::new(config, guard)?;
//! # Ok(()) }
//! ```

mod config;
mod filter;
mod session;

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

pub use config::{LdapConfig, LdapConfigError, DEFAULT_GROUP_FILTER, DEFAULT_USER_FILTER};
pub use filter::{escape_filter_value, FilterTemplateError};

use crate::authenticate::{Authenticate, AuthenticationError, Credentials};
use crate::credentials::AccessTokenSecret;
use crate::identity::Identity;
use crate::login_cache::{LoginCache, LoginFingerprint};
use crate::names::{ExternalUserName, GroupName};
use crate::throttle::LoginGuard;
use crate::token::TokenSource;
use session::{Lookup, Unavailable};

/// The provider's name (`Identity::provider`), and the prefix of its user
/// and group names.
pub const PROVIDER: &str = "ldap";

/// What one directory lookup concluded, shared by every concurrent login
/// with the same credentials.
#[derive(Debug, Clone)]
enum Outcome {
    Yes(Identity),
    NotMine,
    No,
}

/// One lookup in progress and the logins waiting for it.
type Flight = Arc<tokio::sync::OnceCell<Outcome>>;

/// An identity provider over an LDAP directory.
///
/// - "not mine" (`Ok(None)`): bearer credentials; an empty password (an
///   empty-password bind is an unauthenticated bind, which many
///   directories let "succeed": refused before any bind); a password shaped
///   like a registry access token; a name that cannot be `ldap:<name>`; no
///   entry or more than one matching the user filter; and, with a warning
///   log line, the directory being unreachable, slow past the timeouts,
///   refusing the service bind or saturated: LDAP users then fail closed
///   while the registry's own users still log in.
/// - "yes": exactly one entry matches and the directory accepts the bind
///   with the password.
/// - "no" ([`AuthenticationError::InvalidCredentials`]): the entry exists
///   and the directory refuses the password; or
///   [`AuthenticationError::RateLimited`] from the shared [`LoginGuard`],
///   where wrong passwords count per user name and peer like local ones.
///
/// Values are escaped into filters (RFC 4515): a user name such as `*` or
/// `x)(uid=*` is one literal value, never filter syntax. DNs are only ever
/// taken from the directory's answers, never built from input.
///
/// Bounded: at most [`LdapConfig::max_connections`] logins talk to the
/// directory at once, each within the connect and operation timeouts; a
/// successful login (user and groups) is remembered for
/// [`LdapConfig::cache_ttl`] under an HMAC of the credentials, and logins
/// with the same credentials that arrive together share one lookup, so a
/// pull burst (parallel layer requests with Basic credentials) costs one
/// bind.
pub struct LdapProvider {
    config: LdapConfig,
    checked: config::Checked,
    connections: Arc<tokio::sync::Semaphore>,
    guard: Arc<LoginGuard>,
    logins: LoginCache<Identity>,
    in_flight: Mutex<HashMap<LoginFingerprint, Flight>>,
}

impl fmt::Debug for LdapProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LdapProvider")
            .field("url", &self.config.url)
            .field("user_base", &self.config.user_base)
            .field("group_base", &self.config.group_base)
            .finish_non_exhaustive()
    }
}

impl LdapProvider {
    /// Checks `config` (URL, filters, TLS and CA file) without contacting
    /// the directory: a server starts while its directory is down.
    pub fn new(config: LdapConfig, guard: Arc<LoginGuard>) -> Result<Self, LdapConfigError> {
        let checked = config.check()?;
        if checked.tls.is_none() {
            let loopback = match checked.url.host() {
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                Some(url::Host::Domain(d)) => d == "localhost",
                None => false,
            };
            if !loopback {
                tracing::warn!(target: "auth", provider = PROVIDER, url = %config.url, "LDAP without TLS: passwords cross the network in the clear; use ldaps:// or StartTLS");
            }
        }
        Ok(LdapProvider {
            connections: Arc::new(tokio::sync::Semaphore::new(config.max_connections.max(1))),
            logins: LoginCache::new(config.cache_ttl, config.cache_capacity)?,
            in_flight: Mutex::new(HashMap::new()),
            checked,
            guard,
            config,
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &LdapConfig {
        &self.config
    }

    /// Forgets every remembered login: the next request of each user binds
    /// again.
    pub fn forget_logins(&self) {
        self.logins.clear();
    }

    /// The identity for a found user; `None` (with a warning) when the
    /// directory's `uid` cannot be a registry name.
    fn identity(&self, uid: &str, groups: Vec<String>) -> Option<Identity> {
        let name = match format!("{PROVIDER}:{uid}").parse::<ExternalUserName>() {
            Ok(name) => name,
            Err(e) => {
                tracing::warn!(target: "auth", provider = PROVIDER, uid, "LDAP user cannot log in: its uid is not a valid user name: {e}");
                return None;
            }
        };
        let mut names = Vec::with_capacity(groups.len());
        for cn in groups {
            match format!("{PROVIDER}:{cn}").parse::<GroupName>() {
                // Identity::external drops repeats.
                Ok(group) => names.push(group),
                // Leaving a group out only ever grants less.
                Err(e) => {
                    tracing::warn!(target: "auth", provider = PROVIDER, uid, group = %cn, "LDAP group left out: its cn is not a valid group name: {e}");
                }
            }
        }
        Some(Identity::external(PROVIDER, name, names))
    }

    /// Asks the directory, bounded in connections and time.
    async fn ask(&self, user: &str, password: &str) -> Result<Lookup, Unavailable> {
        let op = self.config.operation_timeout;
        let _connection =
            match tokio::time::timeout(op, self.connections.clone().acquire_owned()).await {
                Ok(Ok(permit)) => permit,
                Ok(Err(_)) | Err(_) => return Err(Unavailable::TimedOut(op)),
            };
        // Each step has its own timeout; this bounds the sum (a search
        // whose entries trickle in restarts ldap3's timer per entry).
        let total = self.config.connect_timeout + op * 5;
        match tokio::time::timeout(
            total,
            session::lookup(&self.config, &self.checked, user, password),
        )
        .await
        {
            Ok(result) => result,
            Err(_) => Err(Unavailable::TimedOut(total)),
        }
    }
}

/// A login's place in the flight for its credentials; the last one to
/// leave (done, or dropped with a client that hung up) removes the flight.
struct Boarding<'a> {
    map: &'a Mutex<HashMap<LoginFingerprint, Flight>>,
    key: LoginFingerprint,
    flight: Flight,
}

impl<'a> Boarding<'a> {
    fn join(map: &'a Mutex<HashMap<LoginFingerprint, Flight>>, key: LoginFingerprint) -> Self {
        let flight = map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key)
            .or_default()
            .clone();
        Boarding { map, key, flight }
    }
}

impl Drop for Boarding<'_> {
    fn drop(&mut self) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        // Joining clones under this lock: two references (the map's and
        // this one) mean nobody else is aboard.
        if map
            .get(&self.key)
            .is_some_and(|f| Arc::ptr_eq(f, &self.flight) && Arc::strong_count(f) <= 2)
        {
            map.remove(&self.key);
        }
    }
}

impl LdapProvider {
    /// One lookup's conclusion, logged once however many logins share it.
    async fn settle(&self, user: &str, password: &str) -> Outcome {
        match self.ask(user, password).await {
            Ok(Lookup::Found { uid, groups }) => match self.identity(&uid, groups) {
                Some(identity) => Outcome::Yes(identity),
                None => Outcome::No,
            },
            Ok(Lookup::NotFound(why)) => {
                tracing::debug!(target: "auth", provider = PROVIDER, user = %user, "not an LDAP user: {why}");
                Outcome::NotMine
            }
            Ok(Lookup::WrongPassword) => Outcome::No,
            Err(e) => {
                tracing::warn!(target: "auth", provider = PROVIDER, url = %self.config.url, user = %user, "LDAP unavailable, LDAP users cannot log in: {e}");
                Outcome::NotMine
            }
        }
    }

    /// The number of lookups in progress (for tests: nothing is left
    /// behind once logins end).
    pub fn lookups_in_flight(&self) -> usize {
        self.in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }
}

#[async_trait::async_trait]
impl Authenticate for LdapProvider {
    async fn authenticate(
        &self,
        credentials: &Credentials,
        peer: Option<IpAddr>,
    ) -> Result<Option<(Identity, TokenSource)>, AuthenticationError> {
        let Credentials::Basic { user, password } = credentials else {
            return Ok(None);
        };
        if user.is_empty() || password.is_empty() || AccessTokenSecret::looks_like(password) {
            return Ok(None);
        }
        if format!("{PROVIDER}:{user}")
            .parse::<ExternalUserName>()
            .is_err()
        {
            return Ok(None);
        }
        let fingerprint = self.logins.fingerprint(user, password);
        if let Some(identity) = self.logins.get(&fingerprint) {
            return Ok(Some((identity, TokenSource::External)));
        }
        let failures = self.guard.failures();
        if let Some(retry_after) = failures.locked(user, peer) {
            return Err(AuthenticationError::RateLimited { retry_after });
        }
        let boarding = Boarding::join(&self.in_flight, fingerprint);
        let outcome = boarding
            .flight
            .get_or_init(|| self.settle(user, password))
            .await
            .clone();
        drop(boarding);
        match outcome {
            Outcome::Yes(identity) => {
                failures.succeeded(user);
                self.logins.insert(fingerprint, identity.clone());
                Ok(Some((identity, TokenSource::External)))
            }
            Outcome::NotMine => Ok(None),
            Outcome::No => {
                failures.failed(Some(user), peer);
                Err(AuthenticationError::InvalidCredentials)
            }
        }
    }
}

#[cfg(test)]
mod tests;
