//! [`FsBackend`]: content-addressed blobs as files, staged writes as files
//! published by rename.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use registry_core::{Algorithm, Digest};

use super::pipe::{drain_into, read_ahead, Drained};
use super::staged::{on_disk, publish_whole, AppendSink, StagedFile, Writing};
use super::staged::{TEMP_DIR, UPLOADS_DIR};
use super::{blocking, io_error, Durability};
use crate::backend::{AppendMode, BackendBlobStore, BackendUploadStore, BlobBackend};
use crate::backend::{StageTarget, StagedWrite};
use crate::blob::{BlobBody, BlobInfo, ByteRange, ByteStream};
use crate::error::{Result, StorageError};
use crate::sessions::UploadSessionStore;
use crate::upload::UploadId;

/// Staged files older than this are left-overs of a crashed process.
const DEFAULT_STALE_TEMP_AGE: Duration = Duration::from_secs(3600);

/// Algorithms with a directory under `blobs/`.
const ALGORITHMS: [Algorithm; 2] = [Algorithm::Sha256, Algorithm::Sha512];

/// Blobs stored as files under `<root>/blobs/<alg>/<first two hex>/<hex>`: a
/// [`BlobBackend`] whose staged writes are files under `<root>/tmp/` (a
/// one-shot put) and `<root>/uploads/<id>` (an upload session), renamed
/// into place when published. See the [module docs](super) for the layout
/// and durability.
///
/// Appends are not synced (a process crash keeps them in the page cache),
/// but with [`Durability::Fsync`] each batch's write-back to the disk is
/// started as it is written, so that the disk works while the rest of the
/// body arrives. `publish` syncs the whole file once, then the directory
/// that gained it, and refuses a file shorter than what was acknowledged
/// (bytes a power loss took before the sync), so nothing unsynced or cut
/// short is ever published under a digest.
#[derive(Debug, Clone)]
pub struct FsBackend {
    root: PathBuf,
    blobs: PathBuf,
    tmp: PathBuf,
    uploads: PathBuf,
    durability: Durability,
    stale_temp_age: Duration,
    /// Staged files an append of this process is writing: never stale,
    /// whatever their age.
    writing: Writing,
}

/// Blobs as files under a data directory: the [`BackendBlobStore`] over an
/// [`FsBackend`]. Cloning is cheap and clones share the backend.
pub type FsBlobStore = BackendBlobStore<FsBackend>;

/// Upload sessions whose bytes are files under the data directory
/// (`uploads/<id>`) and whose state (offset, hash states) is in an
/// [`UploadSessionStore`]: the [`BackendUploadStore`] over an [`FsBackend`].
pub type FsUploadStore = BackendUploadStore<FsBackend>;

impl FsUploadStore {
    /// Sessions that publish into `blobs`, their state in `sessions` (the
    /// SQLite store of the same data directory, for sessions that survive a
    /// restart).
    pub fn for_blobs(blobs: &FsBlobStore, sessions: Arc<dyn UploadSessionStore>) -> Self {
        BackendUploadStore::new(blobs.backend().clone(), sessions)
    }
}

/// Settings for opening an [`FsBlobStore`]; from [`FsBlobStore::builder`].
#[derive(Debug, Clone)]
pub struct FsBlobStoreBuilder {
    root: PathBuf,
    durability: Durability,
    stale_temp_age: Duration,
}

impl FsBlobStoreBuilder {
    /// Whether published blobs are synced to stable storage (default
    /// [`Durability::Fsync`]).
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Staged files not written for at least this long, that no upload
    /// session owns, are removed when the store opens and by
    /// [`UploadStore::remove_stale_files`](crate::UploadStore::remove_stale_files)
    /// (default one hour). Every write refreshes a file's age, so only a
    /// put stalled this long loses its file. Only lower it when no other
    /// process writes into the same root.
    pub fn stale_temp_age(mut self, age: Duration) -> Self {
        self.stale_temp_age = age;
        self
    }

    /// Creates the directories if needed, removes stale temp files and
    /// returns the store.
    pub fn open(self) -> Result<FsBlobStore> {
        let blobs = self.root.join("blobs");
        let tmp = self.root.join(TEMP_DIR);
        let uploads = self.root.join(UPLOADS_DIR);
        super::permissions::create_private_dir(&self.root)
            .map_err(|e| io_error("creating", &self.root, e))?;
        for alg in ALGORITHMS {
            let dir = blobs.join(alg.as_str());
            fs::create_dir_all(&dir).map_err(|e| io_error("creating", &dir, e))?;
            // SHA-512 blobs are rare: their prefix directories are made
            // as blobs arrive.
            if alg == Algorithm::Sha256 {
                make_prefix_dirs(&dir, self.durability)?;
            }
        }
        // Staged bytes are images not pushed yet: their owner's alone.
        for dir in [&tmp, &uploads] {
            super::permissions::create_private_dir(dir)
                .map_err(|e| io_error("creating", dir, e))?;
        }
        remove_stale_temps(&tmp, self.stale_temp_age, &HashSet::new());
        Ok(BackendBlobStore::new(FsBackend {
            root: self.root,
            blobs,
            tmp,
            uploads,
            durability: self.durability,
            stale_temp_age: self.stale_temp_age,
            writing: Writing::default(),
        }))
    }
}

/// Makes the 256 `<two hex>` directories of an algorithm's directory that
/// are missing, so that publishing a blob is a rename into a directory that
/// exists (no `mkdir`, no sync of the algorithm's directory on the push
/// path); syncs `dir` once if it gained any.
fn make_prefix_dirs(dir: &Path, durability: Durability) -> Result<()> {
    let mut made = false;
    for byte in 0..=255u8 {
        let prefix = dir.join(format!("{byte:02x}"));
        match fs::create_dir(&prefix) {
            Ok(()) => made = true,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_error("creating", &prefix, e)),
        }
    }
    if made {
        durability
            .sync_dir(dir)
            .map_err(|e| io_error("syncing", dir, e))?;
    }
    Ok(())
}

/// Whether a directory entry was last written at least `age` ago.
fn stale(entry: &fs::DirEntry, now: SystemTime, age: Duration) -> bool {
    entry
        .metadata()
        .and_then(|m| m.modified())
        .map(|modified| now.duration_since(modified).unwrap_or_default() >= age)
        .unwrap_or(false)
}

/// Removes an entry, a file or (a session of an older version) a directory.
fn remove_entry(entry: &fs::DirEntry) -> bool {
    let path = entry.path();
    let removed = match entry.file_type() {
        Ok(t) if t.is_dir() => fs::remove_dir_all(&path),
        _ => fs::remove_file(&path),
    };
    match removed {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove stale staged file");
            false
        }
    }
}

/// Removes the entries of `dir` not written for `age` that are neither
/// being written (`writing`) nor `kept`. Best effort: what cannot be
/// removed now is tried again later. Returns how many were removed.
fn remove_stale_in(
    dir: &Path,
    age: Duration,
    writing: &HashSet<PathBuf>,
    kept: impl Fn(&fs::DirEntry) -> bool,
) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    let now = SystemTime::now();
    let removed = entries
        .flatten()
        .filter(|entry| {
            !writing.contains(&entry.path())
                && !kept(entry)
                && stale(entry, now, age)
                && remove_entry(entry)
        })
        .count();
    removed as u64
}

/// Temp files of one-shot puts a crashed process left.
fn remove_stale_temps(tmp: &Path, age: Duration, writing: &HashSet<PathBuf>) -> u64 {
    remove_stale_in(tmp, age, writing, |_| false)
}

/// What sits in `uploads/` for no live session: files of sessions whose
/// end was cut short by a crash, and the session directories of earlier
/// builds (their state is in no session store).
fn remove_stale_sessions(
    uploads: &Path,
    live: &HashSet<UploadId>,
    age: Duration,
    writing: &HashSet<PathBuf>,
) -> u64 {
    remove_stale_in(uploads, age, writing, |entry| {
        entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<UploadId>().ok())
            .is_some_and(|id| live.contains(&id))
    })
}

impl FsBlobStore {
    /// Opens (creating if needed) a store under `root` with the default
    /// settings: [`Durability::Fsync`], stale temp files removed after an hour.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        Self::builder(root).open()
    }

    /// Opens a store under `root` with the given durability.
    pub fn with_durability(root: impl Into<PathBuf>, durability: Durability) -> Result<Self> {
        Self::builder(root).durability(durability).open()
    }

    /// Settings for a store under `root`, to adjust before [`FsBlobStoreBuilder::open`].
    pub fn builder(root: impl Into<PathBuf>) -> FsBlobStoreBuilder {
        FsBlobStoreBuilder {
            root: root.into(),
            durability: Durability::default(),
            stale_temp_age: DEFAULT_STALE_TEMP_AGE,
        }
    }

    /// The data directory.
    pub fn root(&self) -> &Path {
        &self.backend().root
    }

    /// The store's durability setting.
    pub fn durability(&self) -> Durability {
        self.backend().durability
    }

    /// Where the blob `digest` lives (whether or not it exists).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.backend().blob_path(digest)
    }
}

impl FsBackend {
    /// Where the blob `digest` lives (whether or not it exists).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        let hex = digest.hex();
        self.blobs
            .join(digest.algorithm().as_str())
            .join(&hex[..2])
            .join(hex)
    }

    /// Publishes the verified, synced file `src` as `digest` (blocking). If
    /// the blob exists already `src` is removed instead.
    fn publish_file(&self, src: &Path, digest: &Digest) -> Result<()> {
        let dest = self.blob_path(digest);
        if dest.exists() {
            touch(&dest)?;
            fs::remove_file(src).map_err(|e| io_error("removing", src, e))?;
            return Ok(());
        }
        // Over a copy a concurrent put published first is fine: same
        // bytes, and the rename is atomic. The prefix directory exists
        // since the store opened, unless someone removed it since.
        match fs::rename(src, &dest) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.ensure_parent(&dest)?;
                fs::rename(src, &dest)
            }
            renamed => renamed,
        }
        .map_err(|e| io_error("publishing", &dest, e))?;
        self.sync_parent(&dest)
    }

    /// Creates the `<first two hex>` directory of `dest` if needed (and
    /// syncs the directory that gained an entry).
    fn ensure_parent(&self, dest: &Path) -> Result<()> {
        let Some(parent) = dest.parent() else {
            return Ok(());
        };
        if parent.is_dir() {
            return Ok(());
        }
        fs::create_dir_all(parent).map_err(|e| io_error("creating", parent, e))?;
        match parent.parent() {
            Some(alg_dir) => self.sync_dir(alg_dir),
            None => Ok(()),
        }
    }

    fn sync_parent(&self, path: &Path) -> Result<()> {
        match path.parent() {
            Some(dir) => self.sync_dir(dir),
            None => Ok(()),
        }
    }

    fn sync_dir(&self, dir: &Path) -> Result<()> {
        self.durability
            .sync_dir(dir)
            .map_err(|e| io_error("syncing", dir, e))
    }
}

/// Refreshes a blob's modification time: putting it again counts as a
/// fresh write.
fn touch(path: &Path) -> Result<()> {
    let file = OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(|e| io_error("opening", path, e))?;
    file.set_modified(SystemTime::now())
        .map_err(|e| io_error("touching", path, e))
}

fn not_found(digest: &Digest) -> StorageError {
    StorageError::not_found(format_args!("blob {digest}"))
}

fn info_from(digest: Digest, meta: &fs::Metadata) -> BlobInfo {
    BlobInfo {
        digest,
        size: meta.len(),
        modified: meta.modified().ok(),
    }
}

#[async_trait]
impl BlobBackend for FsBackend {
    async fn stat(&self, digest: &Digest) -> Result<Option<BlobInfo>> {
        let path = self.blob_path(digest);
        let digest = digest.clone();
        blocking(move || match fs::metadata(&path) {
            Ok(meta) => Ok(Some(info_from(digest, &meta))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error("reading", &path, e)),
        })
        .await
    }

    async fn get(&self, digest: &Digest, range: Option<ByteRange>) -> Result<BlobBody> {
        let path = self.blob_path(digest);
        let missing = not_found(digest);
        let (file, path, total_size, (start, end)) = blocking(move || {
            let mut file = match File::open(&path) {
                Ok(file) => file,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(missing),
                Err(e) => return Err(io_error("opening", &path, e)),
            };
            let size = file
                .metadata()
                .map_err(|e| io_error("reading", &path, e))?
                .len();
            let (start, end) = match range {
                Some(range) => range.resolve(size)?,
                None => (0, size),
            };
            if start > 0 {
                file.seek(SeekFrom::Start(start))
                    .map_err(|e| io_error("seeking", &path, e))?;
            }
            Ok((file, path, size, (start, end)))
        })
        .await?;
        Ok(BlobBody {
            total_size,
            range: (start, end),
            stream: read_ahead(file, path, end - start),
        })
    }

    async fn delete(&self, digest: &Digest) -> Result<()> {
        let path = self.blob_path(digest);
        let missing = not_found(digest);
        blocking(move || match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(missing),
            Err(e) => Err(io_error("removing", &path, e)),
        })
        .await
    }

    fn list(&self) -> BoxStream<'_, Result<BlobInfo>> {
        let blobs = self.blobs.clone();
        // One directory at a time: memory stays bounded by the largest
        // `<first two hex>` directory, not by the number of blobs.
        stream::once(blocking(move || prefix_dirs(&blobs)))
            .map_ok(|dirs| stream::iter(dirs.into_iter().map(Ok)))
            .try_flatten()
            .and_then(|(alg, dir)| blocking(move || blobs_in(alg, &dir)))
            .map_ok(|infos| stream::iter(infos.into_iter().map(Ok)))
            .try_flatten()
            .boxed()
    }

    /// Creates nothing: the file appears with the first byte an append
    /// writes, or at publish (for the bytes a final append kept, or a
    /// session committed without a byte). A session that ends
    /// in one `PUT` with the whole blob stages at the blob instead, so it
    /// never had a file of its own to create and remove.
    async fn stage(&self, target: StageTarget<'_>) -> Result<StagedWrite> {
        Ok(StagedWrite {
            written: 0,
            state: StagedFile::for_target(target).encode(),
            pending: bytes::Bytes::new(),
        })
    }

    /// Writes on a blocking thread while the next bytes arrive (see
    /// `pipe`). Not synced in either mode: see the type's docs. A final
    /// append shorter than one write batch keeps its bytes in
    /// [`pending`](StagedWrite::pending) for `publish` to write, and an
    /// empty body touches nothing: neither borrows a blocking thread.
    async fn append(
        &self,
        staged: &StagedWrite,
        body: ByteStream,
        mode: AppendMode,
    ) -> Result<StagedWrite> {
        if !staged.pending.is_empty() {
            return Err(StorageError::backend(
                "append after a final append: nothing may follow one",
            ));
        }
        let path = StagedFile::decode(staged)?.path(&self.root);
        // Registered before the file is opened: no sweep removes it under
        // us, and no other append of this process writes it meanwhile.
        let turn = self.writing.lock(path).await;
        let (root, opened, durability) = (self.root.clone(), staged.clone(), self.durability);
        // Opened by the first write, on its blocking thread.
        let open = move || AppendSink::open(&root, &opened, durability, turn);
        // A final append shorter than one batch is kept for `publish`.
        let keep_short = mode == AppendMode::Final;
        Ok(match drain_into(open, body, keep_short).await? {
            Drained::Written(sink) => StagedWrite {
                written: sink.finish(),
                ..staged.clone()
            },
            Drained::Kept(bytes) => StagedWrite {
                written: staged.written + bytes.len() as u64,
                state: staged.state.clone(),
                pending: bytes,
            },
        })
    }

    async fn publish(&self, staged: StagedWrite, digest: &Digest) -> Result<BlobInfo> {
        let path = StagedFile::decode(&staged)?.path(&self.root);
        // After any append of this process still winding down.
        let turn = self.writing.lock(path.clone()).await;
        let backend = self.clone();
        let digest = digest.clone();
        blocking(move || {
            let _turn = turn;
            publish_whole(&path, &staged, |file| {
                backend
                    .durability
                    .sync_file(&file)
                    .map_err(|e| io_error("syncing", &path, e))?;
                drop(file);
                backend.publish_file(&path, &digest)?;
                let dest = backend.blob_path(&digest);
                let meta = fs::metadata(&dest).map_err(|e| io_error("reading", &dest, e))?;
                Ok(info_from(digest, &meta))
            })
        })
        .await
    }

    /// A staged write with no byte in its file has no file: appends create
    /// it with their first byte, and one that fails, or a publish that
    /// fails, removes a file that held nothing before. So aborting one
    /// touches nothing (what a crash left behind is for
    /// `remove_stale_staged`).
    async fn abort(&self, staged: StagedWrite) -> Result<()> {
        if on_disk(&staged)? == 0 {
            return Ok(());
        }
        let path = StagedFile::decode(&staged)?.path(&self.root);
        let turn = self.writing.lock(path.clone()).await;
        blocking(move || {
            let _turn = turn;
            match fs::remove_file(&path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(io_error("removing", &path, e)),
            }
        })
        .await
    }

    /// Uses the backend's own age ([`FsBlobStoreBuilder::stale_temp_age`])
    /// rather than `age`, so that a store opened for tests or single-process
    /// use can sweep at once.
    async fn remove_stale_staged(&self, live: &HashSet<UploadId>, _age: Duration) -> Result<u64> {
        let (tmp, uploads, age) = (self.tmp.clone(), self.uploads.clone(), self.stale_temp_age);
        let live = live.clone();
        // A snapshot: a file whose append starts after it is younger than
        // any sensible age, so it is not removed either.
        let writing = self.writing.keys();
        blocking(move || {
            Ok(remove_stale_temps(&tmp, age, &writing)
                + remove_stale_sessions(&uploads, &live, age, &writing))
        })
        .await
    }
}

/// Reads a directory, treating a missing one as empty.
fn read_dir_or_empty(dir: &Path) -> Result<Vec<fs::DirEntry>> {
    match fs::read_dir(dir) {
        Ok(entries) => entries
            .collect::<io::Result<Vec<_>>>()
            .map_err(|e| io_error("listing", dir, e)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(io_error("listing", dir, e)),
    }
}

/// Every `blobs/<alg>/<xx>` directory.
fn prefix_dirs(blobs: &Path) -> Result<Vec<(Algorithm, PathBuf)>> {
    let mut dirs = Vec::new();
    for alg in ALGORITHMS {
        for entry in read_dir_or_empty(&blobs.join(alg.as_str()))? {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                dirs.push((alg, entry.path()));
            }
        }
    }
    Ok(dirs)
}

/// The blobs of one `blobs/<alg>/<xx>` directory; foreign files are skipped.
fn blobs_in(alg: Algorithm, dir: &Path) -> Result<Vec<BlobInfo>> {
    let mut infos = Vec::new();
    for entry in read_dir_or_empty(dir)? {
        let name = entry.file_name();
        let Some(hex) = name.to_str() else { continue };
        let Ok(digest) = format!("{alg}:{hex}").parse::<Digest>() else {
            continue;
        };
        match entry.metadata() {
            Ok(meta) if meta.is_file() => infos.push(info_from(digest, &meta)),
            Ok(_) => {}
            // Deleted since the directory was read.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error("reading", &entry.path(), e)),
        }
    }
    Ok(infos)
}
