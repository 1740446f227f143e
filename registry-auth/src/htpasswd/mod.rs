//! [`HtpasswdProvider`]: users from an Apache htpasswd file, with bcrypt
//! entries as `htpasswd -B` writes them, re-read when the file changes.
//!
//! Users are `htpasswd:<name>` ([`ExternalUserName`](crate::ExternalUserName)) and have no groups of
//! their own (bind them by name, or through `system:authenticated`).
//!
//! ```no_run
//! use std::sync::Arc;
//! use registry_auth::{htpasswd::HtpasswdProvider, LoginGuard, LoginLimits};
//!
//! # fn main() -> Result<(), registry_auth::htpasswd::HtpasswdError> {
//! // Share the guard with the registry's own authenticator (AuthConfig::login_guard)
//! // so failed logins count in one place.
//! let guard = Arc::new(LoginGuard::new(LoginLimits::default()));
//! let provider = HtpasswdProvider::open("/etc/registry/htpasswd", guard)?;
//! # Ok(()) }
//! ```

mod file;

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

pub use file::{HtpasswdError, LineRefused, MAX_BCRYPT_COST};

use crate::authenticate::{Authenticate, AuthenticationError, Credentials};
use crate::credentials::AccessTokenSecret;
use crate::identity::Identity;
use crate::login_cache::LoginCache;
use crate::throttle::LoginGuard;
use crate::token::TokenSource;
use file::{Entry, Parsed};

/// The provider's name (`Identity::provider`).
pub const PROVIDER: &str = "htpasswd";

/// The file is looked at (one `stat`) at most this often.
const CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// A verified login is remembered this long (while the user's hash in the
/// file stays the same: a changed or removed line ends it at once).
const VERIFIED_TTL: Duration = Duration::from_secs(3600);
/// Most verified logins remembered.
const VERIFIED_CAPACITY: usize = 4096;

/// What identifies one version of the file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    #[cfg(unix)]
    inode: (u64, u64),
    #[cfg(unix)]
    changed: (i64, i64),
}

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> Stamp {
        #[cfg(unix)]
        use std::os::unix::fs::MetadataExt;
        Stamp {
            len: meta.len(),
            modified: meta.modified().ok(),
            #[cfg(unix)]
            inode: (meta.dev(), meta.ino()),
            #[cfg(unix)]
            changed: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

/// When to look at the file next, and what was seen last time.
#[derive(Debug)]
struct Watch {
    next_check: Instant,
    checking: bool,
    /// The file version last examined, loaded or refused: a refused
    /// version is not parsed (nor logged) again.
    seen: Option<Stamp>,
    /// Whether the file being unreadable was logged already.
    unreadable_logged: bool,
}

/// What looking at the file found.
enum Examined {
    Unchanged,
    Loaded(Stamp, Parsed),
    Refused(Stamp, HtpasswdError),
    Unreadable(std::io::Error),
}

/// An identity provider over an htpasswd file.
///
/// - "not mine" (`Ok(None)`): bearer credentials, a user name that is not
///   in the file, or a password shaped like a registry access token (the
///   registry's own users come later and check it);
/// - "yes": the name is in the file and its bcrypt hash verifies;
/// - "no" ([`AuthenticationError::InvalidCredentials`]): the name is in the
///   file and the password is wrong; or [`AuthenticationError::RateLimited`]
///   / [`AuthenticationError::Busy`] from the shared [`LoginGuard`].
///
/// The file is checked for changes (size, modification and change time,
/// inode) at most once a second, on the next login after that second, and
/// re-read when it changed: no restart. A file that becomes unreadable or
/// malformed leaves the last good contents in force, with an error log
/// line. Lines with other hash kinds ($apr1$, {SHA}, crypt) are refused
/// with a warning naming the line number, never the hash.
///
/// bcrypt runs on the blocking pool through the shared [`LoginGuard`] (the
/// same slots and failed-login counts as the registry's own users); a
/// verified login is remembered under an HMAC of the credentials, so a
/// client sending Basic credentials with each request costs one HMAC.
pub struct HtpasswdProvider {
    path: PathBuf,
    users: RwLock<Arc<Parsed>>,
    watch: Mutex<Watch>,
    guard: Arc<LoginGuard>,
    verified: LoginCache<Arc<str>>,
}

impl fmt::Debug for HtpasswdProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HtpasswdProvider")
            .field("path", &self.path)
            .field("users", &self.user_count())
            .finish_non_exhaustive()
    }
}

/// Reads and parses `path`, with the stamp of what was read.
fn load(path: &Path) -> Result<(Stamp, Parsed), HtpasswdError> {
    let read = |source| HtpasswdError::Read {
        path: path.to_owned(),
        source,
    };
    let stamp = Stamp::of(&std::fs::metadata(path).map_err(read)?);
    let bytes = std::fs::read(path).map_err(read)?;
    Ok((stamp, file::parse(path, &bytes)?))
}

/// Reads `path` unless its stamp is `seen`.
fn examine(path: &Path, seen: Option<Stamp>) -> Examined {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) => return Examined::Unreadable(e),
    };
    let stamp = Stamp::of(&meta);
    if seen == Some(stamp) {
        return Examined::Unchanged;
    }
    match load(path) {
        Ok((stamp, parsed)) => Examined::Loaded(stamp, parsed),
        Err(HtpasswdError::Read { source, .. }) => Examined::Unreadable(source),
        Err(e) => Examined::Refused(stamp, e),
    }
}

fn warn_refused_lines(path: &Path, parsed: &Parsed) {
    for (line, why) in &parsed.refused {
        tracing::warn!(target: "auth", provider = PROVIDER, path = %path.display(), "htpasswd line {line} refused: {why}");
    }
}

impl HtpasswdProvider {
    /// Reads the file at `path`; a file that cannot be read or is
    /// malformed is an error (refused lines are warnings).
    pub fn open(path: impl AsRef<Path>, guard: Arc<LoginGuard>) -> Result<Self, HtpasswdError> {
        let path = path.as_ref().to_owned();
        let (stamp, parsed) = load(&path)?;
        warn_refused_lines(&path, &parsed);
        tracing::info!(target: "auth", provider = PROVIDER, path = %path.display(), users = parsed.users.len(), "htpasswd file loaded");
        let verified = LoginCache::new(VERIFIED_TTL, VERIFIED_CAPACITY)?;
        Ok(HtpasswdProvider {
            users: RwLock::new(Arc::new(parsed)),
            watch: Mutex::new(Watch {
                next_check: Instant::now() + CHECK_INTERVAL,
                checking: false,
                seen: Some(stamp),
                unreadable_logged: false,
            }),
            path,
            guard,
            verified,
        })
    }

    /// The file this provider reads.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many users the contents in force hold.
    pub fn user_count(&self) -> usize {
        self.users().users.len()
    }

    fn users(&self) -> Arc<Parsed> {
        self.users.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn watch(&self) -> std::sync::MutexGuard<'_, Watch> {
        self.watch.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Looks at the file now (not waiting for the next second) and
    /// re-reads it if it changed. `Ok(true)`: new contents are in force.
    /// On an error the last good contents stay.
    pub async fn reload(&self) -> Result<bool, HtpasswdError> {
        let seen = self.watch().seen;
        let examined = self.examine_off_thread(seen).await;
        self.apply(examined)
    }

    /// At most once a second (and never twice at once): look at the file,
    /// re-read it when it changed.
    async fn refresh(&self) {
        let seen = {
            let mut watch = self.watch();
            let now = Instant::now();
            if watch.checking || now < watch.next_check {
                return;
            }
            watch.checking = true;
            watch.next_check = now + CHECK_INTERVAL;
            watch.seen
        };
        let examined = self.examine_off_thread(seen).await;
        // Errors were logged by `apply`.
        let _ = self.apply(examined);
    }

    /// Runs [`examine`] on the blocking pool (a stat, and a read when the
    /// file changed), inline without a runtime. The in-progress mark is
    /// cleared even when the caller's future is dropped meanwhile.
    async fn examine_off_thread(&self, seen: Option<Stamp>) -> Examined {
        struct Done<'a>(&'a Mutex<Watch>);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                self.0.lock().unwrap_or_else(|p| p.into_inner()).checking = false;
            }
        }
        let _done = Done(&self.watch);
        let path = self.path.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => match handle.spawn_blocking(move || examine(&path, seen)).await {
                Ok(examined) => examined,
                Err(e) => Examined::Unreadable(std::io::Error::other(e)),
            },
            Err(_) => examine(&path, seen),
        }
    }

    /// Puts what [`examine`] found in force, logging what changed.
    fn apply(&self, examined: Examined) -> Result<bool, HtpasswdError> {
        let path = self.path.display();
        let kept = self.user_count();
        match examined {
            Examined::Unchanged => {
                self.watch().unreadable_logged = false;
                Ok(false)
            }
            Examined::Loaded(stamp, parsed) => {
                warn_refused_lines(&self.path, &parsed);
                tracing::info!(target: "auth", provider = PROVIDER, path = %path, users = parsed.users.len(), "htpasswd file changed: re-read");
                *self.users.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(parsed);
                let mut watch = self.watch();
                watch.seen = Some(stamp);
                watch.unreadable_logged = false;
                Ok(true)
            }
            Examined::Refused(stamp, e) => {
                let mut watch = self.watch();
                if watch.seen != Some(stamp) {
                    tracing::error!(target: "auth", provider = PROVIDER, users = kept, "{e}; keeping the previous contents");
                }
                watch.seen = Some(stamp);
                watch.unreadable_logged = false;
                Err(e)
            }
            Examined::Unreadable(source) => {
                let mut watch = self.watch();
                if !watch.unreadable_logged {
                    tracing::error!(target: "auth", provider = PROVIDER, path = %path, users = kept, "cannot read htpasswd file: {source}; keeping the previous contents");
                }
                watch.unreadable_logged = true;
                // Whatever appears next at the path is read again.
                watch.seen = None;
                Err(HtpasswdError::Read {
                    path: self.path.clone(),
                    source,
                })
            }
        }
    }

    /// Verifies `password` against `entry`'s bcrypt hash through the guard.
    async fn verify(
        &self,
        user: &str,
        password: &str,
        entry: &Entry,
        peer: Option<IpAddr>,
    ) -> Result<Identity, AuthenticationError> {
        let identity = || Identity::external(PROVIDER, entry.name.clone(), []);
        let fingerprint = self.verified.fingerprint(user, password);
        // A remembered success costs one HMAC and lets its owner in even
        // while someone else's guesses have locked the name.
        if self
            .verified
            .get(&fingerprint)
            .is_some_and(|hash| hash == entry.hash)
        {
            return Ok(identity());
        }
        let failures = self.guard.failures();
        if let Some(retry_after) = failures.locked(user, peer) {
            return Err(AuthenticationError::RateLimited { retry_after });
        }
        let hash = entry.hash.clone();
        let password = password.to_owned();
        let ok = self
            .guard
            .run_check(move || bcrypt::verify(password, &hash))
            .await?;
        match ok {
            Ok(true) => {
                failures.succeeded(user);
                self.verified.insert(fingerprint, entry.hash.clone());
                Ok(identity())
            }
            Ok(false) => {
                failures.failed(Some(user), peer);
                Err(AuthenticationError::InvalidCredentials)
            }
            Err(e) => {
                // Hashes are checked at load; this is a bcrypt limit (a
                // password it cannot take), not the file's fault.
                tracing::warn!(target: "auth", provider = PROVIDER, user, "bcrypt refused the check: {e}");
                failures.failed(Some(user), peer);
                Err(AuthenticationError::InvalidCredentials)
            }
        }
    }
}

#[async_trait::async_trait]
impl Authenticate for HtpasswdProvider {
    async fn authenticate(
        &self,
        credentials: &Credentials,
        peer: Option<IpAddr>,
    ) -> Result<Option<(Identity, TokenSource)>, AuthenticationError> {
        let Credentials::Basic { user, password } = credentials else {
            return Ok(None);
        };
        if AccessTokenSecret::looks_like(password) {
            return Ok(None);
        }
        self.refresh().await;
        let users = self.users();
        let Some(entry) = users.users.get(user.as_str()) else {
            return Ok(None);
        };
        let identity = self.verify(user, password, entry, peer).await?;
        Ok(Some((identity, TokenSource::External)))
    }
}

#[cfg(test)]
mod tests;
