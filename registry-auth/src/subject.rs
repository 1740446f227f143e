//! What a role can be bound to: [`Subject`]s, including [`Group`]s.
//!
//! The names they are made of live in [`crate::names`]; the caller the
//! authorizer is asked about is an [`Identity`](crate::Identity).

use std::fmt;
use std::str::FromStr;

use registry_core::{NameError, Namespace};

pub(crate) use registry_core::serde_via_str;

pub use crate::names::{
    ExternalNameError, ExternalUserName, GroupName, ServiceAccountName, ServiceAccountNameError,
    ServiceAccountRef, UserName, UserNameError, MAX_EXTERNAL_NAME_LEN,
    MAX_SERVICE_ACCOUNT_NAME_LEN, MAX_USER_NAME_LEN, SERVICE_ACCOUNT_PREFIX,
};

/// The prefix of the group of every service account of a namespace.
pub const SERVICE_ACCOUNTS_GROUP_PREFIX: &str = "system:serviceaccounts:";

/// A group of callers. Bindings to a group apply to every member.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Group {
    /// `system:authenticated`: every logged-in user and service account.
    Authenticated,
    /// `system:anonymous`: requests without credentials. A binding to this
    /// group makes a namespace public; the authorizer applies such bindings to
    /// every identity, so a public namespace stays readable after login.
    Anonymous,
    /// `system:serviceaccounts:<ns>`: every service account of namespace
    /// `<ns>` ("all workloads of project A pull from project B").
    ServiceAccounts(Namespace),
    /// A group an identity provider puts its users in (`oidc:devs`).
    Named(GroupName),
}

impl fmt::Display for Group {
    /// The group's name (without the `group:` of its subject string).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Group::Authenticated => f.write_str("system:authenticated"),
            Group::Anonymous => f.write_str("system:anonymous"),
            Group::ServiceAccounts(ns) => write!(f, "{SERVICE_ACCOUNTS_GROUP_PREFIX}{ns}"),
            Group::Named(name) => name.fmt(f),
        }
    }
}

impl FromStr for Group {
    type Err = SubjectError;

    /// Parses a group name (`system:authenticated`,
    /// `system:serviceaccounts:team`, `ldap:ops`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "system:authenticated" => return Ok(Group::Authenticated),
            "system:anonymous" => return Ok(Group::Anonymous),
            _ => {}
        }
        if let Some(ns) = s.strip_prefix(SERVICE_ACCOUNTS_GROUP_PREFIX) {
            return Ok(Group::ServiceAccounts(
                ns.parse().map_err(SubjectError::Namespace)?,
            ));
        }
        if s.starts_with("system:") {
            return Err(SubjectError::UnknownSystemSubject(s.to_owned()));
        }
        Ok(Group::Named(s.parse().map_err(SubjectError::GroupName)?))
    }
}

/// Why a string is not a valid subject.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SubjectError {
    /// A `system:` subject other than a known group or a service account.
    #[error("unknown system subject {0:?}")]
    UnknownSystemSubject(String),
    /// `system:serviceaccount:` not followed by `<namespace>:<name>`.
    #[error("service account subject must be system:serviceaccount:<namespace>:<name>")]
    MalformedServiceAccount,
    /// A namespace inside the subject is invalid.
    #[error("invalid namespace in subject: {0}")]
    Namespace(NameError),
    /// The service account's name is invalid.
    #[error(transparent)]
    ServiceAccountName(#[from] ServiceAccountNameError),
    /// A plain subject is read as a user name, and is not a valid one.
    #[error(transparent)]
    UserName(#[from] UserNameError),
    /// A provider user name is invalid.
    #[error("invalid user name: {0}")]
    ExternalUserName(ExternalNameError),
    /// A provider group name is invalid.
    #[error("invalid group name: {0}")]
    GroupName(ExternalNameError),
}

/// Something a role can be bound to: a user, a service account or a group.
///
/// String forms (serde goes through them; the first is the canonical one
/// [`Display`](fmt::Display) writes):
///
/// | subject | canonical | also accepted |
/// |---|---|---|
/// | local user | `alice` | `user:alice` |
/// | provider user | `ldap:alice` (`user:alice@example.com` when the name has no `:`) | `user:ldap:alice` |
/// | service account | `system:serviceaccount:team:builder` | `serviceaccount:team:builder` |
/// | built-in group | `system:authenticated`, `system:anonymous` | `group:system:authenticated` |
/// | service accounts of a namespace | `group:system:serviceaccounts:team` | |
/// | provider group | `group:oidc:devs` | |
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Subject {
    /// A local user, with a password and/or access tokens.
    User(UserName),
    /// A user an identity provider vouches for (LDAP, OIDC, htpasswd).
    External(ExternalUserName),
    /// A namespaced workload identity with access tokens only.
    ServiceAccount(ServiceAccountRef),
    /// A group.
    Group(Group),
}

impl Subject {
    /// The local user name, when the subject is a local user.
    pub fn as_user(&self) -> Option<&UserName> {
        match self {
            Subject::User(u) => Some(u),
            _ => None,
        }
    }

    /// The service account, when the subject is one.
    pub fn as_service_account(&self) -> Option<&ServiceAccountRef> {
        match self {
            Subject::ServiceAccount(sa) => Some(sa),
            _ => None,
        }
    }

    /// Whether this subject is one caller (a user or a service account),
    /// not a group.
    pub fn is_principal(&self) -> bool {
        !matches!(self, Subject::Group(_))
    }

    /// A user's subject: local when `name` is a valid [`UserName`], else a
    /// provider user.
    fn user(name: &str) -> Result<Self, SubjectError> {
        if let Ok(local) = name.parse::<UserName>() {
            return Ok(Subject::User(local));
        }
        if name.starts_with("system:") {
            return Err(SubjectError::UnknownSystemSubject(name.to_owned()));
        }
        name.parse()
            .map(Subject::External)
            .map_err(SubjectError::ExternalUserName)
    }

    fn service_account(rest: &str) -> Result<Self, SubjectError> {
        let (ns, name) = rest
            .split_once(':')
            .ok_or(SubjectError::MalformedServiceAccount)?;
        let namespace = ns.parse().map_err(SubjectError::Namespace)?;
        Ok(Subject::ServiceAccount(ServiceAccountRef {
            namespace,
            name: name.parse()?,
        }))
    }
}

impl From<UserName> for Subject {
    fn from(u: UserName) -> Self {
        Subject::User(u)
    }
}

impl From<ExternalUserName> for Subject {
    fn from(u: ExternalUserName) -> Self {
        Subject::External(u)
    }
}

impl From<ServiceAccountRef> for Subject {
    fn from(sa: ServiceAccountRef) -> Self {
        Subject::ServiceAccount(sa)
    }
}

impl From<Group> for Subject {
    fn from(g: Group) -> Self {
        Subject::Group(g)
    }
}

impl FromStr for Subject {
    type Err = SubjectError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(group) = s.strip_prefix("group:") {
            return Ok(Subject::Group(group.parse()?));
        }
        if let Some(user) = s.strip_prefix("user:") {
            return Subject::user(user);
        }
        if let Some(rest) = s
            .strip_prefix(SERVICE_ACCOUNT_PREFIX)
            .or_else(|| s.strip_prefix("serviceaccount:"))
        {
            return Subject::service_account(rest);
        }
        match s {
            "system:authenticated" => Ok(Subject::Group(Group::Authenticated)),
            "system:anonymous" => Ok(Subject::Group(Group::Anonymous)),
            // A bare name is a local user unless it carries a provider's
            // prefix, so a mistyped local name is an error, not a binding
            // to a provider user nobody is.
            _ if s.contains(':') => Subject::user(s),
            _ => Ok(Subject::User(s.parse()?)),
        }
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::User(u) => u.fmt(f),
            Subject::External(u) if u.as_str().contains(':') => u.fmt(f),
            Subject::External(u) => write!(f, "user:{u}"),
            Subject::ServiceAccount(sa) => sa.fmt(f),
            Subject::Group(g @ (Group::Authenticated | Group::Anonymous)) => g.fmt(f),
            Subject::Group(g) => write!(f, "group:{g}"),
        }
    }
}

serde_via_str!(Subject);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_round_trip() {
        for s in [
            "alice",
            "ldap:alice",
            "oidc:alice@example.com",
            "user:alice@example.com",
            "system:serviceaccount:team:builder",
            "system:authenticated",
            "system:anonymous",
            "group:system:serviceaccounts:team",
            "group:oidc:devs",
            "group:ldap:ops",
        ] {
            let subject: Subject = s.parse().unwrap();
            assert_eq!(subject.to_string(), s);
            let json = serde_json::to_string(&subject).unwrap();
            assert_eq!(serde_json::from_str::<Subject>(&json).unwrap(), subject);
        }
        assert!(matches!(
            "ldap:alice".parse::<Subject>(),
            Ok(Subject::External(_))
        ));
        assert!(matches!(
            "group:ldap:ops".parse::<Subject>(),
            Ok(Subject::Group(Group::Named(_)))
        ));
    }

    #[test]
    fn kind_prefixed_forms_read_as_the_canonical_ones() {
        for (long, canonical) in [
            ("user:alice", "alice"),
            ("user:ldap:alice", "ldap:alice"),
            (
                "serviceaccount:team:builder",
                "system:serviceaccount:team:builder",
            ),
            ("group:system:authenticated", "system:authenticated"),
            ("group:system:anonymous", "system:anonymous"),
        ] {
            assert_eq!(long.parse::<Subject>().unwrap().to_string(), canonical);
        }
    }

    #[test]
    fn bad_subjects() {
        assert!(matches!(
            "system:masters".parse::<Subject>(),
            Err(SubjectError::UnknownSystemSubject(_))
        ));
        assert!(matches!(
            "group:system:masters".parse::<Subject>(),
            Err(SubjectError::UnknownSystemSubject(_))
        ));
        assert!(matches!(
            "user:system:anonymous".parse::<Subject>(),
            Err(SubjectError::UnknownSystemSubject(_))
        ));
        assert_eq!(
            "system:serviceaccount:team".parse::<Subject>(),
            Err(SubjectError::MalformedServiceAccount)
        );
        assert!(matches!(
            "system:serviceaccount:Team:x".parse::<Subject>(),
            Err(SubjectError::Namespace(_))
        ));
        assert!(matches!(
            "group:system:serviceaccounts:Bad".parse::<Subject>(),
            Err(SubjectError::Namespace(_))
        ));
        assert!(matches!(
            "group:".parse::<Subject>(),
            Err(SubjectError::GroupName(ExternalNameError::Empty))
        ));
        assert!(matches!(
            "ldap:a b".parse::<Subject>(),
            Err(SubjectError::ExternalUserName(
                ExternalNameError::InvalidCharacter
            ))
        ));
        // A bare name without a provider prefix must be a local user name.
        for bad in ["", "Alice", "a b"] {
            assert!(
                matches!(bad.parse::<Subject>(), Err(SubjectError::UserName(_))),
                "{bad:?}"
            );
        }
    }
}
