//! When token-signing keys are made, which one signs, and when one may go:
//! a pure function of the stored keys and the clock, so that every replica
//! reaches the same answer from the same store.
//!
//! - A key signs from its `signs_from`; among the keys that may sign at a
//!   time, the one with the latest `signs_from` (ties: the greatest key id)
//!   does. A key may sign only while its certificate outlives every token
//!   it would sign.
//! - A successor is made a while before the signer has signed for a
//!   rotation period (so verifiers that fetch the JWKS can learn it before
//!   it signs), to sign from the end of that period.
//! - A key goes once a successor has signed long enough that every token
//!   the key signed has expired, or once its certificate has expired.
//!
//! Replicas that rotate at the same moment may both make a successor; the
//! tie rule makes them agree on one, and the other is retired like any
//! superseded key.

use time::{Duration, OffsetDateTime};

use super::keys::{KeyId, TokenSigningKey};

/// Slack for replicas that still sign with a superseded key until they
/// reload the keys, and for clock skew.
pub const RETIRE_MARGIN: Duration = Duration::minutes(10);
/// How long a certificate outlives its key's turn at signing, so that a
/// rotation that runs late (every replica stopped) does not leave the
/// signer with an expired certificate.
const CERTIFICATE_SLACK: Duration = Duration::days(1);

/// The rotation settings: how long a key signs and how long tokens live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// How long a key signs before its successor takes over.
    pub period: Duration,
    /// The longest lifetime of a token.
    pub token_ttl: Duration,
}

impl Rotation {
    /// How long before its turn a successor is made (published): a quarter
    /// of the period, at most a day.
    pub fn publish_ahead(&self) -> Duration {
        std::cmp::min(self.period / 4_i32, Duration::days(1))
    }

    /// When the certificate of a key signing from `signs_from` ends.
    pub fn expiry(&self, signs_from: OffsetDateTime) -> OffsetDateTime {
        signs_from + self.period + self.token_ttl + RETIRE_MARGIN + CERTIFICATE_SLACK
    }

    /// Whether `key` may sign a token issued at `now`.
    fn may_sign(&self, key: &TokenSigningKey, now: OffsetDateTime) -> bool {
        key.signs_from <= now && key.expires > now + self.token_ttl + RETIRE_MARGIN
    }
}

/// What to do with the keys at a given time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The key that signs now, if any may.
    pub signer: Option<KeyId>,
    /// Make a key that signs from this time.
    pub create: Option<OffsetDateTime>,
    /// Delete these keys: nothing they signed is still valid.
    pub retire: Vec<KeyId>,
}

/// The plan for `keys` at `now`.
pub fn plan(keys: &[TokenSigningKey], rotation: Rotation, now: OffsetDateTime) -> Plan {
    let mut order: Vec<&TokenSigningKey> = keys.iter().collect();
    order.sort_by(|a, b| (a.signs_from, &a.kid).cmp(&(b.signs_from, &b.kid)));
    let signer = order
        .iter()
        .rev()
        .find(|k| rotation.may_sign(k, now))
        .map(|k| k.kid.clone());
    let create = match (order.last(), &signer) {
        // Nothing may sign: a key for now.
        (_, None) => Some(now),
        (Some(newest), Some(_)) if newest.signs_from <= now => {
            let turn = newest.signs_from + rotation.period;
            (now >= turn - rotation.publish_ahead()).then(|| turn.max(now))
        }
        // A successor is published and waits for its turn.
        _ => None,
    };
    let retire = order
        .iter()
        .enumerate()
        .filter(|(i, key)| {
            let superseded = order[i + 1..]
                .iter()
                .any(|next| next.signs_from + rotation.token_ttl + RETIRE_MARGIN <= now);
            superseded || key.expires <= now
        })
        .map(|(_, key)| key.kid.clone())
        .filter(|kid| Some(kid) != signer.as_ref())
        .collect();
    Plan {
        signer,
        create,
        retire,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::keys::PrivateKeyDer;

    fn rotation() -> Rotation {
        Rotation {
            period: Duration::days(30),
            token_ttl: Duration::minutes(5),
        }
    }

    fn key(name: &str, signs_from: OffsetDateTime) -> TokenSigningKey {
        TokenSigningKey {
            kid: name.parse().unwrap(),
            certificate: vec![],
            private_key: PrivateKeyDer::from_pkcs8(vec![]),
            created: signs_from,
            signs_from,
            expires: rotation().expiry(signs_from),
        }
    }

    fn kid(name: &str) -> KeyId {
        name.parse().unwrap()
    }

    #[test]
    fn first_key_is_made_at_once() {
        let now = OffsetDateTime::now_utc();
        let p = plan(&[], rotation(), now);
        assert_eq!(p.signer, None);
        assert_eq!(p.create, Some(now));
        assert!(p.retire.is_empty());
    }

    #[test]
    fn a_successor_is_published_ahead_then_takes_over_then_the_old_key_goes() {
        let t0 = OffsetDateTime::now_utc();
        let r = rotation();
        let a = key("a", t0);
        // Mid-period: nothing to do.
        let p = plan(std::slice::from_ref(&a), r, t0 + Duration::days(10));
        assert_eq!((p.signer, p.create), (Some(kid("a")), None));
        // A day before its end: a successor for the end of the period.
        let p = plan(std::slice::from_ref(&a), r, t0 + Duration::days(29));
        assert_eq!(p.signer, Some(kid("a")));
        assert_eq!(p.create, Some(t0 + Duration::days(30)));
        let b = key("b", t0 + Duration::days(30));
        // Published, not yet signing.
        let keys = [a.clone(), b.clone()];
        let p = plan(&keys, r, t0 + Duration::days(29) + Duration::hours(1));
        assert_eq!((p.signer, p.create), (Some(kid("a")), None));
        assert!(p.retire.is_empty());
        // Its turn: b signs; a verifies what it signed until that expires.
        let p = plan(&keys, r, t0 + Duration::days(30));
        assert_eq!(p.signer, Some(kid("b")));
        assert!(p.retire.is_empty());
        let p = plan(&keys, r, t0 + Duration::days(30) + Duration::minutes(16));
        assert_eq!(p.retire, [kid("a")]);
    }

    #[test]
    fn a_late_rotation_starts_now_and_an_expired_signer_is_replaced() {
        let t0 = OffsetDateTime::now_utc();
        let r = rotation();
        let a = key("a", t0);
        // Every replica was down past the period: the successor signs now.
        let late = t0 + Duration::days(30) + Duration::hours(2);
        let p = plan(std::slice::from_ref(&a), r, late);
        assert_eq!(p.signer, Some(kid("a")));
        assert_eq!(p.create, Some(late));
        // Down past the certificate too: nothing may sign, a key for now,
        // and the expired one goes.
        let later = a.expires + Duration::seconds(1);
        let p = plan(std::slice::from_ref(&a), r, later);
        assert_eq!(p.signer, None);
        assert_eq!(p.create, Some(later));
        assert_eq!(p.retire, [kid("a")]);
    }

    #[test]
    fn replicas_racing_agree_on_one_signer() {
        let t0 = OffsetDateTime::now_utc();
        let r = rotation();
        let turn = t0 + Duration::days(30);
        let keys = [key("a", t0), key("b", turn), key("c", turn)];
        let p = plan(&keys, r, turn + Duration::minutes(1));
        assert_eq!(p.signer, Some(kid("c")));
        let p = plan(&keys, r, turn + Duration::hours(1));
        assert_eq!(p.signer, Some(kid("c")));
        assert_eq!(p.retire, [kid("a"), kid("b")]);
        assert_eq!(p.create, None);
    }
}
