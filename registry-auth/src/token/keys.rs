//! The keys behind registry tokens: the registry's token CA (a self-signed
//! P-256 certificate, the `rootcertbundle` other registries trust) and the
//! ES256 token-signing keys it certifies. Both are records of the
//! [`AuthStore`](crate::AuthStore), so every replica signs and verifies
//! with the same keys and nobody copies key files by hand.
//!
//! Each signing key is certified by the CA, so that a verifier configured
//! with the CA's certificate alone (CNCF Distribution's `auth.token`)
//! accepts tokens signed by any key, before and after a rotation: the token
//! header's `x5c` carries the chain (signing certificate, then the CA's).

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};
use sha2::{Digest as _, Sha256};
use time::{Duration, OffsetDateTime};

use crate::credentials::random_bytes;

/// How long the token CA's certificate is valid.
pub const CA_LIFETIME: Duration = Duration::days(3650);
/// Certificates start this long before they are made (clock skew between
/// the registry and whoever verifies).
const BACKDATE: Duration = Duration::hours(1);

/// Why a key could not be made or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Generating a key or a certificate failed.
    #[error("cannot make a token key or certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// The randomness source failed.
    #[error(transparent)]
    Random(#[from] crate::credentials::CredentialError),
    /// A stored private key is not a PKCS#8 P-256 key.
    #[error("stored token key {0} is not a PKCS#8 ECDSA P-256 key")]
    InvalidKey(String),
}

/// Why a key id did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyIdError {
    /// Empty, or longer than 128 bytes.
    #[error("key id must be 1 to 128 characters long")]
    Length,
    /// A character outside the base64url alphabet.
    #[error("key id contains {0:?}, outside the base64url alphabet")]
    InvalidCharacter(char),
}

/// A key id (`kid`): the RFC 7638 thumbprint of the public key (base64url
/// of a SHA-256), or any base64url text of 1 to 128 characters read back.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(Box<str>);

impl KeyId {
    /// The RFC 7638 JWK thumbprint of a P-256 public key given as its
    /// uncompressed SEC1 point (`04 || x || y`).
    pub(crate) fn thumbprint(point: &[u8]) -> Result<Self, KeyError> {
        let (x, y) = coordinates(point)?;
        // The members in lexicographic order, no whitespace (RFC 7638 §3).
        let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        Ok(KeyId(
            URL_SAFE_NO_PAD
                .encode(Sha256::digest(canonical.as_bytes()))
                .into(),
        ))
    }

    /// The id text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for KeyId {
    type Err = KeyIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() || s.len() > 128 {
            return Err(KeyIdError::Length);
        }
        if let Some(bad) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(KeyIdError::InvalidCharacter(bad));
        }
        Ok(KeyId(s.into()))
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({})", self.0)
    }
}

/// The base64url `x` and `y` of an uncompressed P-256 point.
pub(crate) fn coordinates(point: &[u8]) -> Result<(String, String), KeyError> {
    match point {
        [0x04, rest @ ..] if rest.len() == 64 => Ok((
            URL_SAFE_NO_PAD.encode(&rest[..32]),
            URL_SAFE_NO_PAD.encode(&rest[32..]),
        )),
        _ => Err(KeyError::InvalidKey("(public point)".into())),
    }
}

/// A private key as PKCS#8 DER. `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct PrivateKeyDer(Box<[u8]>);

impl PrivateKeyDer {
    /// Wraps PKCS#8 DER read from storage (checked when used).
    pub fn from_pkcs8(der: impl Into<Box<[u8]>>) -> Self {
        PrivateKeyDer(der.into())
    }

    /// The DER bytes, for storage.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The key pair, checked to be ECDSA P-256.
    pub(crate) fn key_pair(&self, what: &str) -> Result<KeyPair, KeyError> {
        let invalid = || KeyError::InvalidKey(what.to_owned());
        let pair = KeyPair::try_from(&*self.0).map_err(|_| invalid())?;
        if !pair.is_compatible(&PKCS_ECDSA_P256_SHA256) {
            return Err(invalid());
        }
        Ok(pair)
    }
}

impl fmt::Debug for PrivateKeyDer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKeyDer(***)")
    }
}

/// The registry's token CA: the trust anchor of its token-signing keys.
/// One per store, made on first use and kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenCa {
    /// The self-signed certificate, DER.
    pub certificate: Vec<u8>,
    /// Its private key.
    pub private_key: PrivateKeyDer,
    /// When it was made.
    pub created: OffsetDateTime,
}

impl TokenCa {
    /// A fresh CA valid for [`CA_LIFETIME`] from `now`.
    pub fn generate(now: OffsetDateTime) -> Result<Self, KeyError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let params = ca_params(&key, now)?;
        let certificate = params.self_signed(&key)?;
        Ok(TokenCa {
            certificate: certificate.der().to_vec(),
            private_key: PrivateKeyDer::from_pkcs8(key.serialize_der()),
            created: now,
        })
    }

    /// The certificate as PEM: what a verifier's `rootcertbundle` holds.
    pub fn pem(&self) -> String {
        pem("CERTIFICATE", &self.certificate)
    }

    /// The issuer that certifies signing keys: the CA's name and key
    /// identifier are functions of its key, so they come out as in the
    /// stored certificate.
    fn issuer(&self) -> Result<Issuer<'static, KeyPair>, KeyError> {
        let key = self.private_key.key_pair("(token CA)")?;
        let params = ca_params(&key, self.created)?;
        Ok(Issuer::new(params, key))
    }
}

/// The CA certificate's parameters: its common name names its key, so the
/// same key always yields the same name.
fn ca_params(key: &KeyPair, created: OffsetDateTime) -> Result<CertificateParams, KeyError> {
    let kid = KeyId::thumbprint(key.public_key_raw())?;
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, "registry");
    name.push(
        DnType::CommonName,
        format!("registry token CA {}", &kid.as_str()[..16]),
    );
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = created - BACKDATE;
    params.not_after = created + CA_LIFETIME;
    params.serial_number = Some(serial()?);
    Ok(params)
}

/// A positive random 128-bit serial number.
fn serial() -> Result<rcgen::SerialNumber, KeyError> {
    let mut bytes = random_bytes::<16>()?;
    bytes[0] &= 0x7f;
    Ok(rcgen::SerialNumber::from_slice(&bytes))
}

/// PEM armour around DER.
pub(crate) fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        // base64 is ASCII.
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// A token-signing key: an ES256 key certified by the [`TokenCa`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSigningKey {
    /// Its id, the `kid` of the tokens it signs.
    pub kid: KeyId,
    /// Its certificate (DER), issued by the token CA.
    pub certificate: Vec<u8>,
    /// Its private key.
    pub private_key: PrivateKeyDer,
    /// When it was made.
    pub created: OffsetDateTime,
    /// From when it signs (a key made ahead of its turn is published
    /// first).
    pub signs_from: OffsetDateTime,
    /// When its certificate ends: it signs nothing that would outlive
    /// this, and verifies nothing after.
    pub expires: OffsetDateTime,
}

impl TokenSigningKey {
    /// A fresh key certified by `ca`, signing from `signs_from`, its
    /// certificate valid until `expires`.
    pub fn generate(
        ca: &TokenCa,
        now: OffsetDateTime,
        signs_from: OffsetDateTime,
        expires: OffsetDateTime,
    ) -> Result<Self, KeyError> {
        let issuer = ca.issuer()?;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let kid = KeyId::thumbprint(key.public_key_raw())?;
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::OrganizationName, "registry");
        name.push(DnType::CommonName, format!("registry token key {kid}"));
        params.distinguished_name = name;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        params.not_before = now - BACKDATE;
        params.not_after = expires;
        params.serial_number = Some(serial()?);
        let certificate = params.signed_by(&key, &issuer)?;
        Ok(TokenSigningKey {
            kid,
            certificate: certificate.der().to_vec(),
            private_key: PrivateKeyDer::from_pkcs8(key.serialize_der()),
            created: now,
            signs_from,
            expires,
        })
    }

    /// The public key as an uncompressed SEC1 point.
    pub(crate) fn public_point(&self) -> Result<Vec<u8>, KeyError> {
        Ok(self
            .private_key
            .key_pair(self.kid.as_str())?
            .public_key_raw()
            .to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ids() {
        assert!("abc-_09".parse::<KeyId>().is_ok());
        assert_eq!("".parse::<KeyId>(), Err(KeyIdError::Length));
        assert_eq!("a".repeat(129).parse::<KeyId>(), Err(KeyIdError::Length));
        assert_eq!(
            "a.b".parse::<KeyId>(),
            Err(KeyIdError::InvalidCharacter('.'))
        );
        // RFC 7638 §3.1's example is RSA; this checks the P-256 form's shape.
        let point = [&[4u8][..], &[1; 64][..]].concat();
        let kid = KeyId::thumbprint(&point).unwrap();
        assert_eq!(kid.as_str().len(), 43);
        assert!(KeyId::thumbprint(&[4; 10]).is_err());
    }

    #[test]
    fn ca_certifies_keys() {
        let now = OffsetDateTime::now_utc();
        let ca = TokenCa::generate(now).unwrap();
        assert!(ca.pem().starts_with("-----BEGIN CERTIFICATE-----\n"));
        assert!(!format!("{ca:?}").contains(&format!("{:?}", ca.private_key.as_bytes())));
        let key = TokenSigningKey::generate(&ca, now, now, now + Duration::days(40)).unwrap();
        assert_eq!(
            KeyId::thumbprint(&key.public_point().unwrap()).unwrap(),
            key.kid
        );
        // The same CA key yields the same issuer name on every load: the
        // issuer name inside the key's certificate is the CA's subject.
        let ca_subject = der_subject_of(&ca.certificate);
        assert!(contains(&key.certificate, &ca_subject));
        let again = TokenSigningKey::generate(&ca, now, now, now + Duration::days(1)).unwrap();
        assert_ne!(again.kid, key.kid);
        assert!(contains(&again.certificate, &ca_subject));
    }

    #[test]
    fn invalid_private_keys_are_refused() {
        let bad = PrivateKeyDer::from_pkcs8(vec![1, 2, 3]);
        assert!(matches!(bad.key_pair("x"), Err(KeyError::InvalidKey(_))));
        let ca = TokenCa {
            certificate: vec![],
            private_key: bad,
            created: OffsetDateTime::now_utc(),
        };
        let now = OffsetDateTime::now_utc();
        assert!(TokenSigningKey::generate(&ca, now, now, now + Duration::days(1)).is_err());
    }

    /// The CA's common name as it appears in DER (a UTF8String).
    fn der_subject_of(cert: &[u8]) -> Vec<u8> {
        let marker = b"registry token CA ";
        let at = cert
            .windows(marker.len())
            .position(|w| w == marker)
            .expect("CA common name");
        cert[at..at + marker.len() + 16].to_vec()
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }
}
