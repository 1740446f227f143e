//! Blob contents generated lazily from a fixed pseudo-random pattern.
//!
//! A blob is identified by `(seed, size)`. Its bytes are 1 MiB blocks, each a
//! rotation of one shared 1 MiB pseudo-random buffer by an offset derived from
//! the seed and the block index, so different seeds give different blobs (and
//! digests) while producing the bytes costs nothing: every chunk is a
//! zero-copy slice of the shared buffer. Nothing holds a whole blob in memory.

use std::convert::Infallible;

use bytes::{Bytes, BytesMut};
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::Frame;
use sha2::{Digest as _, Sha256};

use crate::client::Body;

/// Length of the shared pseudo-random buffer and of one block.
const BLOCK: u64 = 1 << 20;

/// The shared pattern every blob is cut from.
#[derive(Clone)]
pub struct Pattern {
    base: Bytes,
}

impl Pattern {
    /// Builds the 1 MiB pattern from a fixed xorshift64 sequence.
    pub fn new() -> Self {
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut buf = BytesMut::with_capacity(BLOCK as usize);
        while (buf.len() as u64) < BLOCK {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            buf.extend_from_slice(&state.to_le_bytes());
        }
        Pattern { base: buf.freeze() }
    }

    /// The bytes `[offset, offset + len)` of blob `seed` as zero-copy chunks.
    pub fn chunks(&self, seed: u64, offset: u64, len: u64) -> Chunks {
        Chunks {
            base: self.base.clone(),
            seed,
            pos: offset,
            end: offset + len,
        }
    }

    /// The whole of a (small) blob in one buffer.
    pub fn bytes(&self, seed: u64, size: u64) -> Bytes {
        let mut out = BytesMut::with_capacity(size as usize);
        for chunk in self.chunks(seed, 0, size) {
            out.extend_from_slice(&chunk);
        }
        out.freeze()
    }

    /// `sha256:<hex>` of blob `(seed, size)`, computed by streaming the
    /// generator once (about 0.6 s per GiB with SHA-NI).
    pub fn digest(&self, seed: u64, size: u64) -> String {
        let mut hasher = Sha256::new();
        for chunk in self.chunks(seed, 0, size) {
            hasher.update(&chunk);
        }
        format!("sha256:{}", hex(&hasher.finalize()))
    }

    /// A streaming request body of the bytes `[offset, offset + len)` of blob `seed`.
    pub fn body(&self, seed: u64, offset: u64, len: u64) -> Body {
        let frames = self
            .chunks(seed, offset, len)
            .map(|b| Ok::<_, Infallible>(Frame::data(b)));
        BoxBody::new(StreamBody::new(futures::stream::iter(frames)).map_err(|e| match e {}))
    }
}

/// A request body holding `bytes` (manifests, small blobs).
pub fn full(bytes: Bytes) -> Body {
    BoxBody::new(Full::new(bytes).map_err(|e| match e {}))
}

/// An empty request body.
pub fn empty() -> Body {
    full(Bytes::new())
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `sha256:<hex>` of an in-memory buffer.
pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(bytes)))
}

/// Iterator over the chunks of a byte range of one blob (see [`Pattern::chunks`]).
pub struct Chunks {
    base: Bytes,
    seed: u64,
    pos: u64,
    end: u64,
}

impl Chunks {
    /// Where block `block` of this blob starts inside the pattern.
    fn rotation(&self, block: u64) -> u64 {
        // splitmix64 of (seed, block): cheap and well spread.
        let mut z = self
            .seed
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .wrapping_add(block.wrapping_mul(0xBF58_476D_1CE4_E5B9));
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % BLOCK
    }
}

impl Iterator for Chunks {
    type Item = Bytes;

    fn next(&mut self) -> Option<Bytes> {
        if self.pos >= self.end {
            return None;
        }
        let block = self.pos / BLOCK;
        let within = self.pos % BLOCK;
        let start = (self.rotation(block) + within) % BLOCK;
        // Stop at the end of the block, of the range, or of the pattern (wrap).
        let len = (BLOCK - within).min(self.end - self.pos).min(BLOCK - start);
        self.pos += len;
        Some(self.base.slice(start as usize..(start + len) as usize))
    }
}
