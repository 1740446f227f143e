//! Verified tokens, remembered so that a client sending the same token on
//! every request costs one hash-map lookup, not an ECDSA verification.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use super::claims::TokenClaims;

/// Most tokens remembered. A full cache first drops expired entries, then
/// everything: only tokens this registry signed and that verified get in,
/// so the worst a client can do is make others verify once more.
pub(crate) const CAPACITY: usize = 8192;

struct Entry {
    /// The whole token: a lookup matches only this exact text.
    token: Box<str>,
    claims: Arc<TokenClaims>,
    /// `exp`, unix seconds.
    expires: i64,
    /// The earliest time it is valid (`nbf` less the leeway), unix seconds.
    valid_from: i64,
}

/// Verified tokens by their signature. The signature is only the map key
/// (ECDSA signatures are randomised, so tokens have distinct ones); a hit
/// also compares the whole text, so a token that reuses a remembered
/// signature over other claims is not a hit and gets verified.
#[derive(Default)]
pub(crate) struct VerifiedTokens {
    map: RwLock<HashMap<Box<str>, Entry>>,
}

fn signature(token: &str) -> Option<&str> {
    token.rsplit_once('.').map(|(_, sig)| sig)
}

impl VerifiedTokens {
    /// The claims of `token` if it verified before and has not expired at
    /// `now` (unix seconds).
    pub(crate) fn get(&self, token: &str, now: i64) -> Option<Arc<TokenClaims>> {
        let sig = signature(token)?;
        // Entries are whole once inserted: a poisoned lock is still usable.
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        let entry = map.get(sig)?;
        (*entry.token == *token && entry.valid_from <= now && now < entry.expires)
            .then(|| entry.claims.clone())
    }

    /// Remembers a token that verified, valid from `valid_from` (unix
    /// seconds).
    pub(crate) fn insert(&self, token: &str, claims: Arc<TokenClaims>, valid_from: i64, now: i64) {
        let Some(sig) = signature(token) else {
            return;
        };
        let expires = claims.expires_at.unix_timestamp();
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        if map.len() >= CAPACITY {
            map.retain(|_, e| e.expires > now);
            if map.len() >= CAPACITY {
                map.clear();
            }
        }
        map.insert(
            sig.into(),
            Entry {
                token: token.into(),
                claims,
                expires,
                valid_from,
            },
        );
    }

    /// How many tokens are remembered.
    pub(crate) fn len(&self) -> usize {
        self.map.read().unwrap_or_else(|p| p.into_inner()).len()
    }
}
