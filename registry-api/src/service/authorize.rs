//! The one place permissions are checked: [`Registry::authorize`] (and its
//! boolean form [`Registry::allows`]) ask the authorizer, or the scopes of
//! the caller's registry token, whether an action is allowed.

use registry_auth::{Action, NamespaceFilter, Resource, ScopeAction};

use super::{Caller, Registry, RegistryError, RegistryResult};

fn scope_action(action: Action) -> Option<ScopeAction> {
    match action {
        Action::Pull => Some(ScopeAction::Pull),
        Action::Push => Some(ScopeAction::Push),
        Action::Delete => Some(ScopeAction::Delete),
        _ => None,
    }
}

impl Registry {
    /// Whether `caller` may do `action` on `resource`. Everything is
    /// allowed when access control is off. On a repository, a caller with
    /// a registry token is bounded by the token's scopes.
    pub fn allows(&self, caller: &Caller, action: Action, resource: &Resource<'_>) -> bool {
        let Some(state) = self.auth() else {
            return true;
        };
        if let (Some(claims), Some(sa), Resource::Repository(repo)) =
            (caller.token(), scope_action(action), resource)
        {
            return claims.allows(repo, sa);
        }
        state
            .authorizer
            .current()
            .check(caller.identity(), action, resource)
            .is_allowed()
    }

    /// Requires `action` on `resource`: [`RegistryError::Unauthenticated`]
    /// when logging in (or a token with the scope) could help — an
    /// anonymous caller, or one whose token lacks the scope — else
    /// [`RegistryError::Denied`].
    pub fn authorize(
        &self,
        caller: &Caller,
        action: Action,
        resource: &Resource<'_>,
    ) -> RegistryResult<()> {
        if self.allows(caller, action, resource) {
            return Ok(());
        }
        let scope = match resource {
            Resource::Repository(repo) => {
                let actions = match action {
                    Action::Push => "pull,push",
                    Action::Delete => "delete",
                    _ => "pull",
                };
                Some(format!("repository:{repo}:{actions}"))
            }
            _ => None,
        };
        let token_lacks_scope = caller.token().is_some() && scope.is_some();
        if caller.is_anonymous() || token_lacks_scope {
            return Err(RegistryError::Unauthenticated {
                scope,
                insufficient_scope: token_lacks_scope,
            });
        }
        Err(RegistryError::Denied {
            subject: caller.subject().to_string(),
            action: action.to_string(),
            target: match resource {
                Resource::Repository(repo) => format!("in {repo}"),
                Resource::Namespace(ns) => format!("in namespace {ns}"),
                _ => "here".to_owned(),
            },
        })
    }

    /// [`authorize`](Self::authorize) for an operation that needs the
    /// permission of `action` without being it (listing namespaces needs
    /// the right to create them): a refusal names the operation, `doing`.
    pub(crate) fn authorize_as(
        &self,
        caller: &Caller,
        action: Action,
        resource: &Resource<'_>,
        doing: &str,
    ) -> RegistryResult<()> {
        self.authorize(caller, action, resource)
            .map_err(|e| match e {
                RegistryError::Denied {
                    subject, target, ..
                } => RegistryError::Denied {
                    subject,
                    action: doing.to_owned(),
                    target,
                },
                e => e,
            })
    }

    /// The namespaces whose repositories `caller` may pull (all of them
    /// when access control is off): what listings show.
    pub fn visible_namespaces(&self, caller: &Caller) -> NamespaceFilter {
        match self.auth() {
            None => NamespaceFilter::All,
            Some(state) => state
                .authorizer
                .current()
                .namespaces_allowing(caller.identity(), Action::Pull),
        }
    }

    /// Requires an authenticated caller when access control is on (the
    /// admin API's own-records routes, and `GET /v2/`'s login check).
    pub fn require_login(&self, caller: &Caller) -> RegistryResult<()> {
        if self.access_control_on() && caller.is_anonymous() {
            return Err(RegistryError::Unauthenticated {
                scope: None,
                insufficient_scope: false,
            });
        }
        Ok(())
    }
}
