//! The one place where received bytes are checked against a promised digest.
//!
//! Every backend feeds what it writes through a [`Verifier`] and publishes
//! only after [`Verifier::finish`] succeeded.

use registry_core::{Digest, Digester};

use crate::error::{Result, StorageError};

/// Hashes bytes as they pass and checks the result against an expected digest.
#[derive(Debug, Clone)]
pub struct Verifier {
    digester: Digester,
}

impl Verifier {
    /// A verifier for content expected to hash to `expected` (its algorithm
    /// is the one computed).
    pub fn new(expected: &Digest) -> Self {
        Verifier {
            digester: Digester::new(expected.algorithm()),
        }
    }

    /// Resumes from a hasher state (an upload session's).
    pub fn from_digester(digester: Digester) -> Self {
        Verifier { digester }
    }

    /// Feeds a chunk.
    pub fn update(&mut self, chunk: &[u8]) {
        self.digester.update(chunk);
    }

    /// Bytes fed so far.
    pub fn size(&self) -> u64 {
        self.digester.bytes_hashed()
    }

    /// The hasher state, to keep with an upload session.
    pub fn digester(&self) -> &Digester {
        &self.digester
    }

    /// Checks the content against `expected`: returns the size, or
    /// `DigestMismatch` with the actual digest.
    pub fn finish(self, expected: &Digest) -> Result<u64> {
        let size = self.digester.bytes_hashed();
        let actual = self.digester.finish();
        if &actual == expected {
            Ok(size)
        } else {
            Err(StorageError::DigestMismatch {
                expected: expected.clone(),
                actual,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_matching_and_rejects_other_content() {
        let expected = Digest::sha256_of(b"abc");
        let mut v = Verifier::new(&expected);
        v.update(b"ab");
        v.update(b"c");
        assert_eq!(v.clone().finish(&expected).unwrap(), 3);
        v.update(b"d");
        assert!(matches!(
            v.finish(&expected),
            Err(StorageError::DigestMismatch { .. })
        ));
    }
}
