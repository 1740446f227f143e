//! The provider against locally minted keys and tokens: every refusal, the
//! key cache's refresh rules, and malformed input.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex as StdMutex;
use std::time::Duration;

use base64::Engine as _;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{EncodingKey, Header};
use proptest::prelude::*;
use serde_json::{json, Value};

use super::*;

// Throwaway keys made for these tests with openssl (RSA: PKCS#1 DER;
// EC and Ed25519: PKCS#8 DER).
const RSA_DER: &str = "MIIEowIBAAKCAQEAw7YThr6ClZi1+iF/Chc5ZAq15e8u1ojbQM59OJgAIiLK9bRG8bFSuy3dLMgStxHJW4ZEMZ2L6WlSaFlMl32VlFSOizv2BoXHTQhCtJ3TjmHvmF73RZMQD04/UshkSqenpS2U9I7za64ynHW0irT7S5kNr5zn9mQ0exygwycbUG4lBZ40MJH5FBFjkp8AbGADtDpaj9BN3BbXkuxEjXmhZGbP8dtk/fiWXc+TEBO6FSdDVjvZminczk9avfE6qg/V3AZ7aY5ssgg/uo7TUmFE7/jMp5ZFKwOx7QxsuPqDydVCrG9oBaSANn6XTbUV3cna6sEvFtVPUZ6bFUi1vNUobwIDAQABAoIBADVitF7cFtjhyDoL6xCAl0of1dB79yXUPSKncOcAJ4EoRn7Rh0yklzGx6BQwG1LOykNqE64JEMJB1ZXbThZAzo2gpyV53LmYwm3T5AZKywua0XWZ6g+Tdx0FtiZJvXnT09ot3eT8HZBw+yNMxEvV5HqRrHcL8QZ3/QzcGUpCn6PHfXhYPftNm41yW04yJ3HbmvAnqZ8Bvncg+Yr+L4p/kwkDFamNHqzuR08PUYfbemcYtFvV+9SGlxpJuhKaMOmezEuWdju+85+SvcTr3h8jEPedq8Q+rIWmKE7nD0CmM5qqvCooUGXz0BQBryKr2MXlvWaCk9153gaPG82FMkrNMekCgYEA7tW/Rqne3rMDEm1GrAR3/Hb+oTa2L7UxQmacwL+I30/BoRJvUFriw1WtZ+8/Jr30O6XYzvBq9Gg5nCB3v+iFLAJE4jm5s3d0ZVUAwqgxbOTCMT6gpc0XMReCloyM3gSzoLqv4+ZpNOUner8YmF33gvqFp4ZAPmi1hUb5x/FbyQMCgYEA0cbopYCw6gT6qLg0hTViaRsklgLGfwAcmup4hRkIhZWRMmo+fx7TYDG5bEg14HItRE/+WQA7pBgAAGWYBFE/bVBqdpnTVEdyMi8AKraDh2l5JaDqf8lX4970rS3pPZCSZCtHgYMNyNmguqGdQdTKJe3bEGvE6qP1GDPhcLWACSUCgYBJ9AuvUMg/AwUvfoDEoPmaRipgNvXA3gUrv2RIVsaGB0c4neGz6wCOZYg1R6KxV1453ge9RDqKBX/ZNUB/PvuFfgpgVmmHBbUX73M10yjCxC7RWsgZruDAhbwc69ZupNwOJ+Bw3Ba1l0NbQbLW8znB59rc3bgk2v1iEHEllTnLiwKBgQC+w4BayM2Y8lAzT9fK70H/zMQXeoyhfyuEIQbaGmqqd9njG8Sbex/DUVSKSJxd79aEUa49pz2VOpH9ymVUP8JLGR7HnZkVAiexxRYEwZaYdGzLsCqvbBx1xxF/zslUx/yoBMdw2gmWBXnpXgCQlf4CQeu9YhNfQRwoFz3Cbfrx1QKBgDtuZ08VC0JKxFhnISigiZZJ9nCbn2gW8wTGLXMpuDslqheJedT0DAm2FGJHJkKt66y8qUqEAu3UzPkfpwmyKNX7J9M8Jzl3xrLf4zW94hDj92wA8RI7Iyq1i2p4hcDih7veB47U09A3MVFBsYlutauMNFpy7mUuHivy0EGim2EF";
const EC_DER: &str = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgfMICGNfIKl/XhCpPp0eNZpaPyfAJqPF+9DFUTF7PDOihRANCAARYu3+SGzJ0UFBbxpNHM82UUMUDSNViv+AXtj6qhVnSwUymNK2sAtmvYyRVFwLHjbxgfFNZrR9uMi5uan444myo";
/// The public key of [`ED_DER`], base64url.
const ED_X: &str = "KM0tGB77YyWQuIfbXdEIAjy1B3k8cqaHBheXDB_rJUE";
const ED_DER: &str = "MC4CAQAwBQYDK2VwBCIEIMEvVSV0/nRa3ocF2/rOxOg82UaB4vXzyAAGKXHjxDaE";
const RSA2_DER: &str = "MIIEpAIBAAKCAQEAtJUgA/2YPsSoJHWcC7Lj9Tg12cB41CbtJKFLxDUFfLsldE7rGRbcP+LTyL5ra4/rCEy3+lNwTFRNd/fjcGHzkKITfYy5Ye82AeOvCW7xn/6DXdK3dGAt5GDmHaZbK+3VRDnV+X6pdBgJ61qxNZ5zPWVHoD3lLGyJy2cug2JkyRTz/zSlK9AivxDQQd2B/mHx7HbpY53dYzVCblVZO7MBasevxyskFsMaQ2BpMLooyuiN58cLDS66S0Njsk24DgdgJVylBc4V6Yp7tX63ME17o3sbufsZ8iI0poM9CFecTDVv02T926iIDlmEs+zr8cNr1N3OfgctJWM7RJEraq6jyQIDAQABAoIBAAIWj9wjJz4OXgxG4ZPHWqhPITZ7UBv4g8LWzFaDworPBLEhiPzDwiH8fHR/rDERfqQJNBIeIe6S0nvN+mIS+RZEI4U1NrJEChWcdWper0bvxXZBwNfE1XI37+1DmB4L/6ymN3WgoiYkV+s4aiBrn8Hddt+xDrvhGOvo1AJwEk66oFlTh2c3D//PMTE2T7awpeyZxe2EMmr/WmV5PbOF0xAcyYLiEm5jXQv9vQZUjvouWh2RXFnzHainXLmVVw9s9qAUEvrDBrwDfvGjr0FVOHeqzns5+caq/bNPgoRHV3TpiAZq0jK5D7P5INDZIm41ebes07R/MHw4MU2QkzBmyuECgYEA24S1ewOHsDbBNWTzR9gWmCkSSdD0HiKe0FhZijmcMe+DPa2evBSPTZdrQpDa0dXrQVLn80EbV6bXkSJzOQ4Bao3t5HguNeymNNLsRSyds0ogcJFsy1LX6jarmtKw6utDww7ccT/EdnnFy1ApjkSZH8D1oVrIb2WkqbAxtJQGmuECgYEA0pfpFUhlFreSxO1ZHv9qwOwKca9ipuxqXRlS4QASCQpFMHcTlYiK0vqNyNEuaOPEqIBF7IdeNy9a2KtYmAbDVazzhE0ig+4NOagHUhO9ofYQZLJ9Q4kqmRytwu4kg8XvoIF2dnwIReUzlD0b+NE/6HUuTb69iQ5m+cY1CLzWTekCgYBSVbtP8WoCUPc01LFfABCxb645W5NEfk287XZgHu2T2TcLekRwXPHG84U6iWRZkffUH4l6NrBPtvdhq182RieH1MYmjGEgvqs0YuxVob9gkOwL7K+2r1LmuSyyPFY5NpbK4ZcTLwy8Nz5V3LJJdzdLrq8ynv9QsPoK31g1V9QGYQKBgQCpFiejWvkvgD1ruFZyOQnx1JOeK/+9ntzX21lcJr5UW9apzzH+Qh+Uvm/Q6YOl3BsuX6/E9fuDu5XpmcoMZoG37KGpfHVWEHC19l/KWudLf1IyR82jyCJXxVsOxD61Ptvjt47yGyxZUmpTf61R3lC9yDhhW+C6hsHPkoFKfrRi4QKBgQCJeHGGADlYKn/wxjr6jljl0Df3BEmjnTjEW2e/tq5SCsXf/k6U/+3BS0BrVzoCjYB9I/m+JCvTy+bvfg/iIVwGe9sRpggUWMD3nKKgxrTPokXHDwMYlGUnMvW7WgiigI3aFqqA7wy1fp/C521C0/bpTNeToB3hVgzQRYAF1VFD1g==";

const ISSUER: &str = "https://issuer.test";
const CLIENT: &str = "registry";

fn der(b64: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap()
}

/// A private key that mints tokens and publishes its public JWK.
struct Signer {
    key: EncodingKey,
    alg: Algorithm,
    kid: Option<String>,
}

impl Signer {
    fn rsa(kid: &str) -> Self {
        Signer {
            key: EncodingKey::from_rsa_der(&der(RSA_DER)),
            alg: Algorithm::RS256,
            kid: Some(kid.into()),
        }
    }
    fn rsa2(kid: &str) -> Self {
        Signer {
            key: EncodingKey::from_rsa_der(&der(RSA2_DER)),
            alg: Algorithm::RS256,
            kid: Some(kid.into()),
        }
    }
    fn ec(kid: &str) -> Self {
        Signer {
            key: EncodingKey::from_ec_der(&der(EC_DER)),
            alg: Algorithm::ES256,
            kid: Some(kid.into()),
        }
    }
    fn ed(kid: &str) -> Self {
        Signer {
            key: EncodingKey::from_ed_der(&der(ED_DER)),
            alg: Algorithm::EdDSA,
            kid: Some(kid.into()),
        }
    }

    fn jwk(&self) -> Value {
        let mut jwk = match self.alg {
            // jsonwebtoken 10 derives RSA and EC public keys, not Ed25519.
            Algorithm::EdDSA => json!({"kty": "OKP", "crv": "Ed25519", "x": ED_X, "alg": "EdDSA"}),
            alg => serde_json::to_value(Jwk::from_encoding_key(&self.key, alg).unwrap()).unwrap(),
        };
        if let Some(kid) = &self.kid {
            jwk["kid"] = json!(kid);
        }
        jwk
    }

    fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = self.kid.clone();
        jsonwebtoken::encode(&header, claims, &self.key).unwrap()
    }
}

fn now() -> i64 {
    jsonwebtoken::get_current_timestamp() as i64
}

/// Valid claims for alice; `patch` overrides (null removes).
fn claims(patch: Value) -> Value {
    let mut c = json!({
        "iss": ISSUER, "aud": CLIENT, "sub": "alice", "iat": now(), "exp": now() + 600,
        "email": "alice@example.com", "email_verified": true, "groups": ["devs", "qa"],
    });
    for (k, v) in patch.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

/// Keys served from memory, counting fetches; `None` is an issuer down.
#[derive(Debug, Default)]
struct StaticKeys {
    keys: StdMutex<Option<Vec<Value>>>,
    fetches: AtomicUsize,
}

impl StaticKeys {
    fn serving(keys: Vec<Value>) -> Arc<Self> {
        let s = Arc::new(StaticKeys::default());
        s.set(Some(keys));
        s
    }
    fn set(&self, keys: Option<Vec<Value>>) {
        *self.keys.lock().unwrap() = keys;
    }
    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl KeySource for StaticKeys {
    async fn fetch(&self) -> Result<Vec<Value>, OidcError> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        self.keys.lock().unwrap().clone().ok_or(OidcError::Status {
            url: "https://issuer.test/jwks".into(),
            status: 503,
        })
    }
}

fn config() -> OidcConfig {
    OidcConfig::new(ISSUER.parse().unwrap(), CLIENT).unwrap()
}

fn provider_with(config: OidcConfig, keys: &Arc<StaticKeys>) -> OidcProvider {
    OidcProvider::with_key_source(config, keys.clone()).unwrap()
}

fn provider(signers: &[&Signer]) -> (OidcProvider, Arc<StaticKeys>) {
    let keys = StaticKeys::serving(signers.iter().map(|s| s.jwk()).collect());
    (provider_with(config(), &keys), keys)
}

fn names(identity: &Identity) -> (String, Vec<String>) {
    let name = match identity.subject() {
        crate::Subject::External(name) => name.to_string(),
        other => panic!("not an external user: {other}"),
    };
    (
        name,
        identity
            .provider_groups()
            .iter()
            .map(|g| g.to_string())
            .collect(),
    )
}

async fn refusal(p: &OidcProvider, token: &str) -> OidcRefusal {
    p.verify(token).await.expect_err("token must be refused")
}

#[tokio::test]
async fn accepts_tokens_signed_with_each_key_type() {
    let (rsa, ec, ed) = (Signer::rsa("r"), Signer::ec("e"), Signer::ed("d"));
    let (p, _) = provider(&[&rsa, &ec, &ed]);
    for signer in [&rsa, &ec, &ed] {
        let identity = p.verify(&signer.sign(&claims(json!({})))).await.unwrap();
        assert_eq!(identity.provider(), "oidc");
        assert_eq!(
            names(&identity),
            (
                "oidc:alice".into(),
                vec!["oidc:devs".into(), "oidc:qa".into()]
            )
        );
    }
    // An audience list naming the client is fine too.
    let token = rsa.sign(&claims(json!({"aud": ["other", CLIENT]})));
    assert!(p.verify(&token).await.is_ok());
}

#[tokio::test]
async fn as_basic_password_and_bearer_through_the_trait() {
    let rsa = Signer::rsa("r");
    let (p, _) = provider(&[&rsa]);
    let token = rsa.sign(&claims(json!({})));
    for credentials in [
        Credentials::Basic {
            user: "x".into(),
            password: token.clone(),
        },
        Credentials::Basic {
            user: String::new(),
            password: token.clone(),
        },
        Credentials::Bearer(token.clone()),
    ] {
        let (identity, source) = p.authenticate(&credentials, None).await.unwrap().unwrap();
        assert_eq!(identity.subject().to_string(), "oidc:alice");
        assert_eq!(source, TokenSource::External);
    }
}

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

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
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

/// A source that never answers.
#[derive(Debug)]
struct Hanging;

#[async_trait::async_trait]
impl KeySource for Hanging {
    async fn fetch(&self) -> Result<Vec<Value>, OidcError> {
        std::future::pending().await
    }
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

#[tokio::test]
async fn claims_and_prefixes_follow_kube_apiserver() {
    let rsa = Signer::rsa("r");
    let keys = StaticKeys::serving(vec![rsa.jwk()]);
    let run = |config: OidcConfig, patch: Value| {
        let p = provider_with(config, &keys);
        let token = rsa.sign(&claims(patch));
        async move { p.verify(&token).await.map(|i| names(&i)) }
    };
    // Username from email, no prefix; groups prefixed otherwise; a single
    // string is one group; system: groups and invalid names are dropped.
    let c = config()
        .with_username_claim("email")
        .with_username_prefix(parse_prefix("-"))
        .with_groups_prefix(Some("idp:".into()));
    let patch = json!({"groups": ["devs", "system:masters", "bad group", "devs"]});
    assert_eq!(
        run(c.clone(), patch).await.unwrap(),
        ("alice@example.com".into(), vec!["idp:devs".into()])
    );
    assert_eq!(
        run(c.clone(), json!({"groups": "ops"})).await.unwrap().1,
        vec!["idp:ops"]
    );
    assert_eq!(
        run(c.clone(), json!({"groups": null})).await.unwrap().1,
        Vec::<String>::new()
    );
    // email_verified: absent is fine, false (or "false") is not.
    assert!(run(c.clone(), json!({"email_verified": null}))
        .await
        .is_ok());
    for bad in [json!(false), json!("false"), json!(0)] {
        let refused = run(c.clone(), json!({"email_verified": bad}))
            .await
            .unwrap_err();
        assert!(matches!(refused, OidcRefusal::EmailNotVerified));
    }
    // Without a prefix, a subject the registry reserves is no name at all.
    let bare = config().with_username_prefix(None);
    for sub in ["system:admin", "group:x", "system:serviceaccount:ns:sa"] {
        assert!(matches!(
            run(bare.clone(), json!({"sub": sub})).await,
            Err(OidcRefusal::UserName(_))
        ));
    }
    // Groups off: none, whatever the token says.
    let off = config().with_groups_claim(None);
    assert!(run(off, json!({})).await.unwrap().1.is_empty());
    // A custom groups claim; too many groups fails the login.
    let custom = config().with_groups_claim(Some("roles".into()));
    assert_eq!(
        run(custom.clone(), json!({"roles": ["x"]}))
            .await
            .unwrap()
            .1,
        vec!["oidc:x"]
    );
    let many: Vec<String> = (0..300).map(|i| format!("g{i}")).collect();
    assert!(matches!(
        run(custom, json!({"roles": many})).await,
        Err(OidcRefusal::TooManyGroups(300))
    ));
}

#[tokio::test]
async fn verified_tokens_are_remembered_until_they_expire_and_bounded() {
    let rsa = Signer::rsa("r");
    let keys = StaticKeys::serving(vec![rsa.jwk()]);
    let mut config = config();
    config.limits.verified_capacity = 8;
    let p = provider_with(config, &keys);
    let token = rsa.sign(&claims(json!({})));
    assert!(p.verify(&token).await.is_ok());
    assert_eq!(p.remembered_tokens(), 1);
    // Remembered: keys withdrawn and the issuer down, the token still works
    // until it expires.
    keys.set(None);
    assert!(p.verify(&token).await.is_ok());
    keys.set(Some(vec![rsa.jwk()]));
    for i in 0..20 {
        let t = rsa.sign(&claims(json!({"sub": format!("user{i}")})));
        assert!(p.verify(&t).await.is_ok());
        assert!(p.remembered_tokens() <= 8);
    }
    // A token that expires within the leeway is accepted but not remembered.
    let mut config2 = OidcConfig::new(ISSUER.parse().unwrap(), CLIENT).unwrap();
    config2.limits.verified_capacity = 8;
    let p = provider_with(config2, &keys);
    assert!(p
        .verify(&rsa.sign(&claims(json!({"exp": now() - 5}))))
        .await
        .is_ok());
    assert_eq!(p.remembered_tokens(), 0);
}

#[test]
fn issuer_urls_must_be_https() {
    assert!("https://idp.example".parse::<IssuerUrl>().is_ok());
    assert!("https://idp.example/realms/x".parse::<IssuerUrl>().is_ok());
    for bad in [
        "http://idp.example",
        "idp.example",
        "https://idp.example?x=1",
        "https://idp.example#f",
        "ftp://x",
        "",
    ] {
        assert!(bad.parse::<IssuerUrl>().is_err(), "{bad}");
    }
    let u: IssuerUrl = "https://idp.example/".parse().unwrap();
    assert_eq!(
        u.discovery_url(),
        "https://idp.example/.well-known/openid-configuration"
    );
    assert!(OidcConfig::new("https://x".parse().unwrap(), "").is_err());
    let mut c = config();
    c.username_claim.clear();
    assert!(OidcProvider::with_key_source(c, Arc::new(Hanging)).is_err());
}

fn jwt_shaped(header: &str, payload: &str, sig: &str) -> String {
    format!(
        "{}.{}.{}",
        b64(header.as_bytes()),
        b64(payload.as_bytes()),
        sig
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any text at all, as password or bearer token: no panic, never an identity.
    #[test]
    fn arbitrary_text_is_never_accepted(text in ".{0,600}", dots in 0usize..4) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (p, _) = provider(&[&Signer::rsa("r")]);
        let text = format!("{text}{}", ".".repeat(dots));
        for c in [Credentials::Bearer(text.clone()), Credentials::Basic { user: text.clone(), password: text.clone() }] {
            prop_assert!(!matches!(rt.block_on(p.authenticate(&c, None)), Ok(Some(_))));
        }
    }

    /// JWT-shaped tokens that claim our issuer but carry arbitrary
    /// headers, unicode claims and signatures: refused, never a panic.
    #[test]
    fn forged_tokens_from_our_issuer_are_refused(
        alg in prop::sample::select(vec!["RS256", "ES256", "EdDSA", "HS256", "none", "PS512", "", "\u{0}", "RS256\u{202e}"]),
        kid in prop::option::of("\\PC{0,40}"),
        sub in "\\PC{0,300}",
        groups in prop::collection::vec("\\PC{0,30}", 0..20),
        exp in any::<i64>(),
        sig in "[A-Za-z0-9_-]{0,400}",
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let rsa = Signer::rsa("r");
        let (p, _) = provider(&[&rsa]);
        let header = json!({"alg": alg, "kid": kid}).to_string();
        let payload = json!({"iss": ISSUER, "aud": CLIENT, "sub": sub, "groups": groups, "exp": exp}).to_string();
        let token = jwt_shaped(&header, &payload, &sig);
        prop_assert!(p.recognises(&token));
        let result = rt.block_on(p.authenticate(&Credentials::Bearer(token), None));
        prop_assert!(matches!(result, Err(AuthenticationError::InvalidCredentials)));
    }

    /// Oversized tokens are not even read.
    #[test]
    fn oversized_tokens_are_not_mine(extra in 0usize..4096) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let rsa = Signer::rsa("r");
        let (p, keys) = provider(&[&rsa]);
        let big = "x".repeat(32 * 1024 + extra);
        let token = rsa.sign(&claims(json!({"pad": big})));
        prop_assert!(!p.recognises(&token));
        prop_assert!(rt.block_on(p.authenticate(&Credentials::Bearer(token.clone()), None)).unwrap().is_none());
        prop_assert!(matches!(rt.block_on(p.verify(&token)), Err(OidcRefusal::Malformed)));
        prop_assert_eq!(keys.fetches(), 0);
    }
}
