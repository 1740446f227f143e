//! Property tests: arbitrary, padded, tampered, re-signed and mistimed tokens are all refused.

use base64::Engine as _;
use proptest::prelude::*;
use serde_json::json;
use time::{Duration, OffsetDateTime};

use super::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Arbitrary text, unicode included, is refused without a panic.
    #[test]
    fn arbitrary_text_is_refused(text in ".{0,300}") {
        let (issuer, _) = fixture();
        prop_assert!(issuer.verify_at(&text, OffsetDateTime::now_utc()).is_err());
    }

    /// A valid token padded anywhere to any length up to twice the limit
    /// is refused.
    #[test]
    fn padded_and_oversized_tokens_are_refused(
        at in any::<prop::sample::Index>(),
        len in 1usize..2 * MAX_TOKEN_LEN,
        c in "[A-Za-z0-9_.-]|\\PC",
    ) {
        let (issuer, token) = fixture();
        let i = at.index(token.len() + 1);
        let i = (0..=i).rev().find(|i| token.is_char_boundary(*i)).unwrap_or(0);
        let padded = format!("{}{}{}", &token[..i], c.repeat(len), &token[i..]);
        prop_assert!(issuer.verify_at(&padded, OffsetDateTime::now_utc()).is_err());
    }

    /// Three base64url segments of arbitrary bytes (any header, any
    /// payload, any signature) are refused.
    #[test]
    fn arbitrary_segments_are_refused(
        h in proptest::collection::vec(any::<u8>(), 0..200),
        p in proptest::collection::vec(any::<u8>(), 0..400),
        s in proptest::collection::vec(any::<u8>(), 0..80),
    ) {
        let (issuer, _) = fixture();
        let token = format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(h), URL_SAFE_NO_PAD.encode(p), URL_SAFE_NO_PAD.encode(s)
        );
        prop_assert!(issuer.verify_at(&token, OffsetDateTime::now_utc()).is_err());
    }

    /// Changing any one character of a valid token makes it invalid.
    #[test]
    fn tampered_tokens_are_refused(at in any::<prop::sample::Index>(), c in "[A-Za-z0-9_.=+/-]") {
        let (issuer, token) = fixture();
        let mut chars: Vec<char> = token.chars().collect();
        let i = at.index(chars.len());
        let replacement = c.chars().next().unwrap();
        prop_assume!(chars[i] != replacement);
        chars[i] = replacement;
        let tampered: String = chars.into_iter().collect();
        prop_assert!(issuer.verify_at(&tampered, OffsetDateTime::now_utc()).is_err());
    }

    /// Other algorithms, `none` among them, over the real payload and
    /// signature are refused.
    #[test]
    fn other_algorithms_are_refused(alg in "none|None|NONE|HS256|HS512|RS256|PS256|ES384|EdDSA|ES256 |\\PC{0,8}") {
        let (issuer, token) = fixture();
        let (_, rest) = token.split_once('.').unwrap();
        let header = URL_SAFE_NO_PAD.encode(json!({"alg": alg, "typ": "JWT"}).to_string());
        let with_signature = format!("{header}.{rest}");
        prop_assert!(issuer.verify_at(&with_signature, OffsetDateTime::now_utc()).is_err());
        let (payload, _) = rest.split_once('.').unwrap();
        let unsigned = format!("{header}.{payload}.");
        prop_assert!(issuer.verify_at(&unsigned, OffsetDateTime::now_utc()).is_err());
    }

    /// Expired, and not-yet-valid, at any distance.
    #[test]
    fn tokens_outside_their_time_are_refused(after in 300i64..100_000_000, before in 61i64..100_000_000) {
        let (issuer, token) = fixture();
        let now = issuer.verify_at(&token, OffsetDateTime::now_utc()).unwrap().issued_at;
        prop_assert!(matches!(
            issuer.verify_at(&token, now + Duration::seconds(after)),
            Err(TokenError::Expired)
        ));
        prop_assert!(matches!(
            issuer.verify_at(&token, now - Duration::seconds(before)),
            Err(TokenError::NotYetValid)
        ));
    }

    /// Correctly signed tokens for another audience or issuer (any text,
    /// unicode included) are refused.
    #[test]
    fn wrong_audience_and_issuer_are_refused(aud in "\\PC{0,40}", iss in "\\PC{0,40}") {
        prop_assume!(aud != SERVICE && iss != SERVICE);
        let (issuer, _) = fixture();
        let (store, key) = fixture_key();
        let now = OffsetDateTime::now_utc().unix_timestamp();
        for (a, i) in [(aud.as_str(), SERVICE), (SERVICE, iss.as_str())] {
            let claims = json!({
                "iss": i, "sub": "alice", "aud": a, "exp": now + 60, "nbf": now, "iat": now,
                "jti": "x", "access": [], "provider": "local", "source": "password",
            });
            let token = block_on(sign_raw(&store, &header_of(&key), &claims));
            prop_assert!(issuer.verify_at(&token, OffsetDateTime::now_utc()).is_err());
        }
    }
}

/// One issuer and one valid token, shared by the property tests (key
/// generation is the slow part).
fn fixture() -> (&'static TokenIssuer, String) {
    static FIXTURE: std::sync::OnceLock<(TokenIssuer, String)> = std::sync::OnceLock::new();
    let (issuer, token) = FIXTURE.get_or_init(|| {
        let store = fixture_key().0;
        block_on(async {
            let issuer = issuer_on(&store).await;
            let token = issuer
                .issue(&alice(), &scopes(), TokenSource::Password, SERVICE)
                .await
                .unwrap()
                .token;
            (issuer, token.expose().to_owned())
        })
    });
    (issuer, token.clone())
}

fn fixture_key() -> (Arc<dyn AuthStore>, TokenSigningKey) {
    static STORE: std::sync::OnceLock<Arc<dyn AuthStore>> = std::sync::OnceLock::new();
    let store = STORE
        .get_or_init(|| {
            let s = store();
            block_on(issuer_on(&s));
            s
        })
        .clone();
    let key = block_on(store.list_token_signing_keys()).unwrap().remove(0);
    (store, key)
}
