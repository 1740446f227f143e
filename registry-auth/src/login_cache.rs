//! [`LoginCache`]: what identity providers remember about recent
//! successful logins, so that a client that sends its credentials with
//! every request (HTTP Basic: every layer of a pull) costs one HMAC instead
//! of a bcrypt check or an LDAP bind per request.
//!
//! Entries are keyed by an HMAC-SHA256 of the user name and the secret
//! under a random per-process key: the cache never holds a password or
//! anything a password can be recovered from without that key. It is
//! bounded in entries and in time.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hmac::{KeyInit, Mac};

use crate::credentials::{random_bytes, CredentialError};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// The key a login is remembered under: an HMAC of user name and secret.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct LoginFingerprint([u8; 32]);

impl fmt::Debug for LoginFingerprint {
    /// Never shows the value: it is derived from a secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LoginFingerprint(..)")
    }
}

/// A bounded, time-limited map from login fingerprints to what the login
/// yielded (an identity, or the hash it was verified against).
pub struct LoginCache<V> {
    key: HmacSha256,
    ttl: Duration,
    capacity: usize,
    entries: Mutex<HashMap<LoginFingerprint, (V, Instant)>>,
}

impl<V: Clone> fmt::Debug for LoginCache<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginCache")
            .field("ttl", &self.ttl)
            .field("capacity", &self.capacity)
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl<V: Clone> LoginCache<V> {
    /// A cache whose entries live `ttl`, holding at most `capacity` (at
    /// least 1) of them, under a fresh random key.
    pub fn new(ttl: Duration, capacity: usize) -> Result<Self, CredentialError> {
        let key = random_bytes::<32>()?;
        let key = HmacSha256::new_from_slice(&key)
            .map_err(|e| CredentialError::Hashing(e.to_string()))?;
        Ok(LoginCache {
            key,
            ttl,
            capacity: capacity.max(1),
            entries: Mutex::new(HashMap::new()),
        })
    }

    /// The fingerprint of `user` logging in with `secret`.
    pub fn fingerprint(&self, user: &str, secret: &str) -> LoginFingerprint {
        let mut mac = self.key.clone();
        // The length prefix keeps ("ab", "c") and ("a", "bc") apart.
        mac.update(&(user.len() as u64).to_be_bytes());
        mac.update(user.as_bytes());
        mac.update(secret.as_bytes());
        LoginFingerprint(mac.finalize().into_bytes().into())
    }

    fn entries(&self) -> MutexGuard<'_, HashMap<LoginFingerprint, (V, Instant)>> {
        // Entries are whole values: a poisoned lock still holds valid ones.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What the login with `fingerprint` yielded, if it is remembered and
    /// younger than the time to live.
    pub fn get(&self, fingerprint: &LoginFingerprint) -> Option<V> {
        let now = Instant::now();
        let mut entries = self.entries();
        match entries.get(fingerprint) {
            Some((value, expires)) if *expires > now => Some(value.clone()),
            Some(_) => {
                entries.remove(fingerprint);
                None
            }
            None => None,
        }
    }

    /// Remembers a successful login. When full, expired entries go first,
    /// then the one closest to expiry: a burst of new users never empties
    /// the cache for everyone at once.
    pub fn insert(&self, fingerprint: LoginFingerprint, value: V) {
        let now = Instant::now();
        let Some(expires) = now.checked_add(self.ttl) else {
            return;
        };
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.entries();
        if !entries.contains_key(&fingerprint) && entries.len() >= self.capacity {
            entries.retain(|_, (_, e)| *e > now);
            if entries.len() >= self.capacity {
                let first = entries.iter().min_by_key(|(_, (_, e))| *e).map(|(k, _)| *k);
                if let Some(k) = first {
                    entries.remove(&k);
                }
            }
        }
        entries.insert(fingerprint, (value, expires));
    }

    /// Forgets a login (its credential no longer verifies).
    pub fn remove(&self, fingerprint: &LoginFingerprint) {
        self.entries().remove(fingerprint);
    }

    /// Forgets every login.
    pub fn clear(&self) {
        self.entries().clear();
    }

    /// How many logins are remembered (expired ones included until they
    /// are looked up or pushed out).
    pub fn len(&self) -> usize {
        self.entries().len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_until_the_ttl() {
        let cache = LoginCache::new(Duration::from_millis(50), 8).unwrap();
        let fp = cache.fingerprint("alice", "pw");
        assert_eq!(fp, cache.fingerprint("alice", "pw"));
        assert_ne!(fp, cache.fingerprint("alice", "pw2"));
        assert_ne!(
            cache.fingerprint("ab", "c"),
            cache.fingerprint("a", "bc"),
            "user and secret are kept apart"
        );
        assert_eq!(cache.get(&fp), None);
        cache.insert(fp, 1);
        assert_eq!(cache.get(&fp), Some(1));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(cache.get(&fp), None);
        assert!(cache.is_empty(), "an expired entry is dropped when read");
    }

    #[test]
    fn keys_differ_between_caches() {
        let a = LoginCache::<u8>::new(Duration::from_secs(1), 1).unwrap();
        let b = LoginCache::<u8>::new(Duration::from_secs(1), 1).unwrap();
        assert_ne!(a.fingerprint("u", "p"), b.fingerprint("u", "p"));
        assert_eq!(
            format!("{:?}", a.fingerprint("u", "p")),
            "LoginFingerprint(..)"
        );
    }

    #[test]
    fn bounded_and_evicts_the_oldest() {
        let cache = LoginCache::new(Duration::from_secs(60), 3).unwrap();
        let fps: Vec<_> = (0..10)
            .map(|i| cache.fingerprint(&format!("user{i}"), "pw"))
            .collect();
        for (i, fp) in fps.iter().enumerate() {
            cache.insert(*fp, i);
            std::thread::sleep(Duration::from_millis(2));
        }
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.get(&fps[9]), Some(9));
        assert_eq!(cache.get(&fps[8]), Some(8));
        assert_eq!(cache.get(&fps[7]), Some(7));
        assert_eq!(cache.get(&fps[0]), None);
        cache.remove(&fps[9]);
        assert_eq!(cache.get(&fps[9]), None);
        cache.clear();
        assert!(cache.is_empty());
    }

    #[test]
    fn zero_ttl_remembers_nothing() {
        let cache = LoginCache::new(Duration::ZERO, 3).unwrap();
        let fp = cache.fingerprint("u", "p");
        cache.insert(fp, ());
        assert!(cache.is_empty());
    }
}
