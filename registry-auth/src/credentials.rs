//! Secrets: passwords and their argon2id hashes, access tokens and their
//! SHA-256 hashes. Secret values never appear in `Debug` output.

use std::fmt;
use std::str::FromStr;

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash as PhcHash, Salt};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

use crate::argon2_memory;
use crate::subject::{serde_via_str, Subject};

/// The recognisable prefix of every access token (secret scanners can look
/// for it).
pub const ACCESS_TOKEN_PREFIX: &str = "rgt_";
/// Random bytes in an access token.
pub const ACCESS_TOKEN_BYTES: usize = 32;
/// Length of an access token's text: the prefix and 43 base64url characters.
pub const ACCESS_TOKEN_LEN: usize = ACCESS_TOKEN_PREFIX.len() + 43;

/// Fills `buf` from the operating system's CSPRNG.
pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N], CredentialError> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).map_err(|e| CredentialError::Random(e.to_string()))?;
    Ok(buf)
}

/// Why a credential could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialError {
    /// The operating system's random number generator failed.
    #[error("random number generator failed: {0}")]
    Random(String),
    /// argon2 refused the input or parameters.
    #[error("password hashing failed: {0}")]
    Hashing(String),
    /// A stored password hash is not a PHC string.
    #[error("stored password hash is not a valid PHC string")]
    InvalidHash,
}

/// A clear-text password, as received. `Debug` prints `Password(***)`.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(Box<str>);

impl Password {
    /// Wraps a clear-text password.
    pub fn new(password: impl Into<Box<str>>) -> Self {
        Password(password.into())
    }

    /// A random password of 24 bytes from the CSPRNG, base64url (32 chars).
    pub fn generate() -> Result<Self, CredentialError> {
        let bytes = random_bytes::<24>()?;
        Ok(Password(URL_SAFE_NO_PAD.encode(bytes).into()))
    }

    /// The clear text: only for hashing or showing once.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

/// A stored password hash: a PHC string (`$argon2id$v=19$m=…`).
///
/// Not secret in the way a password is, but `Debug` still hides it so that
/// nothing offline-crackable lands in logs.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(Box<str>);

impl PasswordHash {
    /// Wraps a PHC string read from storage, checking that it parses.
    pub fn from_phc(phc: &str) -> Result<Self, CredentialError> {
        PhcHash::new(phc).map_err(|_| CredentialError::InvalidHash)?;
        Ok(PasswordHash(phc.into()))
    }

    /// The PHC string, for storage.
    pub fn as_phc(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(***)")
    }
}

/// The argon2 variant and version new hashes use (the PHC string names them).
const ALGORITHM: Algorithm = Algorithm::Argon2id;
const VERSION: Version = Version::V0x13;

/// Hashes and verifies passwords with argon2id.
///
/// [`PasswordHasher::new`] uses OWASP-recommended parameters
/// (7 MiB, 5 passes); [`PasswordHasher::insecure_fast`] uses the smallest ones, for
/// tests only. Verification always uses the parameters stored in the hash,
/// so hashes made with either verify with either.
///
/// Hashing and verifying take tens of milliseconds of CPU by design: call
/// them off the async executor (the [`Authenticator`](crate::Authenticator)
/// does).
#[derive(Clone)]
pub struct PasswordHasher {
    argon2: Argon2<'static>,
}

impl fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("params", self.argon2.params())
            .finish()
    }
}

impl Default for PasswordHasher {
    fn default() -> Self {
        PasswordHasher::new()
    }
}

impl PasswordHasher {
    /// argon2id with 7 MiB of memory and 5 passes: one of OWASP's
    /// equivalent recommended settings (the crate's default is 19 MiB, 2
    /// passes). The smaller working set keeps a burst of logins from adding
    /// tens of MiB to the server's memory.
    pub fn new() -> Self {
        let params = Params::new(7 * 1024, 5, 1, None).unwrap_or_default();
        PasswordHasher {
            argon2: Argon2::new(ALGORITHM, VERSION, params),
        }
    }

    /// argon2id with the smallest parameters argon2 accepts (8 KiB, 1 pass):
    /// fast, and far too weak for real passwords. For tests.
    pub fn insecure_fast() -> Self {
        let params = Params::new(Params::MIN_M_COST, 1, 1, None).unwrap_or_default();
        PasswordHasher {
            argon2: Argon2::new(ALGORITHM, VERSION, params),
        }
    }

    /// Hashes `password` with a fresh random salt.
    pub fn hash(&self, password: &Password) -> Result<PasswordHash, CredentialError> {
        let failed = |e: &dyn fmt::Display| CredentialError::Hashing(e.to_string());
        let salt = Salt::new(&random_bytes::<16>()?).map_err(|e| failed(&e))?;
        let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
        argon2_memory::hash_into(&self.argon2, password.expose().as_bytes(), &salt, &mut out)
            .map_err(|e| failed(&e))?;
        let phc = PhcHash {
            algorithm: ALGORITHM.ident(),
            version: Some(VERSION.into()),
            params: ParamsString::try_from(self.argon2.params()).map_err(|e| failed(&e))?,
            salt: Some(salt),
            hash: Some(Output::new(&out).map_err(|e| failed(&e))?),
        };
        Ok(PasswordHash(phc.to_string().into()))
    }

    /// Whether `password` matches `hash` (compared in constant time), with
    /// the algorithm, version and parameters the hash names. A malformed
    /// hash never matches.
    pub fn verify(&self, password: &Password, hash: &PasswordHash) -> bool {
        verify_phc(password.expose().as_bytes(), hash.as_phc()).unwrap_or(false)
    }
}

/// Recomputes a PHC string's hash of `password`: whether it matches; `None`
/// when the string or its parameters are not argon2's.
fn verify_phc(password: &[u8], phc: &str) -> Option<bool> {
    let parsed = PhcHash::new(phc).ok()?;
    let algorithm = Algorithm::new(parsed.algorithm.as_str()).ok()?;
    let version = match parsed.version {
        Some(v) => Version::try_from(v).ok()?,
        None => Version::default(),
    };
    let params = Params::try_from(&parsed).ok()?;
    let (salt, expected) = (parsed.salt.as_ref()?, parsed.hash.as_ref()?);
    let argon2 = Argon2::new(algorithm, version, params);
    let mut out = vec![0u8; expected.len()];
    argon2_memory::hash_into(&argon2, password, salt, &mut out).ok()?;
    Some(out.ct_eq(expected.as_bytes()).into())
}

/// An access token as shown to its owner, once: `rgt_` + 43 base64url
/// characters (32 random bytes). `Debug` prints `AccessTokenSecret(rgt_***)`.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessTokenSecret(Box<str>);

impl AccessTokenSecret {
    /// 32 fresh random bytes from the CSPRNG.
    pub fn generate() -> Result<Self, CredentialError> {
        let bytes = random_bytes::<ACCESS_TOKEN_BYTES>()?;
        let mut s = String::with_capacity(ACCESS_TOKEN_LEN);
        s.push_str(ACCESS_TOKEN_PREFIX);
        URL_SAFE_NO_PAD.encode_string(bytes, &mut s);
        Ok(AccessTokenSecret(s.into()))
    }

    /// A token whose 32 bytes were derived rather than drawn (managed
    /// pull-secret tokens: see [`crate::secret::managed_token`]).
    pub(crate) fn from_bytes(bytes: [u8; ACCESS_TOKEN_BYTES]) -> Self {
        let mut s = String::with_capacity(ACCESS_TOKEN_LEN);
        s.push_str(ACCESS_TOKEN_PREFIX);
        URL_SAFE_NO_PAD.encode_string(bytes, &mut s);
        AccessTokenSecret(s.into())
    }

    /// Whether `candidate` has the shape of an access token (prefix and
    /// length). Cheap; says nothing about validity.
    pub fn looks_like(candidate: &str) -> bool {
        candidate.len() == ACCESS_TOKEN_LEN && candidate.starts_with(ACCESS_TOKEN_PREFIX)
    }

    /// The token text: to show once, or to put in a pull secret.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The hash under which the token is stored.
    pub fn hash(&self) -> TokenHash {
        TokenHash::of(&self.0)
    }
}

impl fmt::Debug for AccessTokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessTokenSecret(rgt_***)")
    }
}

/// SHA-256 of an access token's full text: what the store keeps and looks
/// tokens up by. A fast hash is enough for 256 bits of entropy.
#[derive(Clone, Copy, Hash, PartialEq, Eq)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    /// Hashes a presented token text.
    pub fn of(token: &str) -> Self {
        TokenHash(Sha256::digest(token.as_bytes()).into())
    }

    /// Rebuilds a hash read from storage.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        TokenHash(bytes)
    }

    /// The raw hash bytes, for storage.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Constant-time equality: use this, not `==`, when the comparison
    /// decides authentication.
    pub fn ct_eq(&self, other: &TokenHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A prefix is enough to tell hashes apart in logs.
        write!(f, "TokenHash({}…)", hex::encode(&self.0[..4]))
    }
}

/// The identifier of an access token: public, used to list and revoke it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct AccessTokenId(uuid::Uuid);

impl AccessTokenId {
    /// A fresh random id.
    pub fn generate() -> Self {
        AccessTokenId(uuid::Uuid::new_v4())
    }

    /// The id as a UUID.
    pub fn as_uuid(&self) -> &uuid::Uuid {
        &self.0
    }
}

impl From<uuid::Uuid> for AccessTokenId {
    fn from(u: uuid::Uuid) -> Self {
        AccessTokenId(u)
    }
}

impl fmt::Display for AccessTokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for AccessTokenId {
    type Err = AccessTokenIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(AccessTokenId).map_err(AccessTokenIdError)
    }
}

/// Why a string is not an [`AccessTokenId`]: it is no UUID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a token id is a UUID such as 7b0e5d4e-8a51-4c2e-9a38-4a5b2c1d0e9f, as token listings show it ({0})")]
pub struct AccessTokenIdError(uuid::Error);

/// Why a string is not a valid token name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenNameError {
    /// The name is empty.
    #[error("token name is empty")]
    Empty,
    /// The name is longer than 64 bytes.
    #[error("token name is {0} bytes, longer than 64")]
    TooLong(usize),
    /// A character outside `[A-Za-z0-9._-]` appears, or the first is not
    /// alphanumeric.
    #[error("token name contains invalid character {0:?}")]
    InvalidCharacter(char),
}

/// A validated token name chosen by its owner: `[A-Za-z0-9][A-Za-z0-9._-]{0,63}`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenName {
    repr: Box<str>,
}

impl TokenName {
    /// The name text.
    pub fn as_str(&self) -> &str {
        &self.repr
    }
}

impl FromStr for TokenName {
    type Err = TokenNameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let first = s.chars().next().ok_or(TokenNameError::Empty)?;
        if s.len() > 64 {
            return Err(TokenNameError::TooLong(s.len()));
        }
        if !first.is_ascii_alphanumeric() {
            return Err(TokenNameError::InvalidCharacter(first));
        }
        if let Some(bad) = s
            .chars()
            .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        {
            return Err(TokenNameError::InvalidCharacter(bad));
        }
        Ok(TokenName { repr: s.into() })
    }
}

impl fmt::Display for TokenName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.repr)
    }
}

impl fmt::Debug for TokenName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenName({})", self.repr)
    }
}

serde_via_str!(TokenName);
serde_via_str!(AccessTokenId);

/// A stored access token: everything but the secret itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessToken {
    /// Public identifier.
    pub id: AccessTokenId,
    /// Owner-chosen name, unique per owner.
    pub name: TokenName,
    /// Whose rights the token carries: a user or a service account.
    pub owner: Subject,
    /// SHA-256 of the token text.
    pub hash: TokenHash,
    /// When it was made.
    pub created: OffsetDateTime,
    /// When it stops working, if ever.
    pub expires: Option<OffsetDateTime>,
    /// When it was last used to authenticate, if ever.
    pub last_used: Option<OffsetDateTime>,
}

impl AccessToken {
    /// Makes a fresh token for `owner`: the record to store and the secret to
    /// show once.
    pub fn generate(
        owner: Subject,
        name: TokenName,
        expires: Option<OffsetDateTime>,
    ) -> Result<(AccessToken, AccessTokenSecret), CredentialError> {
        let secret = AccessTokenSecret::generate()?;
        let token = AccessToken {
            id: AccessTokenId::generate(),
            name,
            owner,
            hash: secret.hash(),
            created: OffsetDateTime::now_utc(),
            expires,
            last_used: None,
        };
        Ok((token, secret))
    }

    /// Whether the token has expired at `now`.
    pub fn is_expired(&self, now: OffsetDateTime) -> bool {
        self.expires.is_some_and(|e| e <= now)
    }
}

/// Serialises a [`TokenHash`] as lowercase hex (for admin APIs that list
/// token metadata).
impl Serialize for TokenHash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(self.0))
    }
}

impl<'de> Deserialize<'de> for TokenHash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        let mut out = [0u8; 32];
        hex::decode_to_slice(s.as_bytes(), &mut out).map_err(serde::de::Error::custom)?;
        Ok(TokenHash(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_ids_are_uuids_and_say_so() {
        let id = AccessTokenId::generate();
        assert_eq!(id.to_string().parse::<AccessTokenId>(), Ok(id));
        let e = "nope".parse::<AccessTokenId>().unwrap_err().to_string();
        assert!(e.starts_with("a token id is a UUID such as "), "{e}");
    }

    #[test]
    fn passwords_hash_and_verify() {
        let hasher = PasswordHasher::insecure_fast();
        let pw = Password::new("correct horse");
        let hash = hasher.hash(&pw).unwrap();
        assert!(hash.as_phc().starts_with("$argon2id$"));
        assert!(hasher.verify(&pw, &hash));
        assert!(!hasher.verify(&Password::new("wrong"), &hash));
        // Parameters come from the hash, not the hasher.
        assert!(PasswordHasher::new().verify(&pw, &hash));
        assert_eq!(PasswordHash::from_phc(hash.as_phc()).unwrap(), hash);
        assert_eq!(
            PasswordHash::from_phc("plain"),
            Err(CredentialError::InvalidHash)
        );
    }

    /// Hashes made here verify with the argon2 crate's own verifier, and
    /// its hashes (every variant and version) verify here.
    #[test]
    fn hashes_agree_with_the_argon2_crate() {
        use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
        let pw = Password::new("correct horse");
        let ours = PasswordHasher::insecure_fast().hash(&pw).unwrap();
        let theirs = Argon2::default();
        assert!(theirs
            .verify_password(b"correct horse", ours.as_phc())
            .is_ok());
        assert!(theirs.verify_password(b"wrong", ours.as_phc()).is_err());
        for algorithm in [Algorithm::Argon2i, Algorithm::Argon2d, Algorithm::Argon2id] {
            for version in [Version::V0x10, Version::V0x13] {
                let params = Params::new(64, 2, 2, Some(24)).unwrap();
                let phc = Argon2::new(algorithm, version, params)
                    .hash_password_with_salt(b"correct horse", b"saltsaltsalt")
                    .unwrap()
                    .to_string();
                let hash = PasswordHash::from_phc(&phc).unwrap();
                let hasher = PasswordHasher::new();
                assert!(hasher.verify(&pw, &hash), "{phc}");
                assert!(
                    !hasher.verify(&Password::new("correct horse "), &hash),
                    "{phc}"
                );
            }
        }
        // Parsable PHC strings that are not argon2's, or lack a part.
        for phc in [
            "$scrypt$ln=4,r=8,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
            "$argon2id$v=19$m=64,t=2,p=1$c2FsdHNhbHQ",
            "$argon2id$v=99$m=64,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
        ] {
            let hash = PasswordHash::from_phc(phc).unwrap();
            assert!(!PasswordHasher::new().verify(&pw, &hash), "{phc}");
        }
    }

    #[test]
    fn default_params_hash() {
        let hasher = PasswordHasher::new();
        let pw = Password::generate().unwrap();
        assert_eq!(pw.expose().len(), 32);
        let hash = hasher.hash(&pw).unwrap();
        assert!(hash.as_phc().contains("m=7168,t=5,p=1"));
        assert!(hasher.verify(&pw, &hash));
    }

    #[test]
    fn secrets_are_redacted() {
        let pw = Password::new("hunter2");
        assert!(!format!("{pw:?}").contains("hunter2"));
        let hash = PasswordHasher::insecure_fast().hash(&pw).unwrap();
        assert!(!format!("{hash:?}").contains("argon2"));
        let (token, secret) =
            AccessToken::generate("alice".parse().unwrap(), "ci".parse().unwrap(), None).unwrap();
        let body = &secret.expose()[ACCESS_TOKEN_PREFIX.len()..];
        assert!(!format!("{secret:?}").contains(body));
        assert!(!format!("{token:?}").contains(body));
    }

    #[test]
    fn access_tokens() {
        let (token, secret) =
            AccessToken::generate("alice".parse().unwrap(), "ci".parse().unwrap(), None).unwrap();
        assert!(AccessTokenSecret::looks_like(secret.expose()));
        assert_eq!(secret.expose().len(), ACCESS_TOKEN_LEN);
        assert!(token.hash.ct_eq(&TokenHash::of(secret.expose())));
        let (_, other) =
            AccessToken::generate("alice".parse().unwrap(), "ci".parse().unwrap(), None).unwrap();
        assert_ne!(secret, other);
        assert!(!token.hash.ct_eq(&other.hash()));
        assert!(!token.is_expired(OffsetDateTime::now_utc()));
        let json = serde_json::to_string(&token.hash).unwrap();
        assert_eq!(
            serde_json::from_str::<TokenHash>(&json).unwrap(),
            token.hash
        );
    }

    #[test]
    fn token_names() {
        assert!("ci-2024.main".parse::<TokenName>().is_ok());
        assert_eq!("".parse::<TokenName>(), Err(TokenNameError::Empty));
        assert_eq!(
            "-x".parse::<TokenName>(),
            Err(TokenNameError::InvalidCharacter('-'))
        );
        assert_eq!(
            "a b".parse::<TokenName>(),
            Err(TokenNameError::InvalidCharacter(' '))
        );
    }
}
