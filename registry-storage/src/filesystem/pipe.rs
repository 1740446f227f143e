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
use std::sync::{Arc, LazyLock, Mutex};

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

/// The sink of a [`drain_into`] between writes.
enum Idle<S: Send + 'static, F> {
    /// Not opened yet: opening is blocking work, so the first write job
    /// does it on its thread (one hand-off less for a small body).
    Unopened(F),
    /// Opened by an earlier write.
    Open(OffThread<S>),
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

/// What [`drain_into`] did with a body.
pub(crate) enum Drained<S> {
    /// Every byte went into the sink, returned here.
    Written(S),
    /// The body ended before it filled a batch, and it was to be kept:
    /// here it is, and the sink was never opened.
    Kept(Bytes),
}

/// Feeds `body` into the sink `open` makes (blocking: it runs on the first
/// write job's thread), writing on a blocking thread while the next batches
/// arrive. Returns the sink once every byte was written, or the body
/// itself when it ends before filling one batch and `keep_short` says so,
/// or is empty: then the sink is never opened and no thread borrowed. On any error, or when the returned future is dropped, an opened
/// sink is dropped on a blocking thread after the write in flight: that is
/// where it cleans up.
///
/// No thread is held while the body waits for the network: each write job
/// takes the batches gathered so far and returns the sink when done.
pub(crate) async fn drain_into<S, F>(
    open: F,
    mut body: ByteStream,
    keep_short: bool,
) -> Result<Drained<S>>
where
    S: ChunkSink,
    F: FnOnce() -> Result<S> + Send + 'static,
{
    // Raised when this future fails or is dropped: a write job then skips
    // its remaining batches and drops the sink at once (a dropped request
    // must not keep writing, nor delay its rollback).
    let stop = StopOnDrop(Arc::new(AtomicBool::new(false)));
    let mut idle = Some(Idle::Unopened(open));
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
                let sink = match sink {
                    Idle::Unopened(open) => open()?,
                    Idle::Open(sink) => sink.into_inner(),
                };
                write_batches(sink, batches, &stopped, writer)
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
                idle = Some(Idle::Open(written.map_err(worker_gone)??));
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
                            idle = Some(Idle::Open(sink));
                        }
                    }
                    // Never opened: nothing to undo.
                    if let Some(Idle::Open(sink)) = idle.take() {
                        let sink = sink.into_inner();
                        let _ = tokio::task::spawn_blocking(move || drop(sink)).await;
                    }
                    return Err(e);
                }
                None => {
                    // Unopened: no write job ever started, so everything
                    // is in `pending`.
                    let unopened = matches!(idle, Some(Idle::Unopened(_)));
                    if unopened && (keep_short || pending.is_empty()) {
                        return Ok(Drained::Kept(pending.freeze()));
                    }
                    body_done = true;
                    if !pending.is_empty() {
                        ready.push(pending.split().freeze());
                    }
                }
            },
        }
    }
    match idle.take().expect("the sink is idle after the last write") {
        Idle::Open(sink) => Ok(Drained::Written(sink.into_inner())),
        // The body ended with bytes for a write job, which opens the sink.
        Idle::Unopened(_) => unreachable!("a body that started no write is kept"),
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

/// Most spare buffers a read stream keeps for its next chunks.
const SPARE_BUFFERS: usize = 2;

/// The chunk buffers of one read stream. A chunk lends its buffer to the
/// response as [`Bytes`]; when the connection has sent and dropped it, the
/// buffer comes back here and the stream reads a later chunk into it. So a
/// long pull touches two or three buffers' pages once, instead of a fresh
/// allocation's (page faults, zeroing by the kernel) per chunk.
#[derive(Clone, Default)]
struct Recycler(Arc<Mutex<Vec<Vec<u8>>>>);

impl Recycler {
    /// A buffer of at least `n` initialized bytes: a returned one, or new.
    fn buffer(&self, n: usize) -> Vec<u8> {
        let spare = self.0.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match spare {
            Some(buf) if buf.len() >= n => buf,
            _ => vec![0; n],
        }
    }

    /// `buf[..len]` as [`Bytes`] that return `buf` here when dropped.
    fn lend(&self, buf: Vec<u8>, len: usize) -> Bytes {
        Bytes::from_owner(Lent {
            buf,
            len,
            home: self.clone(),
        })
    }
}

/// A recycled buffer while the response holds it.
struct Lent {
    buf: Vec<u8>,
    len: usize,
    home: Recycler,
}

impl AsRef<[u8]> for Lent {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        let mut spare = self.home.0.lock().unwrap_or_else(|e| e.into_inner());
        if spare.len() < SPARE_BUFFERS {
            spare.push(std::mem::take(&mut self.buf));
        }
    }
}

/// Reads the next `n` bytes of `file` (on a blocking thread) into a buffer
/// of `buffers`, and hands the file back for the following chunk.
fn read_chunk(
    mut file: File,
    path: &std::path::Path,
    n: u64,
    buffers: &Recycler,
) -> (File, Result<Bytes>) {
    // `n` is at most READ_CHUNK, so it fits in usize.
    let n = n as usize;
    let mut buf = buffers.buffer(n);
    let mut filled = 0;
    let outcome = loop {
        if filled == n {
            break Ok(());
        }
        match file.read(&mut buf[filled..n]) {
            Ok(0) => {
                break Err(io_error(
                    "reading",
                    path,
                    std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        format!("file ended {} bytes early", n - filled),
                    ),
                ))
            }
            Ok(got) => filled += got,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => break Err(io_error("reading", path, e)),
        }
    };
    (file, outcome.map(|()| buffers.lend(buf, n)))
}

type ReadJob = JoinHandle<(File, Result<Bytes>)>;

/// Starts reading the next chunk if any remains.
fn next_read(
    file: File,
    path: &Arc<PathBuf>,
    remaining: &mut u64,
    buffers: &Recycler,
) -> Option<ReadJob> {
    if *remaining == 0 {
        return None;
    }
    let n = (*remaining).min(READ_CHUNK);
    *remaining -= n;
    let (path, buffers) = (path.clone(), buffers.clone());
    Some(tokio::task::spawn_blocking(move || {
        read_chunk(file, &path, n, &buffers)
    }))
}

/// Streams `len` bytes of `file` (already positioned), read on a blocking
/// thread one chunk ahead of the consumer. A thread is borrowed per chunk
/// read, never held while a slow client takes its time.
pub(crate) fn read_ahead(file: File, path: PathBuf, len: u64) -> ByteStream {
    let path = Arc::new(path);
    let buffers = Recycler::default();
    let mut remaining = len;
    let first = next_read(file, &path, &mut remaining, &buffers);
    stream::unfold(
        (first, remaining, path, buffers),
        |(job, mut remaining, path, buffers)| async move {
            let (file, chunk) = match job?.await {
                Ok(done) => done,
                Err(e) => return Some((Err(worker_gone(e)), (None, 0, path, buffers))),
            };
            if chunk.is_err() {
                return Some((chunk, (None, 0, path, buffers)));
            }
            // Read the next chunk while this one goes out.
            let next = next_read(file, &path, &mut remaining, &buffers);
            Some((chunk, (next, remaining, path, buffers)))
        },
    )
    .boxed()
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::io::Write;

    use super::*;

    fn file_with(bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        File::create(&path).unwrap().write_all(bytes).unwrap();
        (dir, path)
    }

    #[tokio::test]
    async fn a_long_read_comes_through_a_few_reused_buffers() {
        let len = 6 * READ_CHUNK as usize + 123;
        let bytes: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let (_dir, path) = file_with(&bytes);
        let mut stream = read_ahead(File::open(&path).unwrap(), path, len as u64);
        let mut read = Vec::new();
        let mut buffers = HashSet::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.unwrap();
            buffers.insert(chunk.as_ptr() as usize);
            read.extend_from_slice(&chunk);
            // Dropped here, as a connection drops what it has sent.
        }
        assert!(
            read == bytes,
            "the stream returned other bytes than the file's"
        );
        // One chunk consumed, one read ahead, one spare: never a buffer per chunk.
        assert!(buffers.len() <= 3, "{} buffers for 7 chunks", buffers.len());
    }

    #[tokio::test]
    async fn a_file_shorter_than_announced_ends_the_stream_with_an_error() {
        let (_dir, path) = file_with(&[7; 1000]);
        let mut stream = read_ahead(File::open(&path).unwrap(), path, 3000);
        let err = stream.next().await.unwrap().unwrap_err().to_string();
        assert!(err.contains("file ended 2000 bytes early"), "{err}");
        assert!(stream.next().await.is_none());
    }
}
