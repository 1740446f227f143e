//! The provider against locally minted keys and tokens: every refusal, the
//! key cache's refresh rules, and malformed input. The fixtures they share
//! (throwaway keys, a signer, keys served from memory) are here.

mod accepting;
mod key_refresh;
mod malformed_input;
mod refusals;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex as StdMutex;

use base64::Engine as _;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{EncodingKey, Header};
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

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
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
