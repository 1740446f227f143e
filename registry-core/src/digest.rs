//! Content digests (`algorithm:hex`) and the streaming [`Digester`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::digest::common::hazmat::{SerializableState, SerializedState};
use sha2::Digest as _;

/// A digest algorithm this registry accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Algorithm {
    /// SHA-256, the default for every OCI client.
    Sha256,
    /// SHA-512, allowed by the OCI image spec.
    Sha512,
}

impl Algorithm {
    /// The name used in the digest string (`sha256`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// Number of lowercase hex characters of an encoded digest of this algorithm.
    pub const fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Algorithm {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sha256" => Ok(Algorithm::Sha256),
            "sha512" => Ok(Algorithm::Sha512),
            other => Err(DigestError::UnsupportedAlgorithm(other.to_owned())),
        }
    }
}

/// Why a string is not a valid digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// No `:` separates algorithm and encoded part.
    #[error("digest has no ':' separator")]
    MissingSeparator,
    /// The algorithm is well formed but not one this registry supports.
    #[error("unsupported digest algorithm {0:?}")]
    UnsupportedAlgorithm(String),
    /// The encoded part has the wrong length for its algorithm.
    #[error("digest of {algorithm} must have {expected} hex characters, got {actual}")]
    InvalidLength {
        /// The algorithm named by the digest.
        algorithm: Algorithm,
        /// The length the algorithm requires.
        expected: usize,
        /// The length found.
        actual: usize,
    },
    /// The encoded part contains something other than lowercase hex.
    #[error("digest encoding must be lowercase hex")]
    InvalidEncoding,
}

/// A validated content digest such as `sha256:e3b0c442…`.
///
/// The string form is stored once; the algorithm is kept beside it so that
/// comparisons, hashing and display are cheap.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    repr: Box<str>,
}

impl Digest {
    /// Builds a digest from an algorithm and raw hash bytes.
    ///
    /// Returns [`DigestError::InvalidLength`] when `bytes` does not have the
    /// algorithm's output length.
    pub fn from_bytes(algorithm: Algorithm, bytes: &[u8]) -> Result<Self, DigestError> {
        if bytes.len() * 2 != algorithm.hex_len() {
            return Err(DigestError::InvalidLength {
                algorithm,
                expected: algorithm.hex_len(),
                actual: bytes.len() * 2,
            });
        }
        let mut repr = String::with_capacity(algorithm.as_str().len() + 1 + bytes.len() * 2);
        repr.push_str(algorithm.as_str());
        repr.push(':');
        repr.push_str(&hex::encode(bytes));
        Ok(Digest {
            algorithm,
            repr: repr.into_boxed_str(),
        })
    }

    /// Digest of a byte slice held in memory (manifests, small test blobs).
    pub fn of(algorithm: Algorithm, data: &[u8]) -> Self {
        let mut d = Digester::new(algorithm);
        d.update(data);
        d.finish()
    }

    /// SHA-256 digest of a byte slice.
    pub fn sha256_of(data: &[u8]) -> Self {
        Self::of(Algorithm::Sha256, data)
    }

    /// The algorithm part.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The lowercase hex part after the `:`.
    pub fn hex(&self) -> &str {
        &self.repr[self.algorithm.as_str().len() + 1..]
    }

    /// The full `algorithm:hex` string.
    pub fn as_str(&self) -> &str {
        &self.repr
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (alg, encoded) = s.split_once(':').ok_or(DigestError::MissingSeparator)?;
        let algorithm: Algorithm = alg.parse()?;
        if encoded.len() != algorithm.hex_len() {
            return Err(DigestError::InvalidLength {
                algorithm,
                expected: algorithm.hex_len(),
                actual: encoded.len(),
            });
        }
        if !encoded
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(DigestError::InvalidEncoding);
        }
        Ok(Digest {
            algorithm,
            repr: s.into(),
        })
    }
}

impl TryFrom<&str> for Digest {
    type Error = DigestError;

    fn try_from(s: &str) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.repr)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.repr)
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.repr)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[derive(Clone)]
enum HashState {
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

/// Incremental hasher that yields a [`Digest`].
///
/// Uses the `sha2` crate, which selects the CPU's SHA extensions at run
/// time where they exist. Cloning snapshots the state, so a caller can
/// roll back to it when a write fails part-way.
#[derive(Clone)]
pub struct Digester {
    state: HashState,
    bytes: u64,
}

impl Digester {
    /// Starts a new hash of the given algorithm.
    pub fn new(algorithm: Algorithm) -> Self {
        let state = match algorithm {
            Algorithm::Sha256 => HashState::Sha256(sha2::Sha256::new()),
            Algorithm::Sha512 => HashState::Sha512(sha2::Sha512::new()),
        };
        Digester { state, bytes: 0 }
    }

    /// The algorithm being computed.
    pub fn algorithm(&self) -> Algorithm {
        match self.state {
            HashState::Sha256(_) => Algorithm::Sha256,
            HashState::Sha512(_) => Algorithm::Sha512,
        }
    }

    /// Feeds more bytes.
    pub fn update(&mut self, data: &[u8]) {
        self.bytes += data.len() as u64;
        match &mut self.state {
            HashState::Sha256(h) => h.update(data),
            HashState::Sha512(h) => h.update(data),
        }
    }

    /// Number of bytes fed so far.
    pub fn bytes_hashed(&self) -> u64 {
        self.bytes
    }

    /// Finishes the hash.
    pub fn finish(self) -> Digest {
        let (algorithm, out): (Algorithm, Vec<u8>) = match self.state {
            HashState::Sha256(h) => (Algorithm::Sha256, h.finalize().to_vec()),
            HashState::Sha512(h) => (Algorithm::Sha512, h.finalize().to_vec()),
        };
        Digest::from_bytes(algorithm, &out).expect("hash output length matches its algorithm")
    }
}

/// Why saved bytes are not a [`Digester`] state (see [`Digester::save`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("saved hash state is malformed: {0}")]
pub struct InvalidHashState(&'static str);

/// First byte of a saved state: which algorithm follows.
const SAVED_SHA256: u8 = 1;
const SAVED_SHA512: u8 = 2;

impl Digester {
    /// The hash state as bytes, to keep with an upload session so that
    /// another process continues the hash where this one stopped (without
    /// reading the bytes hashed so far again). Restore with
    /// [`restore`](Self::restore). The bytes are an internal format of this
    /// crate's version, not meant for other programs.
    pub fn save(&self) -> Vec<u8> {
        let (tag, state): (u8, Vec<u8>) = match &self.state {
            HashState::Sha256(h) => (SAVED_SHA256, h.serialize().to_vec()),
            HashState::Sha512(h) => (SAVED_SHA512, h.serialize().to_vec()),
        };
        let mut out = Vec::with_capacity(9 + state.len());
        out.push(tag);
        out.extend_from_slice(&self.bytes.to_le_bytes());
        out.extend_from_slice(&state);
        out
    }

    /// A digester continuing from [`save`](Self::save)d bytes.
    pub fn restore(saved: &[u8]) -> Result<Self, InvalidHashState> {
        let (&tag, rest) = saved.split_first().ok_or(InvalidHashState("empty"))?;
        let (count, state) = rest
            .split_first_chunk::<8>()
            .ok_or(InvalidHashState("no byte count"))?;
        let bytes = u64::from_le_bytes(*count);
        let state = match tag {
            SAVED_SHA256 => HashState::Sha256(deserialize_state(state)?),
            SAVED_SHA512 => HashState::Sha512(deserialize_state(state)?),
            _ => return Err(InvalidHashState("unknown algorithm")),
        };
        Ok(Digester { state, bytes })
    }
}

fn deserialize_state<H: SerializableState>(state: &[u8]) -> Result<H, InvalidHashState> {
    let state = SerializedState::<H>::try_from(state)
        .map_err(|_| InvalidHashState("wrong state length"))?;
    H::deserialize(&state).map_err(|_| InvalidHashState("state rejected by the hash"))
}

impl fmt::Debug for Digester {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Digester")
            .field("algorithm", &self.algorithm())
            .field("bytes", &self.bytes)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn saved_state_continues_the_hash() {
        for algorithm in [Algorithm::Sha256, Algorithm::Sha512] {
            let data: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
            // Split mid-block so that the buffered tail is part of the state.
            let mut first = Digester::new(algorithm);
            first.update(&data[..333]);
            let mut resumed = Digester::restore(&first.save()).unwrap();
            assert_eq!(resumed.bytes_hashed(), 333);
            resumed.update(&data[333..]);
            assert_eq!(resumed.finish(), Digest::of(algorithm, &data));
        }
        let saved = Digester::new(Algorithm::Sha256).save();
        assert!(Digester::restore(&[]).is_err());
        assert!(Digester::restore(&saved[..saved.len() - 1]).is_err());
        let mut wrong = saved.clone();
        wrong[0] = 9;
        assert!(Digester::restore(&wrong).is_err());
    }

    #[test]
    fn parses_and_displays() {
        let d: Digest = EMPTY.parse().unwrap();
        assert_eq!(d.algorithm(), Algorithm::Sha256);
        assert_eq!(d.to_string(), EMPTY);
        assert_eq!(d.hex().len(), 64);
        assert_eq!(Digest::sha256_of(b""), d);
    }

    #[test]
    fn rejects_each_malformation_with_its_own_variant() {
        assert_eq!(
            "sha256".parse::<Digest>(),
            Err(DigestError::MissingSeparator)
        );
        assert!(matches!(
            "md5:abc".parse::<Digest>(),
            Err(DigestError::UnsupportedAlgorithm(_))
        ));
        assert!(matches!(
            "sha256:abc".parse::<Digest>(),
            Err(DigestError::InvalidLength { actual: 3, .. })
        ));
        let upper = EMPTY.to_uppercase().replace("SHA256", "sha256");
        assert_eq!(upper.parse::<Digest>(), Err(DigestError::InvalidEncoding));
    }

    #[test]
    fn sha512_digests() {
        let d = Digest::of(Algorithm::Sha512, b"abc");
        assert_eq!(d.hex().len(), 128);
        assert_eq!(d.to_string().parse::<Digest>().unwrap(), d);
    }

    #[test]
    fn incremental_equals_one_shot() {
        let mut g = Digester::new(Algorithm::Sha256);
        g.update(b"hello ");
        g.update(b"world");
        assert_eq!(g.bytes_hashed(), 11);
        assert_eq!(g.finish(), Digest::sha256_of(b"hello world"));
    }

    #[test]
    fn serde_through_string() {
        let d: Digest = EMPTY.parse().unwrap();
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(json, format!("\"{EMPTY}\""));
        assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), d);
        assert!(serde_json::from_str::<Digest>("\"sha256:zz\"").is_err());
    }
}
