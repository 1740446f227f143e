//! Moving bytes between async streams and blocking file IO without
//! stalling either side: a short bounded queue in each direction, so the
//! network, the hash and the disk work at the same time.

use std::fs::File;
use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::stream::{self, StreamExt};
use tokio::sync::mpsc;

use super::io_error;
use crate::blob::ByteStream;
use crate::error::{Result, StorageError};

/// Incoming chunks are gathered to this size before they are hashed and
/// written: small enough to stay in cache, large enough to keep the
/// per-write overhead low.
const WRITE_BATCH: usize = 256 * 1024;
/// Batches queued between the network and the writer thread.
const WRITE_QUEUE: usize = 4;
/// Bytes read from a file per chunk of a response body.
const READ_CHUNK: u64 = 1024 * 1024;
/// Chunks read ahead of the network.
const READ_QUEUE: usize = 2;

/// Something that consumes the bytes of a stream on a blocking thread.
pub(crate) trait ChunkSink: Send + 'static {
    /// Takes one batch of bytes.
    fn write_chunk(&mut self, data: &[u8]) -> Result<()>;
}

fn worker_gone(e: tokio::task::JoinError) -> StorageError {
    StorageError::backend(e)
}

/// Feeds `body` into `sink` on a blocking thread while the next batches
/// arrive. Returns the sink once every byte was written. On any error, or
/// when the returned future is dropped, the sink is dropped on its thread
/// after the write in flight: that is where it cleans up.
pub(crate) async fn drain_into<S: ChunkSink>(sink: S, mut body: ByteStream) -> Result<S> {
    let (tx, mut rx) = mpsc::channel::<Bytes>(WRITE_QUEUE);
    // Raised when this future fails or is dropped: the writer then skips
    // whatever is still queued and drops the sink at once (a dropped
    // request must not keep writing, nor delay its rollback).
    let stop = StopOnDrop(Arc::new(AtomicBool::new(false)));
    let stopped = stop.0.clone();
    let worker = tokio::task::spawn_blocking(move || {
        let mut sink = sink;
        while let Some(batch) = rx.blocking_recv() {
            if stopped.load(Ordering::Acquire) {
                return Err(StorageError::Incoming {
                    source: "the request was abandoned before its body ended".into(),
                });
            }
            sink.write_chunk(&batch)?;
        }
        Ok(sink)
    });
    let fed: Result<()> = async {
        let mut pending = BytesMut::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            let batch = if pending.is_empty() && chunk.len() >= WRITE_BATCH {
                chunk
            } else {
                pending.extend_from_slice(&chunk);
                if pending.len() < WRITE_BATCH {
                    continue;
                }
                pending.split().freeze()
            };
            if tx.send(batch).await.is_err() {
                // The writer stopped on an error: it is reported below.
                return Ok(());
            }
        }
        if !pending.is_empty() {
            let _ = tx.send(pending.freeze()).await;
        }
        Ok(())
    }
    .await;
    if fed.is_err() {
        stop.0.store(true, Ordering::Release);
    }
    drop(tx);
    // `stop` lives until the writer is done: dropping this future before
    // then raises it.
    let written = worker.await.map_err(worker_gone)?;
    match (fed, written) {
        // The stream failed: the sink was dropped (it cleans up); say why.
        (Err(e), _) => Err(e),
        (Ok(()), written) => written,
    }
}

/// Raises its flag when dropped: harmless once the writer has finished,
/// decisive while it still runs.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// Streams `len` bytes of `file` (already positioned) read on a blocking
/// thread a couple of chunks ahead of the consumer. The thread stops when
/// the stream is dropped.
pub(crate) fn read_ahead(file: File, path: PathBuf, len: u64) -> ByteStream {
    let (tx, rx) = mpsc::channel::<Result<Bytes>>(READ_QUEUE);
    tokio::task::spawn_blocking(move || {
        let mut file = file;
        let mut remaining = len;
        while remaining > 0 {
            let n = remaining.min(READ_CHUNK);
            // `n` is at most READ_CHUNK, so it fits in usize.
            let mut buf = Vec::with_capacity(n as usize);
            let chunk = match (&mut file).take(n).read_to_end(&mut buf) {
                Ok(read) if read as u64 == n => Ok(Bytes::from(buf)),
                Ok(read) => Err(io_error(
                    "reading",
                    &path,
                    std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        format!("file ended {} bytes early", n - read as u64),
                    ),
                )),
                Err(e) => Err(io_error("reading", &path, e)),
            };
            let failed = chunk.is_err();
            if tx.blocking_send(chunk).is_err() || failed {
                return;
            }
            remaining -= n;
        }
    });
    stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
    .boxed()
}
