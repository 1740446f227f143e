//! [`DockerConfig`]: the credentials `docker login` (and podman, skopeo,
//! registryctl) keep in `config.json`, read and written without disturbing
//! anything else in the file.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::Credentials;

/// Why a Docker config file cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DockerConfigError {
    /// Neither `DOCKER_CONFIG` nor `HOME` says where the file is.
    #[error("cannot locate the Docker config file: neither DOCKER_CONFIG nor HOME is set")]
    NoLocation,
    /// The file cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file cannot be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a Docker config document (it is never overwritten).
    #[error("{} is not a Docker config file: {source}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Why.
        source: serde_json::Error,
    },
    /// An `auth` entry that is not base64 of `user:password`.
    #[error("auths[{host:?}].auth is not base64 of \"user:password\"")]
    BadEntry {
        /// The registry host.
        host: String,
    },
}

/// A Docker `config.json`. Only `auths` entries are written; every other
/// key (`credHelpers`, `credsStore`, `proxies`, …) and every other
/// registry's entry is kept as it was.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DockerConfig {
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
    /// Keys this type does not know, written back untouched.
    #[serde(flatten)]
    other: Map<String, Value>,
}

/// One registry's entry: `auth` (base64 of `user:password`), or the older
/// separate fields; with an `identitytoken`, `auth` holds only the user
/// name (`user:`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct AuthEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    auth: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    identitytoken: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    password: Option<String>,
    #[serde(flatten)]
    other: Map<String, Value>,
}

impl DockerConfig {
    /// Where Docker looks: `$DOCKER_CONFIG/config.json`, else
    /// `$HOME/.docker/config.json` (empty values count as unset).
    pub fn path_from(
        docker_config: Option<&OsStr>,
        home: Option<&OsStr>,
    ) -> Result<PathBuf, DockerConfigError> {
        match (
            docker_config.filter(|d| !d.is_empty()),
            home.filter(|h| !h.is_empty()),
        ) {
            (Some(dir), _) => Ok(Path::new(dir).join("config.json")),
            (None, Some(home)) => Ok(Path::new(home).join(".docker").join("config.json")),
            (None, None) => Err(DockerConfigError::NoLocation),
        }
    }

    /// [`DockerConfig::path_from`] the process environment.
    pub fn default_path() -> Result<PathBuf, DockerConfigError> {
        Self::path_from(
            std::env::var_os("DOCKER_CONFIG").as_deref(),
            std::env::var_os("HOME").as_deref(),
        )
    }

    /// Reads a config file; a missing or empty one is empty.
    pub fn load(path: &Path) -> Result<Self, DockerConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == ErrorKind::NotFound => String::new(),
            Err(source) => {
                let path = path.to_owned();
                return Err(DockerConfigError::Read { path, source });
            }
        };
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        serde_json::from_str(&text).map_err(|source| DockerConfigError::Invalid {
            path: path.to_owned(),
            source,
        })
    }

    /// Writes the file atomically and privately: a 0600 temporary file in
    /// the same directory (created 0700 if missing), synced, renamed over
    /// the target; a symlinked file is updated at its target.
    pub fn save(&self, path: &Path) -> Result<(), DockerConfigError> {
        let mut text =
            serde_json::to_string_pretty(self).map_err(|source| DockerConfigError::Invalid {
                path: path.to_owned(),
                source,
            })?;
        text.push('\n');
        write_private(path, text.as_bytes()).map_err(|source| DockerConfigError::Write {
            path: path.to_owned(),
            source,
        })
    }

    /// The credentials stored for `host` (`registry.example.com:5000`, as
    /// an image reference names it): an `identitytoken` (a refresh token of
    /// this registry, sent as a bearer token) before `auth` or
    /// `username`/`password`; `None` when there is no entry or it holds
    /// none of them.
    pub fn credentials(&self, host: &str) -> Result<Option<Credentials>, DockerConfigError> {
        let Some(entry) = self.auths.as_ref().and_then(|a| a.get(host)) else {
            return Ok(None);
        };
        if let Some(token) = entry.identitytoken.as_deref().filter(|t| !t.is_empty()) {
            return Ok(Some(Credentials::access_token(token)));
        }
        if let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) {
            let bad = || DockerConfigError::BadEntry {
                host: host.to_owned(),
            };
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

    /// Stores `username:password` for `host`, replacing only that entry.
    pub fn set_credentials(&mut self, host: &str, username: &str, password: &str) {
        let entry = AuthEntry {
            auth: Some(STANDARD.encode(format!("{username}:{password}"))),
            ..AuthEntry::default()
        };
        let auths = self.auths.get_or_insert_with(BTreeMap::new);
        auths.insert(host.to_owned(), entry);
    }

    /// Stores an identity token for `host` as `docker login` does (`auth`
    /// holding only `username:`, the token in `identitytoken`), replacing
    /// only that entry: no password is kept.
    pub fn set_identity_token(&mut self, host: &str, username: &str, token: &str) {
        let entry = AuthEntry {
            auth: Some(STANDARD.encode(format!("{username}:"))),
            identitytoken: Some(token.to_owned()),
            ..AuthEntry::default()
        };
        let auths = self.auths.get_or_insert_with(BTreeMap::new);
        auths.insert(host.to_owned(), entry);
    }

    /// Removes the entry of `host`; whether there was one.
    pub fn remove_credentials(&mut self, host: &str) -> bool {
        self.auths
            .as_mut()
            .is_some_and(|a| a.remove(host).is_some())
    }

    /// The credential helper configured for `host`, if any (this type does
    /// not run helpers).
    pub fn credential_helper(&self, host: &str) -> Option<&str> {
        let helpers = self.cred_helpers.as_ref();
        helpers
            .and_then(|h| h.get(host))
            .or(self.creds_store.as_ref())
            .map(String::as_str)
    }
}

/// Replaces `path` with `contents` atomically, mode 0600.
fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let target = match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => std::fs::canonicalize(path)?,
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
    builder.create(&dir)?;
    // tempfile creates the file with mode 0600 on Unix.
    let mut tmp = tempfile::Builder::new()
        .prefix(".config.json.")
        .tempfile_in(&dir)?;
    tmp.write_all(contents)?;
    tmp.as_file().sync_all()?;
    tmp.persist(&target).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(doc: Value) -> DockerConfig {
        serde_json::from_value(doc).unwrap()
    }

    #[test]
    fn location() {
        let p =
            |dc: &str, home: &str| DockerConfig::path_from(Some(dc.as_ref()), Some(home.as_ref()));
        assert_eq!(
            p("/etc/dc", "/home/u").unwrap(),
            Path::new("/etc/dc/config.json")
        );
        assert_eq!(
            p("", "/home/u").unwrap(),
            Path::new("/home/u/.docker/config.json")
        );
        assert!(p("", "").is_err());
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
        let alice = Credentials::basic("alice", "s3cr:et");
        assert_eq!(file.credentials("localhost:5000").unwrap(), Some(alice));
        assert!(file.remove_credentials("localhost:5000"));
        assert!(!file.remove_credentials("localhost:5000"));
        assert_eq!(file.credentials("localhost:5000").unwrap(), None);
        assert_eq!(file.credential_helper("gcr.io"), Some("gcloud"));
        assert_eq!(file.credential_helper("other"), Some("desktop"));
    }

    #[test]
    fn malformed_documents_and_legacy_fields() {
        assert!(serde_json::from_value::<DockerConfig>(json!({"auths": []})).is_err());
        assert!(serde_json::from_value::<DockerConfig>(json!([1])).is_err());
        let bad = parse(json!({"auths": {"k": {"auth": "!!"}}}));
        assert!(bad.credentials("k").is_err());
        let bad = parse(json!({"auths": {"k": {"auth": STANDARD.encode("nocolon")}}}));
        assert!(bad.credentials("k").is_err());
        let legacy = parse(json!({"auths": {"k": {"username": "a", "password": "p"}}}));
        let a = Credentials::basic("a", "p");
        assert_eq!(legacy.credentials("k").unwrap(), Some(a));
        // An identity token comes first, with or without the user name.
        let token = parse(json!({"auths": {"k": {"identitytoken": "x"}}}));
        let bearer = Credentials::access_token("x");
        assert_eq!(token.credentials("k").unwrap(), Some(bearer.clone()));
        let mut file = parse(json!({"auths": {"k": {"auth": STANDARD.encode("a:p")}}}));
        file.set_identity_token("k", "alice", "x");
        let doc = serde_json::to_value(&file).unwrap();
        assert_eq!(
            doc["auths"]["k"],
            json!({"auth": STANDARD.encode("alice:"), "identitytoken": "x"})
        );
        assert_eq!(file.credentials("k").unwrap(), Some(bearer));
    }

    #[test]
    fn save_and_load_round_trip_privately() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/dir/config.json");
        assert!(DockerConfig::load(&path).unwrap().auths.is_none());
        let mut file = parse(json!({"credsStore": "desktop"}));
        file.set_credentials("k", "a", "p");
        file.save(&path).unwrap();
        let again = DockerConfig::load(&path).unwrap();
        let value = |c: &DockerConfig| serde_json::to_value(c).unwrap();
        assert_eq!(value(&again), value(&file));
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
        assert_eq!(names, vec![std::ffi::OsString::from("config.json")]);
        std::fs::write(&path, "{not json").unwrap();
        assert!(DockerConfig::load(&path).is_err());
    }
}
