//! Staged writes on S3: multipart uploads fed in parts of the configured
//! size, with the tail that does not fill a part kept as an object between
//! appends (or in memory before a publish in the same process).

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use registry_core::Digest;
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

use super::{store_error, S3Backend};
use crate::backend::{AppendMode, StagedWrite};
use crate::blob::{BlobInfo, ByteStream};
use crate::error::{Result, StorageError};

/// Parts uploading at once while the next one fills.
const PARTS_IN_FLIGHT: usize = 2;

/// What a staged write on S3 consists of ([`StagedWrite::state`], JSON).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub(super) struct State {
    /// Where the multipart upload goes.
    key: String,
    /// The multipart upload, once the first part was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    upload: Option<String>,
    /// Its parts' ids (ETags), in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    parts: Vec<String>,
    /// The stored tail: bytes after the last part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tail: Option<String>,
}

impl State {
    pub(super) fn new(key: Path) -> Self {
        State {
            key: key.to_string(),
            ..State::default()
        }
    }

    pub(super) fn encode(&self, written: u64, pending: Bytes) -> StagedWrite {
        StagedWrite {
            written,
            state: serde_json::to_vec(self).expect("staged state serialises"),
            pending,
        }
    }

    fn decode(staged: &StagedWrite) -> Result<Self> {
        serde_json::from_slice(&staged.state)
            .map_err(|e| StorageError::backend(format!("S3 staged write state: {e}")))
    }

    fn key(&self) -> Path {
        Path::from(self.key.as_str())
    }

    fn part_ids(&self) -> Vec<PartId> {
        self.parts
            .iter()
            .map(|id| PartId {
                content_id: id.clone(),
            })
            .collect()
    }
}

/// The bytes after the last part: the pending ones of a final append, or
/// the stored tail object.
async fn tail_bytes(backend: &S3Backend, state: &State, staged: &StagedWrite) -> Result<Bytes> {
    if !staged.pending.is_empty() {
        return Ok(staged.pending.clone());
    }
    match &state.tail {
        Some(tail) => {
            let result = backend
                .store
                .get(&Path::from(tail.as_str()))
                .await
                .map_err(store_error)?;
            result.bytes().await.map_err(store_error)
        }
        None => Ok(Bytes::new()),
    }
}

/// Bytes waiting to fill a part, kept as the chunks they arrived in: a
/// part goes out as those chunks (one request body of several buffers),
/// never copied into one buffer first.
#[derive(Default)]
struct PartBuffer {
    chunks: VecDeque<Bytes>,
    len: usize,
}

impl PartBuffer {
    fn push(&mut self, chunk: Bytes) {
        if !chunk.is_empty() {
            self.len += chunk.len();
            self.chunks.push_back(chunk);
        }
    }

    /// The first `size` bytes (at most `len`), splitting a chunk without
    /// copying it when a part ends inside one.
    fn take(&mut self, size: usize) -> PutPayload {
        let mut part = Vec::new();
        let mut needed = size.min(self.len);
        self.len -= needed;
        while needed > 0 {
            let Some(mut chunk) = self.chunks.pop_front() else {
                break;
            };
            if chunk.len() > needed {
                self.chunks.push_front(chunk.split_off(needed));
            }
            needed -= chunk.len();
            part.push(chunk);
        }
        part.into_iter().collect()
    }

    /// What is left, in one buffer (less than a part: copied once).
    fn into_tail(self) -> Bytes {
        match self.chunks.len() {
            0 => Bytes::new(),
            1 => self.chunks.into_iter().next().unwrap_or_default(),
            _ => {
                let mut tail = BytesMut::with_capacity(self.len);
                for chunk in &self.chunks {
                    tail.extend_from_slice(chunk);
                }
                tail.freeze()
            }
        }
    }
}

/// Parts being uploaded, in order, and the multipart upload they belong to.
struct Uploader<'a> {
    backend: &'a S3Backend,
    key: Path,
    state: State,
    /// Whether this call created the multipart upload (aborted on failure).
    created: bool,
    in_flight: VecDeque<JoinHandle<object_store::Result<PartId>>>,
}

impl Uploader<'_> {
    async fn send(&mut self, part: PutPayload) -> Result<()> {
        let upload = match &self.state.upload {
            Some(upload) => upload.clone(),
            None => {
                let upload = self
                    .backend
                    .store
                    .create_multipart(&self.key)
                    .await
                    .map_err(store_error)?;
                self.created = true;
                self.state.upload = Some(upload.clone());
                upload
            }
        };
        while self.in_flight.len() >= PARTS_IN_FLIGHT {
            self.finish_one().await?;
        }
        let index = self.state.parts.len() + self.in_flight.len();
        let store = self.backend.store.clone();
        let key = self.key.clone();
        self.in_flight.push_back(tokio::spawn(async move {
            store.put_part(&key, &upload, index, part).await
        }));
        Ok(())
    }

    async fn finish_one(&mut self) -> Result<()> {
        let Some(task) = self.in_flight.pop_front() else {
            return Ok(());
        };
        let part = task
            .await
            .map_err(|e| StorageError::backend(format!("part upload task: {e}")))?
            .map_err(store_error)?;
        self.state.parts.push(part.content_id);
        Ok(())
    }

    async fn drain(&mut self) -> Result<()> {
        while !self.in_flight.is_empty() {
            self.finish_one().await?;
        }
        Ok(())
    }

    /// After a failure: what this call started goes away again.
    async fn undo(&mut self) {
        for task in self.in_flight.drain(..) {
            task.abort();
        }
        if let (true, Some(upload)) = (self.created, &self.state.upload) {
            let _ = self.backend.store.abort_multipart(&self.key, upload).await;
        }
    }
}

pub(super) async fn append(
    backend: &S3Backend,
    staged: &StagedWrite,
    mut body: ByteStream,
    mode: AppendMode,
) -> Result<StagedWrite> {
    let state = State::decode(staged)?;
    let mut buffer = PartBuffer::default();
    buffer.push(tail_bytes(backend, &state, staged).await?);
    let mut uploader = Uploader {
        backend,
        key: state.key(),
        state,
        created: false,
        in_flight: VecDeque::new(),
    };
    let mut written = staged.written;
    let streamed = async {
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            written += chunk.len() as u64;
            buffer.push(chunk);
            while buffer.len >= backend.part_size {
                let part = buffer.take(backend.part_size);
                uploader.send(part).await?;
            }
        }
        uploader.drain().await
    }
    .await;
    if let Err(e) = streamed {
        uploader.undo().await;
        return Err(e);
    }
    let tail = buffer.into_tail();
    uploader.state.tail = None;
    if mode == AppendMode::Final {
        return Ok(uploader.state.encode(written, tail));
    }
    if !tail.is_empty() {
        // One object per acknowledged offset: the state this append
        // started from keeps its own tail until the session moved on.
        let key = Path::from(format!("{}.tail-{written}", uploader.state.key));
        if let Err(e) = backend.store.put(&key, tail.into()).await {
            uploader.undo().await;
            return Err(store_error(e));
        }
        uploader.state.tail = Some(key.to_string());
    }
    Ok(uploader.state.encode(written, Bytes::new()))
}

pub(super) async fn publish(
    backend: &S3Backend,
    staged: StagedWrite,
    digest: &Digest,
) -> Result<BlobInfo> {
    let state = State::decode(&staged)?;
    let target = backend.blob_key(digest);
    let tail = tail_bytes(backend, &state, &staged).await?;
    match &state.upload {
        // Everything fits one request.
        None => {
            backend
                .store
                .put(&target, tail.into())
                .await
                .map_err(store_error)?;
        }
        Some(upload) => {
            let key = state.key();
            let mut parts = state.part_ids();
            if !tail.is_empty() {
                let last = backend
                    .store
                    .put_part(&key, upload, parts.len(), tail.into())
                    .await
                    .map_err(store_error)?;
                parts.push(last);
            }
            backend
                .store
                .complete_multipart(&key, upload, parts)
                .await
                .map_err(store_error)?;
            if key != target {
                backend
                    .store
                    .copy(&key, &target)
                    .await
                    .map_err(store_error)?;
                remove(backend, &key).await;
            }
        }
    }
    if let Some(tail) = &state.tail {
        remove(backend, &Path::from(tail.as_str())).await;
    }
    Ok(BlobInfo {
        digest: digest.clone(),
        size: staged.written,
        modified: Some(std::time::SystemTime::now()),
    })
}

pub(super) async fn abort(backend: &S3Backend, staged: &StagedWrite) -> Result<()> {
    let state = State::decode(staged)?;
    let key = state.key();
    if let Some(upload) = &state.upload {
        match backend.store.abort_multipart(&key, upload).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(store_error(e)),
        }
    }
    if let Some(tail) = &state.tail {
        remove(backend, &Path::from(tail.as_str())).await;
    }
    // A session's multipart object, completed by a publish that failed
    // afterwards (blob keys end in hex, never in `/data`).
    if state.upload.is_some() && state.key.ends_with("/data") {
        remove(backend, &key).await;
    }
    Ok(())
}

pub(super) async fn release(backend: &S3Backend, old: &StagedWrite, new: &StagedWrite) {
    let (Ok(old), Ok(new)) = (State::decode(old), State::decode(new)) else {
        return;
    };
    if let Some(tail) = old.tail.filter(|tail| new.tail.as_ref() != Some(tail)) {
        remove(backend, &Path::from(tail.as_str())).await;
    }
}

/// Deletes a staging object; a failure leaves it to the stale sweep.
async fn remove(backend: &S3Backend, key: &Path) {
    if let Err(e) = backend.store.delete(key).await {
        tracing::warn!(%key, error = %e, "could not delete a staging object");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lens(payload: &PutPayload) -> Vec<usize> {
        payload.iter().map(Bytes::len).collect()
    }

    #[test]
    fn parts_are_the_chunks_split_where_a_part_ends() {
        let mut buffer = PartBuffer::default();
        for chunk in ["abc", "defgh", "", "ij"] {
            buffer.push(Bytes::from(chunk));
        }
        assert_eq!(buffer.len, 10);
        let part = buffer.take(4);
        assert_eq!(lens(&part), vec![3, 1]);
        let bytes: Vec<u8> = part.iter().flat_map(|b| b.to_vec()).collect();
        assert_eq!(bytes, b"abcd");
        assert_eq!(buffer.len, 6);
        let part = buffer.take(4);
        assert_eq!(lens(&part), vec![4]);
        assert_eq!(buffer.into_tail(), Bytes::from("ij"));
    }

    #[test]
    fn the_tail_is_every_chunk_left_in_order() {
        let mut buffer = PartBuffer::default();
        assert_eq!(PartBuffer::default().into_tail(), Bytes::new());
        for chunk in ["ab", "cd", "e"] {
            buffer.push(Bytes::from(chunk));
        }
        assert_eq!(buffer.take(100).content_length(), 5);
        assert_eq!(buffer.len, 0);
        buffer.push(Bytes::from("xy"));
        buffer.push(Bytes::from("z"));
        assert_eq!(buffer.into_tail(), Bytes::from("xyz"));
    }
}
