//! Reading an htpasswd file: which lines are users, which are refused, and
//! when the whole file is.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use crate::credentials::CredentialError;
use crate::names::ExternalUserName;

/// The provider name, and the prefix of its users' names.
pub(super) const PREFIX: &str = "htpasswd:";

/// The highest bcrypt cost accepted: `htpasswd -B -C` allows up to 17, and
/// every further step doubles the work a wrong guess costs the server.
pub const MAX_BCRYPT_COST: u32 = 17;

/// Why an htpasswd file cannot be used at all (a server refuses to start
/// with it; a running one keeps the last good contents).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HtpasswdError {
    /// The file could not be read (missing, no permission, an IO error).
    #[error("cannot read htpasswd file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// A line is not UTF-8.
    #[error("htpasswd file {path} line {line}: not UTF-8")]
    NotUtf8 {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
    },
    /// A line has no `:` between the user name and the hash.
    #[error("htpasswd file {path} line {line}: no `:` between user name and password hash")]
    MissingColon {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
    },
    /// No randomness for the key of remembered logins.
    #[error(transparent)]
    Random(#[from] CredentialError),
}

/// Why one line was left out while the rest of the file loaded. Shown in
/// a warning with its line number; the hash itself is never shown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LineRefused {
    /// The hash is of a kind this registry does not verify.
    #[error("{0} hashes are not supported; only bcrypt (`htpasswd -B`: $2y$, $2a$, $2b$)")]
    UnsupportedHash(&'static str),
    /// The hash looks like bcrypt but is not well formed.
    #[error("malformed bcrypt hash")]
    MalformedBcrypt,
    /// The bcrypt cost is above [`MAX_BCRYPT_COST`].
    #[error("bcrypt cost {0} is above the accepted maximum of {MAX_BCRYPT_COST}")]
    CostTooHigh(u32),
    /// `htpasswd:<name>` is not a valid user name.
    #[error("user name cannot be used: {0}")]
    InvalidName(String),
    /// The user appeared on an earlier line, which wins (as in Apache).
    #[error("user appears again (first on line {0}); the first entry is used")]
    Duplicate(usize),
}

/// One usable entry.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub(super) name: ExternalUserName,
    pub(super) hash: Arc<str>,
}

/// A parsed file: its users, and the lines left out.
#[derive(Debug, Default)]
pub(super) struct Parsed {
    pub(super) users: HashMap<Box<str>, Entry>,
    pub(super) refused: Vec<(usize, LineRefused)>,
}

/// Names the kind of a non-bcrypt hash, for the refusal message.
fn hash_kind(hash: &str) -> &'static str {
    if hash.starts_with("$apr1$") {
        "MD5 (apr1)"
    } else if hash.starts_with("{SHA}") {
        "SHA-1"
    } else if hash.starts_with("$5$") {
        "SHA-256 crypt"
    } else if hash.starts_with("$6$") {
        "SHA-512 crypt"
    } else if hash.starts_with("$2x$") {
        "bcrypt $2x$ (the broken pre-2011 variant)"
    } else if hash.starts_with("$argon2") {
        "argon2"
    } else if hash.starts_with('$') {
        "unknown"
    } else if hash.len() == 13 {
        "DES crypt"
    } else {
        "plain-text or unknown"
    }
}

/// Checks a hash is one bcrypt verifies as `htpasswd -B` wrote it.
fn check_hash(hash: &str) -> Result<(), LineRefused> {
    let Some(rest) = ["$2y$", "$2a$", "$2b$"]
        .iter()
        .find_map(|p| hash.strip_prefix(p))
    else {
        return Err(LineRefused::UnsupportedHash(hash_kind(hash)));
    };
    // `NN$` + 22 salt + 31 hash characters of bcrypt's base64 alphabet.
    let (cost, body) = rest.split_once('$').ok_or(LineRefused::MalformedBcrypt)?;
    let well_formed = cost.len() == 2
        && body.len() == 53
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'/');
    let cost: u32 = cost.parse().map_err(|_| LineRefused::MalformedBcrypt)?;
    if !well_formed || !(4..=31).contains(&cost) {
        return Err(LineRefused::MalformedBcrypt);
    }
    if cost > MAX_BCRYPT_COST {
        return Err(LineRefused::CostTooHigh(cost));
    }
    Ok(())
}

/// Parses the bytes of an htpasswd file. Empty lines and lines starting
/// with `#` are skipped (as Apache does); `\r\n` line ends are accepted.
pub(super) fn parse(path: &Path, bytes: &[u8]) -> Result<Parsed, HtpasswdError> {
    let mut parsed = Parsed::default();
    let mut first_line: HashMap<Box<str>, usize> = HashMap::new();
    for (index, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = index + 1;
        let text = std::str::from_utf8(raw).map_err(|_| HtpasswdError::NotUtf8 {
            path: path.to_owned(),
            line,
        })?;
        let text = text.strip_suffix('\r').unwrap_or(text);
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        let (user, hash) = text.split_once(':').ok_or(HtpasswdError::MissingColon {
            path: path.to_owned(),
            line,
        })?;
        if let Some(&first) = first_line.get(user) {
            parsed.refused.push((line, LineRefused::Duplicate(first)));
            continue;
        }
        first_line.insert(user.into(), line);
        let name = match ExternalUserName::from_str(&format!("{PREFIX}{user}")) {
            Ok(name) if !user.is_empty() => name,
            Ok(_) => {
                let e = LineRefused::InvalidName("empty".into());
                parsed.refused.push((line, e));
                continue;
            }
            Err(e) => {
                parsed
                    .refused
                    .push((line, LineRefused::InvalidName(e.to_string())));
                continue;
            }
        };
        if let Err(refused) = check_hash(hash) {
            parsed.refused.push((line, refused));
            continue;
        }
        parsed.users.insert(
            user.into(),
            Entry {
                name,
                hash: hash.into(),
            },
        );
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Written by `htpasswd -nbB -C 5 alice alice-password` (Apache 2.4.71).
    const ALICE: &str = "alice:$2y$05$spAZkDbBDsRryIgEdldDgevqNrg0c1wHNBhQtACnC6li7m2UAqOqu";

    fn parse_str(text: &str) -> Result<Parsed, HtpasswdError> {
        parse(Path::new("test.htpasswd"), text.as_bytes())
    }

    #[test]
    fn reads_bcrypt_entries_as_htpasswd_writes_them() {
        let text = format!(
            "# a comment\n\n{ALICE}\r\nbob:$2b$04$IufrBL58HxqROkXVux9iPedPzLK8dvFyKGIwRltZU0Ar82OvzaNEy\n\
             carol:$2a$04$IufrBL58HxqROkXVux9iPedPzLK8dvFyKGIwRltZU0Ar82OvzaNEy"
        );
        let parsed = parse_str(&text).unwrap();
        assert!(parsed.refused.is_empty(), "{:?}", parsed.refused);
        assert_eq!(parsed.users.len(), 3);
        assert_eq!(parsed.users["alice"].name.as_str(), "htpasswd:alice");
        assert!(parsed.users["alice"].hash.starts_with("$2y$05$"));
        assert!(bcrypt::verify("alice-password", &parsed.users["alice"].hash).unwrap());
    }

    #[test]
    fn other_hash_kinds_are_refused_by_line() {
        let text = format!(
            "md5:$apr1$E.GNHqq3$y4lbbJJqqbSXADgP6dUFd/\nsha:{{SHA}}EfatjsUqKYSrqv18O1FlA3hcIHI=\n\
             crypt:qomOc5PhykeVs\nplain:secret\nx2:$2x$05$spAZkDbBD1xh6E0YDRgxMeIXCGf8ziEPzQCn/kgtWzNGFLJ9KR0eS\n\
             sha512:$6$salt$hash\n{ALICE}\nshort:$2y$05$tooshort\ncostly:$2y$18$spAZkDbBD1xh6E0YDRgxMeIXCGf8ziEPzQCn/kgtWzNGFLJ9KR0eS\n\
             nocost:$2y$xx$spAZkDbBD1xh6E0YDRgxMeIXCGf8ziEPzQCn/kgtWzNGFLJ9KR0eS"
        );
        let parsed = parse_str(&text).unwrap();
        assert_eq!(
            parsed.users.keys().map(|k| &**k).collect::<Vec<_>>(),
            ["alice"]
        );
        let refused: Vec<_> = parsed
            .refused
            .iter()
            .map(|(l, r)| (*l, r.clone()))
            .collect();
        assert_eq!(
            refused,
            [
                (1, LineRefused::UnsupportedHash("MD5 (apr1)")),
                (2, LineRefused::UnsupportedHash("SHA-1")),
                (3, LineRefused::UnsupportedHash("DES crypt")),
                (4, LineRefused::UnsupportedHash("plain-text or unknown")),
                (
                    5,
                    LineRefused::UnsupportedHash("bcrypt $2x$ (the broken pre-2011 variant)")
                ),
                (6, LineRefused::UnsupportedHash("SHA-512 crypt")),
                (8, LineRefused::MalformedBcrypt),
                (9, LineRefused::CostTooHigh(18)),
                (10, LineRefused::MalformedBcrypt),
            ]
        );
        // The refusal text names the kind and never the hash.
        for (_, r) in &parsed.refused {
            let shown = r.to_string();
            assert!(
                !shown.contains("E.GNHqq3") && !shown.contains("spAZkDbBD"),
                "{shown}"
            );
        }
    }

    #[test]
    fn names_and_duplicates() {
        let text = format!("{ALICE}\n{ALICE}\n:$2y$05$spAZkDbBDsRryIgEdldDgevqNrg0c1wHNBhQtACnC6li7m2UAqOqu\nbad name:$2y$05$spAZkDbBDsRryIgEdldDgevqNrg0c1wHNBhQtACnC6li7m2UAqOqu\n");
        let parsed = parse_str(&text).unwrap();
        assert_eq!(parsed.users.len(), 1);
        assert_eq!(parsed.refused[0], (2, LineRefused::Duplicate(1)));
        assert_eq!(parsed.refused[1].0, 3);
        assert!(matches!(parsed.refused[1].1, LineRefused::InvalidName(_)));
        assert_eq!(parsed.refused[2].0, 4);
        assert!(matches!(parsed.refused[2].1, LineRefused::InvalidName(_)));
    }

    #[test]
    fn a_broken_file_is_refused_whole() {
        assert!(matches!(
            parse_str(&format!("{ALICE}\njust-a-name\n")),
            Err(HtpasswdError::MissingColon { line: 2, .. })
        ));
        let mut bytes = format!("{ALICE}\n").into_bytes();
        bytes.extend_from_slice(b"bob:\xff\xfe\n");
        assert!(matches!(
            parse(Path::new("f"), &bytes),
            Err(HtpasswdError::NotUtf8 { line: 2, .. })
        ));
        assert!(parse_str("").unwrap().users.is_empty());
    }
}
