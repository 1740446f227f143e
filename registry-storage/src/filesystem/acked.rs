//! The acknowledged offset of an upload session, kept beside its data.
//!
//! An append writes into the data file as bytes arrive; only when it has
//! succeeded, and before it is answered, is the new length recorded here.
//! After a crash mid-append the data file may be longer than the recorded
//! offset: those bytes were never acknowledged, are never reported, and
//! are cut off before the session is written to again.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::io_error;
use crate::error::Result;

/// 8 bytes, little-endian, rewritten in place.
const ACKED_FILE: &str = "acked";
/// The session's bytes (the name the upload store uses).
const DATA_FILE: &str = "data";

/// The acknowledged offset, if recorded (sessions of older versions have no
/// `acked` file: their data length is their offset).
pub(super) fn read_acked(dir: &Path) -> Result<Option<u64>> {
    let path = dir.join(ACKED_FILE);
    match fs::read(&path) {
        Ok(bytes) => match <[u8; 8]>::try_from(bytes.as_slice()) {
            Ok(bytes) => Ok(Some(u64::from_le_bytes(bytes))),
            // Never written whole: nothing was acknowledged through it.
            Err(_) => Ok(Some(0)),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error("reading", &path, e)),
    }
}

/// Records `offset` as acknowledged. Not synced, like the data (see
/// [`AppendSink::finish`]): it survives a process crash, which is what can
/// cut an append short.
pub(super) fn write_acked(dir: &Path, offset: u64) -> Result<()> {
    let path = dir.join(ACKED_FILE);
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| io_error("opening", &path, e))?;
    // 8 bytes at offset 0: one page, written whole or not at all by a
    // process crash.
    file.write_all_at(&offset.to_le_bytes(), 0)
        .map_err(|e| io_error("writing", &path, e))
}

/// The offset a client may continue at: the acknowledged one, or the data
/// length if shorter (bytes lost with the page cache) or if none is
/// recorded. Reads only; see [`truncate_to_acked`].
pub(super) fn acked_offset(dir: &Path, len: u64) -> Result<u64> {
    Ok(read_acked(dir)?.map_or(len, |acked| acked.min(len)))
}

/// Drops data past the acknowledged offset (an append cut short by a
/// crash). Only with the session's lock held, or at start: an append in
/// flight also writes past it.
pub(super) fn truncate_to_acked(dir: &Path, file: &File, len: u64) -> Result<u64> {
    let acked = acked_offset(dir, len)?;
    if acked < len {
        let path = dir.join(DATA_FILE);
        file.set_len(acked)
            .map_err(|e| io_error("truncating", &path, e))?;
        tracing::info!(path = %path.display(), acknowledged = acked, found = len,
            "dropped unacknowledged upload bytes");
    }
    Ok(acked)
}
