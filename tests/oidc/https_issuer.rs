//! The provider against the HTTPS stand-in: discovery and keys with a CA file, bad issuers refused.

use std::time::{Duration, Instant};

use bytes::Bytes;
use registry::auth::oidc::testing::TEST_CLIENT_ID;
use registry::auth::oidc::{OidcConfig, OidcError, OidcProvider};
use serde_json::json;

use crate::support::{stand_in, Served};

#[tokio::test]
async fn discovery_and_keys_over_https_with_the_ca_file() {
    let stand = stand_in().await;
    let provider = OidcProvider::new(stand.config()).unwrap();
    assert_eq!(provider.load_keys().await.unwrap(), 1);
    let token = stand.issuer.id_token("alice", &["devs"]);
    assert!(provider.recognises(&token));
    let identity = provider.verify(&token).await.unwrap();
    assert_eq!(identity.subject().to_string(), "oidc:alice");
    assert_eq!(identity.provider_groups()[0].as_str(), "oidc:devs");
    // Keys fetched on first use, too, without load_keys.
    let lazy = OidcProvider::new(stand.config()).unwrap();
    assert!(lazy.verify(&token).await.is_ok());
}

#[tokio::test]
async fn an_issuer_certificate_outside_the_ca_file_is_refused() {
    let stand = stand_in().await;
    // The system roots do not know the stand-in's CA...
    let no_ca = OidcConfig::new(stand.url.parse().unwrap(), TEST_CLIENT_ID).unwrap();
    let error = OidcProvider::new(no_ca)
        .unwrap()
        .load_keys()
        .await
        .unwrap_err();
    assert!(matches!(error, OidcError::Fetch { .. }), "{error}");
    // ... and another CA file does not either.
    let other = stand_in().await;
    let wrong_ca = OidcConfig::new(stand.url.parse().unwrap(), TEST_CLIENT_ID)
        .unwrap()
        .with_ca_pem(other.ca_pem.clone());
    let error = OidcProvider::new(wrong_ca)
        .unwrap()
        .load_keys()
        .await
        .unwrap_err();
    assert!(matches!(error, OidcError::Fetch { .. }), "{error}");
    let garbage = OidcConfig::new(stand.url.parse().unwrap(), TEST_CLIENT_ID)
        .unwrap()
        .with_ca_pem("not a certificate");
    assert!(OidcProvider::new(garbage).is_err());
}

/// A way an issuer can be wrong, and whether the error says so.
struct BadIssuer {
    what: &'static str,
    change: fn(&mut Served),
    expected: fn(&OidcError) -> bool,
}

#[tokio::test]
async fn a_bad_issuer_is_refused() {
    let stand = stand_in().await;
    let url = stand.url.clone();
    let cases = [
        BadIssuer {
            what: "another issuer's document",
            change: |s| s.discovery["issuer"] = json!("https://elsewhere.test"),
            expected: |e| matches!(e, OidcError::IssuerMismatch { .. }),
        },
        BadIssuer {
            what: "keys over plain HTTP",
            change: |s| s.discovery["jwks_uri"] = json!("http://127.0.0.1:1/jwks"),
            expected: |e| matches!(e, OidcError::NotHttps(_)),
        },
        BadIssuer {
            what: "an oversized JWKS",
            change: |s| s.jwks = Bytes::from(vec![b' '; 2 * 1024 * 1024]),
            expected: |e| matches!(e, OidcError::TooLarge { .. }),
        },
        BadIssuer {
            what: "a JWKS that is not JSON",
            change: |s| s.jwks = Bytes::from_static(b"<html>"),
            expected: |e| matches!(e, OidcError::InvalidDocument { .. }),
        },
        BadIssuer {
            what: "a JWKS without a usable key",
            change: |s| s.jwks = Bytes::from_static(br#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#),
            expected: |e| matches!(e, OidcError::NoUsableKeys),
        },
    ];
    for case in cases {
        {
            let mut served = stand.served.lock().unwrap();
            served.discovery = json!({"issuer": url, "jwks_uri": format!("{url}/jwks")});
            served.jwks = Bytes::from(stand.issuer.jwks().to_string());
            (case.change)(&mut served);
        }
        let provider = OidcProvider::new(stand.config()).unwrap();
        let error = provider.load_keys().await.unwrap_err();
        assert!((case.expected)(&error), "{}: {error}", case.what);
        // Its tokens are refused.
        let token = stand.issuer.id_token("alice", &[]);
        assert!(provider.verify(&token).await.is_err(), "{}", case.what);
    }
}

#[tokio::test]
async fn an_issuer_that_never_answers_times_out() {
    let stand = stand_in().await;
    stand.served.lock().unwrap().jwks_delay = Duration::from_secs(30);
    let mut config = stand.config();
    config.limits.request_timeout = Duration::from_millis(500);
    let provider = OidcProvider::new(config).unwrap();
    let started = Instant::now();
    let token = stand.issuer.id_token("alice", &[]);
    assert!(provider.verify(&token).await.is_err());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}
