//! File modes of a data directory: the registry's data is its owner's alone.
//!
//! The database holds password hashes and token hashes, upload sessions hold
//! the bytes of images not yet pushed, and the token signing key sits beside
//! them: the data directory is `0700` and those files `0600`, whatever the
//! umask. Installs made before this was enforced are tightened when the
//! stores open them (with a log line), never loosened.
//!
//! On non-Unix platforms these are no-ops.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::Path;

/// Mode of the data directory and the directories holding secrets.
pub const PRIVATE_DIR_MODE: u32 = 0o700;
/// Mode of files holding secrets (database, signing key, upload state).
pub const PRIVATE_FILE_MODE: u32 = 0o600;

/// Creates `dir` (and missing parents) and makes `dir` itself private
/// (`0700`), tightening it when it already exists with a looser mode.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    if !dir.exists() {
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, PRIVATE_DIR_MODE);
        builder.create(dir)?;
    }
    restrict(dir, PRIVATE_DIR_MODE).map(drop)
}

/// Opens `path` for writing, creating it with mode `0600` when missing
/// (an existing file keeps its bytes and mode).
pub fn create_private_file(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, PRIVATE_FILE_MODE);
    options.open(path)
}

/// Makes sure `path` is a private file before another library creates it
/// with its own default mode (SQLite: `0644`, and its `-wal` and `-shm`
/// files copy the database's mode): creates it empty with `0600` when
/// missing, tightens it when looser.
pub fn prepare_private_file(path: &Path) -> io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, PRIVATE_FILE_MODE);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            restrict(path, PRIVATE_FILE_MODE).map(drop)
        }
        Err(e) => Err(e),
    }
}

/// Removes from `path`'s mode every permission `mode` does not grant, logging
/// when that changes anything. A missing path is left alone. Returns whether
/// the mode changed.
pub fn restrict(path: &Path, mode: u32) -> io::Result<bool> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let metadata = match fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        let current = metadata.permissions().mode() & 0o7777;
        let wanted = current & mode;
        if wanted == current || metadata.file_type().is_symlink() {
            return Ok(false);
        }
        fs::set_permissions(path, fs::Permissions::from_mode(wanted))?;
        tracing::warn!(
            path = %path.display(),
            "tightened permissions from {current:04o} to {wanted:04o}: registry data is private to its owner"
        );
        Ok(true)
    }
    #[cfg(not(unix))]
    {
        let _ = (path, mode);
        Ok(false)
    }
}
