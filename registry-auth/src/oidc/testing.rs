//! An OpenID Connect issuer in memory, for tests (features `oidc` and
//! `testing`): one ES256 key, ID tokens minted on demand, and its JWKS as
//! a [`KeySource`] that can be switched off (an issuer that is down).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use super::{KeySource, OidcError};

/// A P-256 key made for tests with openssl (PKCS#8 DER, base64). Public
/// knowledge: never trust it anywhere.
const TEST_KEY: &str = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgvXJVDYGdfIIJ1UvzkQrPI9lvdSdFUCQr1+dE2da5ADuhRANCAATF7x3Xbvca4YAbWutqpmO1JBmHx9UJjMAnj85rwomB6HiHd3tAZqSMfEIaK+/tNlVL7mQbNfV0dNMc+59PMcdK";

/// The issuer of [`TestIssuer::new`]'s tokens unless told otherwise.
pub const TEST_ISSUER: &str = "https://issuer.test";
/// The audience (client id) of [`TestIssuer::id_token`]'s tokens.
pub const TEST_CLIENT_ID: &str = "registry";

/// An issuer in memory: see the [module docs](self).
#[derive(Debug)]
pub struct TestIssuer {
    issuer: String,
    kid: String,
    key: EncodingKey,
    jwk: Value,
    up: AtomicBool,
    fetches: AtomicUsize,
}

impl TestIssuer {
    /// An issuer named `issuer` (an https URL) whose key has id `kid`.
    pub fn new(issuer: &str, kid: &str) -> Self {
        let der = base64::engine::general_purpose::STANDARD
            .decode(TEST_KEY)
            .expect("test key");
        let key = EncodingKey::from_ec_der(&der);
        let mut jwk = serde_json::to_value(
            jsonwebtoken::jwk::Jwk::from_encoding_key(&key, Algorithm::ES256).expect("test JWK"),
        )
        .expect("JWK as JSON");
        jwk["kid"] = json!(kid);
        TestIssuer {
            issuer: issuer.to_owned(),
            kid: kid.to_owned(),
            key,
            jwk,
            up: AtomicBool::new(true),
            fetches: AtomicUsize::new(0),
        }
    }

    /// The issuer URL.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The JWKS document (`{"keys": [...]}`) to serve.
    pub fn jwks(&self) -> Value {
        json!({ "keys": [self.jwk.clone()] })
    }

    /// Signs `claims` as they are (ES256, with the key's `kid`).
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.key).expect("signing a test token")
    }

    /// Standard claims of an ID token for `sub` in `groups`, for
    /// [`TEST_CLIENT_ID`], valid for ten minutes; `extra` is merged over
    /// them (`null` removes a claim).
    pub fn claims(&self, sub: &str, groups: &[&str], extra: Value) -> Value {
        let now = jsonwebtoken::get_current_timestamp();
        let mut claims = json!({
            "iss": self.issuer, "aud": TEST_CLIENT_ID, "sub": sub,
            "iat": now, "exp": now + 600, "groups": groups,
        });
        if let (Some(map), Some(extra)) = (claims.as_object_mut(), extra.as_object()) {
            for (k, v) in extra {
                if v.is_null() {
                    map.remove(k);
                } else {
                    map.insert(k.clone(), v.clone());
                }
            }
        }
        claims
    }

    /// A valid ID token for `sub` in `groups`.
    pub fn id_token(&self, sub: &str, groups: &[&str]) -> String {
        self.sign(&self.claims(sub, groups, json!({})))
    }

    /// Takes the issuer down (`false`: fetches fail) or up again.
    pub fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
    }

    /// How often its keys were fetched.
    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl KeySource for TestIssuer {
    async fn fetch(&self) -> Result<Vec<Value>, OidcError> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        if !self.up.load(Ordering::SeqCst) {
            return Err(OidcError::Status {
                url: format!("{}/jwks", self.issuer),
                status: 503,
            });
        }
        Ok(vec![self.jwk.clone()])
    }
}
