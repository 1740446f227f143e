//! The one place that decides: a precomputed, immutable index of all role
//! bindings, asked with [`Authorizer::check`].

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use registry_core::Namespace;

use crate::identity::Identity;
use crate::role::{
    Action, ActionSet, ClusterRole, ClusterRoleBinding, Decision, Resource, RoleBinding,
};
use crate::store::{AuthStore, AuthStoreError};
use crate::subject::{Group, Subject};

/// Grants of one kind of scope (one namespace, or the cluster), indexed by
/// subject so that a check is a few hash lookups keyed by borrowed `&str`.
#[derive(Debug, Default, Clone)]
struct Grants {
    /// Local and provider users, by name (a provider user without a
    /// prefix shares the local user's name, and so its bindings).
    users: HashMap<Box<str>, ActionSet>,
    /// Service-account namespace → service-account name → actions.
    service_accounts: HashMap<Box<str>, HashMap<Box<str>, ActionSet>>,
    /// `system:serviceaccounts:<ns>`, by namespace.
    namespace_service_accounts: HashMap<Box<str>, ActionSet>,
    /// Provider groups, by name.
    groups: HashMap<Box<str>, ActionSet>,
    authenticated: ActionSet,
    anonymous: ActionSet,
}

impl Grants {
    fn add(&mut self, subject: &Subject, actions: ActionSet) {
        let slot = match subject {
            Subject::User(u) => self.users.entry(u.as_str().into()).or_default(),
            Subject::External(u) => self.users.entry(u.as_str().into()).or_default(),
            Subject::ServiceAccount(sa) => self
                .service_accounts
                .entry(sa.namespace.as_str().into())
                .or_default()
                .entry(sa.name.as_str().into())
                .or_default(),
            Subject::Group(Group::Authenticated) => &mut self.authenticated,
            Subject::Group(Group::Anonymous) => &mut self.anonymous,
            Subject::Group(Group::ServiceAccounts(ns)) => self
                .namespace_service_accounts
                .entry(ns.as_str().into())
                .or_default(),
            Subject::Group(Group::Named(g)) => self.groups.entry(g.as_str().into()).or_default(),
        };
        *slot = slot.union(actions);
    }

    /// Everything granted to `identity` here. Bindings to `system:anonymous`
    /// apply to every caller: logging in never loses access to a public
    /// namespace.
    fn for_identity(&self, identity: &Identity) -> ActionSet {
        let mut set = self.anonymous;
        let user = match identity.subject() {
            Subject::User(u) => Some(u.as_str()),
            Subject::External(u) => Some(u.as_str()),
            Subject::ServiceAccount(sa) => {
                set = set.union(self.authenticated);
                if let Some(a) = self
                    .service_accounts
                    .get(sa.namespace.as_str())
                    .and_then(|names| names.get(sa.name.as_str()))
                {
                    set = set.union(*a);
                }
                if let Some(a) = self.namespace_service_accounts.get(sa.namespace.as_str()) {
                    set = set.union(*a);
                }
                None
            }
            Subject::Group(_) => return set,
        };
        if let Some(name) = user {
            set = set.union(self.authenticated);
            if let Some(a) = self.users.get(name) {
                set = set.union(*a);
            }
        }
        if !self.groups.is_empty() {
            for g in identity.provider_groups() {
                if let Some(a) = self.groups.get(g.as_str()) {
                    set = set.union(*a);
                }
            }
        }
        set
    }
}

/// An immutable snapshot of every role binding, indexed for fast checks.
///
/// Rules, in full:
/// - `cluster-admin` allows every action on every resource.
/// - `metrics-viewer` allows [`Action::ReadMetrics`] (on any resource; the
///   HTTP layer asks with [`Resource::Cluster`]).
/// - A namespaced role allows its actions on [`Resource::Namespace`] of its
///   namespace and on every [`Resource::Repository`] inside it; never on
///   [`Resource::Cluster`], and never a cluster-wide action.
/// - Bindings to `system:authenticated` apply to every user and service
///   account; bindings to `system:anonymous` apply to every caller.
/// - Bindings to `group:system:serviceaccounts:<ns>` apply to every service
///   account of `<ns>`; bindings to a provider group (`group:ldap:ops`) to
///   every identity the provider put in that group.
/// - Service accounts have no implicit rights, not even in their own
///   namespace: they act only through bindings.
///
/// A check allocates nothing. The snapshot does not change: after a binding
/// changes, build a new one (e.g. with [`Authorizer::load`]) and swap it in.
#[derive(Debug, Default, Clone)]
pub struct Authorizer {
    /// Namespace → grants inside it.
    namespaces: HashMap<Box<str>, Grants>,
    /// Cluster-wide grants (cluster-admin is represented by [`ALL_ACTIONS`]).
    cluster: Grants,
}

const ALL_ACTIONS: ActionSet = ActionSet::of(&Action::ALL);

impl Authorizer {
    /// Indexes the given bindings.
    pub fn new<'a>(
        role_bindings: impl IntoIterator<Item = &'a RoleBinding>,
        cluster_role_bindings: impl IntoIterator<Item = &'a ClusterRoleBinding>,
    ) -> Self {
        let mut auth = Authorizer::default();
        for b in role_bindings {
            auth.namespaces
                .entry(b.namespace.as_str().into())
                .or_default()
                .add(&b.subject, b.role.actions());
        }
        for b in cluster_role_bindings {
            let actions = match b.role {
                ClusterRole::ClusterAdmin => ALL_ACTIONS,
                ClusterRole::MetricsViewer => ActionSet::of(&[Action::ReadMetrics]),
            };
            auth.cluster.add(&b.subject, actions);
        }
        auth
    }

    /// Reads every binding from `store` and indexes them.
    pub async fn load(store: &dyn AuthStore) -> Result<Self, AuthStoreError> {
        let role_bindings = store.list_role_bindings(None).await?;
        let cluster = store.list_cluster_role_bindings().await?;
        Ok(Authorizer::new(&role_bindings, &cluster))
    }

    /// May `identity` do `action` on `resource`?
    pub fn check(&self, identity: &Identity, action: Action, resource: &Resource<'_>) -> Decision {
        let cluster = self.cluster.for_identity(identity);
        // cluster-admin holds every action; metrics-viewer holds ReadMetrics.
        if cluster.contains(action) {
            return Decision::Allow;
        }
        if !action.is_namespaced() {
            return Decision::Deny;
        }
        let Some(ns) = resource.namespace() else {
            return Decision::Deny;
        };
        self.namespaces
            .get(ns)
            .is_some_and(|g| g.for_identity(identity).contains(action))
            .into()
    }

    /// Whether `identity` is cluster-admin (sees and may do everything).
    pub fn is_cluster_admin(&self, identity: &Identity) -> bool {
        self.cluster.for_identity(identity) == ALL_ACTIONS
    }

    /// Which namespaces `identity` may do `action` in: for filtering
    /// listings (`/v2/_catalog`, the Image API's repositories) without a
    /// check per repository.
    pub fn namespaces_allowing(&self, identity: &Identity, action: Action) -> NamespaceFilter {
        if self.is_cluster_admin(identity) {
            return NamespaceFilter::All;
        }
        let set = self
            .namespaces
            .iter()
            .filter(|(_, g)| g.for_identity(identity).contains(action))
            .filter_map(|(ns, _)| ns.parse::<Namespace>().ok())
            .collect();
        NamespaceFilter::Only(set)
    }
}

/// The current [`Authorizer`] snapshot, swapped after bindings change.
///
/// Readers take an `Arc` (one atomic increment) and check against it;
/// writers build a new snapshot and [`replace`](Self::replace) it. With
/// several replicas, each must [`reload`](Self::reload) when another one
/// changes bindings (or periodically): the snapshot does not watch the store.
#[derive(Debug, Default)]
pub struct AuthorizerHandle {
    current: RwLock<Arc<Authorizer>>,
}

impl AuthorizerHandle {
    /// A handle holding `authorizer`.
    pub fn new(authorizer: Authorizer) -> Self {
        AuthorizerHandle {
            current: RwLock::new(Arc::new(authorizer)),
        }
    }

    /// The current snapshot.
    pub fn current(&self) -> Arc<Authorizer> {
        match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Installs a new snapshot.
    pub fn replace(&self, authorizer: Authorizer) {
        let new = Arc::new(authorizer);
        match self.current.write() {
            Ok(mut guard) => *guard = new,
            Err(poisoned) => *poisoned.into_inner() = new,
        }
    }

    /// Rebuilds the snapshot from `store` and installs it.
    pub async fn reload(&self, store: &dyn AuthStore) -> Result<(), AuthStoreError> {
        self.replace(Authorizer::load(store).await?);
        Ok(())
    }
}

/// The answer of [`Authorizer::namespaces_allowing`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamespaceFilter {
    /// Every namespace, existing or future.
    All,
    /// Exactly these namespaces.
    Only(BTreeSet<Namespace>),
}

impl NamespaceFilter {
    /// Whether `namespace` passes the filter.
    pub fn allows(&self, namespace: &str) -> bool {
        match self {
            NamespaceFilter::All => true,
            NamespaceFilter::Only(set) => set.iter().any(|ns| ns.as_str() == namespace),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::GroupName;
    use crate::role::Role;
    use registry_core::RepositoryName;

    fn ns(s: &str) -> Namespace {
        s.parse().unwrap()
    }
    fn repo(s: &str) -> RepositoryName {
        s.parse().unwrap()
    }
    fn subject(s: &str) -> Subject {
        s.parse().unwrap()
    }
    fn identity(s: &str) -> Identity {
        if s == "system:anonymous" {
            Identity::anonymous()
        } else {
            Identity::authenticated(subject(s)).unwrap()
        }
    }

    fn policy() -> Authorizer {
        let rb = |n: &str, role, s: &str| RoleBinding {
            namespace: ns(n),
            role,
            subject: subject(s),
        };
        let role_bindings = vec![
            rb("team", Role::Viewer, "viewer"),
            rb("team", Role::Editor, "editor"),
            rb("team", Role::Admin, "nsadmin"),
            rb("public", Role::Viewer, "system:anonymous"),
            rb("shared", Role::Viewer, "system:authenticated"),
            // Cross-namespace pull: team's builder may pull from base.
            rb("base", Role::Viewer, "system:serviceaccount:team:builder"),
            rb("team", Role::Editor, "system:serviceaccount:team:builder"),
        ];
        let crb = |role, s: &str| ClusterRoleBinding {
            role,
            subject: subject(s),
        };
        let cluster = vec![
            crb(ClusterRole::ClusterAdmin, "root"),
            crb(ClusterRole::MetricsViewer, "prometheus"),
        ];
        Authorizer::new(&role_bindings, &cluster)
    }

    /// The role × action × resource table.
    #[test]
    fn decision_table() {
        use Action::*;
        let auth = policy();
        let team = ns("team");
        let other = ns("other");
        let team_app = repo("team/app");
        let other_app = repo("other/app");
        let base_img = repo("base/image");
        let public_img = repo("public/image");
        let shared_img = repo("shared/image");
        let rows: &[(&str, Action, Resource<'_>, bool)] = &[
            // viewer
            ("viewer", Pull, Resource::Repository(&team_app), true),
            ("viewer", ListImageStreams, Resource::Namespace(&team), true),
            (
                "viewer",
                ReadImageStreams,
                Resource::Repository(&team_app),
                true,
            ),
            ("viewer", Push, Resource::Repository(&team_app), false),
            ("viewer", Tag, Resource::Repository(&team_app), false),
            ("viewer", Delete, Resource::Repository(&team_app), false),
            ("viewer", Pull, Resource::Repository(&other_app), false),
            ("viewer", Pull, Resource::Cluster, false),
            // editor
            ("editor", Pull, Resource::Repository(&team_app), true),
            ("editor", Push, Resource::Repository(&team_app), true),
            ("editor", Tag, Resource::Repository(&team_app), true),
            (
                "editor",
                CreateImageStream,
                Resource::Namespace(&team),
                true,
            ),
            ("editor", Delete, Resource::Repository(&team_app), false),
            ("editor", ManageBindings, Resource::Namespace(&team), false),
            ("editor", Push, Resource::Repository(&other_app), false),
            // namespace admin
            ("nsadmin", Delete, Resource::Repository(&team_app), true),
            ("nsadmin", ManageBindings, Resource::Namespace(&team), true),
            (
                "nsadmin",
                ManageServiceAccounts,
                Resource::Namespace(&team),
                true,
            ),
            (
                "nsadmin",
                ManageBindings,
                Resource::Namespace(&other),
                false,
            ),
            (
                "nsadmin",
                DeleteNamespace,
                Resource::Namespace(&team),
                false,
            ),
            ("nsadmin", CreateNamespace, Resource::Cluster, false),
            ("nsadmin", ManageUsers, Resource::Cluster, false),
            ("nsadmin", ReadMetrics, Resource::Cluster, false),
            // cluster-admin: everything everywhere
            ("root", Pull, Resource::Repository(&other_app), true),
            ("root", Delete, Resource::Repository(&team_app), true),
            ("root", CreateNamespace, Resource::Cluster, true),
            ("root", DeleteNamespace, Resource::Namespace(&other), true),
            ("root", ManageUsers, Resource::Cluster, true),
            ("root", ManageClusterBindings, Resource::Cluster, true),
            ("root", ReadMetrics, Resource::Cluster, true),
            ("root", Prune, Resource::Cluster, true),
            // metrics-viewer
            ("prometheus", ReadMetrics, Resource::Cluster, true),
            ("prometheus", Pull, Resource::Repository(&team_app), false),
            ("prometheus", Prune, Resource::Cluster, false),
            // public namespace: anonymous and everybody else may pull
            (
                "system:anonymous",
                Pull,
                Resource::Repository(&public_img),
                true,
            ),
            (
                "system:anonymous",
                ListImageStreams,
                Resource::Namespace(&ns("public")),
                true,
            ),
            (
                "system:anonymous",
                Push,
                Resource::Repository(&public_img),
                false,
            ),
            ("viewer", Pull, Resource::Repository(&public_img), true),
            (
                "system:anonymous",
                Pull,
                Resource::Repository(&team_app),
                false,
            ),
            ("system:anonymous", ReadMetrics, Resource::Cluster, false),
            // system:authenticated
            ("viewer", Pull, Resource::Repository(&shared_img), true),
            (
                "system:serviceaccount:other:sa",
                Pull,
                Resource::Repository(&shared_img),
                true,
            ),
            (
                "system:anonymous",
                Pull,
                Resource::Repository(&shared_img),
                false,
            ),
            // service accounts: cross-namespace pull, no implicit rights
            (
                "system:serviceaccount:team:builder",
                Pull,
                Resource::Repository(&base_img),
                true,
            ),
            (
                "system:serviceaccount:team:builder",
                Push,
                Resource::Repository(&base_img),
                false,
            ),
            (
                "system:serviceaccount:team:builder",
                Push,
                Resource::Repository(&team_app),
                true,
            ),
            (
                "system:serviceaccount:team:other",
                Pull,
                Resource::Repository(&team_app),
                false,
            ),
            (
                "system:serviceaccount:base:builder",
                Pull,
                Resource::Repository(&base_img),
                false,
            ),
            // unknown user
            ("nobody", Pull, Resource::Repository(&team_app), false),
        ];
        for (who, action, resource, allowed) in rows {
            let got = auth.check(&identity(who), *action, resource);
            assert_eq!(
                got.is_allowed(),
                *allowed,
                "{who} {action:?} {resource:?}: got {got:?}"
            );
        }
    }

    #[test]
    fn every_role_against_every_action() {
        let team = ns("team");
        let app = repo("team/app");
        let alice = identity("alice");
        for role in Role::ALL {
            let auth = Authorizer::new(
                &[RoleBinding {
                    namespace: team.clone(),
                    role,
                    subject: alice.subject().clone(),
                }],
                &[],
            );
            for action in Action::ALL {
                let expected = role.actions().contains(action);
                for resource in [Resource::Namespace(&team), Resource::Repository(&app)] {
                    assert_eq!(auth.check(&alice, action, &resource).is_allowed(), expected);
                }
                assert!(!auth.check(&alice, action, &Resource::Cluster).is_allowed());
            }
        }
    }

    #[tokio::test]
    async fn handle_reloads_from_the_store() {
        let store = crate::MemoryAuthStore::new();
        let handle = AuthorizerHandle::default();
        let alice = identity("alice");
        let app = repo("team/app");
        let pull = |h: &AuthorizerHandle| {
            h.current()
                .check(&alice, Action::Pull, &Resource::Repository(&app))
                .is_allowed()
        };
        assert!(!pull(&handle));
        store
            .add_role_binding(RoleBinding {
                namespace: ns("team"),
                role: Role::Viewer,
                subject: subject("alice"),
            })
            .await
            .unwrap();
        assert!(!pull(&handle), "a snapshot does not watch the store");
        handle.reload(&store).await.unwrap();
        assert!(pull(&handle));
    }

    #[test]
    fn namespace_filter() {
        let auth = policy();
        let f = auth.namespaces_allowing(&identity("viewer"), Action::ListImageStreams);
        assert!(f.allows("team") && f.allows("public") && f.allows("shared"));
        assert!(!f.allows("base"));
        assert_eq!(
            auth.namespaces_allowing(&identity("root"), Action::Pull),
            NamespaceFilter::All
        );
        let anon = auth.namespaces_allowing(&Identity::anonymous(), Action::Pull);
        assert_eq!(anon, NamespaceFilter::Only([ns("public")].into()));
    }

    #[test]
    fn group_bindings_apply_to_their_members() {
        let rb = |n: &str, role, s: &str| RoleBinding {
            namespace: ns(n),
            role,
            subject: subject(s),
        };
        let auth = Authorizer::new(
            &[
                rb("base", Role::Viewer, "group:system:serviceaccounts:team"),
                rb("apps", Role::Editor, "group:ldap:ops"),
                rb("apps", Role::Viewer, "ldap:carol"),
            ],
            &[ClusterRoleBinding {
                role: ClusterRole::ClusterAdmin,
                subject: subject("group:oidc:admins"),
            }],
        );
        let base = repo("base/image");
        let apps = repo("apps/web");
        let g = |s: &str| s.parse::<GroupName>().unwrap();
        let allowed = |id: &Identity, action, r: &RepositoryName| {
            auth.check(id, action, &Resource::Repository(r))
                .is_allowed()
        };

        // Every service account of `team`, and only of `team`.
        let builder = identity("system:serviceaccount:team:builder");
        let outsider = identity("system:serviceaccount:other:builder");
        assert!(allowed(&builder, Action::Pull, &base));
        assert!(!allowed(&builder, Action::Push, &base));
        assert!(!allowed(&outsider, Action::Pull, &base));
        // A user named like the group's namespace is not in it.
        assert!(!allowed(&identity("team"), Action::Pull, &base));

        // Provider groups: membership comes from the identity.
        let bob = Identity::external("ldap", "ldap:bob".parse().unwrap(), [g("ldap:ops")]);
        let dave = Identity::external("ldap", "ldap:dave".parse().unwrap(), [g("ldap:dev")]);
        let carol = Identity::external("ldap", "ldap:carol".parse().unwrap(), []);
        assert!(allowed(&bob, Action::Push, &apps));
        assert!(!allowed(&bob, Action::Pull, &base));
        assert!(!allowed(&dave, Action::Pull, &apps));
        assert!(allowed(&carol, Action::Pull, &apps));
        assert!(!allowed(&carol, Action::Push, &apps));
        // The same group name from another provider is another group.
        let oidc_ops = Identity::external("oidc", "oidc:bob".parse().unwrap(), [g("oidc:ops")]);
        assert!(!allowed(&oidc_ops, Action::Pull, &apps));

        // A cluster role through a group.
        let root = Identity::external("oidc", "oidc:eve".parse().unwrap(), [g("oidc:admins")]);
        assert!(auth.is_cluster_admin(&root));
        assert!(allowed(&root, Action::Delete, &base));
        assert!(!auth.is_cluster_admin(&bob));
        assert_eq!(
            auth.namespaces_allowing(&bob, Action::Push),
            NamespaceFilter::Only([ns("apps")].into())
        );
    }
}
