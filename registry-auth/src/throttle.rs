//! Bounds on password checking: a small pool of argon2 slots and a
//! failed-login limiter per user and per peer address, shared through a
//! [`LoginGuard`] by the registry's own users and the identity providers
//! that check passwords (htpasswd bcrypt, LDAP binds).
//!
//! argon2 is memory-hard on purpose (7 MiB per check with the default
//! parameters), so a flood of wrong passwords must neither run unboundedly
//! many checks at once nor keep running them for a caller that is only
//! guessing. Both structures here are bounded: the pool by its permits,
//! the limiter by a cap on tracked keys with expiry, so that a stream of
//! unknown user names or addresses cannot grow it.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::authenticate::AuthenticationError;
use crate::credentials::CredentialError;

/// Limits on password verification. The defaults suit a server; tests may
/// lower them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginLimits {
    /// How many argon2 verifications run at once (default: the number of
    /// CPU cores). Each holds the hash's memory (7 MiB by default).
    pub password_checks: usize,
    /// How long a login waits for a verification slot before it is
    /// answered "too many requests".
    pub password_check_wait: Duration,
    /// Failed password logins per user name within [`Self::failure_window`]
    /// before that name is locked for [`Self::lockout`]. 0 disables.
    pub failures_per_user: u32,
    /// Failed password logins per peer address (IPv6: per /64) within the
    /// window before that address is locked. 0 disables.
    pub failures_per_peer: u32,
    /// The window failures are counted in.
    pub failure_window: Duration,
    /// How long a locked user name or address is refused.
    pub lockout: Duration,
    /// Most user names and most addresses tracked (each); beyond it the
    /// entry with the oldest window is dropped.
    pub max_tracked: usize,
}

impl Default for LoginLimits {
    fn default() -> Self {
        LoginLimits {
            password_checks: std::thread::available_parallelism().map_or(2, |n| n.get()),
            password_check_wait: Duration::from_millis(500),
            failures_per_user: 10,
            failures_per_peer: 30,
            failure_window: Duration::from_secs(60),
            lockout: Duration::from_secs(60),
            max_tracked: 10_000,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    window_start: Instant,
    failures: u32,
    locked_until: Option<Instant>,
}

/// Failure counts for one kind of key, bounded in size.
#[derive(Debug)]
struct Counter<K> {
    limit: u32,
    entries: HashMap<K, Entry>,
}

impl<K: Hash + Eq + Clone> Counter<K> {
    fn new(limit: u32) -> Self {
        Counter {
            limit,
            entries: HashMap::new(),
        }
    }

    /// When `key` is locked, how long it stays so.
    fn locked<Q: Hash + Eq + ?Sized>(&self, key: &Q, now: Instant) -> Option<Duration>
    where
        K: Borrow<Q>,
    {
        let until = self.entries.get(key)?.locked_until?;
        (until > now).then(|| until - now)
    }

    fn fail(&mut self, key: K, now: Instant, limits: &LoginLimits) {
        if self.limit == 0 {
            return;
        }
        if !self.entries.contains_key(&key) && self.entries.len() >= limits.max_tracked {
            self.make_room(now, limits);
        }
        let entry = self.entries.entry(key).or_insert(Entry {
            window_start: now,
            failures: 0,
            locked_until: None,
        });
        if now.duration_since(entry.window_start) >= limits.failure_window {
            *entry = Entry {
                window_start: now,
                failures: 0,
                locked_until: None,
            };
        }
        entry.failures = entry.failures.saturating_add(1);
        if entry.failures >= self.limit {
            // A lockout too long for the clock is a year, not none.
            entry.locked_until = now
                .checked_add(limits.lockout)
                .or_else(|| now.checked_add(Duration::from_secs(365 * 24 * 3600)));
        }
    }

    fn succeed<Q: Hash + Eq + ?Sized>(&mut self, key: &Q)
    where
        K: Borrow<Q>,
    {
        self.entries.remove(key);
    }

    /// Drops expired entries; if none were, the one with the oldest window.
    fn make_room(&mut self, now: Instant, limits: &LoginLimits) {
        let live = |e: &Entry| {
            now.duration_since(e.window_start) < limits.failure_window
                || e.locked_until.is_some_and(|u| u > now)
        };
        self.entries.retain(|_, e| live(e));
        if self.entries.len() >= limits.max_tracked {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.window_start)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                self.entries.remove(&k);
            }
        }
    }
}

/// The key an address is counted under: IPv4 as is, IPv6 by its /64 (one
/// host usually owns a whole /64).
fn peer_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut s = v6.segments();
                s[4..].fill(0);
                IpAddr::V6(s.into())
            }
        },
    }
}

#[derive(Debug)]
struct Counters {
    users: Counter<Box<str>>,
    peers: Counter<IpAddr>,
}

/// Counts failed password logins per user name and per peer address and
/// says when either is locked.
#[derive(Debug)]
pub struct FailedLogins {
    limits: LoginLimits,
    counters: Mutex<Counters>,
}

impl FailedLogins {
    /// A limiter with `limits`.
    pub fn new(limits: LoginLimits) -> Self {
        FailedLogins {
            counters: Mutex::new(Counters {
                users: Counter::new(limits.failures_per_user),
                peers: Counter::new(limits.failures_per_peer),
            }),
            limits,
        }
    }

    fn counters(&self) -> std::sync::MutexGuard<'_, Counters> {
        // Counts are advisory: a poisoned lock still holds usable numbers.
        self.counters.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// When `user` or `peer` is locked: how long until it is not.
    pub fn locked(&self, user: &str, peer: Option<IpAddr>) -> Option<Duration> {
        let now = Instant::now();
        let c = self.counters();
        let by_user = c.users.locked(user, now);
        let by_peer = peer.and_then(|p| c.peers.locked(&peer_key(p), now));
        by_user.into_iter().chain(by_peer).max()
    }

    /// How long `peer` (an address) is still locked, if it is.
    pub fn peer_locked(&self, peer: Option<IpAddr>) -> Option<Duration> {
        let now = Instant::now();
        let c = self.counters();
        peer.and_then(|p| c.peers.locked(&peer_key(p), now))
    }

    /// Records a failed login. `user` is `None` for a name that is not
    /// even valid (counted against the address only).
    pub fn failed(&self, user: Option<&str>, peer: Option<IpAddr>) {
        let now = Instant::now();
        let mut c = self.counters();
        if let Some(user) = user {
            c.users.fail(Box::from(user), now, &self.limits);
        }
        if let Some(peer) = peer {
            c.peers.fail(peer_key(peer), now, &self.limits);
        }
    }

    /// Records a successful login: the user's count starts again (the
    /// address's does not, or one valid account would hide guessing).
    pub fn succeeded(&self, user: &str) {
        self.counters().users.succeed(user);
    }

    /// How many user names and addresses are tracked (for tests and
    /// metrics).
    pub fn tracked(&self) -> (usize, usize) {
        let c = self.counters();
        (c.users.entries.len(), c.peers.entries.len())
    }
}

/// The bounds every password check in a registry goes through: one pool of
/// verification slots and one failed-login limiter, shared (behind an
/// `Arc`) by the registry's own [`Authenticator`](crate::Authenticator) and
/// the identity providers that check passwords, so that guessing through
/// any of them counts against the same user name and address.
#[derive(Debug)]
pub struct LoginGuard {
    limits: LoginLimits,
    slots: Arc<tokio::sync::Semaphore>,
    failures: FailedLogins,
}

impl LoginGuard {
    /// A guard with `limits`.
    pub fn new(limits: LoginLimits) -> Self {
        LoginGuard {
            slots: Arc::new(tokio::sync::Semaphore::new(limits.password_checks.max(1))),
            failures: FailedLogins::new(limits.clone()),
            limits,
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &LoginLimits {
        &self.limits
    }

    /// The failed-login counters.
    pub fn failures(&self) -> &FailedLogins {
        &self.failures
    }

    /// Runs `check`, a CPU-bound password verification, on tokio's
    /// blocking pool in one of the [`LoginLimits::password_checks`] slots
    /// (inline when there is no runtime). A check that waits longer than
    /// [`LoginLimits::password_check_wait`] for a slot is
    /// [`AuthenticationError::Busy`]. The slot moves into the blocking task,
    /// so a client that hangs up does not free it before the work (and its
    /// memory) is done.
    pub async fn run_check<T, F>(&self, check: F) -> Result<T, AuthenticationError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return Ok(check());
        };
        let busy = AuthenticationError::Busy {
            retry_after: Duration::from_secs(1),
        };
        let wait = self.limits.password_check_wait;
        let slot = match tokio::time::timeout(wait, self.slots.clone().acquire_owned()).await {
            Ok(Ok(slot)) => slot,
            // Timed out, or (never: it is not closed) the semaphore closed.
            Ok(Err(_)) | Err(_) => return Err(busy),
        };
        handle
            .spawn_blocking(move || {
                let _slot = slot;
                check()
            })
            .await
            .map_err(|e| CredentialError::Hashing(e.to_string()).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> LoginLimits {
        LoginLimits {
            failures_per_user: 3,
            failures_per_peer: 5,
            max_tracked: 4,
            ..LoginLimits::default()
        }
    }

    #[test]
    fn locks_user_and_peer_after_limit() {
        let f = FailedLogins::new(limits());
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..2 {
            f.failed(Some("alice"), Some(a));
        }
        assert!(f.locked("alice", Some(b)).is_none());
        f.failed(Some("alice"), Some(a));
        assert!(f.locked("alice", Some(b)).is_some(), "user locked");
        assert!(f.locked("bob", Some(b)).is_none());
        for _ in 0..2 {
            f.failed(Some("carol"), Some(a));
        }
        assert!(f.locked("bob", Some(a)).is_some(), "address locked");
        assert!(f.locked("bob", None).is_none());
        f.succeeded("alice");
        assert!(f.locked("alice", None).is_none());
    }

    #[test]
    fn tracking_is_bounded() {
        let f = FailedLogins::new(limits());
        for i in 0..1000u32 {
            let ip = IpAddr::from(i.to_be_bytes());
            f.failed(Some(&format!("user{i}")), Some(ip));
        }
        let (users, peers) = f.tracked();
        assert!(users <= 4 && peers <= 4, "{users} {peers}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn guard_bounds_concurrent_checks() {
        let guard = Arc::new(LoginGuard::new(LoginLimits {
            password_checks: 1,
            password_check_wait: Duration::from_millis(50),
            ..LoginLimits::default()
        }));
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let holder = {
            let guard = guard.clone();
            tokio::spawn(async move {
                guard
                    .run_check(move || {
                        started_tx.send(()).unwrap();
                        release_rx.recv().unwrap();
                        7
                    })
                    .await
            })
        };
        tokio::task::spawn_blocking(move || started_rx.recv().unwrap())
            .await
            .unwrap();
        let second = guard.run_check(|| 8).await;
        assert!(
            matches!(second, Err(AuthenticationError::Busy { .. })),
            "{second:?}"
        );
        release_tx.send(()).unwrap();
        assert_eq!(holder.await.unwrap().unwrap(), 7);
        assert_eq!(guard.run_check(|| 9).await.unwrap(), 9);
    }

    #[test]
    fn ipv6_counts_per_slash_64() {
        let f = FailedLogins::new(limits());
        for i in 0..5u16 {
            let ip = IpAddr::from([0x2001, 0xdb8, 0, 1, 0, 0, 0, i]);
            f.failed(None, Some(ip));
        }
        let other_host: IpAddr = "2001:db8:0:1::ffff".parse().unwrap();
        assert!(f.locked("x", Some(other_host)).is_some());
        let other_net: IpAddr = "2001:db8:0:2::1".parse().unwrap();
        assert!(f.locked("x", Some(other_net)).is_none());
    }
}
