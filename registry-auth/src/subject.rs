//! Who asks: user and service-account names, subjects, groups and the
//! [`Identity`] the authorizer is asked about.

use std::fmt;
use std::str::FromStr;

use registry_core::{NameError, Namespace};

/// Longest user name accepted, in bytes.
pub const MAX_USER_NAME_LEN: usize = 64;
/// Longest service-account name accepted, in bytes (a DNS-1123 label).
pub const MAX_SERVICE_ACCOUNT_NAME_LEN: usize = 63;

/// The prefix of a service account's subject string.
pub const SERVICE_ACCOUNT_PREFIX: &str = "system:serviceaccount:";

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
    #[error("invalid user name: {0}")]
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

/// The built-in groups. Every request belongs to exactly one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Group {
    /// `system:authenticated`: every logged-in user and service account.
    Authenticated,
    /// `system:anonymous`: requests without credentials. A binding to this
    /// group makes a namespace public; the authorizer applies such bindings to
    /// every identity, so a public namespace stays readable after login.
    Anonymous,
}

impl Group {
    /// The group's subject string.
    pub fn as_str(self) -> &'static str {
        match self {
            Group::Authenticated => "system:authenticated",
            Group::Anonymous => "system:anonymous",
        }
    }
}

impl fmt::Display for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a string is not a valid subject.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubjectError {
    /// A `system:` subject other than a known group or a service account.
    #[error("unknown system subject {0:?}")]
    UnknownSystemSubject(String),
    /// `system:serviceaccount:` not followed by `<namespace>:<name>`.
    #[error("service account subject must be system:serviceaccount:<namespace>:<name>")]
    MalformedServiceAccount,
    /// The service account's namespace is invalid.
    #[error("invalid service account namespace: {0}")]
    Namespace(NameError),
    /// The service account's name is invalid.
    #[error(transparent)]
    ServiceAccountName(#[from] ServiceAccountNameError),
    /// A plain subject is read as a user name, and is not a valid one.
    #[error(transparent)]
    UserName(#[from] UserNameError),
}

/// Something a role can be bound to: a user, a service account or a group.
///
/// String form: a user is its bare name, a service account is
/// `system:serviceaccount:<ns>:<name>`, a group is `system:authenticated` or
/// `system:anonymous`. Serde goes through that string form.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Subject {
    /// A human (or robot) user with a password and/or access tokens.
    User(UserName),
    /// A namespaced workload identity with access tokens only.
    ServiceAccount(ServiceAccountRef),
    /// A built-in group.
    Group(Group),
}

impl Subject {
    /// The user name, when the subject is a user.
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

    /// Whether this subject can own credentials (users and service accounts
    /// can; groups cannot).
    pub fn is_principal(&self) -> bool {
        !matches!(self, Subject::Group(_))
    }
}

impl From<UserName> for Subject {
    fn from(u: UserName) -> Self {
        Subject::User(u)
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
        if let Some(rest) = s.strip_prefix(SERVICE_ACCOUNT_PREFIX) {
            let (ns, name) = rest
                .split_once(':')
                .ok_or(SubjectError::MalformedServiceAccount)?;
            let namespace = ns.parse().map_err(SubjectError::Namespace)?;
            return Ok(Subject::ServiceAccount(ServiceAccountRef {
                namespace,
                name: name.parse()?,
            }));
        }
        match s {
            "system:authenticated" => return Ok(Subject::Group(Group::Authenticated)),
            "system:anonymous" => return Ok(Subject::Group(Group::Anonymous)),
            _ => {}
        }
        if s.starts_with("system:") {
            return Err(SubjectError::UnknownSystemSubject(s.to_owned()));
        }
        Ok(Subject::User(s.parse()?))
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::User(u) => u.fmt(f),
            Subject::ServiceAccount(sa) => sa.fmt(f),
            Subject::Group(g) => g.fmt(f),
        }
    }
}

/// An authenticated (or anonymous) caller: its subject and its groups.
///
/// Build one with [`Identity::anonymous`] or [`Identity::authenticated`]; the
/// group membership follows from the subject, so it cannot be forged.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identity {
    subject: Subject,
}

impl Identity {
    /// A caller without credentials: subject and only group `system:anonymous`.
    pub fn anonymous() -> Self {
        Identity {
            subject: Subject::Group(Group::Anonymous),
        }
    }

    /// A caller that proved it is `subject` (a user or a service account);
    /// its group is `system:authenticated`. Returns `None` for a group.
    pub fn authenticated(subject: Subject) -> Option<Self> {
        subject.is_principal().then_some(Identity { subject })
    }

    /// A logged-in user.
    pub fn user(name: UserName) -> Self {
        Identity {
            subject: Subject::User(name),
        }
    }

    /// A logged-in service account.
    pub fn service_account(sa: ServiceAccountRef) -> Self {
        Identity {
            subject: Subject::ServiceAccount(sa),
        }
    }

    /// Who the caller is.
    pub fn subject(&self) -> &Subject {
        &self.subject
    }

    /// Whether the caller presented no credentials.
    pub fn is_anonymous(&self) -> bool {
        matches!(self.subject, Subject::Group(Group::Anonymous))
    }

    /// The single built-in group the caller belongs to.
    pub fn group(&self) -> Group {
        if self.is_anonymous() {
            Group::Anonymous
        } else {
            Group::Authenticated
        }
    }

    /// The caller's groups, as a slice (for display, e.g. `whoami`).
    pub fn groups(&self) -> &'static [Group] {
        if self.is_anonymous() {
            &[Group::Anonymous]
        } else {
            &[Group::Authenticated]
        }
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

pub(crate) use registry_core::serde_via_str;

serde_via_str!(UserName);
serde_via_str!(ServiceAccountName);
serde_via_str!(Subject);

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
    fn subjects_round_trip() {
        for s in [
            "alice",
            "system:serviceaccount:team:builder",
            "system:authenticated",
            "system:anonymous",
        ] {
            let subject: Subject = s.parse().unwrap();
            assert_eq!(subject.to_string(), s);
            let json = serde_json::to_string(&subject).unwrap();
            assert_eq!(serde_json::from_str::<Subject>(&json).unwrap(), subject);
        }
        assert!(matches!(
            "system:masters".parse::<Subject>(),
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
    }

    #[test]
    fn identities() {
        let anon = Identity::anonymous();
        assert!(anon.is_anonymous());
        assert_eq!(anon.groups(), &[Group::Anonymous]);
        let u = Identity::user("alice".parse().unwrap());
        assert_eq!(u.group(), Group::Authenticated);
        assert!(Identity::authenticated(Subject::Group(Group::Authenticated)).is_none());
    }
}
