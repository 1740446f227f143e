//! Roles, the actions they allow, resources, and bindings of roles to
//! subjects.

use std::fmt;
use std::str::FromStr;

use registry_core::{Namespace, RepositoryName};
use serde::{Deserialize, Serialize};

use crate::subject::{serde_via_str, Subject};

/// Something a caller may want to do. The HTTP layer maps each request to
/// one action and one [`Resource`] and asks the [`Authorizer`](crate::Authorizer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
#[repr(u8)]
pub enum Action {
    /// Read manifests, blobs and tags of a repository.
    Pull,
    /// List the ImageStreams (repositories) of a namespace.
    ListImageStreams,
    /// Read ImageStream metadata, tag history and image metadata.
    ReadImageStreams,
    /// Upload blobs and manifests.
    Push,
    /// Move a tag (also done by a manifest push by tag).
    Tag,
    /// Create an ImageStream (also done by the first push to it).
    CreateImageStream,
    /// Delete manifests, tags and ImageStreams.
    Delete,
    /// Create, list and remove the role bindings of a namespace.
    ManageBindings,
    /// Create, list and remove the service accounts of a namespace, their
    /// tokens and pull secrets.
    ManageServiceAccounts,
    /// Create a namespace (cluster-wide).
    CreateNamespace,
    /// Delete a namespace and everything in it (cluster-wide).
    DeleteNamespace,
    /// Create, list and remove users and set their passwords.
    ManageUsers,
    /// Create, list and remove cluster role bindings.
    ManageClusterBindings,
    /// Read `/extensions/v2/metrics`.
    ReadMetrics,
    /// Run garbage collection.
    Prune,
    /// Set a namespace's policy: retention and immutable tags.
    ManagePolicy,
    /// Set a namespace's quota (cluster-wide).
    SetQuota,
}

impl Action {
    /// Every action, in declaration order.
    pub const ALL: [Action; 17] = [
        Action::Pull,
        Action::ListImageStreams,
        Action::ReadImageStreams,
        Action::Push,
        Action::Tag,
        Action::CreateImageStream,
        Action::Delete,
        Action::ManageBindings,
        Action::ManageServiceAccounts,
        Action::CreateNamespace,
        Action::DeleteNamespace,
        Action::ManageUsers,
        Action::ManageClusterBindings,
        Action::ReadMetrics,
        Action::Prune,
        Action::ManagePolicy,
        Action::SetQuota,
    ];

    /// Whether the action concerns one namespace (and so can be granted by a
    /// namespaced [`Role`]); the others are cluster-wide.
    pub fn is_namespaced(self) -> bool {
        NAMESPACED.contains(self)
    }

    const fn bit(self) -> u32 {
        1 << self as u8
    }
}

impl fmt::Display for Action {
    /// What the action does, as refusals say it: "user:bob may not push in
    /// team/app".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Pull => "pull",
            Action::ListImageStreams => "list ImageStreams",
            Action::ReadImageStreams => "read ImageStreams",
            Action::Push => "push",
            Action::Tag => "move tags",
            Action::CreateImageStream => "create ImageStreams",
            Action::Delete => "delete",
            Action::ManageBindings => "manage role bindings",
            Action::ManageServiceAccounts => "manage service accounts",
            Action::CreateNamespace => "create namespaces",
            Action::DeleteNamespace => "delete namespaces",
            Action::ManageUsers => "manage users",
            Action::ManageClusterBindings => "manage cluster role bindings",
            Action::ReadMetrics => "read metrics",
            Action::Prune => "prune",
            Action::ManagePolicy => "set policies",
            Action::SetQuota => "set quotas",
        })
    }
}

/// A small set of actions, as a bit set: copying and testing are free.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ActionSet(u32);

impl ActionSet {
    /// No action.
    pub const EMPTY: ActionSet = ActionSet(0);

    /// A set of the given actions.
    pub const fn of(actions: &[Action]) -> ActionSet {
        let mut bits = 0;
        let mut i = 0;
        while i < actions.len() {
            bits |= actions[i].bit();
            i += 1;
        }
        ActionSet(bits)
    }

    /// Whether `action` is in the set.
    pub const fn contains(self, action: Action) -> bool {
        self.0 & action.bit() != 0
    }

    /// Both sets together.
    #[must_use]
    pub const fn union(self, other: ActionSet) -> ActionSet {
        ActionSet(self.0 | other.0)
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The actions in the set, in declaration order.
    pub fn iter(self) -> impl Iterator<Item = Action> {
        Action::ALL.into_iter().filter(move |a| self.contains(*a))
    }
}

impl fmt::Debug for ActionSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

const VIEWER: ActionSet = ActionSet::of(&[
    Action::Pull,
    Action::ListImageStreams,
    Action::ReadImageStreams,
]);
const EDITOR: ActionSet = VIEWER.union(ActionSet::of(&[
    Action::Push,
    Action::Tag,
    Action::CreateImageStream,
]));
const ADMIN: ActionSet = EDITOR.union(ActionSet::of(&[
    Action::Delete,
    Action::ManageBindings,
    Action::ManageServiceAccounts,
    Action::ManagePolicy,
]));
const NAMESPACED: ActionSet = ADMIN;

/// Why a string is not a known role name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoleError {
    /// Not one of the namespaced roles.
    #[error("unknown role {0:?}: expected registry-viewer, registry-editor or registry-admin")]
    UnknownRole(String),
    /// Not one of the cluster roles.
    #[error("unknown cluster role {0:?}: expected cluster-admin or metrics-viewer")]
    UnknownClusterRole(String),
}

/// A role bound within one namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// `registry-viewer`: pull, list and read ImageStreams.
    Viewer,
    /// `registry-editor`: viewer, plus push, tag and create ImageStreams.
    Editor,
    /// `registry-admin`: editor, plus delete, and manage the namespace's
    /// bindings, service accounts and policy (but its quota).
    Admin,
}

impl Role {
    /// Every namespaced role.
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Editor, Role::Admin];

    /// The role's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "registry-viewer",
            Role::Editor => "registry-editor",
            Role::Admin => "registry-admin",
        }
    }

    /// What the role allows within its namespace.
    pub fn actions(self) -> ActionSet {
        match self {
            Role::Viewer => VIEWER,
            Role::Editor => EDITOR,
            Role::Admin => ADMIN,
        }
    }
}

impl FromStr for Role {
    type Err = RoleError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| RoleError::UnknownRole(s.to_owned()))
    }
}

/// A role bound cluster-wide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ClusterRole {
    /// `cluster-admin`: every action on every resource.
    ClusterAdmin,
    /// `metrics-viewer`: read `/extensions/v2/metrics`.
    MetricsViewer,
}

impl ClusterRole {
    /// Every cluster role.
    pub const ALL: [ClusterRole; 2] = [ClusterRole::ClusterAdmin, ClusterRole::MetricsViewer];

    /// The role's name.
    pub fn as_str(self) -> &'static str {
        match self {
            ClusterRole::ClusterAdmin => "cluster-admin",
            ClusterRole::MetricsViewer => "metrics-viewer",
        }
    }
}

impl FromStr for ClusterRole {
    type Err = RoleError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ClusterRole::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| RoleError::UnknownClusterRole(s.to_owned()))
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for ClusterRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

serde_via_str!(Role);
serde_via_str!(ClusterRole);

/// Grants `role` to `subject` within `namespace`.
///
/// The subject may live elsewhere: binding `registry-viewer` in namespace A
/// to a service account of namespace B lets B's workloads pull from A.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RoleBinding {
    /// Where the role applies.
    pub namespace: Namespace,
    /// What it allows.
    pub role: Role,
    /// To whom.
    pub subject: Subject,
}

/// Grants a cluster role to a subject.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ClusterRoleBinding {
    /// What it allows.
    pub role: ClusterRole,
    /// To whom.
    pub subject: Subject,
}

/// What an action applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resource<'a> {
    /// The registry as a whole (users, namespaces, metrics, prune).
    Cluster,
    /// One namespace (its bindings, service accounts, ImageStream list).
    Namespace(&'a Namespace),
    /// One repository (ImageStream).
    Repository(&'a RepositoryName),
}

impl Resource<'_> {
    /// The namespace the resource lives in, if it is not cluster-wide.
    pub fn namespace(&self) -> Option<&str> {
        match self {
            Resource::Cluster => None,
            Resource::Namespace(ns) => Some(ns.as_str()),
            Resource::Repository(repo) => Some(repo.namespace()),
        }
    }
}

/// The authorizer's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[must_use]
pub enum Decision {
    /// The action is allowed.
    Allow,
    /// The action is not allowed. For an anonymous caller the HTTP layer
    /// answers 401 (log in); for a logged-in one, 403.
    Deny,
}

impl Decision {
    /// Whether the action is allowed.
    pub fn is_allowed(self) -> bool {
        self == Decision::Allow
    }
}

impl From<bool> for Decision {
    fn from(allowed: bool) -> Self {
        if allowed {
            Decision::Allow
        } else {
            Decision::Deny
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_nest() {
        for a in VIEWER.iter() {
            assert!(EDITOR.contains(a));
        }
        for a in EDITOR.iter() {
            assert!(ADMIN.contains(a));
        }
        assert!(!EDITOR.contains(Action::Delete));
        assert!(!ADMIN.contains(Action::CreateNamespace));
        assert!(Action::Pull.is_namespaced());
        assert!(!Action::ReadMetrics.is_namespaced());
    }

    #[test]
    fn role_names_round_trip() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>(), Ok(r));
        }
        for r in ClusterRole::ALL {
            assert_eq!(r.as_str().parse::<ClusterRole>(), Ok(r));
        }
        assert!(matches!(
            "registry-owner".parse::<Role>(),
            Err(RoleError::UnknownRole(_))
        ));
        let b = RoleBinding {
            namespace: "team".parse().unwrap(),
            role: Role::Viewer,
            subject: "system:anonymous".parse().unwrap(),
        };
        let json = serde_json::to_string(&b).unwrap();
        assert_eq!(
            json,
            r#"{"namespace":"team","role":"registry-viewer","subject":"system:anonymous"}"#
        );
        assert_eq!(serde_json::from_str::<RoleBinding>(&json).unwrap(), b);
    }
}
