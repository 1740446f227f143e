//! The Docker-compatible auth file (`config.json`): where it is, reading and
//! merging entries without disturbing anything else in it, and atomic writes.
//!
//! Only `auths["host[:port]"].auth` (base64 of `user:password`) is written;
//! every other key (`credHelpers`, `credsStore`, `proxies`, other servers'
//! entries...) is kept as it was.

use std::ffi::OsStr;
use std::fmt;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{Map, Value};

/// A user name and password (or access token) for one server.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name (any name when the password is an access token).
    pub username: String,
    /// The password or access token.
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Picks the auth file: `explicit` (`--config`/`--to`), else
/// `$DOCKER_CONFIG/config.json`, else `$HOME/.docker/config.json`.
pub fn resolve_path(
    explicit: Option<&Path>,
    docker_config: Option<&OsStr>,
    home: Option<&OsStr>,
) -> Result<PathBuf, String> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    if let Some(dir) = docker_config.filter(|d| !d.is_empty()) {
        return Ok(Path::new(dir).join("config.json"));
    }
    match home.filter(|h| !h.is_empty()) {
        Some(h) => Ok(Path::new(h).join(".docker").join("config.json")),
        None => Err(
            "cannot locate the auth file: neither DOCKER_CONFIG nor HOME is set; \
                     pass --config FILE"
                .to_owned(),
        ),
    }
}

/// Reads the auth file; a missing or empty file is an empty document.
/// Invalid JSON is an error, so a file we do not understand is never clobbered.
pub fn load(path: &Path) -> Result<Value, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Value::Object(Map::new())),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    if text.trim().is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    let doc: Value = serde_json::from_str(&text)
        .map_err(|e| format!("{} is not valid JSON: {e}", path.display()))?;
    if !doc.is_object() {
        return Err(format!("{} is not a JSON object", path.display()));
    }
    Ok(doc)
}

/// Writes `doc` to `path` atomically: a private (0600) temporary file in the
/// same directory, flushed and renamed over the target. Parent directories
/// are created; a symlinked auth file is updated at its target.
pub fn save(path: &Path, doc: &Value) -> Result<(), String> {
    let target = match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => std::fs::canonicalize(path)
            .map_err(|e| format!("cannot resolve symlink {}: {e}", path.display()))?,
        _ => path.to_path_buf(),
    };
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    create_private_dirs(&dir)
        .map_err(|e| format!("cannot create directory {}: {e}", dir.display()))?;
    let mut text = serde_json::to_string_pretty(doc).expect("a JSON value serializes");
    text.push('\n');
    let write_err = |e: std::io::Error| format!("cannot write {}: {e}", target.display());
    // tempfile creates the file with mode 0600 on Unix.
    let mut tmp = tempfile::Builder::new()
        .prefix(".config.json.")
        .tempfile_in(&dir)
        .map_err(write_err)?;
    set_private(tmp.path()).map_err(write_err)?;
    tmp.write_all(text.as_bytes()).map_err(write_err)?;
    tmp.as_file().sync_all().map_err(write_err)?;
    tmp.persist(&target).map_err(|e| write_err(e.error))?;
    Ok(())
}

/// Creates `dir` and its missing parents, new ones with mode 0700 on Unix
/// (like docker does for `~/.docker`).
fn create_private_dirs(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

#[cfg(unix)]
fn set_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

#[cfg(not(unix))]
fn set_private(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

/// The `auths` object of `doc`, created when missing.
fn auths_mut(doc: &mut Value) -> Result<&mut Map<String, Value>, String> {
    let root = doc
        .as_object_mut()
        .ok_or("the auth file is not a JSON object")?;
    let auths = root
        .entry("auths")
        .or_insert_with(|| Value::Object(Map::new()));
    if auths.is_null() {
        *auths = Value::Object(Map::new());
    }
    auths
        .as_object_mut()
        .ok_or_else(|| "\"auths\" in the auth file is not a JSON object".to_owned())
}

/// Sets `auths[key] = {"auth": base64("user:password")}`, replacing only that
/// entry.
pub fn set_credentials(doc: &mut Value, key: &str, creds: &Credentials) -> Result<(), String> {
    let encoded = STANDARD.encode(format!("{}:{}", creds.username, creds.password));
    let mut entry = Map::new();
    entry.insert("auth".to_owned(), Value::String(encoded));
    auths_mut(doc)?.insert(key.to_owned(), Value::Object(entry));
    Ok(())
}

/// Removes `auths[key]`; whether there was such an entry.
pub fn remove_credentials(doc: &mut Value, key: &str) -> Result<bool, String> {
    let Some(auths) = doc.get("auths") else {
        return Ok(false);
    };
    if auths.is_null() {
        return Ok(false);
    }
    Ok(auths_mut(doc)?.remove(key).is_some())
}

/// The credentials stored for `key`: `auth` (base64 `user:password`), or the
/// older separate `username` and `password` fields. `None` when there is no
/// entry or it holds neither (e.g. an `identitytoken` only).
pub fn credentials(doc: &Value, key: &str) -> Result<Option<Credentials>, String> {
    let Some(entry) = doc.get("auths").and_then(|a| a.get(key)) else {
        return Ok(None);
    };
    if let Some(auth) = entry
        .get("auth")
        .and_then(Value::as_str)
        .filter(|a| !a.is_empty())
    {
        let raw = STANDARD
            .decode(auth.trim())
            .map_err(|e| format!("auths[{key:?}].auth is not valid base64: {e}"))?;
        let text =
            String::from_utf8(raw).map_err(|_| format!("auths[{key:?}].auth is not UTF-8"))?;
        let (username, password) = text
            .split_once(':')
            .ok_or_else(|| format!("auths[{key:?}].auth is not \"user:password\""))?;
        return Ok(Some(Credentials {
            username: username.to_owned(),
            password: password.to_owned(),
        }));
    }
    let field = |name: &str| entry.get(name).and_then(Value::as_str).map(str::to_owned);
    Ok(match (field("username"), field("password")) {
        (Some(username), Some(password)) => Some(Credentials { username, password }),
        _ => None,
    })
}

/// Why there are no usable credentials for `key` in `doc`, for the error;
/// `login` is the command that would store them.
pub fn missing_credentials_hint(doc: &Value, key: &str, path: &Path, login: &str) -> String {
    let helper = doc
        .get("credHelpers")
        .and_then(|h| h.get(key))
        .or_else(|| doc.get("credsStore"))
        .and_then(Value::as_str);
    let mut msg = format!(
        "no credentials for {key} in {}: run `{login}` first",
        path.display()
    );
    if let Some(h) = helper {
        msg.push_str(&format!(
            " (credential helper {h:?} is configured, but registryctl reads only \"auths\")"
        ));
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn alice() -> Credentials {
        Credentials {
            username: "alice".into(),
            password: "s3cr:et".into(),
        }
    }

    #[test]
    fn path_precedence() {
        let home = OsStr::new("/home/u");
        let dc = OsStr::new("/etc/dc");
        let explicit = Path::new("/tmp/auth.json");
        assert_eq!(
            resolve_path(Some(explicit), Some(dc), Some(home)).unwrap(),
            explicit
        );
        assert_eq!(
            resolve_path(None, Some(dc), Some(home)).unwrap(),
            Path::new("/etc/dc/config.json")
        );
        assert_eq!(
            resolve_path(None, Some(OsStr::new("")), Some(home)).unwrap(),
            Path::new("/home/u/.docker/config.json")
        );
        assert!(resolve_path(None, None, None).is_err());
    }

    #[test]
    fn merge_keeps_other_entries_and_helpers() {
        let mut doc = json!({
            "auths": {"quay.io": {"auth": "eDp5"}, "localhost:5000": {"auth": "old"}},
            "credHelpers": {"gcr.io": "gcloud"},
            "credsStore": "desktop",
            "proxies": {"default": {"httpProxy": "http://proxy"}}
        });
        set_credentials(&mut doc, "localhost:5000", &alice()).unwrap();
        assert_eq!(doc["auths"]["quay.io"], json!({"auth": "eDp5"}));
        assert_eq!(doc["credHelpers"], json!({"gcr.io": "gcloud"}));
        assert_eq!(doc["credsStore"], json!("desktop"));
        assert_eq!(
            doc["proxies"]["default"]["httpProxy"],
            json!("http://proxy")
        );
        assert_eq!(
            doc["auths"]["localhost:5000"],
            json!({"auth": STANDARD.encode("alice:s3cr:et")})
        );
        // The password may contain ':'; only the first one separates.
        assert_eq!(credentials(&doc, "localhost:5000").unwrap(), Some(alice()));
    }

    #[test]
    fn set_creates_auths_and_remove_only_removes_one() {
        let mut doc = json!({});
        set_credentials(&mut doc, "a:1", &alice()).unwrap();
        set_credentials(&mut doc, "b:2", &alice()).unwrap();
        assert!(remove_credentials(&mut doc, "a:1").unwrap());
        assert!(!remove_credentials(&mut doc, "a:1").unwrap());
        assert_eq!(credentials(&doc, "a:1").unwrap(), None);
        assert_eq!(credentials(&doc, "b:2").unwrap(), Some(alice()));
        let mut empty = json!({"credsStore": "x"});
        assert!(!remove_credentials(&mut empty, "a:1").unwrap());
        assert_eq!(empty, json!({"credsStore": "x"}));
    }

    #[test]
    fn rejects_malformed_documents() {
        let mut doc = json!({"auths": []});
        assert!(set_credentials(&mut doc, "k", &alice()).is_err());
        let mut doc = json!([1]);
        assert!(set_credentials(&mut doc, "k", &alice()).is_err());
        let doc = json!({"auths": {"k": {"auth": "!!"}}});
        assert!(credentials(&doc, "k").is_err());
        let doc = json!({"auths": {"k": {"auth": STANDARD.encode("nocolon")}}});
        assert!(credentials(&doc, "k").is_err());
    }

    #[test]
    fn reads_legacy_username_password_fields() {
        let doc = json!({"auths": {"k": {"username": "alice", "password": "s3cr:et"}}});
        assert_eq!(credentials(&doc, "k").unwrap(), Some(alice()));
        let doc = json!({"auths": {"k": {"identitytoken": "x"}}});
        assert_eq!(credentials(&doc, "k").unwrap(), None);
    }

    #[test]
    fn hint_mentions_helper() {
        let doc = json!({"credHelpers": {"k": "pass"}});
        let hint = missing_credentials_hint(&doc, "k", Path::new("/c.json"), "registryctl login k");
        assert!(
            hint.contains("registryctl login k") && hint.contains("\"pass\""),
            "{hint}"
        );
    }

    #[test]
    fn save_and_load_round_trip_privately() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/dir/config.json");
        assert_eq!(load(&path).unwrap(), json!({}));
        let mut doc = json!({"credsStore": "desktop"});
        set_credentials(&mut doc, "k", &alice()).unwrap();
        save(&path, &doc).unwrap();
        assert_eq!(load(&path).unwrap(), doc);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            let dir_mode = std::fs::metadata(path.parent().unwrap())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(dir_mode & 0o777, 0o700);
        }
        // No temporary files left behind.
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![OsStr::new("config.json").to_owned()]);
        std::fs::write(&path, "{not json").unwrap();
        assert!(load(&path).is_err());
    }
}
