//! Issued tokens: their shape, the JWKS a consumer verifies with, audiences and settings, sources.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use jsonwebtoken::{DecodingKey, Validation};
use registry_core::RepositoryName;
use serde_json::json;

use super::*;
use crate::credentials::TokenHash;
use crate::scope::ScopeAction;
use crate::subject::Subject;

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
