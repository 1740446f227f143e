//! [`FsUploadStore`]: upload sessions as directories, published by rename.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use registry_core::{Algorithm, Digest, Digester, RepositoryName};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

use super::acked::{acked_offset, truncate_to_acked, write_acked};
use super::blob::FsBlobStore;
use super::pipe::{drain_into, ChunkSink};
use super::{blocking, io_error};
use crate::blob::{BlobInfo, ByteStream};
use crate::error::{Result, StorageError};
use crate::upload::{OwnerCounts, UploadId, UploadStatus, UploadStore};
use crate::verify::Verifier;

const STATE_FILE: &str = "state.json";
const DATA_FILE: &str = "data";

/// Session directories without a state file (a create or a removal cut
/// short by a crash) are removed at start once they are this old.
const ORPHAN_AGE: Duration = Duration::from_secs(3600);

/// Read buffer for re-hashing a session's data after a restart.
const REHASH_BUFFER: usize = 1024 * 1024;

/// What `state.json` holds. The offset is in the `acked` file (written at
/// every append, so not here).
#[derive(Debug, Serialize, Deserialize)]
struct SessionState {
    repository: RepositoryName,
    #[serde(with = "time::serde::rfc3339")]
    started: OffsetDateTime,
    /// Who started the session (absent in sessions of older versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    owner: Option<String>,
}

/// The SHA-256 state of a session's data and the length it covers, when
/// this process knows it. `None` until the data file has been hashed.
type HashCache = Option<(u64, Digester)>;

/// Upload sessions under `<root>/uploads/<id>/`: a `state.json` (repository,
/// start time, owner), a `data` file and an `acked` file holding the
/// session's offset (the data file is truncated back to it when a process
/// restarts after a crash mid-append). The last byte's arrival is the data
/// file's modification time.
///
/// Bytes are hashed (SHA-256) as they arrive and the hasher is kept in
/// memory per session; after a restart it is rebuilt by reading the data
/// file once. Commit renames the data file into the [`FsBlobStore`], which
/// must be on the same filesystem for that to be a cheap, atomic rename (it
/// falls back to a copy otherwise).
///
/// Appends to one session are serialised within a process; two processes
/// appending to one session at the same time are not (clients do not do
/// that: each chunk waits for the previous one's answer). The per-owner
/// session counts are kept in memory (rebuilt from the state files when the
/// store opens), so one process owns an upload directory at a time.
#[derive(Debug, Clone)]
pub struct FsUploadStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    uploads: PathBuf,
    blobs: FsBlobStore,
    /// Locks and hash caches of the sessions this process works on; an
    /// entry exists only while a session does (never for an unknown id).
    sessions: Mutex<HashMap<UploadId, Arc<AsyncMutex<HashCache>>>>,
    owners: OwnerCounts,
}

impl FsUploadStore {
    /// Opens (creating if needed) the upload area under `<root>/uploads`,
    /// publishing into `blobs`. Sessions left by an earlier process are
    /// continued.
    pub fn new(root: impl Into<PathBuf>, blobs: FsBlobStore) -> Result<Self> {
        let uploads = root.into().join("uploads");
        super::permissions::create_private_dir(&uploads)
            .map_err(|e| io_error("creating", &uploads, e))?;
        let owners = recover_sessions(&uploads);
        Ok(FsUploadStore {
            inner: Arc::new(Inner {
                uploads,
                blobs,
                sessions: Mutex::new(HashMap::new()),
                owners,
            }),
        })
    }

    /// The blob store commits publish into.
    pub fn blobs(&self) -> &FsBlobStore {
        &self.inner.blobs
    }

    fn session_dir(&self, id: &UploadId) -> PathBuf {
        self.inner.uploads.join(id.as_str())
    }

    /// The lock (and hash cache) of one session, added if missing: callers
    /// remove it again ([`forget`](Self::forget)) when the session turns
    /// out not to exist or ends.
    fn session(&self, id: &UploadId) -> Arc<AsyncMutex<HashCache>> {
        let mut sessions = self
            .inner
            .sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        sessions.entry(id.clone()).or_default().clone()
    }

    /// Removes a session's files and stops counting it for its owner (on
    /// the blocking thread, so that a caller that gives up halfway cannot
    /// leave the count wrong).
    fn end_session(&self, dir: &Path, state: &SessionState) -> Result<()> {
        remove_session(dir)?;
        self.inner.owners.remove(state.owner.as_deref());
        Ok(())
    }

    /// How many sessions this process keeps a lock and hash state for: at
    /// most the open sessions it worked on (for tests and diagnostics).
    pub fn cached_sessions(&self) -> usize {
        self.inner
            .sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// The lock of a session this process works on, if any.
    fn existing(&self, id: &UploadId) -> Option<Arc<AsyncMutex<HashCache>>> {
        self.inner
            .sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .cloned()
    }

    fn forget(&self, id: &UploadId) {
        self.inner
            .sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
    }
}

/// At start: truncates each session's data back to its acknowledged
/// offset (bytes of an append cut short by a crash), removes old orphans,
/// and counts the sessions per owner. Best effort, like the blob store's
/// stale temp files: a session that cannot be read is left as it is.
fn recover_sessions(uploads: &Path) -> OwnerCounts {
    let owners = OwnerCounts::default();
    let Ok(entries) = fs::read_dir(uploads) else {
        return owners;
    };
    let now = SystemTime::now();
    for entry in entries.flatten() {
        let dir = entry.path();
        if dir.join(STATE_FILE).exists() {
            let Some(id) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
                continue;
            };
            if let Ok(state) = read_state(&dir, &id) {
                owners.add(state.owner.as_deref());
            }
            if let Err(e) = open_data(&dir, &id)
                .and_then(|(file, len, _)| truncate_to_acked(&dir, &file, len).map(drop))
            {
                tracing::warn!(path = %dir.display(), error = %e, "cannot recover upload session");
            }
            continue;
        }
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .map(|m| now.duration_since(m).unwrap_or_default() >= ORPHAN_AGE)
            .unwrap_or(false);
        if old {
            if let Err(e) = fs::remove_dir_all(&dir) {
                tracing::warn!(path = %dir.display(), error = %e, "cannot remove orphaned upload");
            }
        }
    }
    owners
}

fn unknown(id: &UploadId) -> StorageError {
    StorageError::UploadUnknown { id: id.to_string() }
}

/// Reads a session's state; a missing state file means no session.
fn read_state(dir: &Path, id: &UploadId) -> Result<SessionState> {
    let path = dir.join(STATE_FILE);
    let text = match fs::read(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(unknown(id)),
        Err(e) => return Err(io_error("reading", &path, e)),
    };
    serde_json::from_slice(&text).map_err(StorageError::backend)
}

/// Opens a session's data file for reading and writing; also returns its
/// length and when it was last written.
fn open_data(dir: &Path, id: &UploadId) -> Result<(File, u64, SystemTime)> {
    let path = dir.join(DATA_FILE);
    let file = match OpenOptions::new().read(true).write(true).open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(unknown(id)),
        Err(e) => return Err(io_error("opening", &path, e)),
    };
    let meta = file.metadata().map_err(|e| io_error("reading", &path, e))?;
    let modified = meta.modified().unwrap_or_else(|_| SystemTime::now());
    Ok((file, meta.len(), modified))
}

/// Hashes a whole data file from its start (after a restart, or for an
/// algorithm other than the cached one). Leaves the position at the end.
fn rehash(file: &mut File, algorithm: Algorithm) -> io::Result<Digester> {
    file.seek(SeekFrom::Start(0))?;
    let mut digester = Digester::new(algorithm);
    let mut buf = vec![0u8; REHASH_BUFFER];
    loop {
        match file.read(&mut buf) {
            Ok(0) => return Ok(digester),
            Ok(n) => digester.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// The SHA-256 state covering all `len` bytes of `file`: the cached one if
/// it covers exactly that, otherwise a fresh hash of the file.
fn sha256_state(cache: &mut HashCache, file: &mut File, len: u64) -> io::Result<Digester> {
    match cache.take() {
        Some((offset, digester)) if offset == len => Ok(digester),
        _ => rehash(file, Algorithm::Sha256),
    }
}

fn status_of(id: &UploadId, state: SessionState, offset: u64, updated: SystemTime) -> UploadStatus {
    let started: SystemTime = state.started.into();
    UploadStatus {
        id: id.clone(),
        repository: state.repository,
        offset,
        started,
        // File times are coarser than the clock: never before the start.
        updated: updated.max(started),
        owner: state.owner,
    }
}

/// Ends a session on disk: the state file goes first, so that a crash in
/// the middle leaves an orphan rather than a half-empty session.
fn remove_session(dir: &Path) -> Result<()> {
    let state = dir.join(STATE_FILE);
    match fs::remove_file(&state) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_error("removing", &state, e)),
    }
    fs::remove_dir_all(dir).map_err(|e| io_error("removing", dir, e))
}

/// An append in progress. Holds the session's lock; dropped without
/// [`finish`](AppendSink::finish) it truncates the data file back to where
/// the append started, so a failed or abandoned append changes nothing.
struct AppendSink {
    file: File,
    dir: PathBuf,
    path: PathBuf,
    old_len: u64,
    digester: Digester,
    cache: OwnedMutexGuard<HashCache>,
    done: bool,
}

impl ChunkSink for AppendSink {
    fn write_chunk(&mut self, data: &[u8]) -> Result<()> {
        self.file
            .write_all(data)
            .map_err(|e| io_error("writing", &self.path, e))?;
        self.digester.update(data);
        Ok(())
    }
}

impl AppendSink {
    /// Keeps the bytes written and records the new hash state.
    ///
    /// Not synced: a chunk lost to a crash only makes the commit's digest
    /// check fail (nothing unverified is ever published), and `commit`
    /// syncs the whole file once before publishing it. Syncing every
    /// `PATCH` cost a flush per chunk for no added safety.
    fn finish(mut self) -> Result<(u64, SystemTime)> {
        // The digester covers the whole file, from before this append.
        let len = self.digester.bytes_hashed();
        // Acknowledged from here on: if this fails, the drop rolls back.
        write_acked(&self.dir, len)?;
        *self.cache = Some((len, self.digester.clone()));
        self.done = true;
        let updated = self
            .file
            .metadata()
            .and_then(|m| m.modified())
            .unwrap_or_else(|_| SystemTime::now());
        Ok((len, updated))
    }
}

impl Drop for AppendSink {
    fn drop(&mut self) {
        if !self.done {
            if let Err(e) = self.file.set_len(self.old_len) {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot roll back failed upload chunk");
                // The cache no longer matches the file: the next call re-hashes.
                *self.cache = None;
            }
        }
    }
}

#[async_trait]
impl UploadStore for FsUploadStore {
    async fn create_for(
        &self,
        repository: &RepositoryName,
        owner: Option<&str>,
    ) -> Result<UploadStatus> {
        let id = UploadId::random();
        let dir = self.session_dir(&id);
        let durability = self.inner.blobs.durability();
        let state = SessionState {
            repository: repository.clone(),
            started: OffsetDateTime::now_utc(),
            owner: owner.map(str::to_owned),
        };
        let status = UploadStatus {
            id: id.clone(),
            repository: repository.clone(),
            offset: 0,
            started: state.started.into(),
            updated: state.started.into(),
            owner: state.owner.clone(),
        };
        let uploads = self.inner.uploads.clone();
        blocking(move || {
            fs::create_dir(&dir).map_err(|e| io_error("creating", &dir, e))?;
            let data = dir.join(DATA_FILE);
            super::permissions::create_private_file(&data)
                .map_err(|e| io_error("creating", &data, e))?;
            write_acked(&dir, 0)?;
            // The session exists once state.json does: write it aside, then rename.
            let temp = dir.join("state.json.new");
            let json = serde_json::to_vec(&state).map_err(StorageError::backend)?;
            let mut file = super::permissions::create_private_file(&temp)
                .map_err(|e| io_error("creating", &temp, e))?;
            file.write_all(&json)
                .map_err(|e| io_error("writing", &temp, e))?;
            durability
                .sync_file(&file)
                .map_err(|e| io_error("syncing", &temp, e))?;
            let path = dir.join(STATE_FILE);
            fs::rename(&temp, &path).map_err(|e| io_error("renaming", &path, e))?;
            durability
                .sync_dir(&dir)
                .and_then(|()| durability.sync_dir(&uploads))
                .map_err(|e| io_error("syncing", &dir, e))
        })
        .await?;
        self.inner.owners.add(owner);
        *self.session(&id).lock().await = Some((0, Digester::new(Algorithm::Sha256)));
        Ok(status)
    }

    async fn status(&self, id: &UploadId) -> Result<UploadStatus> {
        // Waits for an append in flight here (or the rollback of an
        // abandoned one). Only sessions this process works on have a lock:
        // an unknown id must not leave an entry behind.
        if let Some(lock) = self.existing(id) {
            drop(lock.lock().await);
        }
        let dir = self.session_dir(id);
        let id = id.clone();
        blocking(move || {
            let state = read_state(&dir, &id)?;
            let (_, len, updated) = open_data(&dir, &id)?;
            Ok(status_of(&id, state, acked_offset(&dir, len)?, updated))
        })
        .await
    }

    async fn append(&self, id: &UploadId, offset: u64, body: ByteStream) -> Result<UploadStatus> {
        let cache = self.session(id).lock_owned().await;
        let dir = self.session_dir(id);
        let owned_id = id.clone();
        let opened = blocking(move || {
            let mut cache = cache;
            let state = read_state(&dir, &owned_id)?;
            let (mut file, len, _) = open_data(&dir, &owned_id)?;
            let len = truncate_to_acked(&dir, &file, len)?;
            let path = dir.join(DATA_FILE);
            let digester = sha256_state(&mut cache, &mut file, len)
                .map_err(|e| io_error("hashing", &path, e))?;
            *cache = Some((len, digester.clone()));
            if offset != len {
                return Err(StorageError::InvalidOffset {
                    expected: len,
                    got: offset,
                });
            }
            file.seek(SeekFrom::Start(len))
                .map_err(|e| io_error("seeking", &path, e))?;
            let sink = AppendSink {
                file,
                dir,
                path,
                old_len: len,
                digester,
                cache,
                done: false,
            };
            Ok((state, sink))
        })
        .await;
        let (state, sink) = match opened {
            Err(e @ StorageError::UploadUnknown { .. }) => {
                self.forget(id);
                return Err(e);
            }
            other => other?,
        };
        let sink = drain_into(sink, body).await?;
        let (len, updated) = blocking(move || sink.finish()).await?;
        Ok(status_of(id, state, len, updated))
    }

    async fn commit(&self, id: &UploadId, expected: &Digest) -> Result<BlobInfo> {
        let cache = self.session(id).lock_owned().await;
        let dir = self.session_dir(id);
        let owned_id = id.clone();
        let expected = expected.clone();
        let blobs = self.inner.blobs.clone();
        let store = self.clone();
        let result = blocking(move || {
            let mut cache = cache;
            let state = read_state(&dir, &owned_id)?;
            let (mut file, len, _) = open_data(&dir, &owned_id)?;
            let len = truncate_to_acked(&dir, &file, len)?;
            let path = dir.join(DATA_FILE);
            let digester = match expected.algorithm() {
                Algorithm::Sha256 => sha256_state(&mut cache, &mut file, len),
                other => rehash(&mut file, other),
            }
            .map_err(|e| io_error("hashing", &path, e))?;
            if let Err(e) = Verifier::from_digester(digester).finish(&expected) {
                store.end_session(&dir, &state)?;
                return Err(e);
            }
            blobs
                .durability()
                .sync_file(&file)
                .map_err(|e| io_error("syncing", &path, e))?;
            drop(file);
            blobs.publish_file(&path, &expected)?;
            store.end_session(&dir, &state)?;
            let blob = blobs.blob_path(&expected);
            let meta = fs::metadata(&blob).map_err(|e| io_error("reading", &blob, e))?;
            Ok(BlobInfo {
                digest: expected,
                size: meta.len(),
                modified: meta.modified().ok(),
            })
        })
        .await;
        if matches!(
            result,
            Ok(_) | Err(StorageError::UploadUnknown { .. } | StorageError::DigestMismatch { .. })
        ) {
            self.forget(id);
        }
        result
    }

    async fn cancel(&self, id: &UploadId) -> Result<()> {
        let cache = self.session(id).lock_owned().await;
        let dir = self.session_dir(id);
        let owned_id = id.clone();
        let store = self.clone();
        let result = blocking(move || {
            let _cache = cache;
            let state = read_state(&dir, &owned_id)?;
            store.end_session(&dir, &state)
        })
        .await;
        self.forget(id);
        result
    }

    async fn open_sessions(&self, owner: &str) -> Result<usize> {
        Ok(self.inner.owners.get(owner))
    }

    async fn remove_stale_files(&self) -> Result<u64> {
        self.inner.blobs.remove_stale_temps().await
    }

    async fn list(&self) -> Result<Vec<UploadStatus>> {
        let uploads = self.inner.uploads.clone();
        blocking(move || {
            let entries = fs::read_dir(&uploads).map_err(|e| io_error("listing", &uploads, e))?;
            let mut sessions = Vec::new();
            for entry in entries {
                let entry = entry.map_err(|e| io_error("listing", &uploads, e))?;
                let Some(id) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
                    continue;
                };
                let dir = entry.path();
                // A session committed or cancelled since the listing began.
                match read_state(&dir, &id).and_then(|s| Ok((s, open_data(&dir, &id)?))) {
                    Ok((state, (_, len, updated))) => {
                        let offset = acked_offset(&dir, len)?;
                        sessions.push(status_of(&id, state, offset, updated));
                    }
                    Err(StorageError::UploadUnknown { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(sessions)
        })
        .await
    }
}
