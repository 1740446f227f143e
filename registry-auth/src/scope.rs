//! Docker token-protocol scopes (`repository:ns/app:pull,push`,
//! `registry:catalog:*`): parsing, display, and granting against the
//! [`Authorizer`].

use std::fmt;
use std::str::FromStr;

use registry_core::{NameError, RepositoryName};

use crate::authorizer::Authorizer;
use crate::identity::Identity;
use crate::role::{Action, Resource};

/// One action a scope can name on a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ScopeAction {
    /// `pull`: read.
    Pull = 1,
    /// `push`: write.
    Push = 2,
    /// `delete`: delete manifests and tags.
    Delete = 4,
}

impl ScopeAction {
    /// Every scope action, in wire order.
    pub const ALL: [ScopeAction; 3] = [ScopeAction::Pull, ScopeAction::Push, ScopeAction::Delete];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ScopeAction::Pull => "pull",
            ScopeAction::Push => "push",
            ScopeAction::Delete => "delete",
        }
    }

    /// The authorizer action this scope action needs.
    pub fn action(self) -> Action {
        match self {
            ScopeAction::Pull => Action::Pull,
            ScopeAction::Push => Action::Push,
            ScopeAction::Delete => Action::Delete,
        }
    }
}

/// A set of [`ScopeAction`]s.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ScopeActions(u8);

impl ScopeActions {
    /// No action.
    pub const NONE: ScopeActions = ScopeActions(0);
    /// `*`: every action.
    pub const ALL: ScopeActions = ScopeActions(7);

    /// Whether `a` is in the set.
    pub fn contains(self, a: ScopeAction) -> bool {
        self.0 & a as u8 != 0
    }

    /// The set with `a` added.
    #[must_use]
    pub fn with(self, a: ScopeAction) -> ScopeActions {
        ScopeActions(self.0 | a as u8)
    }

    /// Both sets together.
    #[must_use]
    pub fn union(self, other: ScopeActions) -> ScopeActions {
        ScopeActions(self.0 | other.0)
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The actions in the set, in wire order.
    pub fn iter(self) -> impl Iterator<Item = ScopeAction> {
        ScopeAction::ALL
            .into_iter()
            .filter(move |a| self.contains(*a))
    }

    /// Parses a comma-separated action list; unknown actions are ignored,
    /// `*` means all.
    pub fn parse_list(list: &str) -> ScopeActions {
        list.split(',').fold(ScopeActions::NONE, |set, a| match a {
            "pull" => set.with(ScopeAction::Pull),
            "push" => set.with(ScopeAction::Push),
            "delete" => set.with(ScopeAction::Delete),
            "*" => ScopeActions::ALL,
            _ => set,
        })
    }
}

impl fmt::Display for ScopeActions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, a) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(a.as_str())?;
        }
        Ok(())
    }
}

impl fmt::Debug for ScopeActions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ScopeActions({self})")
    }
}

/// Why a scope string could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    /// Not `type:name:actions`.
    #[error("scope {0:?} is not of the form type:name:actions")]
    Malformed(String),
    /// A repository scope names an invalid repository.
    #[error("scope names an invalid repository: {0}")]
    InvalidRepository(#[from] NameError),
}

/// A typed scope.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// `repository:<name>:<actions>`.
    Repository {
        /// The repository.
        name: RepositoryName,
        /// The actions asked for or granted.
        actions: ScopeActions,
    },
    /// `registry:catalog:*`: list repositories.
    Catalog,
}

impl Scope {
    /// Parses one scope. `Ok(None)` for what is well-formed but not for this
    /// registry: an unknown resource type, or a scope without a known action.
    pub fn parse(s: &str) -> Result<Option<Scope>, ScopeError> {
        let malformed = || ScopeError::Malformed(s.to_owned());
        let (kind, rest) = s.split_once(':').ok_or_else(malformed)?;
        let (name, actions) = rest.rsplit_once(':').ok_or_else(malformed)?;
        if name.is_empty() {
            return Err(malformed());
        }
        // A resource class (`repository(plugin)`) does not change access.
        let kind = kind.split_once('(').map_or(kind, |(k, _)| k);
        match kind {
            "repository" => {
                let actions = ScopeActions::parse_list(actions);
                if actions.is_empty() {
                    return Ok(None);
                }
                Ok(Some(Scope::Repository {
                    name: name.parse()?,
                    actions,
                }))
            }
            "registry" if name == "catalog" && actions.split(',').any(|a| a == "*") => {
                Ok(Some(Scope::Catalog))
            }
            _ => Ok(None),
        }
    }

    /// Parses every scope in `params` (each a `scope` query parameter, which
    /// may itself hold several space-separated scopes), merging the actions
    /// of repeated repositories.
    pub fn parse_all<'a>(
        params: impl IntoIterator<Item = &'a str>,
    ) -> Result<Vec<Scope>, ScopeError> {
        let mut out: Vec<Scope> = Vec::new();
        for scope in params.into_iter().flat_map(str::split_whitespace) {
            let Some(scope) = Scope::parse(scope)? else {
                continue;
            };
            merge(&mut out, scope);
        }
        Ok(out)
    }
}

fn merge(out: &mut Vec<Scope>, scope: Scope) {
    let existing = out.iter_mut().find(|s| match (s, &scope) {
        (Scope::Repository { name: a, .. }, Scope::Repository { name: b, .. }) => a == b,
        (Scope::Catalog, Scope::Catalog) => true,
        _ => false,
    });
    match (existing, scope) {
        (Some(Scope::Repository { actions, .. }), Scope::Repository { actions: more, .. }) => {
            *actions = actions.union(more)
        }
        (Some(_), _) => {}
        (None, scope) => out.push(scope),
    }
}

impl FromStr for Scope {
    type Err = ScopeError;

    /// Like [`Scope::parse`], but what this registry does not know is
    /// `Malformed`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::parse(s)?.ok_or_else(|| ScopeError::Malformed(s.to_owned()))
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Repository { name, actions } => write!(f, "repository:{name}:{actions}"),
            Scope::Catalog => f.write_str("registry:catalog:*"),
        }
    }
}

/// What `identity` may have of `requested`: each repository scope keeps
/// the actions the authorizer allows (and is dropped if none remain).
/// `registry:catalog:*` is always granted: the catalog lists only what the
/// caller may see.
pub fn grant_scopes(
    authorizer: &Authorizer,
    identity: &Identity,
    requested: &[Scope],
) -> Vec<Scope> {
    requested
        .iter()
        .filter_map(|scope| match scope {
            Scope::Repository { name, actions } => {
                let resource = Resource::Repository(name);
                let granted = actions
                    .iter()
                    .filter(|a| {
                        authorizer
                            .check(identity, a.action(), &resource)
                            .is_allowed()
                    })
                    .fold(ScopeActions::NONE, ScopeActions::with);
                (!granted.is_empty()).then(|| Scope::Repository {
                    name: name.clone(),
                    actions: granted,
                })
            }
            Scope::Catalog => Some(Scope::Catalog),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::role::{Role, RoleBinding};

    #[test]
    fn parses_docker_scopes() {
        let scopes = Scope::parse_all([
            "repository:ns/app:pull,push",
            "repository:ns/app:delete registry:catalog:*",
            "repository(plugin):ns/plug:pull",
            "repository:ns/x:frobnicate",
            "somethingelse:a:b",
            "repository:ns/all:*",
        ])
        .unwrap();
        assert_eq!(
            scopes.iter().map(ToString::to_string).collect::<Vec<_>>(),
            [
                "repository:ns/app:pull,push,delete",
                "registry:catalog:*",
                "repository:ns/plug:pull",
                "repository:ns/all:pull,push,delete",
            ]
        );
    }

    #[test]
    fn scope_errors() {
        assert!(matches!(
            Scope::parse("repository"),
            Err(ScopeError::Malformed(_))
        ));
        assert!(matches!(
            Scope::parse("repository:pull"),
            Err(ScopeError::Malformed(_))
        ));
        assert!(matches!(
            Scope::parse("repository:Bad/Name:pull"),
            Err(ScopeError::InvalidRepository(_))
        ));
        assert!(matches!(
            Scope::parse("repository:single:pull"),
            Err(ScopeError::InvalidRepository(NameError::MissingNamespace))
        ));
        assert_eq!(Scope::parse("registry:catalog:pull"), Ok(None));
        assert!("registry:catalog:*".parse::<Scope>().is_ok());
        assert!("other:x:y".parse::<Scope>().is_err());
    }

    #[test]
    fn grants_intersect_with_the_authorizer() {
        let auth = Authorizer::new(
            &[
                RoleBinding {
                    namespace: "team".parse().unwrap(),
                    role: Role::Editor,
                    subject: "alice".parse().unwrap(),
                },
                RoleBinding {
                    namespace: "public".parse().unwrap(),
                    role: Role::Viewer,
                    subject: "system:anonymous".parse().unwrap(),
                },
            ],
            &[],
        );
        let requested = Scope::parse_all([
            "repository:team/app:pull,push,delete repository:public/x:pull,push",
            "repository:secret/x:pull registry:catalog:*",
        ])
        .unwrap();
        let alice = Identity::user("alice".parse().unwrap());
        let granted: Vec<String> = grant_scopes(&auth, &alice, &requested)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            granted,
            [
                "repository:team/app:pull,push",
                "repository:public/x:pull",
                "registry:catalog:*"
            ]
        );
        let anon: Vec<String> = grant_scopes(&auth, &Identity::anonymous(), &requested)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(anon, ["repository:public/x:pull", "registry:catalog:*"]);
    }
}
