//! [`FsBlobStore`]: content-addressed blobs as files, published by rename.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use registry_core::{Algorithm, Digest};

use super::pipe::{drain_into, read_ahead, ChunkSink};
use super::{blocking, io_error, Durability};
use crate::blob::{BlobBody, BlobInfo, BlobStore, ByteRange, ByteStream};
use crate::error::{Result, StorageError};
use crate::verify::Verifier;

/// Temp files older than this are left-overs of a crashed process.
const DEFAULT_STALE_TEMP_AGE: Duration = Duration::from_secs(3600);

/// Algorithms with a directory under `blobs/`.
const ALGORITHMS: [Algorithm; 2] = [Algorithm::Sha256, Algorithm::Sha512];

/// Blobs stored as files under `<root>/blobs/<alg>/<first two hex>/<hex>`.
///
/// A put streams into a temp file under `<root>/tmp/`, hashing as it
/// writes, and renames the file into place only when the digest matches.
/// Cloning is cheap and clones share the store.
#[derive(Debug, Clone)]
pub struct FsBlobStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    root: PathBuf,
    blobs: PathBuf,
    tmp: PathBuf,
    durability: Durability,
    stale_temp_age: Duration,
    /// Temp files being written by this process: never stale, whatever
    /// their age.
    writing: Writing,
}

/// The set of temp files in use, shared with each [`TempFile`].
type Writing = Arc<Mutex<HashSet<PathBuf>>>;

/// Settings for opening an [`FsBlobStore`]; from [`FsBlobStore::builder`].
#[derive(Debug, Clone)]
pub struct FsBlobStoreBuilder {
    root: PathBuf,
    durability: Durability,
    stale_temp_age: Duration,
}

impl FsBlobStoreBuilder {
    /// Whether puts are synced to stable storage (default [`Durability::Fsync`]).
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Temp files at least this old are removed when the store opens and by
    /// [`FsBlobStore::remove_stale_temps`] (default one hour); files this
    /// process is writing are never removed. Only lower it when no other process writes into
    /// the same root: their puts in progress would lose their temp files.
    pub fn stale_temp_age(mut self, age: Duration) -> Self {
        self.stale_temp_age = age;
        self
    }

    /// Creates the directories if needed, removes stale temp files and
    /// returns the store.
    pub fn open(self) -> Result<FsBlobStore> {
        let blobs = self.root.join("blobs");
        let tmp = self.root.join("tmp");
        super::permissions::create_private_dir(&self.root)
            .map_err(|e| io_error("creating", &self.root, e))?;
        for dir in ALGORITHMS
            .iter()
            .map(|alg| blobs.join(alg.as_str()))
            .chain([tmp.clone()])
        {
            fs::create_dir_all(&dir).map_err(|e| io_error("creating", &dir, e))?;
        }
        remove_stale_temps(&tmp, self.stale_temp_age, &HashSet::new());
        Ok(FsBlobStore {
            inner: Arc::new(Inner {
                root: self.root,
                blobs,
                tmp,
                durability: self.durability,
                stale_temp_age: self.stale_temp_age,
                writing: Writing::default(),
            }),
        })
    }
}

/// Best effort: a temp file that cannot be removed now is tried again
/// later. Returns how many were removed.
fn remove_stale_temps(tmp: &Path, age: Duration, writing: &HashSet<PathBuf>) -> u64 {
    let Ok(entries) = fs::read_dir(tmp) else {
        return 0;
    };
    let now = SystemTime::now();
    let mut removed = 0;
    for entry in entries.flatten() {
        if writing.contains(&entry.path()) {
            continue;
        }
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .map(|modified| now.duration_since(modified).unwrap_or_default() >= age)
            .unwrap_or(false);
        if stale {
            match fs::remove_file(entry.path()) {
                Ok(()) => removed += 1,
                Err(e) => {
                    tracing::warn!(path = %entry.path().display(), error = %e, "cannot remove stale temp file")
                }
            }
        }
    }
    removed
}

impl FsBlobStore {
    /// Opens (creating if needed) a store under `root` with the default
    /// settings: [`Durability::Fsync`], stale temp files removed after an hour.
    pub fn new(root: impl Into<PathBuf>) -> Result<Self> {
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
        &self.inner.root
    }

    /// Removes temp files left by writes that never finished (a killed
    /// process): those older than the store's stale age
    /// ([`FsBlobStoreBuilder::stale_temp_age`]) that this process is not
    /// writing. Returns how many were removed.
    pub async fn remove_stale_temps(&self) -> Result<u64> {
        let store = self.clone();
        blocking(move || {
            // A snapshot: a temp file created after it is younger than any
            // sensible age, so it is not removed either.
            let writing = store
                .inner
                .writing
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            Ok(remove_stale_temps(
                &store.inner.tmp,
                store.inner.stale_temp_age,
                &writing,
            ))
        })
        .await
    }

    /// The store's durability setting.
    pub fn durability(&self) -> Durability {
        self.inner.durability
    }

    /// Where the blob `digest` lives (whether or not it exists).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        let hex = digest.hex();
        self.inner
            .blobs
            .join(digest.algorithm().as_str())
            .join(&hex[..2])
            .join(hex)
    }

    /// Publishes the verified file `src` as `digest` (blocking). If the blob
    /// exists already `src` is removed instead. `src` must be synced by the
    /// caller when durability asks for it.
    pub(crate) fn publish_file(&self, src: &Path, digest: &Digest) -> Result<()> {
        let dest = self.blob_path(digest);
        if dest.exists() {
            touch(&dest)?;
            fs::remove_file(src).map_err(|e| io_error("removing", src, e))?;
            return Ok(());
        }
        self.ensure_parent(&dest)?;
        match fs::rename(src, &dest) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::CrossesDevices => {
                // The upload area is on another filesystem: copy into our
                // temp area first so that the final step is still a rename.
                let mut temp = TempFile::create(&self.inner.tmp, &self.inner.writing)?;
                let mut from = File::open(src).map_err(|e| io_error("opening", src, e))?;
                io::copy(&mut from, &mut temp.file)
                    .map_err(|e| io_error("copying", &temp.path, e))?;
                self.inner
                    .durability
                    .sync_file(&temp.file)
                    .map_err(|e| io_error("syncing", &temp.path, e))?;
                temp.rename_to(&dest)?;
                fs::remove_file(src).map_err(|e| io_error("removing", src, e))?;
            }
            Err(e) => return Err(io_error("publishing", &dest, e)),
        }
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
        self.inner
            .durability
            .sync_dir(dir)
            .map_err(|e| io_error("syncing", dir, e))
    }
}

/// Refreshes a blob's modification time: putting it again counts as a
/// fresh write for garbage collection's grace period.
fn touch(path: &Path) -> Result<()> {
    let file = OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(|e| io_error("opening", path, e))?;
    file.set_modified(SystemTime::now())
        .map_err(|e| io_error("touching", path, e))
}

/// A temp file that removes itself when dropped unless it was renamed.
///
/// It travels into the blocking pool with every write, so a put that is
/// dropped part-way removes the file only after the write in flight ended.
#[derive(Debug)]
pub(crate) struct TempFile {
    pub(crate) path: PathBuf,
    pub(crate) file: File,
    published: bool,
    writing: Writing,
}

impl TempFile {
    fn create(dir: &Path, writing: &Writing) -> Result<Self> {
        let path = dir.join(uuid::Uuid::new_v4().simple().to_string());
        // Registered before it exists, so no sweep can take it for stale.
        writing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(path.clone());
        let file = match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(file) => file,
            Err(e) => {
                writing
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&path);
                return Err(io_error("creating", &path, e));
            }
        };
        Ok(TempFile {
            path,
            file,
            published: false,
            writing: writing.clone(),
        })
    }

    fn rename_to(&mut self, dest: &Path) -> Result<()> {
        fs::rename(&self.path, dest).map_err(|e| io_error("publishing", dest, e))?;
        self.published = true;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.published {
            if let Err(e) = fs::remove_file(&self.path) {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot remove temp file");
            }
        }
        self.writing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.path);
    }
}

/// A put in progress: hash, then write.
struct PutSink {
    verifier: Verifier,
    temp: Option<TempFile>,
}

impl ChunkSink for PutSink {
    fn write_chunk(&mut self, data: &[u8]) -> Result<()> {
        self.verifier.update(data);
        if let Some(temp) = &mut self.temp {
            temp.file
                .write_all(data)
                .map_err(|e| io_error("writing", &temp.path, e))?;
        }
        Ok(())
    }
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
impl BlobStore for FsBlobStore {
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
        let (file, total_size, (start, end)) = blocking(move || {
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
            Ok((file, size, (start, end)))
        })
        .await?;
        let stream = read_ahead(file, self.blob_path(digest), end - start);
        Ok(BlobBody {
            total_size,
            range: (start, end),
            stream,
        })
    }

    async fn put(&self, expected: &Digest, body: ByteStream) -> Result<BlobInfo> {
        let dest = self.blob_path(expected);
        let exists = {
            let dest = dest.clone();
            blocking(move || Ok(dest.is_file())).await?
        };
        // An existing blob is not rewritten, but the body is still checked
        // so that a wrong digest is reported the same way either way.
        let temp = if exists {
            None
        } else {
            let tmp = self.inner.tmp.clone();
            let writing = self.inner.writing.clone();
            Some(blocking(move || TempFile::create(&tmp, &writing)).await?)
        };
        let sink = PutSink {
            verifier: Verifier::new(expected),
            temp,
        };
        let sink = drain_into(sink, body).await?;
        let store = self.clone();
        let expected = expected.clone();
        blocking(move || {
            let PutSink { verifier, temp } = sink;
            verifier.finish(&expected)?;
            match temp {
                None => touch(&dest)?,
                Some(mut temp) => {
                    store
                        .inner
                        .durability
                        .sync_file(&temp.file)
                        .map_err(|e| io_error("syncing", &temp.path, e))?;
                    store.ensure_parent(&dest)?;
                    // Rename over a copy a concurrent put published first is
                    // fine: same bytes, and the rename is atomic.
                    temp.rename_to(&dest)?;
                    store.sync_parent(&dest)?;
                }
            }
            let meta = fs::metadata(&dest).map_err(|e| io_error("reading", &dest, e))?;
            Ok(info_from(expected, &meta))
        })
        .await
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
        let blobs = self.inner.blobs.clone();
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
