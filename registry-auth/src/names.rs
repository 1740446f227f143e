//! The names of those who ask: local users, service accounts, users and
//! groups of identity providers.

use std::fmt;
use std::str::FromStr;

use registry_core::{serde_via_str, NameError, Namespace};

/// Longest user name accepted, in bytes.
pub const MAX_USER_NAME_LEN: usize = 64;
/// Longest service-account name accepted, in bytes (a DNS-1123 label).
pub const MAX_SERVICE_ACCOUNT_NAME_LEN: usize = 63;

/// The prefix of a service account's subject string.
pub const SERVICE_ACCOUNT_PREFIX: &str = "system:serviceaccount:";
/// Longest provider user or group name accepted, in bytes.
pub const MAX_EXTERNAL_NAME_LEN: usize = 256;
/// Prefixes no provider user or group name may start with: they select the
/// kind of a subject string (`system:…`, `group:…`, `user:…`,
/// `serviceaccount:…`).
const RESERVED_PREFIXES: [&str; 4] = ["system:", "group:", "user:", "serviceaccount:"];

/// Why a string is not a valid user name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserNameError {
    /// The name is empty.
    #[error("user name is empty")]
    Empty,
    /// The name is longer than [`MAX_USER_NAME_LEN`].
    #[error("user name is {0} bytes, longer than 64")]
    TooLong(usize),
    /// The name breaks the namespace-component grammar.
    #[error("user name {0}")]
    Grammar(NameError),
}

/// A validated user name.
///
/// Grammar: one repository-name component (`[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`,
/// the same as a [`Namespace`]), at most [`MAX_USER_NAME_LEN`] bytes. It never
/// contains `:`, so it cannot be confused with a `system:` subject, and it is
/// safe as the user part of HTTP Basic credentials.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserName {
    repr: Box<str>,
}

impl UserName {
    /// The name text.
    pub fn as_str(&self) -> &str {
        &self.repr
    }
}

impl FromStr for UserName {
    type Err = UserNameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(UserNameError::Empty);
        }
        if s.len() > MAX_USER_NAME_LEN {
            return Err(UserNameError::TooLong(s.len()));
        }
        s.parse::<Namespace>().map_err(UserNameError::Grammar)?;
        Ok(UserName { repr: s.into() })
    }
}

/// Why a string is not a valid service-account name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceAccountNameError {
    /// The name is empty.
    #[error("service account name is empty")]
    Empty,
    /// The name is longer than [`MAX_SERVICE_ACCOUNT_NAME_LEN`].
    #[error("service account name is {0} bytes, longer than 63")]
    TooLong(usize),
    /// A character outside `[a-z0-9-]` appears.
    #[error("service account name contains invalid character {0:?}")]
    InvalidCharacter(char),
    /// The name starts or ends with `-`.
    #[error("service account name must start and end with a letter or digit")]
    InvalidEdge,
}

/// A validated service-account name, unique within its namespace.
///
/// Grammar: a DNS-1123 label (`[a-z0-9]([a-z0-9-]*[a-z0-9])?`, at most 63
/// bytes), like a Kubernetes ServiceAccount, so that the derived pull-secret
/// name is a valid Kubernetes object name too.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceAccountName {
    repr: Box<str>,
}

impl ServiceAccountName {
    /// The name text.
    pub fn as_str(&self) -> &str {
        &self.repr
    }
}

impl FromStr for ServiceAccountName {
    type Err = ServiceAccountNameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(ServiceAccountNameError::Empty);
        }
        if s.len() > MAX_SERVICE_ACCOUNT_NAME_LEN {
            return Err(ServiceAccountNameError::TooLong(s.len()));
        }
        if let Some(bad) = s
            .chars()
            .find(|&c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'))
        {
            return Err(ServiceAccountNameError::InvalidCharacter(bad));
        }
        if s.starts_with('-') || s.ends_with('-') {
            return Err(ServiceAccountNameError::InvalidEdge);
        }
        Ok(ServiceAccountName { repr: s.into() })
    }
}

/// A service account: a name inside a namespace. Shown as
/// `system:serviceaccount:<namespace>:<name>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceAccountRef {
    /// The namespace that owns the service account.
    pub namespace: Namespace,
    /// Its name within the namespace.
    pub name: ServiceAccountName,
}

impl ServiceAccountRef {
    /// Pairs a namespace and a name.
    pub fn new(namespace: Namespace, name: ServiceAccountName) -> Self {
        ServiceAccountRef { namespace, name }
    }
}

impl fmt::Display for ServiceAccountRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{SERVICE_ACCOUNT_PREFIX}{}:{}",
            self.namespace, self.name
        )
    }
}

/// Why a string is not a valid provider user or group name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExternalNameError {
    /// The name is empty.
    #[error("name is empty")]
    Empty,
    /// The name is longer than [`MAX_EXTERNAL_NAME_LEN`].
    #[error("name is {0} bytes, longer than 256")]
    TooLong(usize),
    /// Whitespace or a control character appears.
    #[error("name contains whitespace or a control character")]
    InvalidCharacter,
    /// The name starts with a prefix that selects another kind of subject.
    #[error("name must not start with {0:?}")]
    ReservedPrefix(&'static str),
}

fn check_external(s: &str) -> Result<(), ExternalNameError> {
    if s.is_empty() {
        return Err(ExternalNameError::Empty);
    }
    if s.len() > MAX_EXTERNAL_NAME_LEN {
        return Err(ExternalNameError::TooLong(s.len()));
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ExternalNameError::InvalidCharacter);
    }
    if let Some(prefix) = RESERVED_PREFIXES.iter().find(|p| s.starts_with(**p)) {
        return Err(ExternalNameError::ReservedPrefix(prefix));
    }
    Ok(())
}

/// A user that an identity provider vouches for, named with the provider's
/// prefix: `ldap:alice`, `oidc:alice@example.com`, `htpasswd:bob`.
///
/// Grammar: 1 to [`MAX_EXTERNAL_NAME_LEN`] bytes, no whitespace or control
/// characters, never starting with `system:`, `group:`, `user:` or
/// `serviceaccount:`, so a provider cannot name a built-in subject. A name
/// that is also a valid [`UserName`] (a provider configured without a
/// prefix) reads back as that local user's subject: bindings to `alice`
/// then apply to both, as with kube-apiserver's `--oidc-username-prefix=-`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExternalUserName {
    repr: Box<str>,
}

impl ExternalUserName {
    /// The name text, prefix included.
    pub fn as_str(&self) -> &str {
        &self.repr
    }
}

impl FromStr for ExternalUserName {
    type Err = ExternalNameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        check_external(s)?;
        Ok(ExternalUserName { repr: s.into() })
    }
}

/// A group that an identity provider puts its users in, named with the
/// provider's prefix: `oidc:devs`, `ldap:ops`. Bound as the subject
/// `group:<name>`. Same grammar as [`ExternalUserName`]: in particular a
/// provider cannot put anyone in a `system:` group.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupName {
    repr: Box<str>,
}

impl GroupName {
    /// The name text, prefix included.
    pub fn as_str(&self) -> &str {
        &self.repr
    }
}

impl FromStr for GroupName {
    type Err = ExternalNameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        check_external(s)?;
        Ok(GroupName { repr: s.into() })
    }
}

macro_rules! string_form {
    ($t:ty) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.repr)
            }
        }

        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($t), self.repr)
            }
        }
    };
}

string_form!(UserName);
string_form!(ServiceAccountName);
string_form!(ExternalUserName);
string_form!(GroupName);

serde_via_str!(UserName);
serde_via_str!(ServiceAccountName);
serde_via_str!(ExternalUserName);
serde_via_str!(GroupName);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names() {
        assert!("alice".parse::<UserName>().is_ok());
        assert!("ci.bot_1".parse::<UserName>().is_ok());
        assert_eq!("".parse::<UserName>(), Err(UserNameError::Empty));
        assert_eq!(
            "a".repeat(65).parse::<UserName>(),
            Err(UserNameError::TooLong(65))
        );
        assert!(matches!(
            "Alice".parse::<UserName>(),
            Err(UserNameError::Grammar(_))
        ));
        assert!(matches!(
            "a:b".parse::<UserName>(),
            Err(UserNameError::Grammar(_))
        ));
    }

    #[test]
    fn service_account_names() {
        assert!("builder".parse::<ServiceAccountName>().is_ok());
        assert!("a-1".parse::<ServiceAccountName>().is_ok());
        assert_eq!(
            "a_b".parse::<ServiceAccountName>(),
            Err(ServiceAccountNameError::InvalidCharacter('_'))
        );
        assert_eq!(
            "-a".parse::<ServiceAccountName>(),
            Err(ServiceAccountNameError::InvalidEdge)
        );
        assert_eq!(
            "a".repeat(64).parse::<ServiceAccountName>(),
            Err(ServiceAccountNameError::TooLong(64))
        );
    }

    #[test]
    fn external_names() {
        for ok in [
            "ldap:alice",
            "oidc:alice@example.com",
            "htpasswd:bob",
            "alice",
            "Ünïcode:x",
        ] {
            assert_eq!(ok.parse::<ExternalUserName>().unwrap().as_str(), ok);
            assert_eq!(ok.parse::<GroupName>().unwrap().as_str(), ok);
        }
        assert_eq!("".parse::<GroupName>(), Err(ExternalNameError::Empty));
        assert_eq!(
            "a".repeat(257).parse::<GroupName>(),
            Err(ExternalNameError::TooLong(257))
        );
        for bad in ["a b", "a\tb", "a\u{0}b", "a\u{85}b"] {
            assert_eq!(
                bad.parse::<ExternalUserName>(),
                Err(ExternalNameError::InvalidCharacter),
                "{bad:?}"
            );
        }
        for (bad, prefix) in [
            ("system:masters", "system:"),
            ("group:x", "group:"),
            ("user:x", "user:"),
            ("serviceaccount:a:b", "serviceaccount:"),
        ] {
            assert_eq!(
                bad.parse::<GroupName>(),
                Err(ExternalNameError::ReservedPrefix(prefix))
            );
        }
    }
}
