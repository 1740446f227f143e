//! Moving bytes between async streams and blocking file IO without
//! stalling either side, and without a thread per request: a blocking
//! thread is borrowed only while there are bytes to write or read, so a
//! client that stalls holds a buffer, never a thread. Writes and reads are
//! still pipelined: the next batches arrive from the network while the
//! previous ones are on their way to the disk.

use std::fs::File;
use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};

use bytes::{Bytes, BytesMut};
use futures::stream::{self, StreamExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use super::io_error;
use crate::blob::ByteStream;
use crate::error::{Result, StorageError};

/// Incoming chunks are gathered to this size before they are hashed and
/// written: small enough to stay in cache, large enough to keep the
/// per-write overhead low.
const WRITE_BATCH: usize = 256 * 1024;
/// Batches gathered from the network while a write is in flight.
const WRITE_QUEUE: usize = 4;
/// Bytes read from a file per chunk of a response body.
const READ_CHUNK: u64 = 1024 * 1024;
/// Most blocking threads writing request bodies at once, process-wide.
/// Writers past it wait (asynchronously, holding no thread), so however
/// many uploads stream in, the rest of the blocking pool stays free for
/// pulls, metadata and password checks.
const MAX_WRITERS: usize = 16;

static WRITERS: LazyLock<Arc<Semaphore>> = LazyLock::new(|| Arc::new(Semaphore::new(MAX_WRITERS)));

/// Something that consumes the bytes of a stream on a blocking thread.
pub(crate) trait ChunkSink: Send + 'static {
    /// Takes one batch of bytes.
    fn write_chunk(&mut self, data: &[u8]) -> Result<()>;
}

fn worker_gone(e: tokio::task::JoinError) -> StorageError {
    StorageError::backend(e)
}

fn abandoned() -> StorageError {
    StorageError::Incoming {
        source: "the request was abandoned before its body ended".into(),
    }
}

/// A sink that is only ever dropped on a blocking thread: its drop does
/// file IO (rollback, removal of a temp file), which must not run on an
/// async worker even when a request future is dropped mid-write.
struct OffThread<S: Send + 'static>(Option<S>);

impl<S: Send + 'static> OffThread<S> {
    fn into_inner(mut self) -> S {
        self.0.take().expect("sink present until dropped")
    }
}

impl<S: Send + 'static> Drop for OffThread<S> {
    fn drop(&mut self) {
        let Some(sink) = self.0.take() else { return };
        match tokio::runtime::Handle::try_current() {
            // Detached: a dropped request does not wait for its rollback;
            // the sink's own locks keep others from seeing it half done.
            Ok(handle) => drop(handle.spawn_blocking(move || drop(sink))),
            Err(_) => drop(sink),
        }
    }
}

/// One borrowed thread's work: write the batches ready so far, unless the
/// request was abandoned meanwhile (then the sink is dropped right here,
/// on this thread, which is where it cleans up).
fn write_batches<S: ChunkSink>(
    mut sink: S,
    batches: Vec<Bytes>,
    stopped: &AtomicBool,
    _writer: OwnedSemaphorePermit,
) -> Result<OffThread<S>> {
    for batch in batches {
        if stopped.load(Ordering::Acquire) {
            return Err(abandoned());
        }
        sink.write_chunk(&batch)?;
    }
    if stopped.load(Ordering::Acquire) {
        return Err(abandoned());
    }
    Ok(OffThread(Some(sink)))
}

/// Feeds `body` into `sink`, writing on a blocking thread while the next
/// batches arrive. Returns the sink once every byte was written. On any
/// error, or when the returned future is dropped, the sink is dropped on a
/// blocking thread after the write in flight: that is where it cleans up.
///
/// No thread is held while the body waits for the network: each write job
/// takes the batches gathered so far and returns the sink when done.
pub(crate) async fn drain_into<S: ChunkSink>(sink: S, mut body: ByteStream) -> Result<S> {
    // Raised when this future fails or is dropped: a write job then skips
    // its remaining batches and drops the sink at once (a dropped request
    // must not keep writing, nor delay its rollback).
    let stop = StopOnDrop(Arc::new(AtomicBool::new(false)));
    let mut idle = Some(OffThread(Some(sink)));
    let mut writing: Option<JoinHandle<Result<OffThread<S>>>> = None;
    let mut ready: Vec<Bytes> = Vec::new();
    let mut pending = BytesMut::new();
    let mut body_done = false;
    loop {
        if writing.is_none() && !ready.is_empty() {
            let sink = idle.take().expect("the sink is idle when no write runs");
            let writer = WRITERS
                .clone()
                .acquire_owned()
                .await
                .map_err(StorageError::backend)?;
            let batches = std::mem::take(&mut ready);
            let stopped = stop.0.clone();
            writing = Some(tokio::task::spawn_blocking(move || {
                write_batches(sink.into_inner(), batches, &stopped, writer)
            }));
        }
        if writing.is_none() && body_done {
            break;
        }
        // With no write running, `ready` is empty, so reading is allowed
        // unless the body ended: one branch is always enabled here.
        let may_read = !body_done && ready.len() < WRITE_QUEUE;
        tokio::select! {
            written = async { writing.as_mut().expect("guarded").await }, if writing.is_some() => {
                writing = None;
                // On an error the job dropped the sink: the rollback is done.
                idle = Some(written.map_err(worker_gone)??);
            }
            chunk = body.next(), if may_read => match chunk {
                Some(Ok(chunk)) => {
                    if pending.is_empty() && chunk.len() >= WRITE_BATCH {
                        ready.push(chunk);
                    } else {
                        pending.extend_from_slice(&chunk);
                        if pending.len() >= WRITE_BATCH {
                            ready.push(pending.split().freeze());
                        }
                    }
                }
                Some(Err(e)) => {
                    stop.0.store(true, Ordering::Release);
                    // Let the write in flight end (it drops the sink, seeing
                    // the flag), so the rollback is done when we return.
                    if let Some(job) = writing.take() {
                        if let Ok(Ok(sink)) = job.await {
                            idle = Some(sink);
                        }
                    }
                    if let Some(sink) = idle.take() {
                        let sink = sink.into_inner();
                        let _ = tokio::task::spawn_blocking(move || drop(sink)).await;
                    }
                    return Err(e);
                }
                None => {
                    body_done = true;
                    if !pending.is_empty() {
                        ready.push(pending.split().freeze());
                    }
                }
            },
        }
    }
    Ok(idle
        .take()
        .expect("the sink is idle after the last write")
        .into_inner())
}

/// Raises its flag when dropped: harmless once the writer has finished,
/// decisive while it still runs.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// Reads the next `n` bytes of `file` (on a blocking thread) and hands the
/// file back for the following chunk.
fn read_chunk(mut file: File, path: &std::path::Path, n: u64) -> (File, Result<Bytes>) {
    // `n` is at most READ_CHUNK, so it fits in usize.
    let mut buf = Vec::with_capacity(n as usize);
    let chunk = match (&mut file).take(n).read_to_end(&mut buf) {
        Ok(read) if read as u64 == n => Ok(Bytes::from(buf)),
        Ok(read) => Err(io_error(
            "reading",
            path,
            std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("file ended {} bytes early", n - read as u64),
            ),
        )),
        Err(e) => Err(io_error("reading", path, e)),
    };
    (file, chunk)
}

type ReadJob = JoinHandle<(File, Result<Bytes>)>;

/// Starts reading the next chunk if any remains.
fn next_read(file: File, path: &Arc<PathBuf>, remaining: &mut u64) -> Option<ReadJob> {
    if *remaining == 0 {
        return None;
    }
    let n = (*remaining).min(READ_CHUNK);
    *remaining -= n;
    let path = path.clone();
    Some(tokio::task::spawn_blocking(move || {
        read_chunk(file, &path, n)
    }))
}

/// Streams `len` bytes of `file` (already positioned), read on a blocking
/// thread one chunk ahead of the consumer. A thread is borrowed per chunk
/// read, never held while a slow client takes its time.
pub(crate) fn read_ahead(file: File, path: PathBuf, len: u64) -> ByteStream {
    let path = Arc::new(path);
    let mut remaining = len;
    let first = next_read(file, &path, &mut remaining);
    stream::unfold(
        (first, remaining, path),
        |(job, mut remaining, path)| async move {
            let (file, chunk) = match job?.await {
                Ok(done) => done,
                Err(e) => return Some((Err(worker_gone(e)), (None, 0, path))),
            };
            if chunk.is_err() {
                return Some((chunk, (None, 0, path)));
            }
            // Read the next chunk while this one goes out.
            let next = next_read(file, &path, &mut remaining);
            Some((chunk, (next, remaining, path)))
        },
    )
    .boxed()
}
