//! The files registryctl keeps: the Docker-compatible auth file (read and
//! written with `registry_api::client::DockerConfig`, which keeps every
//! key and entry it does not write), and registryctl's own
//! `registryctl.json` beside it: the contexts (servers logged in to, with
//! their TLS choice) and the current one, written atomically, mode 0600.

use std::collections::BTreeMap;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use registry::api::client::DockerConfig;
use serde::{Deserialize, Serialize};

use crate::{CliError, Env};

/// The auth file: `explicit` (`--config`/`--to`), else Docker's.
pub(crate) fn auth_file_path(explicit: Option<&Path>, env: &Env) -> Result<PathBuf, CliError> {
    match explicit {
        Some(p) => Ok(p.to_path_buf()),
        None => Ok(DockerConfig::path_from(
            env.docker_config.as_deref(),
            env.home.as_deref(),
        )?),
    }
}

/// `registryctl.json` in the auth file's directory.
pub(crate) fn contexts_path(auth_file: &Path) -> PathBuf {
    auth_file.with_file_name("registryctl.json")
}

/// `registryctl.json`: the servers logged in to and the current one.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Contexts {
    /// The name of the current context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
    /// Contexts by name (the server's `host[:port]`).
    #[serde(default)]
    pub contexts: BTreeMap<String, Context>,
}

/// A server as logged in to, with its TLS choice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Context {
    /// `http[s]://host[:port]/`.
    pub server: String,
    /// `--insecure` was given.
    #[serde(default)]
    pub insecure: bool,
    /// `--ca-file`, as an absolute path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// The OpenID Connect issuer of `login --oidc`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc: Option<crate::oidc::OidcContext>,
}

impl Contexts {
    /// Reads the file; a missing or empty one has no contexts. One that
    /// does not parse is an error (and is never overwritten).
    pub fn load(path: &Path) -> Result<Self, CliError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == ErrorKind::NotFound => String::new(),
            Err(source) => {
                return Err(CliError::Read {
                    path: path.to_owned(),
                    source,
                })
            }
        };
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        serde_json::from_str(&text).map_err(|source| CliError::Invalid {
            path: path.to_owned(),
            source,
        })
    }

    /// Writes the file: a 0600 temporary file beside it, renamed over it.
    pub fn save(&self, path: &Path) -> Result<(), CliError> {
        let write = |source| CliError::Write {
            path: path.to_owned(),
            source,
        };
        let text = serde_json::to_string_pretty(self).expect("contexts serialize") + "\n";
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
        let dir = dir.unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(write)?;
        // tempfile creates the file with mode 0600 on Unix.
        let mut tmp = tempfile::Builder::new()
            .prefix(".registryctl.json.")
            .tempfile_in(dir)
            .map_err(write)?;
        tmp.write_all(text.as_bytes()).map_err(write)?;
        tmp.as_file().sync_all().map_err(write)?;
        tmp.persist(path).map_err(|e| write(e.error))?;
        Ok(())
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
