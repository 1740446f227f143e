//! Tokens refused: foreign issuers, bad claims, wrong algorithms, forged signatures.

use super::*;

#[tokio::test]
async fn what_is_not_from_the_issuer_is_not_mine() {
    let rsa = Signer::rsa("r");
    let (p, keys) = provider(&[&rsa]);
    let other_issuer = rsa.sign(&claims(json!({"iss": "https://elsewhere.test"})));
    let trailing_slash = rsa.sign(&claims(json!({"iss": "https://issuer.test/"})));
    let no_issuer = rsa.sign(&claims(json!({"iss": null})));
    for secret in [
        "s3cret",
        "rgt_0123456789abcdef",
        "a.b.c",
        "",
        &other_issuer,
        &trailing_slash,
        &no_issuer,
    ] {
        for credentials in [
            Credentials::Basic {
                user: "alice".into(),
                password: secret.into(),
            },
            Credentials::Bearer(secret.into()),
        ] {
            assert!(
                p.authenticate(&credentials, None).await.unwrap().is_none(),
                "{secret}"
            );
        }
    }
    // Nothing was fetched for them: local passwords never reach the issuer.
    assert_eq!(keys.fetches(), 0);
}

#[tokio::test]
async fn expired_not_yet_valid_wrong_audience_and_missing_claims_are_refused() {
    let rsa = Signer::rsa("r");
    let (p, _) = provider(&[&rsa]);
    let cases = [
        (json!({"exp": now() - 120}), "token expired"),
        (json!({"nbf": now() + 120}), "token not valid yet"),
        (json!({"aud": "other"}), "wrong audience"),
        (json!({"aud": ["other", "third"]}), "wrong audience"),
        (json!({"aud": null}), "claim \"aud\" missing"),
        (json!({"exp": null}), "claim \"exp\" missing"),
        (json!({"sub": null}), "claim \"sub\" missing"),
        (json!({"sub": 42}), "claim \"sub\" has the wrong type"),
        (json!({"groups": 7}), "claim \"groups\" has the wrong type"),
        (
            json!({"groups": [1, 2]}),
            "claim \"groups\" has the wrong type",
        ),
        (json!({"sub": "has space"}), "invalid user name"),
        (json!({"sub": "x".repeat(300)}), "invalid user name"),
    ];
    for (patch, expected) in cases {
        let token = rsa.sign(&claims(patch.clone()));
        let reason = refusal(&p, &token).await.to_string();
        assert!(reason.starts_with(expected), "{patch}: {reason}");
        // Through the trait: refused, no later provider asked.
        let bearer = Credentials::Bearer(token);
        assert!(matches!(
            p.authenticate(&bearer, None).await,
            Err(AuthenticationError::InvalidCredentials)
        ));
    }
    // Leeway: a token that expired a moment ago still passes.
    assert!(p
        .verify(&rsa.sign(&claims(json!({"exp": now() - 5}))))
        .await
        .is_ok());
}

#[tokio::test]
async fn a_wrong_issuer_is_refused_when_verified_directly() {
    let rsa = Signer::rsa("r");
    let (p, _) = provider(&[&rsa]);
    let token = rsa.sign(&claims(json!({"iss": "https://elsewhere.test"})));
    assert!(matches!(refusal(&p, &token).await, OidcRefusal::Issuer));
}

#[tokio::test]
async fn alg_none_hmac_with_the_public_key_and_tampering_are_refused() {
    let rsa = Signer::rsa("r");
    let (p, _) = provider(&[&rsa]);
    let payload = b64(claims(json!({})).to_string().as_bytes());

    // alg: none, with and without a signature part.
    for header in [
        json!({"alg": "none", "kid": "r"}),
        json!({"alg": "none"}),
        json!({"alg": "None"}),
    ] {
        let head = b64(header.to_string().as_bytes());
        for token in [
            format!("{head}.{payload}."),
            format!("{head}.{payload}.AAAA"),
        ] {
            assert!(p.recognises(&token));
            assert!(
                matches!(refusal(&p, &token).await, OidcRefusal::Algorithm(_)),
                "{token}"
            );
        }
    }

    // HS256 keyed with the public key (the classic algorithm confusion),
    // in each form an attacker could take it from the JWKS.
    let jwk = rsa.jwk();
    let n = jwk["n"].as_str().unwrap().to_owned();
    for secret in [
        n.as_bytes().to_vec(),
        jwk.to_string().into_bytes(),
        der(RSA_DER),
    ] {
        for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            let mut header = Header::new(alg);
            header.kid = Some("r".into());
            let key = EncodingKey::from_secret(&secret);
            let token = jsonwebtoken::encode(&header, &claims(json!({})), &key).unwrap();
            assert!(matches!(
                refusal(&p, &token).await,
                OidcRefusal::Algorithm(_)
            ));
        }
    }

    // A key's own type decides: an RSA key does not verify ES256.
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("r".into());
    let ec_key = EncodingKey::from_ec_der(&der(EC_DER));
    let token = jsonwebtoken::encode(&header, &claims(json!({})), &ec_key).unwrap();
    assert!(matches!(
        refusal(&p, &token).await,
        OidcRefusal::Algorithm(_)
    ));

    // Tampered payload (more groups), tampered signature, truncated signature.
    let good = rsa.sign(&claims(json!({})));
    let parts: Vec<&str> = good.split('.').collect();
    let forged = b64(claims(json!({"groups": ["admins"]})).to_string().as_bytes());
    let tampered_payload = format!("{}.{forged}.{}", parts[0], parts[2]);
    let mut sig = parts[2].as_bytes().to_vec();
    sig[10] = if sig[10] == b'A' { b'B' } else { b'A' };
    let tampered_sig = format!(
        "{}.{}.{}",
        parts[0],
        parts[1],
        String::from_utf8(sig).unwrap()
    );
    let truncated = format!("{}.{}.{}", parts[0], parts[1], &parts[2][..20]);
    for token in [tampered_payload, tampered_sig, truncated] {
        assert!(matches!(
            refusal(&p, &token).await,
            OidcRefusal::Signature | OidcRefusal::Malformed
        ));
    }
    // Signed by another key that claims the same kid.
    let impostor = Signer::rsa2("r");
    let token = impostor.sign(&claims(json!({})));
    assert!(matches!(refusal(&p, &token).await, OidcRefusal::Signature));
    assert!(p.verify(&good).await.is_ok());
}
