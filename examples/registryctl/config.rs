//! The files registryctl keeps: the Docker-compatible auth file
//! (`config.json`), of which only `auths["host[:port]"]` is written (every
//! other key, `credHelpers`, `credsStore`, `proxies`, other servers'
//! entries…, is kept as it was), and registryctl's own `registryctl.json`
//! beside it: the contexts (servers logged in to, with their TLS choice)
//! and the current one. Both are written atomically with mode 0600.

use std::collections::BTreeMap;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use registry::api::client::Credentials;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{CliError, Env};

/// Picks the auth file: `explicit` (`--config`/`--to`), else
/// `$DOCKER_CONFIG/config.json`, else `$HOME/.docker/config.json`.
pub fn auth_file_path(explicit: Option<&Path>, env: &Env) -> Result<PathBuf, CliError> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    if let Some(dir) = env.docker_config.as_deref().filter(|d| !d.is_empty()) {
        return Ok(Path::new(dir).join("config.json"));
    }
    match env.home.as_deref().filter(|h| !h.is_empty()) {
        Some(h) => Ok(Path::new(h).join(".docker").join("config.json")),
        None => Err(CliError::NoConfigDir),
    }
}

/// `registryctl.json` in the auth file's directory.
pub fn contexts_path(auth_file: &Path) -> PathBuf {
    auth_file.with_file_name("registryctl.json")
}

/// The auth file: typed where registryctl reads it, the rest kept as is.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct AuthFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    auths: Option<BTreeMap<String, AuthEntry>>,
    #[serde(
        rename = "credHelpers",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    cred_helpers: Option<BTreeMap<String, String>>,
    #[serde(
        rename = "credsStore",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    creds_store: Option<String>,
    /// Keys registryctl does not know, written back untouched.
    #[serde(flatten)]
    other: Map<String, Value>,
}

/// One server's entry: `auth` (base64 of `user:password`), or the older
/// separate fields.
#[derive(Debug, Default, Serialize, Deserialize)]
struct AuthEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    auth: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    password: Option<String>,
    #[serde(flatten)]
    other: Map<String, Value>,
}

impl AuthFile {
    /// The credentials stored for `key`; `None` when there is no entry or
    /// it holds neither form (e.g. an `identitytoken` only).
    pub fn credentials(&self, key: &str) -> Result<Option<Credentials>, CliError> {
        let Some(entry) = self.auths.as_ref().and_then(|a| a.get(key)) else {
            return Ok(None);
        };
        if let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) {
            let bad = || CliError::BadAuthEntry(key.to_owned());
            let raw = STANDARD.decode(auth.trim()).map_err(|_| bad())?;
            let text = String::from_utf8(raw).map_err(|_| bad())?;
            // The password may contain ':'; only the first one separates.
            let (username, password) = text.split_once(':').ok_or_else(bad)?;
            return Ok(Some(Credentials::basic(username, password)));
        }
        Ok(match (&entry.username, &entry.password) {
            (Some(u), Some(p)) => Some(Credentials::basic(u, p)),
            _ => None,
        })
    }

    /// Stores `username:password` for `key`, replacing only that entry.
    pub fn set_credentials(&mut self, key: &str, username: &str, password: &str) {
        let entry = AuthEntry {
            auth: Some(STANDARD.encode(format!("{username}:{password}"))),
            ..AuthEntry::default()
        };
        self.auths
            .get_or_insert_with(BTreeMap::new)
            .insert(key.to_owned(), entry);
    }

    /// Removes the entry of `key`; whether there was one.
    pub fn remove_credentials(&mut self, key: &str) -> bool {
        self.auths.as_mut().is_some_and(|a| a.remove(key).is_some())
    }

    /// A credential helper configured for `key` (registryctl does not run
    /// helpers; the error says so).
    pub fn helper(&self, key: &str) -> Option<String> {
        self.cred_helpers
            .as_ref()
            .and_then(|h| h.get(key).cloned())
            .or_else(|| self.creds_store.clone())
    }
}

/// `registryctl.json`: the servers logged in to and the current one.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Contexts {
    /// The name of the current context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
    /// Contexts by name (the server's `host[:port]`).
    #[serde(default)]
    pub contexts: BTreeMap<String, Context>,
}

/// A server as logged in to, with its TLS choice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Context {
    /// `http[s]://host[:port]/`.
    pub server: String,
    /// `--insecure` was given.
    #[serde(default)]
    pub insecure: bool,
    /// `--ca-file`, as an absolute path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
}

/// Reads a file; a missing or empty one is `T::default()`. A file that
/// does not parse is an error, so a file registryctl does not understand
/// is never clobbered.
pub fn load<T: DeserializeOwned + Default>(path: &Path) -> Result<T, CliError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(T::default()),
        Err(source) => {
            return Err(CliError::Read {
                path: path.to_owned(),
                source,
            })
        }
    };
    if text.trim().is_empty() {
        return Ok(T::default());
    }
    serde_json::from_str(&text).map_err(|source| CliError::Invalid {
        path: path.to_owned(),
        source,
    })
}

/// Writes `doc` to `path` atomically: a private (0600) temporary file in the
/// same directory, flushed and renamed over the target. Parent directories
/// are created (0700); a symlinked file is updated at its target.
pub fn save(path: &Path, doc: &impl Serialize) -> Result<(), CliError> {
    let write_err = |source| CliError::Write {
        path: path.to_owned(),
        source,
    };
    let target = match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => std::fs::canonicalize(path).map_err(write_err)?,
        _ => path.to_path_buf(),
    };
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(&dir).map_err(write_err)?;
    let mut text = serde_json::to_string_pretty(doc).map_err(|e| write_err(e.into()))?;
    text.push('\n');
    // tempfile creates the file with mode 0600 on Unix.
    let mut tmp = tempfile::Builder::new()
        .prefix(".registryctl.")
        .tempfile_in(&dir)
        .map_err(write_err)?;
    tmp.write_all(text.as_bytes()).map_err(write_err)?;
    tmp.as_file().sync_all().map_err(write_err)?;
    tmp.persist(&target).map_err(|e| write_err(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;

    use serde_json::json;

    use super::*;

    fn parse(doc: Value) -> AuthFile {
        serde_json::from_value(doc).unwrap()
    }

    #[test]
    fn path_precedence() {
        let env = |dc: &str, home: &str| Env {
            docker_config: Some(dc.into()),
            home: Some(home.into()),
        };
        let explicit = Path::new("/tmp/auth.json");
        let both = env("/etc/dc", "/home/u");
        assert_eq!(auth_file_path(Some(explicit), &both).unwrap(), explicit);
        assert_eq!(
            auth_file_path(None, &both).unwrap(),
            Path::new("/etc/dc/config.json")
        );
        assert_eq!(
            auth_file_path(None, &env("", "/home/u")).unwrap(),
            Path::new("/home/u/.docker/config.json")
        );
        assert!(auth_file_path(None, &Env::default()).is_err());
        assert_eq!(contexts_path(explicit), Path::new("/tmp/registryctl.json"));
    }

    #[test]
    fn merge_keeps_other_entries_and_helpers() {
        let mut file = parse(json!({
            "auths": {"quay.io": {"auth": "eDp5"}, "localhost:5000": {"auth": "old", "x": 1}},
            "credHelpers": {"gcr.io": "gcloud"},
            "credsStore": "desktop",
            "proxies": {"default": {"httpProxy": "http://proxy"}}
        }));
        file.set_credentials("localhost:5000", "alice", "s3cr:et");
        let doc = serde_json::to_value(&file).unwrap();
        assert_eq!(doc["auths"]["quay.io"], json!({"auth": "eDp5"}));
        assert_eq!(doc["credHelpers"], json!({"gcr.io": "gcloud"}));
        assert_eq!(doc["credsStore"], json!("desktop"));
        assert_eq!(doc["proxies"]["default"]["httpProxy"], "http://proxy");
        assert_eq!(
            doc["auths"]["localhost:5000"],
            json!({"auth": STANDARD.encode("alice:s3cr:et")})
        );
        assert_eq!(
            file.credentials("localhost:5000").unwrap(),
            Some(Credentials::basic("alice", "s3cr:et"))
        );
        assert!(file.remove_credentials("localhost:5000"));
        assert!(!file.remove_credentials("localhost:5000"));
        assert_eq!(file.credentials("localhost:5000").unwrap(), None);
        assert_eq!(file.helper("gcr.io").as_deref(), Some("gcloud"));
        assert_eq!(file.helper("other").as_deref(), Some("desktop"));
    }

    #[test]
    fn rejects_malformed_documents_and_reads_legacy_fields() {
        assert!(serde_json::from_value::<AuthFile>(json!({"auths": []})).is_err());
        assert!(serde_json::from_value::<AuthFile>(json!([1])).is_err());
        let bad = parse(json!({"auths": {"k": {"auth": "!!"}}}));
        assert!(bad.credentials("k").is_err());
        let bad = parse(json!({"auths": {"k": {"auth": STANDARD.encode("nocolon")}}}));
        assert!(bad.credentials("k").is_err());
        let legacy = parse(json!({"auths": {"k": {"username": "a", "password": "p"}}}));
        assert_eq!(
            legacy.credentials("k").unwrap(),
            Some(Credentials::basic("a", "p"))
        );
        let token = parse(json!({"auths": {"k": {"identitytoken": "x"}}}));
        assert_eq!(token.credentials("k").unwrap(), None);
    }

    #[test]
    fn save_and_load_round_trip_privately() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/dir/config.json");
        assert!(load::<AuthFile>(&path).unwrap().auths.is_none());
        let mut file = parse(json!({"credsStore": "desktop"}));
        file.set_credentials("k", "a", "p");
        save(&path, &file).unwrap();
        let again: AuthFile = load(&path).unwrap();
        assert_eq!(
            serde_json::to_value(&again).unwrap(),
            serde_json::to_value(&file).unwrap()
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(path.parent().unwrap()), 0o700);
        }
        // No temporary files left behind.
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![OsStr::new("config.json").to_owned()]);
        std::fs::write(&path, "{not json").unwrap();
        assert!(load::<AuthFile>(&path).is_err());
    }
}
