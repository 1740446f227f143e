//! Verification: expired, foreign, forged and malformed tokens refused; verified ones remembered.

use base64::Engine as _;
use serde_json::json;
use time::{Duration, OffsetDateTime};

use super::*;

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
