//! The caller the authorizer is asked about: an [`Identity`].

use std::borrow::Cow;

use crate::names::{ExternalUserName, GroupName, ServiceAccountRef, UserName};
use crate::subject::{Group, Subject};

/// The provider of local users and service accounts.
pub const LOCAL_PROVIDER: &str = "local";
/// The provider name of a caller without credentials.
pub const ANONYMOUS_PROVIDER: &str = "anonymous";

/// An authenticated (or anonymous) caller: its subject, the provider that
/// vouched for it, and its groups.
///
/// Build one with [`Identity::anonymous`], [`Identity::user`],
/// [`Identity::service_account`] or [`Identity::external`]. The built-in
/// groups follow from the subject, so they cannot be forged; only a
/// provider's own groups ([`GroupName`]s, which never start with
/// `system:`) are carried.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identity {
    subject: Subject,
    provider: Cow<'static, str>,
    groups: Box<[GroupName]>,
}

impl Identity {
    /// A caller without credentials: subject and only group `system:anonymous`.
    pub fn anonymous() -> Self {
        Identity {
            subject: Subject::Group(Group::Anonymous),
            provider: Cow::Borrowed(ANONYMOUS_PROVIDER),
            groups: Box::default(),
        }
    }

    /// A caller that proved it is `subject` (a user or a service account);
    /// local users and service accounts come from provider `local`, users
    /// named by a provider from provider `external`. Returns `None` for a
    /// group.
    pub fn authenticated(subject: Subject) -> Option<Self> {
        let provider = match subject {
            Subject::Group(_) => return None,
            Subject::External(_) => "external",
            Subject::User(_) | Subject::ServiceAccount(_) => LOCAL_PROVIDER,
        };
        Some(Identity {
            subject,
            provider: Cow::Borrowed(provider),
            groups: Box::default(),
        })
    }

    /// A logged-in local user.
    pub fn user(name: UserName) -> Self {
        Identity {
            subject: Subject::User(name),
            provider: Cow::Borrowed(LOCAL_PROVIDER),
            groups: Box::default(),
        }
    }

    /// A logged-in service account.
    pub fn service_account(sa: ServiceAccountRef) -> Self {
        Identity {
            subject: Subject::ServiceAccount(sa),
            provider: Cow::Borrowed(LOCAL_PROVIDER),
            groups: Box::default(),
        }
    }

    /// A user that identity provider `provider` (`ldap`, `oidc`, …)
    /// vouched for, with the groups it put the user in (duplicates
    /// dropped).
    pub fn external(
        provider: &str,
        name: ExternalUserName,
        groups: impl IntoIterator<Item = GroupName>,
    ) -> Self {
        let mut groups: Vec<GroupName> = groups.into_iter().collect();
        groups.sort();
        groups.dedup();
        Identity {
            subject: Subject::External(name),
            provider: Cow::Owned(provider.to_owned()),
            groups: groups.into(),
        }
    }

    /// Who the caller is.
    pub fn subject(&self) -> &Subject {
        &self.subject
    }

    /// The provider that vouched for the caller: `local`, `anonymous`, or
    /// a provider's name (`ldap`, `oidc`, `htpasswd`, …).
    pub fn provider(&self) -> &str {
        &self.provider
    }

    /// The groups the provider put the caller in (sorted, no duplicates).
    pub fn provider_groups(&self) -> &[GroupName] {
        &self.groups
    }

    /// Whether the caller presented no credentials.
    pub fn is_anonymous(&self) -> bool {
        matches!(self.subject, Subject::Group(Group::Anonymous))
    }

    /// The built-in group the caller belongs to: `system:anonymous` or
    /// `system:authenticated`.
    pub fn group(&self) -> Group {
        if self.is_anonymous() {
            Group::Anonymous
        } else {
            Group::Authenticated
        }
    }

    /// Every group of the caller: the built-in one, a service account's
    /// `system:serviceaccounts:<ns>`, then the provider's groups.
    pub fn groups(&self) -> Vec<Group> {
        let mut groups = Vec::with_capacity(2 + self.groups.len());
        groups.push(self.group());
        if let Subject::ServiceAccount(sa) = &self.subject {
            groups.push(Group::ServiceAccounts(sa.namespace.clone()));
        }
        groups.extend(self.groups.iter().cloned().map(Group::Named));
        groups
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_groups_follow_from_the_subject() {
        let anon = Identity::anonymous();
        assert!(anon.is_anonymous());
        assert_eq!(anon.groups(), vec![Group::Anonymous]);
        assert_eq!(anon.provider(), "anonymous");
        let u = Identity::user("alice".parse().unwrap());
        assert_eq!(u.group(), Group::Authenticated);
        assert_eq!(u.provider(), "local");
        assert!(Identity::authenticated(Subject::Group(Group::Authenticated)).is_none());
        let sa = Identity::service_account(ServiceAccountRef::new(
            "team".parse().unwrap(),
            "builder".parse().unwrap(),
        ));
        assert_eq!(
            sa.groups(),
            vec![
                Group::Authenticated,
                Group::ServiceAccounts("team".parse().unwrap())
            ]
        );
    }

    #[test]
    fn provider_groups_are_carried_sorted_and_unique() {
        let g = |s: &str| s.parse::<GroupName>().unwrap();
        let id = Identity::external(
            "ldap",
            "ldap:bob".parse().unwrap(),
            [g("ldap:ops"), g("ldap:dev"), g("ldap:ops")],
        );
        assert_eq!(id.provider(), "ldap");
        assert_eq!(id.provider_groups(), &[g("ldap:dev"), g("ldap:ops")]);
        assert_eq!(
            id.groups(),
            vec![
                Group::Authenticated,
                Group::Named(g("ldap:dev")),
                Group::Named(g("ldap:ops"))
            ]
        );
        assert!(!id.is_anonymous());
    }
}
