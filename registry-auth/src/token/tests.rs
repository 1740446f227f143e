//! Issuing, verifying and rotating registry tokens over a store.

use std::sync::Arc;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use proptest::prelude::*;
use registry_core::RepositoryName;
use serde_json::{json, Value};
use time::{Duration, OffsetDateTime};

use super::*;
use crate::credentials::TokenHash;
use crate::identity::Identity;
use crate::memory::MemoryAuthStore;
use crate::scope::{Scope, ScopeAction};
use crate::store::AuthStore;
use crate::subject::Subject;

const SERVICE: &str = "registry.test";

fn settings() -> TokenSettings {
    TokenSettings {
        accepted_services: vec!["distribution.test".into()],
        ..TokenSettings::default()
    }
}

fn store() -> Arc<dyn AuthStore> {
    Arc::new(MemoryAuthStore::new())
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

async fn issuer_on(store: &Arc<dyn AuthStore>) -> TokenIssuer {
    TokenIssuer::load(store.clone(), SERVICE, &settings())
        .await
        .unwrap()
}

fn scopes() -> Vec<Scope> {
    Scope::parse_all(["repository:team/app:pull,push registry:catalog:*"]).unwrap()
}

fn alice() -> Identity {
    Identity::user("alice".parse().unwrap())
}

fn segments(token: &str) -> (Value, Value) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3);
    let decode = |s: &str| serde_json::from_slice(&URL_SAFE_NO_PAD.decode(s).unwrap()).unwrap();
    (decode(parts[0]), decode(parts[1]))
}

/// Signs arbitrary header and claims with the store's current key, as a
/// forger who stole nothing could not: tokens that are correctly signed
/// yet say the wrong thing.
async fn sign_raw(store: &Arc<dyn AuthStore>, header: &Header, claims: &Value) -> String {
    let keys = store.list_token_signing_keys().await.unwrap();
    let key = EncodingKey::from_ec_der(keys[0].private_key.as_bytes());
    jsonwebtoken::encode(header, claims, &key).unwrap()
}

fn header_of(store_key: &TokenSigningKey) -> Header {
    let mut h = Header::new(Algorithm::ES256);
    h.kid = Some(store_key.kid.to_string());
    h
}

#[tokio::test]
async fn issued_tokens_have_the_docker_token_shape() {
    let store = store();
    let issuer = issuer_on(&store).await;
    let issued = issuer
        .issue(&alice(), &scopes(), TokenSource::Password, SERVICE)
        .await
        .unwrap();
    let (header, claims) = segments(issued.token.expose());
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["typ"], "JWT");
    let keys = store.list_token_signing_keys().await.unwrap();
    assert_eq!(header["kid"], keys[0].kid.as_str());
    let ca = store.token_ca().await.unwrap().unwrap();
    assert_eq!(
        header["x5c"],
        json!([
            STANDARD.encode(&keys[0].certificate),
            STANDARD.encode(&ca.certificate)
        ])
    );
    assert_eq!(claims["iss"], SERVICE);
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["aud"], SERVICE, "one string, not a list");
    let iat = claims["iat"].as_i64().unwrap();
    assert_eq!(claims["nbf"].as_i64(), Some(iat));
    assert_eq!(claims["exp"].as_i64(), Some(iat + 300));
    assert_eq!(
        claims["access"],
        json!([
            {"type": "repository", "name": "team/app", "actions": ["pull", "push"]},
            {"type": "registry", "name": "catalog", "actions": ["*"]},
        ])
    );
    assert_eq!(claims["provider"], "local");
    assert_eq!(claims["source"], "password");
    assert_eq!(claims["jti"].as_str().unwrap().len(), 32);
    let again = issuer
        .issue(&alice(), &scopes(), TokenSource::Password, SERVICE)
        .await
        .unwrap();
    assert_ne!(segments(again.token.expose()).1["jti"], claims["jti"]);

    let verified = issuer.verify(issued.token.expose()).await.unwrap();
    assert_eq!(verified.identity(), alice());
    assert_eq!(verified.scopes, scopes());
    assert_eq!(verified.source, TokenSource::Password);
    assert_eq!(verified.expires_at - verified.issued_at, DEFAULT_TOKEN_TTL);
    let app: RepositoryName = "team/app".parse().unwrap();
    assert!(verified.allows(&app, ScopeAction::Push));
    assert!(!verified.allows(&app, ScopeAction::Delete));
    assert!(verified.allows_catalog());
    let json = serde_json::to_value(issued.response()).unwrap();
    assert_eq!(json["token"], json["access_token"]);
    assert_eq!(json["expires_in"], 300);
    assert!(json.get("refresh_token").is_none());
    assert!(!format!("{issued:?}").contains(issued.token.expose()));
}

#[tokio::test]
async fn a_consumer_verifies_with_the_jwks_alone() {
    let store = store();
    let issuer = issuer_on(&store).await;
    let token = issuer
        .issue(
            &alice(),
            &scopes(),
            TokenSource::Password,
            "distribution.test",
        )
        .await
        .unwrap()
        .token;
    let jwks = issuer.jwks();
    assert_eq!(jwks.keys.len(), 1);
    let jwk = &jwks.keys[0];
    assert_eq!(
        (jwk.kty.as_str(), jwk.crv.as_str(), jwk.alg.as_str()),
        ("EC", "P-256", "ES256")
    );
    assert_eq!(jwk.x5c.len(), 2);
    let key = DecodingKey::from_ec_components(&jwk.x, &jwk.y).unwrap();
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_audience(&["distribution.test"]);
    validation.set_issuer(&[SERVICE]);
    let data = jsonwebtoken::decode::<Value>(token.expose(), &key, &validation).unwrap();
    assert_eq!(data.claims["aud"], "distribution.test");
    assert_eq!(data.header.kid.as_deref(), Some(jwk.kid.as_str()));
    assert!(issuer.ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));
    // A token for another service is not valid here.
    assert!(matches!(
        issuer.verify(token.expose()).await,
        Err(TokenError::WrongAudience)
    ));
}

#[tokio::test]
async fn audiences_and_settings() {
    let issuer = issuer_on(&store()).await;
    assert_eq!(issuer.audience(None).unwrap(), SERVICE);
    assert_eq!(
        issuer.audience(Some("distribution.test")).unwrap(),
        "distribution.test"
    );
    assert!(matches!(
        issuer.audience(Some("elsewhere")),
        Err(TokenError::UnknownService(_))
    ));
    assert!(matches!(
        issuer
            .issue(&alice(), &[], TokenSource::Password, "elsewhere")
            .await,
        Err(TokenError::UnknownService(_))
    ));
    let s = store();
    let bad = |settings: TokenSettings, service: &str| {
        let s = s.clone();
        let service = service.to_owned();
        async move { TokenIssuer::load(s, &service, &settings).await }
    };
    assert!(matches!(
        bad(settings(), "a b").await,
        Err(TokenError::InvalidService(_))
    ));
    let mut quote = settings();
    quote.accepted_services.push("x\"y".into());
    assert!(matches!(
        bad(quote, SERVICE).await,
        Err(TokenError::InvalidService(_))
    ));
    let mut ttl = settings();
    ttl.ttl = std::time::Duration::ZERO;
    assert!(matches!(
        bad(ttl, SERVICE).await,
        Err(TokenError::InvalidSettings(_))
    ));
    let mut period = settings();
    period.rotation_period = std::time::Duration::from_secs(60);
    assert!(matches!(
        bad(period, SERVICE).await,
        Err(TokenError::InvalidSettings(_))
    ));
}

#[tokio::test]
async fn rejections() {
    let store = store();
    let issuer = issuer_on(&store).await;
    let now = OffsetDateTime::now_utc();
    let t = issuer
        .issue_at(&alice(), &scopes(), TokenSource::Password, SERVICE, now)
        .unwrap()
        .token;
    let t = t.expose();
    assert!(matches!(
        issuer.verify_at(t, now + Duration::minutes(5)),
        Err(TokenError::Expired)
    ));
    assert!(matches!(
        issuer.verify_at(t, now - Duration::minutes(2)),
        Err(TokenError::NotYetValid)
    ));
    // Another registry's keys, or another issuer name on these keys.
    let other = issuer_on(&self::store()).await;
    assert!(matches!(other.verify(t).await, Err(TokenError::UnknownKey)));
    let mut renamed = settings();
    renamed.issuer = Some("someone-else".into());
    let impostor = TokenIssuer::load(store.clone(), SERVICE, &renamed)
        .await
        .unwrap();
    assert!(matches!(
        impostor.verify(t).await,
        Err(TokenError::WrongIssuer)
    ));

    // Altering the payload (granting delete) breaks the signature.
    let (h, rest) = t.split_once('.').unwrap();
    let (payload, sig) = rest.split_once('.').unwrap();
    let decoded = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    let forged = URL_SAFE_NO_PAD.encode(decoded.replace("\"push\"", "\"push\",\"delete\""));
    assert!(matches!(
        issuer.verify(&format!("{h}.{forged}.{sig}")).await,
        Err(TokenError::BadSignature)
    ));
    // `alg: none` with the signature dropped.
    let none = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    for bad in [
        format!("{none}.{payload}."),
        format!("{none}.{payload}.{sig}"),
    ] {
        assert!(issuer.verify(&bad).await.is_err(), "{bad}");
    }
    for bad in ["", "abc", "a.b", "a.b.c", &format!("{h}.{payload}")] {
        assert!(
            matches!(issuer.verify(bad).await, Err(TokenError::Malformed)),
            "{bad}"
        );
    }
    let huge = format!("{h}.{}.{sig}", "A".repeat(MAX_TOKEN_LEN));
    assert!(matches!(
        issuer.verify(&huge).await,
        Err(TokenError::TooLarge)
    ));
}

#[tokio::test]
async fn correctly_signed_tokens_that_say_the_wrong_thing_are_refused() {
    let store = store();
    let issuer = issuer_on(&store).await;
    let key = store.list_token_signing_keys().await.unwrap().remove(0);
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let good = json!({
        "iss": SERVICE, "sub": "alice", "aud": SERVICE, "exp": now + 60, "nbf": now,
        "iat": now, "jti": "x", "access": [], "provider": "local", "source": "password",
    });
    let ok = sign_raw(&store, &header_of(&key), &good).await;
    assert!(issuer.verify(&ok).await.is_ok());
    let mut hs = header_of(&key);
    hs.alg = Algorithm::HS256;
    type Expect = fn(&TokenError) -> bool;
    let cases: Vec<(Value, Expect)> = vec![
        (json!({"aud": [SERVICE]}), |e| {
            matches!(e, TokenError::Malformed)
        }),
        (json!({"aud": "other"}), |e| {
            matches!(e, TokenError::WrongAudience)
        }),
        (json!({"iss": "other"}), |e| {
            matches!(e, TokenError::WrongIssuer)
        }),
        (json!({"sub": "system:nobody"}), |e| {
            matches!(e, TokenError::Malformed)
        }),
        (json!({"source": "at:00"}), |e| {
            matches!(e, TokenError::Malformed)
        }),
        (json!({"exp": now - 1}), |e| {
            matches!(e, TokenError::Expired)
        }),
        (json!({"nbf": now + 3600}), |e| {
            matches!(e, TokenError::NotYetValid)
        }),
        (json!({"exp": "soon"}), |e| {
            matches!(e, TokenError::Malformed)
        }),
        (
            json!({"access": [{"type": "repository", "name": "x", "actions": ["pull"]}]}),
            |e| matches!(e, TokenError::Malformed),
        ),
    ];
    for (patch, expected) in cases {
        let mut claims = good.clone();
        for (k, v) in patch.as_object().unwrap() {
            claims[k] = v.clone();
        }
        let token = sign_raw(&store, &header_of(&key), &claims).await;
        let r = issuer.verify(&token).await;
        assert!(r.as_ref().is_err_and(expected), "{patch}: {r:?}");
    }
    for missing in ["exp", "nbf", "iss", "aud", "sub", "jti", "source"] {
        let mut claims = good.clone();
        claims.as_object_mut().unwrap().remove(missing);
        let token = sign_raw(&store, &header_of(&key), &claims).await;
        assert!(issuer.verify(&token).await.is_err(), "without {missing}");
    }
    let mut no_kid = header_of(&key);
    no_kid.kid = None;
    let token = sign_raw(&store, &no_kid, &good).await;
    assert!(matches!(
        issuer.verify(&token).await,
        Err(TokenError::Malformed)
    ));
}

#[tokio::test]
async fn verified_tokens_are_remembered_and_only_exact_ones_hit() {
    let store = store();
    let issuer = issuer_on(&store).await;
    let t = issuer
        .issue(&alice(), &scopes(), TokenSource::Password, SERVICE)
        .await
        .unwrap()
        .token;
    assert_eq!(issuer.remembered_tokens(), 0);
    let first = issuer.verify(t.expose()).await.unwrap();
    assert_eq!(issuer.remembered_tokens(), 1);
    let second = issuer.verify(t.expose()).await.unwrap();
    assert!(Arc::ptr_eq(&first, &second), "served from the cache");
    // The remembered signature over other claims is no hit.
    let (h, rest) = t.expose().split_once('.').unwrap();
    let (_, sig) = rest.split_once('.').unwrap();
    let other = URL_SAFE_NO_PAD.encode(r#"{"sub":"admin"}"#);
    assert!(issuer.verify(&format!("{h}.{other}.{sig}")).await.is_err());
    // Expiry still applies to remembered tokens.
    let later = OffsetDateTime::now_utc() + Duration::minutes(6);
    assert!(matches!(
        issuer.verify_at(t.expose(), later),
        Err(TokenError::Expired)
    ));
}

#[tokio::test]
async fn sources_and_anonymous_tokens_round_trip() {
    let issuer = issuer_on(&store()).await;
    let hash = TokenHash::of("rgt_example");
    for source in [
        TokenSource::AccessToken(hash),
        TokenSource::RefreshToken(hash),
        TokenSource::External,
        TokenSource::Password,
    ] {
        let token = issuer
            .issue(&alice(), &[], source, SERVICE)
            .await
            .unwrap()
            .token;
        assert_eq!(issuer.verify(token.expose()).await.unwrap().source, source);
    }
    let anon = issuer
        .issue(&Identity::anonymous(), &[], TokenSource::Anonymous, SERVICE)
        .await
        .unwrap()
        .token;
    let claims = issuer.verify(anon.expose()).await.unwrap();
    assert!(claims.identity().is_anonymous());
    assert_eq!(claims.provider, "anonymous");
    let sa: Subject = "system:serviceaccount:team:builder".parse().unwrap();
    let id = Identity::authenticated(sa.clone()).unwrap();
    let token = issuer
        .issue(&id, &scopes(), TokenSource::Password, SERVICE)
        .await
        .unwrap()
        .token;
    assert_eq!(issuer.verify(token.expose()).await.unwrap().subject, sa);
}

#[tokio::test]
async fn keys_rotate_through_the_store_and_replicas_follow() {
    let store = store();
    let t0 = OffsetDateTime::now_utc();
    let a = issuer_on(&store).await;
    let b = issuer_on(&store).await; // a second replica on the same store
    assert_eq!(store.list_token_signing_keys().await.unwrap().len(), 1);
    let old = a
        .issue_at(&alice(), &[], TokenSource::Password, SERVICE, t0)
        .unwrap()
        .token;
    assert!(
        b.verify(old.expose()).await.is_ok(),
        "replicas share the key"
    );

    // Near the end of the period a successor is published, not yet signing.
    let period = Duration::days(30);
    let t1 = t0 + period - Duration::hours(12);
    a.refresh_at(t1).await.unwrap();
    let keys = store.list_token_signing_keys().await.unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(a.jwks().keys.len(), 2);
    let kid_of = |t: &RegistryToken| segments(t.expose()).0["kid"].as_str().unwrap().to_owned();
    let still = a
        .issue_at(&alice(), &[], TokenSource::Password, SERVICE, t1)
        .unwrap()
        .token;
    assert_eq!(kid_of(&still), keys[0].kid.as_str());

    // Its turn: the new key signs; the other replica, which never saw it,
    // reloads on the unknown kid and verifies.
    let t2 = t0 + period + Duration::minutes(1);
    a.refresh_at(t2).await.unwrap();
    let new = a
        .issue_at(&alice(), &[], TokenSource::Password, SERVICE, t2)
        .unwrap()
        .token;
    assert_eq!(kid_of(&new), keys[1].kid.as_str());
    assert!(
        b.verify_at(new.expose(), t2).is_err(),
        "b has not reloaded yet"
    );
    b.refresh_at(t2).await.unwrap();
    assert!(b.verify_at(new.expose(), t2).is_ok());
    // The old key still verifies what it signed.
    assert!(b
        .verify_at(still.expose(), t1 + Duration::minutes(1))
        .is_ok());

    // Once its tokens have expired, the old key goes, from the store too.
    let t3 = t2 + Duration::minutes(20);
    b.refresh_at(t3).await.unwrap();
    let keys_now = store.list_token_signing_keys().await.unwrap();
    assert_eq!(keys_now.len(), 1);
    assert_eq!(keys_now[0].kid, keys[1].kid);
    assert_eq!(b.jwks().keys.len(), 1);
    let fresh_replica = issuer_on(&store).await;
    assert!(matches!(
        fresh_replica.verify_at(still.expose(), t1 + Duration::minutes(1)),
        Err(TokenError::UnknownKey)
    ));
    // The CA never changed: a verifier's rootcertbundle stays valid.
    assert_eq!(a.ca_pem(), b.ca_pem());
}

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
