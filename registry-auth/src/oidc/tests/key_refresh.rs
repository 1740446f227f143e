//! The key cache: unknown kids, the refresh interval, issuer outages, unusable JWKS entries.

use std::time::Duration;

use super::*;

#[tokio::test]
async fn unknown_kid_refreshes_keys_once_per_interval() {
    let (old, new) = (Signer::rsa("old"), Signer::ec("new"));
    let keys = StaticKeys::serving(vec![old.jwk()]);
    let mut config = config();
    config.limits.min_refresh_interval = Duration::from_millis(500);
    let p = provider_with(config, &keys);
    assert_eq!(p.load_keys().await.unwrap(), 1);
    assert_eq!(keys.fetches(), 1);
    // Minted up front: signing is slow in debug builds.
    let new_token = new.sign(&claims(json!({})));
    let forged: Vec<String> = (0..50)
        .map(|i| Signer::ec(&format!("forged-{i}")).sign(&claims(json!({}))))
        .collect();
    let old_token = old.sign(&claims(json!({"sub": "bob"})));
    // The issuer rotates: a token with the new kid makes us fetch again
    // (once the interval since the last fetch has passed).
    keys.set(Some(vec![old.jwk(), new.jwk()]));
    tokio::time::sleep(Duration::from_millis(550)).await;
    assert!(p.verify(&new_token).await.is_ok());
    assert_eq!(keys.fetches(), 2);
    // Forged kids within the interval: no fetch, each refused.
    for token in &forged {
        let refused = refusal(&p, token).await;
        assert!(
            matches!(refused, OidcRefusal::UnknownKey(Some(_))),
            "{refused}"
        );
    }
    assert_eq!(keys.fetches(), 2);
    // Known keys keep working meanwhile.
    assert!(p.verify(&old_token).await.is_ok());
}

#[tokio::test]
async fn the_refresh_interval_elapses() {
    let (a, b) = (Signer::rsa("a"), Signer::ec("b"));
    let keys = StaticKeys::serving(vec![a.jwk()]);
    let mut config = config();
    config.limits.min_refresh_interval = Duration::from_millis(100);
    let p = provider_with(config, &keys);
    assert!(p.verify(&a.sign(&claims(json!({})))).await.is_ok());
    keys.set(Some(vec![a.jwk(), b.jwk()]));
    let token_b = b.sign(&claims(json!({})));
    // Fetched for a's first token just now: b waits for the interval.
    assert!(matches!(
        refusal(&p, &token_b).await,
        OidcRefusal::UnknownKey(_)
    ));
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(p.verify(&token_b).await.is_ok());
    assert_eq!(keys.fetches(), 2);
}

#[tokio::test]
async fn old_keys_are_fetched_again_and_withdrawn_keys_stop_working() {
    let (a, b) = (Signer::rsa("a"), Signer::ec("b"));
    let keys = StaticKeys::serving(vec![a.jwk()]);
    let mut config = config();
    config.limits.keys_max_age = Duration::ZERO;
    config.limits.min_refresh_interval = Duration::ZERO;
    config.limits.verified_capacity = 0;
    let p = provider_with(config, &keys);
    assert!(p.verify(&a.sign(&claims(json!({})))).await.is_ok());
    keys.set(Some(vec![b.jwk()]));
    assert!(matches!(
        refusal(&p, &a.sign(&claims(json!({"sub": "x"})))).await,
        OidcRefusal::UnknownKey(_)
    ));
    assert!(p.verify(&b.sign(&claims(json!({})))).await.is_ok());
}

#[tokio::test]
async fn issuer_down_fails_closed_and_is_not_hammered() {
    let rsa = Signer::rsa("r");
    let keys = Arc::new(StaticKeys::default()); // down from the start
    let p = provider_with(config(), &keys);
    assert!(matches!(
        p.load_keys().await,
        Err(OidcError::Status { status: 503, .. })
    ));
    for _ in 0..20 {
        let bearer = Credentials::Bearer(rsa.sign(&claims(json!({}))));
        assert!(matches!(
            p.authenticate(&bearer, None).await,
            Err(AuthenticationError::InvalidCredentials)
        ));
    }
    assert_eq!(keys.fetches(), 1, "one attempt per refresh interval");
    // Up again, once the interval has passed: logins work.
    let mut config = config();
    config.limits.min_refresh_interval = Duration::ZERO;
    let p = provider_with(config, &keys);
    let token = rsa.sign(&claims(json!({})));
    assert!(matches!(
        refusal(&p, &token).await,
        OidcRefusal::KeysUnavailable(_)
    ));
    keys.set(Some(vec![rsa.jwk()]));
    assert!(p.verify(&token).await.is_ok());
}

#[tokio::test]
async fn a_hanging_issuer_times_out() {
    let mut config = config();
    config.limits.request_timeout = Duration::from_millis(50);
    let p = OidcProvider::with_key_source(config, Arc::new(Hanging)).unwrap();
    let started = std::time::Instant::now();
    let token = Signer::rsa("r").sign(&claims(json!({})));
    assert!(matches!(
        refusal(&p, &token).await,
        OidcRefusal::KeysUnavailable(OidcError::Timeout(_))
    ));
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn unusable_jwks_entries_are_skipped() {
    let rsa = Signer::rsa("r");
    let mut declared_ps = rsa.jwk();
    declared_ps["kid"] = json!("ps");
    declared_ps["alg"] = json!("PS256");
    let keys = StaticKeys::serving(vec![
        json!({"kty": "oct", "kid": "r", "k": "c2VjcmV0"}),
        json!({"kty": "RSA", "kid": "enc", "use": "enc", "n": rsa.jwk()["n"], "e": "AQAB"}),
        json!({"kty": "weird", "kid": "w"}),
        json!({"kty": "RSA", "kid": "bad-alg", "alg": "RSA-OAEP-512", "n": "AQAB", "e": "AQAB"}),
        json!("not an object"),
        declared_ps,
        rsa.jwk(),
    ]);
    let p = provider_with(config(), &keys);
    assert_eq!(p.load_keys().await.unwrap(), 2);
    assert!(p.verify(&rsa.sign(&claims(json!({})))).await.is_ok());
    // The JWK says PS256: an RS256 token with its kid is refused.
    let as_ps = Signer {
        kid: Some("ps".into()),
        ..Signer::rsa("ps")
    };
    assert!(p.verify(&as_ps.sign(&claims(json!({})))).await.is_err());
    let mut header = Header::new(Algorithm::PS256);
    header.kid = Some("ps".into());
    let token = jsonwebtoken::encode(&header, &claims(json!({})), &as_ps.key).unwrap();
    assert!(p.verify(&token).await.is_ok());
    // A JWKS of nothing usable is an error, not an empty key set.
    let p = provider_with(
        config(),
        &StaticKeys::serving(vec![json!({"kty": "oct", "k": "eA"})]),
    );
    assert!(matches!(p.load_keys().await, Err(OidcError::NoUsableKeys)));
}
