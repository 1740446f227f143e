//! The JSON Web Key Set (RFC 7517) of the token-signing keys, as served at
//! `/.well-known/jwks.json`: each key with its id and its certificate chain.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::keys::{coordinates, KeyError, TokenCa, TokenSigningKey};

/// A JWK Set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Jwks {
    /// The keys.
    pub keys: Vec<Jwk>,
}

/// One public key: an EC P-256 key for ES256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Jwk {
    /// Key type: `EC`.
    pub kty: String,
    /// Curve: `P-256`.
    pub crv: String,
    /// The x coordinate, base64url.
    pub x: String,
    /// The y coordinate, base64url.
    pub y: String,
    /// The key id (the `kid` of the tokens it signs).
    pub kid: String,
    /// Use: `sig`.
    #[serde(rename = "use")]
    pub key_use: String,
    /// Algorithm: `ES256`.
    pub alg: String,
    /// The certificate chain (base64 DER): the key's certificate, then the
    /// token CA's.
    pub x5c: Vec<String>,
}

impl Jwk {
    /// The JWK of a signing key certified by `ca`.
    pub(crate) fn of(key: &TokenSigningKey, ca: &TokenCa) -> Result<Self, KeyError> {
        let (x, y) = coordinates(&key.public_point()?)?;
        Ok(Jwk {
            kty: "EC".to_owned(),
            crv: "P-256".to_owned(),
            x,
            y,
            kid: key.kid.to_string(),
            key_use: "sig".to_owned(),
            alg: "ES256".to_owned(),
            x5c: x5c(key, ca),
        })
    }
}

/// The `x5c` chain of a key: its certificate, then the CA's (base64 DER,
/// RFC 7515 §4.1.6).
pub(crate) fn x5c(key: &TokenSigningKey, ca: &TokenCa) -> Vec<String> {
    vec![
        STANDARD.encode(&key.certificate),
        STANDARD.encode(&ca.certificate),
    ]
}
