//! A file system mounted for a test's life (needs root).
#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A mount, lazily unmounted when dropped (also when the test panics).
pub struct Mount(PathBuf);

impl Mount {
    /// Runs `mount ARGS DIR`; the error says why it failed.
    pub fn new<A: AsRef<OsStr>>(args: &[A], dir: &Path) -> Result<Mount, String> {
        let output = Command::new("mount")
            .args(args)
            .arg(dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if output.status.success() {
            Ok(Mount(dir.to_owned()))
        } else {
            let args: Vec<_> = args.iter().map(|a| a.as_ref().to_string_lossy()).collect();
            Err(format!(
                "mount {} failed ({}): {}",
                args.join(" "),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ))
        }
    }

    /// Where it is mounted.
    pub fn dir(&self) -> &Path {
        &self.0
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}
