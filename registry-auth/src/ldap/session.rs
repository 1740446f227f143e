//! One login against the directory: connect, bind as the service account,
//! find exactly one user entry, read its groups, bind as the user.

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use ldap3::{LdapConnAsync, LdapConnSettings, LdapError, Scope, SearchEntry, SearchOptions};

use super::config::{Checked, LdapConfig};

/// LDAP result codes the flow tells apart (RFC 4511 appendix A).
mod rc {
    pub const SIZE_LIMIT_EXCEEDED: u32 = 4;
    pub const NO_SUCH_OBJECT: u32 = 32;
    pub const INAPPROPRIATE_AUTHENTICATION: u32 = 48;
    pub const INVALID_CREDENTIALS: u32 = 49;
    pub const INSUFFICIENT_ACCESS_RIGHTS: u32 = 50;
    pub const UNWILLING_TO_PERFORM: u32 = 53;
}

/// What the directory said about a login.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Lookup {
    /// The password is right: the user's `uid` (or the name logged in with,
    /// when the entry has no single one) and the `cn`s of its groups.
    Found { uid: String, groups: Vec<String> },
    /// No entry, or more than one, matches: not an LDAP user.
    NotFound(&'static str),
    /// The entry exists and the directory refused its password.
    WrongPassword,
}

/// Why the directory could not answer: the provider answers "not mine"
/// with a warning naming this.
#[derive(Debug, thiserror::Error)]
pub(super) enum Unavailable {
    #[error("cannot connect: {0}")]
    Connect(#[source] Box<LdapError>),
    #[error("the service bind was refused (result code {rc}: {text})")]
    ServiceBind { rc: u32, text: String },
    #[error("{what} failed: {source}")]
    Operation {
        what: &'static str,
        #[source]
        source: Box<LdapError>,
    },
    #[error("{what} failed with result code {rc}: {text}")]
    Refused {
        what: &'static str,
        rc: u32,
        text: String,
    },
    #[error("the user is in more than {0} groups")]
    TooManyGroups(usize),
    #[error("an entry could not be decoded")]
    Undecodable,
    #[error("no answer within {0:?}")]
    TimedOut(Duration),
}

/// Aborts the connection's driver task when the login ends, however it
/// ends (a client that hangs up drops the login future).
struct Driver(tokio::task::JoinHandle<()>);

impl Drop for Driver {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Decodes a search result entry; ldap3 panics on malformed BER, which a
/// broken server must not turn into a failed request task.
fn decode(entry: ldap3::ResultEntry) -> Result<SearchEntry, Unavailable> {
    std::panic::catch_unwind(AssertUnwindSafe(|| SearchEntry::construct(entry)))
        .map_err(|_| Unavailable::Undecodable)
}

/// The values of `attr` (names compare case-insensitively).
fn values<'a>(entry: &'a SearchEntry, attr: &str) -> &'a [String] {
    entry
        .attrs
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(attr))
        .map_or(&[], |(_, v)| v.as_slice())
}

/// The user's name: the `uid` value that matches the name logged in with
/// (the directory's spelling), else the only `uid`, else that name.
fn uid_of(entry: &SearchEntry, username: &str) -> String {
    let uids = values(entry, "uid");
    uids.iter()
        .find(|u| u.eq_ignore_ascii_case(username))
        .or(match uids {
            [only] => Some(only),
            _ => None,
        })
        .cloned()
        .unwrap_or_else(|| username.to_owned())
}

/// Runs one login. The caller bounds the whole of it in time as well.
pub(super) async fn lookup(
    config: &LdapConfig,
    checked: &Checked,
    username: &str,
    password: &str,
) -> Result<Lookup, Unavailable> {
    let op = config.operation_timeout;
    let mut settings = LdapConnSettings::new()
        .set_conn_timeout(config.connect_timeout)
        .set_starttls(config.start_tls);
    if let Some(tls) = &checked.tls {
        settings = settings.set_config(tls.clone());
    }
    let (conn, mut ldap) = LdapConnAsync::from_url_with_settings(settings, &checked.url)
        .await
        .map_err(|e| match e {
            LdapError::Timeout { .. } => Unavailable::TimedOut(config.connect_timeout),
            e => Unavailable::Connect(Box::new(e)),
        })?;
    let _driver = Driver(tokio::spawn(async move {
        if let Err(e) = conn.drive().await {
            tracing::debug!(target: "auth", provider = super::PROVIDER, "LDAP connection ended: {e}");
        }
    }));
    let operation = |what: &'static str| {
        move |source: LdapError| match source {
            LdapError::Timeout { .. } => Unavailable::TimedOut(op),
            source => Unavailable::Operation {
                what,
                source: Box::new(source),
            },
        }
    };

    if let (Some(dn), Some(pw)) = (&config.bind_dn, &config.bind_password) {
        let result = ldap
            .with_timeout(op)
            .simple_bind(dn, pw.expose())
            .await
            .map_err(operation("the service bind"))?;
        if result.rc != 0 {
            return Err(Unavailable::ServiceBind {
                rc: result.rc,
                text: result.text,
            });
        }
    }

    let filter = checked.user_filter.render(username, "");
    let ldap3::SearchResult(entries, result) = ldap
        .with_search_options(SearchOptions::new().sizelimit(2))
        .with_timeout(op)
        .search(&config.user_base, Scope::Subtree, &filter, vec!["uid"])
        .await
        .map_err(operation("the user search"))?;
    match result.rc {
        0 => {}
        rc::SIZE_LIMIT_EXCEEDED => return Ok(Lookup::NotFound("more than one entry matches")),
        rc::NO_SUCH_OBJECT => {
            tracing::warn!(target: "auth", provider = super::PROVIDER, base = %config.user_base, "the LDAP user search base does not exist (or is hidden from the bind DN)");
            return Ok(Lookup::NotFound("the user search base does not exist"));
        }
        rc => {
            return Err(Unavailable::Refused {
                what: "the user search",
                rc,
                text: result.text,
            })
        }
    }
    let entry = match <[_; 1]>::try_from(entries) {
        Ok([entry]) => decode(entry)?,
        Err(entries) if entries.is_empty() => return Ok(Lookup::NotFound("no entry matches")),
        Err(_) => return Ok(Lookup::NotFound("more than one entry matches")),
    };
    // An empty DN would make the user bind anonymous, which "succeeds".
    if entry.dn.is_empty() {
        return Ok(Lookup::NotFound("the entry has an empty DN"));
    }

    // Groups are read with the service account's rights, before the bind
    // that switches the connection to the user.
    let mut groups = Vec::new();
    if let Some(base) = &config.group_base {
        let filter = checked.group_filter.render(username, &entry.dn);
        let limit = i32::try_from(config.max_groups.saturating_add(1)).unwrap_or(i32::MAX);
        let ldap3::SearchResult(entries, result) = ldap
            .with_search_options(SearchOptions::new().sizelimit(limit))
            .with_timeout(op)
            .search(base, Scope::Subtree, &filter, vec!["cn"])
            .await
            .map_err(operation("the group search"))?;
        match result.rc {
            0 if entries.len() <= config.max_groups => {}
            0 | rc::SIZE_LIMIT_EXCEEDED => {
                return Err(Unavailable::TooManyGroups(config.max_groups))
            }
            rc::NO_SUCH_OBJECT => {
                tracing::warn!(target: "auth", provider = super::PROVIDER, base = %base, "the LDAP group search base does not exist (or is hidden from the bind DN)");
            }
            rc => {
                return Err(Unavailable::Refused {
                    what: "the group search",
                    rc,
                    text: result.text,
                })
            }
        }
        for group in entries {
            groups.extend(values(&decode(group)?, "cn").iter().cloned());
        }
    }

    let result = ldap
        .with_timeout(op)
        .simple_bind(&entry.dn, password)
        .await
        .map_err(operation("the user bind"))?;
    let outcome = match result.rc {
        0 => Lookup::Found {
            uid: uid_of(&entry, username),
            groups,
        },
        rc::INVALID_CREDENTIALS
        | rc::INAPPROPRIATE_AUTHENTICATION
        | rc::INSUFFICIENT_ACCESS_RIGHTS
        | rc::UNWILLING_TO_PERFORM => Lookup::WrongPassword,
        rc => {
            return Err(Unavailable::Refused {
                what: "the user bind",
                rc,
                text: result.text,
            })
        }
    };
    // Polite, not needed: the driver is aborted when this returns.
    let _ = ldap.with_timeout(op).unbind().await;
    Ok(outcome)
}
