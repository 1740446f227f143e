//! Staged writes of the filesystem backend: a file under `tmp/` (a one-shot
//! put) or `uploads/` (an upload session), appended to in place and
//! published by rename.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::permissions::create_private_file;
use super::pipe::ChunkSink;
use super::{io_error, Durability};
use crate::backend::{StageTarget, StagedWrite};
use crate::error::{Result, StorageError};
use crate::keyed_locks::{KeyedGuard, KeyedLocks};
use crate::upload::UploadId;

/// Where staged bytes live, relative to the backend's root. The stored form
/// (`tmp/<hex>` or `uploads/<id>`) is parsed back strictly: a staged write's
/// state comes from the session store, and must never name another path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum StagedFile {
    /// A one-shot put under a random 32-hex name.
    Temp(UploadId),
    /// The bytes of an upload session.
    Session(UploadId),
}

pub(super) const TEMP_DIR: &str = "tmp";
pub(super) const UPLOADS_DIR: &str = "uploads";

impl StagedFile {
    pub(super) fn for_target(target: StageTarget<'_>) -> Self {
        match target {
            StageTarget::Blob(_) => StagedFile::Temp(UploadId::random()),
            StageTarget::Session(id) => StagedFile::Session(id.clone()),
        }
    }

    pub(super) fn encode(&self) -> Vec<u8> {
        let (dir, name) = match self {
            StagedFile::Temp(name) => (TEMP_DIR, name),
            StagedFile::Session(id) => (UPLOADS_DIR, id),
        };
        format!("{dir}/{name}").into_bytes()
    }

    pub(super) fn decode(staged: &StagedWrite) -> Result<Self> {
        let invalid = || StorageError::backend("not a filesystem staged-write state");
        let text = std::str::from_utf8(&staged.state).map_err(|_| invalid())?;
        let (dir, name) = text.split_once('/').ok_or_else(invalid)?;
        let name: UploadId = name.parse().map_err(|_| invalid())?;
        match dir {
            TEMP_DIR => Ok(StagedFile::Temp(name)),
            UPLOADS_DIR => Ok(StagedFile::Session(name)),
            _ => Err(invalid()),
        }
    }

    pub(super) fn path(&self, root: &Path) -> PathBuf {
        match self {
            StagedFile::Temp(name) => root.join(TEMP_DIR).join(name.as_str()),
            StagedFile::Session(id) => root.join(UPLOADS_DIR).join(id.as_str()),
        }
    }
}

/// The file holds fewer bytes than were acknowledged: they were in the page
/// cache when the machine lost power (appends are synced only at publish).
fn lost(path: &Path, written: u64, len: u64) -> StorageError {
    StorageError::backend(format!(
        "staged write {} holds {len} bytes but {written} were acknowledged \
         (lost in a crash of the machine); the upload must start again",
        path.display()
    ))
}

/// Opens a staged file for writing at `written`: a staged write that holds
/// no acknowledged byte may have no file yet (it is created by its first
/// append, private to the server's user); one that holds some must have one.
fn open_staged(path: &Path, written: u64) -> io::Result<File> {
    if written == 0 {
        create_private_file(path)
    } else {
        OpenOptions::new().write(true).open(path)
    }
}

/// Opens a staged file at publish, checking that its first `written` bytes
/// are all there and cutting off any past them (an empty staged write may
/// have no file yet: it is created).
pub(super) fn open_whole(path: &Path, written: u64) -> Result<File> {
    let file = open_staged(path, written).map_err(|e| io_error("opening", path, e))?;
    let len = file
        .metadata()
        .map_err(|e| io_error("reading", path, e))?
        .len();
    match len.cmp(&written) {
        std::cmp::Ordering::Less => Err(lost(path, written, len)),
        std::cmp::Ordering::Equal => Ok(file),
        // An append cut short by a crash, or one that lost a race.
        std::cmp::Ordering::Greater => {
            file.set_len(written)
                .map_err(|e| io_error("truncating", path, e))?;
            Ok(file)
        }
    }
}

/// How many of a staged write's bytes are in its file: the rest are the
/// [`pending`](StagedWrite::pending) ones a final append kept in memory.
pub(super) fn on_disk(staged: &StagedWrite) -> Result<u64> {
    staged
        .written
        .checked_sub(staged.pending.len() as u64)
        .ok_or_else(|| StorageError::backend("a staged write holds more pending bytes than bytes"))
}

/// Opens a staged file at publish holding every acknowledged byte: those
/// appended to the file (checked by [`open_whole`]), then the pending ones
/// of a final append, written after them. When this fails, or `finish`
/// does, a file that held no byte before is removed again, so that a staged
/// write with nothing on disk still has no file.
pub(super) fn publish_whole<T>(
    path: &Path,
    staged: &StagedWrite,
    finish: impl FnOnce(File) -> Result<T>,
) -> Result<T> {
    let on_disk = on_disk(staged)?;
    let completed = open_whole(path, on_disk).and_then(|mut file| {
        if !staged.pending.is_empty() {
            file.seek(SeekFrom::Start(on_disk))
                .and_then(|_| file.write_all(&staged.pending))
                .map_err(|e| io_error("writing", path, e))?;
        }
        Ok(file)
    });
    let done = completed.and_then(finish);
    if done.is_err() && on_disk == 0 {
        // Gone already when the publish got as far as its rename.
        let _ = fs::remove_file(path);
    }
    done
}

/// The staged files appends of this process are writing: one at a time
/// per file (a dropped append's write may still be in flight, and its undo
/// must not meet the next append), and never removed by the stale sweep.
pub(super) type Writing = Arc<KeyedLocks<PathBuf>>;

/// What a failed or abandoned append undoes when its sink is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Undo {
    /// The append started at 0: remove the file.
    Remove,
    /// Cut the file back to where the append started.
    Truncate,
}

/// Appended bytes whose write-back is started at once (with
/// [`Durability::Fsync`]): large enough that the call, which drains every
/// CPU's page lists when it meets pages it cannot drop, is rare; small
/// enough that the disk keeps pace with the network.
const WRITE_BACK_STEP: u64 = 8 * 1024 * 1024;

/// An append in progress; dropped before [`finish`](AppendSink::finish) it
/// undoes itself (on a blocking thread: see `pipe::drain_into`).
#[derive(Debug)]
pub(super) struct AppendSink {
    file: File,
    path: PathBuf,
    start: u64,
    written: u64,
    durability: Durability,
    /// Where the write-back started last ends (see [`WRITE_BACK_STEP`]).
    written_back: u64,
    undo: Undo,
    done: bool,
    /// Held until the sink is gone, undo included (fields drop after
    /// `Drop::drop`).
    _turn: KeyedGuard<PathBuf>,
}

impl AppendSink {
    /// Opens `staged`'s file at its acknowledged end, dropping bytes past
    /// it (an append cut short or one that lost a race).
    /// Blocking; `turn` is the file's lock in [`Writing`].
    pub(super) fn open(
        root: &Path,
        staged: &StagedWrite,
        durability: Durability,
        turn: KeyedGuard<PathBuf>,
    ) -> Result<Self> {
        let path = StagedFile::decode(staged)?.path(root);
        let start = staged.written;
        let mut file = match open_staged(&path, start) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StorageError::backend(format!(
                    "staged write {} is gone",
                    path.display()
                )))
            }
            Err(e) => return Err(io_error("opening", &path, e)),
        };
        let len = file
            .metadata()
            .map_err(|e| io_error("reading", &path, e))?
            .len();
        if len < start {
            return Err(lost(&path, start, len));
        }
        if len > start {
            file.set_len(start)
                .map_err(|e| io_error("truncating", &path, e))?;
        }
        file.seek(SeekFrom::Start(start))
            .map_err(|e| io_error("seeking", &path, e))?;
        // A staged write with no byte in its file has no file (see
        // `FsBackend::abort`), unless a crash left one behind.
        let undo = if start == 0 {
            Undo::Remove
        } else {
            Undo::Truncate
        };
        Ok(AppendSink {
            file,
            path,
            start,
            written: start,
            durability,
            written_back: start,
            undo,
            done: false,
            _turn: turn,
        })
    }

    /// Keeps what was written; returns the new length.
    pub(super) fn finish(mut self) -> u64 {
        self.done = true;
        self.written
    }
}

impl ChunkSink for AppendSink {
    fn write_chunk(&mut self, data: &[u8]) -> Result<()> {
        self.file
            .write_all(data)
            .map_err(|e| io_error("writing", &self.path, e))?;
        self.written += data.len() as u64;
        let unstarted = self.written - self.written_back;
        if unstarted >= WRITE_BACK_STEP {
            self.durability
                .start_write_back(&self.file, self.written_back, unstarted);
            self.written_back = self.written;
        }
        Ok(())
    }
}

impl Drop for AppendSink {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let undone = match self.undo {
            Undo::Remove => fs::remove_file(&self.path),
            Undo::Truncate => self.file.set_len(self.start),
        };
        if let Err(e) = undone {
            // The next append or the publish cuts the file back anyway.
            tracing::warn!(path = %self.path.display(), error = %e, "cannot undo a failed append");
        }
    }
}
