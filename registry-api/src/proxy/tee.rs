//! One upstream blob body feeding the client and the store at once.
//!
//! The leader of a fetch (the first request for a blob that is not
//! cached) reads the upstream body once and sends each chunk to the
//! store's `put` and to its client through bounded channels, so memory
//! stays a few chunks whatever the blob's size, and the slower of the two
//! sets the pace. The last chunk is held back until the store verified the
//! digest: a client can never read a whole body of wrong bytes, it gets a
//! cut connection instead. Requests arriving while the fetch runs wait for
//! its end and are then served from the store.
//!
//! A client slower than the upstream slows the fetch, but only so much:
//! the fetch waits for its client at most [`Tee::client_idle`] *in all*
//! (not per chunk). Past that the client is cut and the fetch goes on at
//! the upstream's pace for the store and the waiters, so a client that
//! trickles cannot hold every other puller of the blob (nor the upstream
//! connection) for as long as it likes; it gets the blob from the store
//! when it retries.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use registry_core::{Digest, RepositoryName};
use registry_storage::{BlobInfo, BlobTicket, ByteStream, StorageError};
use tokio::sync::{mpsc, watch};

use super::fetch::FetchError;
use crate::service::Registry;

/// Chunks buffered towards the store and towards the client (each).
const CHANNEL_CHUNKS: usize = 16;

/// The outcome of a blob fetch as its waiters see it.
pub(crate) type FetchResult = Result<(), FetchError>;

type Key = (RepositoryName, Digest);
type Entries = Arc<Mutex<HashMap<Key, Waiting>>>;

/// A wait for the end of a fetch: its outcome, and how many bytes it has
/// received so far (a waiter gives up on a fetch that stopped moving).
#[derive(Debug, Clone)]
pub(crate) struct Waiting {
    rx: watch::Receiver<Option<FetchResult>>,
    progress: Arc<AtomicU64>,
}

/// Blob fetches in flight, by repository and digest.
#[derive(Debug, Default)]
pub(crate) struct BlobFetches {
    entries: Entries,
}

/// What a request for an uncached blob is to the fetch of that blob.
pub(crate) enum Joined {
    /// No fetch was running: this request runs it.
    Leader(Leader),
    /// A fetch runs: wait for its end.
    Follower(Waiting),
}

impl BlobFetches {
    /// Joins the fetch of `digest` into `repo`, or becomes its leader.
    pub(crate) fn join(&self, repo: &RepositoryName, digest: &Digest) -> Joined {
        let key = (repo.clone(), digest.clone());
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(running) = entries.get(&key) {
            return Joined::Follower(running.clone());
        }
        let (tx, rx) = watch::channel(None);
        let progress = Arc::new(AtomicU64::new(0));
        entries.insert(
            key.clone(),
            Waiting {
                rx,
                progress: Arc::clone(&progress),
            },
        );
        Joined::Leader(Leader {
            entries: Arc::clone(&self.entries),
            key,
            tx: Some(tx),
            progress,
        })
    }
}

/// The leader's hold on a fetch: ending it (or dropping it, should the
/// fetch task die) removes the entry and wakes the waiters.
pub(crate) struct Leader {
    entries: Entries,
    key: Key,
    tx: Option<watch::Sender<Option<FetchResult>>>,
    progress: Arc<AtomicU64>,
}

impl Leader {
    /// A wait for this fetch's outcome.
    pub(crate) fn subscribe(&self) -> Option<Waiting> {
        self.tx.as_ref().map(|tx| Waiting {
            rx: tx.subscribe(),
            progress: Arc::clone(&self.progress),
        })
    }

    /// Records that the fetch has received `bytes` in all.
    fn progressed(&self, bytes: u64) {
        self.progress.store(bytes, Ordering::Relaxed);
    }

    /// Ends the fetch with `result`.
    pub(crate) fn finish(mut self, result: FetchResult) {
        self.end(result);
    }

    fn end(&mut self, result: FetchResult) {
        let Some(tx) = self.tx.take() else { return };
        // Removed before waking the waiters: one that retries after a
        // failure starts a new fetch instead of rejoining this one.
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.key);
        let _ = tx.send(Some(result));
    }
}

impl Drop for Leader {
    fn drop(&mut self) {
        self.end(Err(FetchError::Aborted));
    }
}

/// Waits for the end of a fetch, as long as the fetch receives bytes:
/// a fetch that received none for `idle` (stuck, or not started yet after
/// that long) is given up on, as an upstream failure the caller may retry.
/// The fetch itself is cut when the upstream sends too little
/// ([`Tee::min_rate`]), which wakes its waiters with that failure.
pub(crate) async fn wait(waiting: Waiting, idle: Duration) -> FetchResult {
    let Waiting { mut rx, progress } = waiting;
    let mut seen = progress.load(Ordering::Relaxed);
    loop {
        match tokio::time::timeout(idle, rx.wait_for(Option::is_some)).await {
            Ok(Ok(outcome)) => return outcome.clone().unwrap_or(Err(FetchError::Aborted)),
            Ok(Err(_)) => return Err(FetchError::Aborted),
            Err(_) => {
                let now = progress.load(Ordering::Relaxed);
                if now == seen {
                    return Err(FetchError::upstream(format!(
                        "the upstream fetch of this blob received nothing for {} s",
                        idle.as_secs()
                    )));
                }
                seen = now;
            }
        }
    }
}

/// The minimum pace of an upstream body: at least `rate` bytes a second
/// over every `window` of time spent waiting for it (or what is left of
/// the body, when less).
struct Pace {
    rate: u64,
    window: Duration,
    size: u64,
    waited: Duration,
    at_start: u64,
}

impl Pace {
    fn new(rate: u64, window: Duration, size: u64) -> Self {
        Pace {
            rate,
            window,
            size,
            waited: Duration::ZERO,
            at_start: 0,
        }
    }

    /// Counts `waited` more time waiting for the upstream, which has sent
    /// `received` bytes in all; why the fetch must stop, when it must.
    fn waited(&mut self, waited: Duration, received: u64) -> Option<String> {
        if self.rate == 0 || self.window.is_zero() {
            return None;
        }
        self.waited += waited;
        if self.waited < self.window {
            return None;
        }
        let wanted = (self.rate as f64 * self.waited.as_secs_f64()) as u64;
        let wanted = wanted.min(self.size.saturating_sub(self.at_start));
        let got = received.saturating_sub(self.at_start);
        if got < wanted {
            return Some(format!(
                "the upstream sent {got} bytes in {:.0} s, less than the {} bytes/s a fetch needs",
                self.waited.as_secs_f64(),
                self.rate
            ));
        }
        self.waited = Duration::ZERO;
        self.at_start = received;
        None
    }
}

/// A channel receiver as a byte stream.
fn receiver_stream(rx: mpsc::Receiver<Result<Bytes, StorageError>>) -> ByteStream {
    futures::stream::unfold(rx, |mut rx| async move {
        let item = rx.recv().await?;
        Some((item, rx))
    })
    .boxed()
}

/// Everything one fetch needs once the upstream answered.
pub(crate) struct Tee {
    pub(crate) registry: Registry,
    pub(crate) repo: RepositoryName,
    pub(crate) digest: Digest,
    pub(crate) ticket: BlobTicket,
    pub(crate) leader: Leader,
    /// How long the fetch may wait for its client in all (summed over
    /// every chunk the client was not ready for) before the client is cut;
    /// the fetch then goes on for the store and the waiters.
    pub(crate) client_idle: Duration,
    /// The upstream's name, for logs.
    pub(crate) upstream: String,
    /// The size the upstream announced (`Content-Length`), checked against
    /// the limits before the fetch started: a body longer than it is cut.
    pub(crate) size: u64,
    /// The least the upstream must send per second, averaged over every
    /// `window` spent waiting for it (the rest of the blob, when less):
    /// a trickling upstream cannot hold the fetch and its waiters.
    pub(crate) min_rate: u64,
    /// See `min_rate`.
    pub(crate) window: Duration,
}

impl Tee {
    /// Starts the fetch of `body`; the client's stream when `with_client`.
    pub(crate) fn start<S, E>(self, body: S, with_client: bool) -> Option<ByteStream>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        let (store_tx, store_rx) = mpsc::channel(CHANNEL_CHUNKS);
        let (client_tx, client_rx) = match with_client {
            true => {
                let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
                (Some(tx), Some(rx))
            }
            false => (None, None),
        };
        let blobs = self.registry.blobs().clone();
        let digest = self.digest.clone();
        let put = tokio::spawn(async move { blobs.put(&digest, receiver_stream(store_rx)).await });
        let body = body.boxed();
        tokio::spawn(self.pump(body, store_tx, client_tx, put));
        client_rx.map(receiver_stream)
    }

    async fn pump<E: std::fmt::Display>(
        self,
        mut body: BoxStream<'static, Result<Bytes, E>>,
        store_tx: mpsc::Sender<Result<Bytes, StorageError>>,
        mut client: Option<mpsc::Sender<Result<Bytes, StorageError>>>,
        put: tokio::task::JoinHandle<registry_storage::Result<BlobInfo>>,
    ) {
        let mut held: Option<Bytes> = None;
        let mut failure: Option<String> = None;
        let mut patience = self.client_idle;
        let mut received: u64 = 0;
        let mut pace = Pace::new(self.min_rate, self.window, self.size);
        loop {
            let asked = Instant::now();
            let next = body.next().await;
            let waited = asked.elapsed();
            match next {
                None => break,
                Some(Err(e)) => {
                    failure = Some(format!("the upstream body failed: {e}"));
                    break;
                }
                Some(Ok(chunk)) => {
                    received = received.saturating_add(chunk.len() as u64);
                    if let Some(reason) = pace.waited(waited, received) {
                        failure = Some(reason);
                        break;
                    }
                    if chunk.is_empty() {
                        continue;
                    }
                    if received > self.size {
                        failure = Some(format!(
                            "the upstream sent more than the {} bytes it announced",
                            self.size
                        ));
                        break;
                    }
                    self.leader.progressed(received);
                    // The store stopped reading: it failed, and says why below.
                    if store_tx.send(Ok(chunk.clone())).await.is_err() {
                        break;
                    }
                    if let Some(previous) = held.replace(chunk) {
                        self.forward(&mut client, &mut patience, Ok(previous)).await;
                    }
                }
            }
        }
        if let Some(reason) = &failure {
            // The store discards what it got instead of publishing it.
            let _ = store_tx
                .send(Err(StorageError::Incoming {
                    source: reason.clone().into(),
                }))
                .await;
        }
        drop(store_tx);
        let stored = put.await;
        let result = match (failure, stored) {
            (Some(reason), _) => Err(FetchError::upstream(reason)),
            (None, Err(e)) => Err(FetchError::local(format!("blob store task failed: {e}"))),
            (None, Ok(Err(StorageError::DigestMismatch { expected, actual }))) => {
                tracing::warn!(upstream = %self.upstream, repository = %self.repo,
                    expected = %expected, actual = %actual,
                    "upstream served wrong bytes for a blob; nothing stored");
                Err(FetchError::upstream(format!(
                    "the upstream served bytes whose digest is {actual} for blob {expected}"
                )))
            }
            (None, Ok(Err(e))) => {
                tracing::warn!(repository = %self.repo, digest = %self.digest, error = %e,
                    "storing a blob fetched from the upstream failed");
                Err(FetchError::stored(e))
            }
            (None, Ok(Ok(info))) => {
                let ticket = self.ticket.clone().with_size(info.size);
                match self
                    .registry
                    .metadata()
                    .link_blob_with(&self.repo, &ticket)
                    .await
                {
                    Ok(()) => Ok(()),
                    // A quota refusal, or a prune deleting the blob meanwhile.
                    Err(e) => {
                        tracing::warn!(repository = %self.repo, digest = %self.digest,
                            error = %e, "a blob fetched from the upstream was not linked");
                        Err(FetchError::stored(e))
                    }
                }
            }
        };
        match &result {
            Ok(()) => {
                if let Some(last) = held {
                    self.forward(&mut client, &mut patience, Ok(last)).await;
                }
            }
            Err(e) => {
                self.registry.metrics().proxy.record_error();
                // An error item ends the client's body early: its
                // connection is cut rather than the response completed.
                let reason = e.to_string();
                self.forward(
                    &mut client,
                    &mut patience,
                    Err(StorageError::Incoming {
                        source: reason.into(),
                    }),
                )
                .await;
            }
        }
        let Tee { leader, .. } = self;
        leader.finish(result);
    }

    /// Sends an item to the client, waiting while it is not ready for at
    /// most what is left of `patience` (which the wait uses up); cuts the
    /// client (drops its sender: its body ends short) when that runs out
    /// or the client went away.
    async fn forward(
        &self,
        client: &mut Option<mpsc::Sender<Result<Bytes, StorageError>>>,
        patience: &mut Duration,
        item: Result<Bytes, StorageError>,
    ) {
        let Some(tx) = client.as_ref() else { return };
        let item = match tx.try_send(item) {
            Ok(()) => return,
            Err(mpsc::error::TrySendError::Closed(_)) => {
                *client = None;
                return;
            }
            Err(mpsc::error::TrySendError::Full(item)) => item,
        };
        let waiting = Instant::now();
        let sent = tx.send_timeout(item, *patience).await;
        *patience = patience.saturating_sub(waiting.elapsed());
        if let Err(e) = sent {
            if matches!(e, mpsc::error::SendTimeoutError::Timeout(_)) {
                tracing::info!(repository = %self.repo, digest = %self.digest,
                    "a client slower than the upstream was cut; the fetch goes on for the store");
            }
            *client = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trickle_is_cut_after_a_window_and_a_steady_body_is_not() {
        let second = Duration::from_secs(1);
        // 1000 bytes/s over 10 s windows, of a 1 MB blob.
        let mut trickle = Pace::new(1000, 10 * second, 1_000_000);
        let mut received = 0;
        let mut cut = None;
        for step in 0..30 {
            received += 1;
            if let Some(reason) = trickle.waited(second, received) {
                cut = Some((step, reason));
                break;
            }
        }
        let (step, reason) = cut.expect("cut");
        assert_eq!(step, 9, "at the end of the first window");
        assert!(reason.contains("less than the 1000 bytes/s"), "{reason}");

        let mut steady = Pace::new(1000, 10 * second, 1_000_000);
        for step in 1..100 {
            assert!(steady.waited(second, step * 2000).is_none());
        }
        // The end of a small blob needs no more than what is left of it.
        let mut small = Pace::new(1000, 10 * second, 500);
        assert!(small.waited(20 * second, 500).is_none());
        // Off when the rate is 0.
        assert!(Pace::new(0, second, 10).waited(60 * second, 0).is_none());
    }
}
