//! Hashing a session's bytes with SHA-256, and SHA-512 when the session
//! announced it, as they stream: the slower SHA-512 beside the stream
//! rather than in its way.

use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use futures::stream::{self, StreamExt};
use registry_core::Digester;
use tokio::task::JoinHandle;

use crate::blob::ByteStream;
use crate::error::StorageError;

/// Bytes gathered before they are handed to the SHA-512 thread.
const BATCH: usize = 1024 * 1024;
/// Bytes the stream may run ahead of the SHA-512 thread before it waits
/// (what is held in memory for it, beyond the bytes in flight anyway).
const MAX_AHEAD: usize = 8 * 1024 * 1024;

/// The hash states of an upload session's bytes: SHA-256 always, SHA-512
/// for a session that announced it (about a third of SHA-256's speed here,
/// which would otherwise cap every chunked push).
#[derive(Clone)]
pub(super) struct Hashes {
    pub(super) sha256: Digester,
    pub(super) sha512: Option<Digester>,
}

/// What verifies a session's bytes against the digest a commit names.
pub(super) enum Verification {
    /// The session's state in the digest's algorithm.
    Hashed(Digester),
    /// The session did not hash in that algorithm (a SHA-512 digest on a
    /// session that did not announce it): the bytes must be read again;
    /// here is their SHA-256 state to publish them by first.
    Rehash(Digester),
}

impl Hashes {
    /// How to verify the bytes against `expected`.
    pub(super) fn for_digest(
        self,
        expected: &registry_core::Digest,
    ) -> crate::Result<Verification> {
        match (expected.algorithm(), self.sha512) {
            (registry_core::Algorithm::Sha256, _) => Ok(Verification::Hashed(self.sha256)),
            (registry_core::Algorithm::Sha512, Some(sha512)) => Ok(Verification::Hashed(sha512)),
            (registry_core::Algorithm::Sha512, None) => Ok(Verification::Rehash(self.sha256)),
            _ => Err(StorageError::NotSupported {
                what: "this digest algorithm for uploads",
            }),
        }
    }
}

/// Where the final [`Hashes`] are once the stream from [`hash_both`] ended.
pub(super) type HashesOut = Arc<Mutex<Option<Hashes>>>;

/// Takes the final hashes; `None` if the stream did not end (or failed).
pub(super) fn take(out: &HashesOut) -> Option<Hashes> {
    out.lock().unwrap_or_else(PoisonError::into_inner).take()
}

struct State {
    body: ByteStream,
    sha256: Digester,
    /// Whether the session hashes SHA-512 at all.
    hash_sha512: bool,
    /// `None` while a job owns it (or when not hashed).
    sha512: Option<Digester>,
    job: Option<JoinHandle<Digester>>,
    batch: Vec<Bytes>,
    batch_len: usize,
    out: HashesOut,
    ended: bool,
}

fn worker_gone(e: tokio::task::JoinError) -> StorageError {
    StorageError::backend(format!("SHA-512 task: {e}"))
}

impl State {
    /// The SHA-512 digester back from the job in flight, if any.
    async fn join(&mut self) -> Result<(), StorageError> {
        if let Some(job) = self.job.take() {
            self.sha512 = Some(job.await.map_err(worker_gone)?);
        }
        Ok(())
    }

    /// Hands the gathered batch to a blocking thread (after the previous
    /// job, which owns the digester).
    async fn dispatch(&mut self) -> Result<(), StorageError> {
        self.join().await?;
        let mut digester = self.sha512.take().expect("no job runs after join");
        let batch = std::mem::take(&mut self.batch);
        self.batch_len = 0;
        self.job = Some(tokio::task::spawn_blocking(move || {
            for chunk in &batch {
                digester.update(chunk);
            }
            digester
        }));
        Ok(())
    }

    async fn chunk(&mut self, chunk: &Bytes) -> Result<(), StorageError> {
        self.sha256.update(chunk);
        if !self.hash_sha512 {
            return Ok(());
        }
        self.batch_len += chunk.len();
        self.batch.push(chunk.clone());
        let job_done = self.job.as_ref().is_none_or(|job| job.is_finished());
        if (self.batch_len >= BATCH && job_done) || self.batch_len >= MAX_AHEAD {
            self.dispatch().await?;
        }
        Ok(())
    }

    async fn finish(&mut self) -> Result<(), StorageError> {
        if !self.batch.is_empty() {
            self.dispatch().await?;
        }
        self.join().await?;
        let sha512 = self.sha512.take();
        *self.out.lock().unwrap_or_else(PoisonError::into_inner) = Some(Hashes {
            sha256: self.sha256.clone(),
            sha512,
        });
        Ok(())
    }
}

/// `body`, with every chunk fed to SHA-256 as it passes and, when `hashes`
/// has a SHA-512 state, to SHA-512 on a blocking thread borrowed per batch
/// (at most one at a time, never while the body waits for the network), so
/// the two run side by side. The final states are in `out` when the stream
/// has ended; the stream ends only after both are complete.
pub(super) fn hash_both(body: ByteStream, hashes: Hashes, out: HashesOut) -> ByteStream {
    let state = State {
        body,
        sha256: hashes.sha256,
        hash_sha512: hashes.sha512.is_some(),
        sha512: hashes.sha512,
        job: None,
        batch: Vec::new(),
        batch_len: 0,
        out,
        ended: false,
    };
    stream::unfold(state, |mut state| async move {
        if state.ended {
            return None;
        }
        let item = match state.body.next().await {
            Some(Ok(chunk)) => state.chunk(&chunk).await.map(|()| chunk),
            Some(Err(e)) => Err(e),
            None => {
                state.ended = true;
                return match state.finish().await {
                    Ok(()) => None,
                    Err(e) => Some((Err(e), state)),
                };
            }
        };
        state.ended = item.is_err();
        Some((item, state))
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use registry_core::Algorithm;

    fn fresh() -> Hashes {
        Hashes {
            sha256: Digester::new(Algorithm::Sha256),
            sha512: Some(Digester::new(Algorithm::Sha512)),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn both_hashes_cover_every_byte_in_order() {
        // Chunks of varied sizes, past several batches and the look-ahead.
        let data: Vec<u8> = (0..20_000_000u32).map(|i| (i % 251) as u8).collect();
        let chunks: Vec<_> = data
            .chunks(123_457)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let out = HashesOut::default();
        let passed: Vec<Bytes> = hash_both(stream::iter(chunks).boxed(), fresh(), out.clone())
            .map(|c| c.unwrap())
            .collect()
            .await;
        assert_eq!(passed.concat(), data);
        let hashes = take(&out).expect("final hashes");
        let mut expect = fresh();
        expect.sha256.update(&data);
        let mut sha512 = expect.sha512.take().unwrap();
        sha512.update(&data);
        assert_eq!(hashes.sha256.finish(), expect.sha256.finish());
        assert_eq!(hashes.sha512.unwrap().finish(), sha512.finish());
    }

    #[tokio::test]
    async fn a_session_without_sha512_hashes_only_sha256() {
        let data = vec![7u8; 3 * BATCH + 5];
        let body = stream::iter([Ok(Bytes::from(data.clone()))]).boxed();
        let out = HashesOut::default();
        let hashes = Hashes {
            sha256: Digester::new(Algorithm::Sha256),
            sha512: None,
        };
        let passed: Vec<Bytes> = hash_both(body, hashes, out.clone())
            .map(|c| c.unwrap())
            .collect()
            .await;
        assert_eq!(passed.concat(), data);
        let hashes = take(&out).expect("final hashes");
        assert!(hashes.sha512.is_none());
        assert_eq!(
            hashes.sha256.finish(),
            registry_core::Digest::sha256_of(&data)
        );
    }

    #[tokio::test]
    async fn a_failed_body_leaves_no_final_hashes() {
        let body = stream::iter([
            Ok(Bytes::from_static(b"abc")),
            Err(StorageError::backend("cut")),
        ])
        .boxed();
        let out = HashesOut::default();
        let items: Vec<_> = hash_both(body, fresh(), out.clone()).collect().await;
        assert_eq!(items.len(), 2);
        assert!(items[1].is_err());
        assert!(take(&out).is_none());
    }
}
