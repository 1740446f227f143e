//! The claims of a registry token: the Docker token-auth claims (`iss`,
//! `sub`, `aud`, `exp`, `nbf`, `iat`, `jti`, `access`) plus the private
//! claims this registry needs to rebuild the caller (`provider`, `groups`)
//! and to revoke the token with the credential it came from (`source`).

use registry_core::RepositoryName;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{TokenError, TokenSource};
use crate::credentials::TokenHash;
use crate::identity::{Identity, ANONYMOUS_PROVIDER, LOCAL_PROVIDER};
use crate::names::GroupName;
use crate::scope::{Scope, ScopeAction, ScopeActions};
use crate::subject::Subject;

/// What a verified token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenClaims {
    /// Who it was issued to.
    pub subject: Subject,
    /// The identity provider that authenticated the subject (`local` for
    /// the registry's own users and service accounts).
    pub provider: String,
    /// The groups the provider put the subject in.
    pub groups: Vec<GroupName>,
    /// Its id (`jti`).
    pub id: String,
    /// When it was issued.
    pub issued_at: OffsetDateTime,
    /// When it expires.
    pub expires_at: OffsetDateTime,
    /// What it grants.
    pub scopes: Vec<Scope>,
    /// What it was obtained with.
    pub source: TokenSource,
}

impl TokenClaims {
    /// The caller, as an identity.
    pub fn identity(&self) -> Identity {
        identity_of(&self.subject, &self.provider, &self.groups)
    }

    /// Whether the token grants `action` on `repository`.
    pub fn allows(&self, repository: &RepositoryName, action: ScopeAction) -> bool {
        self.scopes.iter().any(|s| match s {
            Scope::Repository { name, actions } => name == repository && actions.contains(action),
            Scope::Catalog => false,
        })
    }

    /// Whether the token grants `registry:catalog:*`.
    pub fn allows_catalog(&self) -> bool {
        self.scopes.iter().any(|s| matches!(s, Scope::Catalog))
    }
}

/// The identity a subject stands for, as `provider` vouched for it with
/// `groups`. A provider's user whose name is also a valid local user name
/// (a provider without a prefix) reads back as a local user's subject: the
/// provider says who vouched for it.
pub(crate) fn identity_of(subject: &Subject, provider: &str, groups: &[GroupName]) -> Identity {
    let external = match subject {
        Subject::External(name) => Some(name.clone()),
        Subject::User(name) if provider != LOCAL_PROVIDER && provider != ANONYMOUS_PROVIDER => {
            name.as_str().parse().ok()
        }
        _ => None,
    };
    match external {
        Some(name) => Identity::external(provider, name, groups.iter().cloned()),
        None => Identity::authenticated(subject.clone()).unwrap_or_else(Identity::anonymous),
    }
}

/// One entry of the `access` claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Access {
    #[serde(rename = "type")]
    pub(crate) kind: String,
    pub(crate) name: String,
    pub(crate) actions: Vec<String>,
}

impl Access {
    pub(crate) fn of(scope: &Scope) -> Self {
        match scope {
            Scope::Repository { name, actions } => Access {
                kind: "repository".to_owned(),
                name: name.to_string(),
                actions: actions.iter().map(|a| a.as_str().to_owned()).collect(),
            },
            Scope::Catalog => Access {
                kind: "registry".to_owned(),
                name: "catalog".to_owned(),
                actions: vec!["*".to_owned()],
            },
        }
    }

    fn scope(&self) -> Result<Scope, TokenError> {
        match self.kind.as_str() {
            "repository" => {
                let name = self.name.parse().map_err(|_| TokenError::Malformed)?;
                let mut actions = ScopeActions::NONE;
                for a in &self.actions {
                    let one = ScopeAction::ALL
                        .into_iter()
                        .find(|known| known.as_str() == a)
                        .ok_or(TokenError::Malformed)?;
                    actions = actions.with(one);
                }
                Ok(Scope::Repository { name, actions })
            }
            "registry" if self.name == "catalog" => Ok(Scope::Catalog),
            _ => Err(TokenError::Malformed),
        }
    }
}

/// The JSON payload, as signed. Unknown claims are ignored, so that
/// replicas of different versions read each other's tokens.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Wire {
    pub(crate) iss: String,
    pub(crate) sub: String,
    pub(crate) aud: String,
    pub(crate) exp: i64,
    pub(crate) nbf: i64,
    pub(crate) iat: i64,
    pub(crate) jti: String,
    pub(crate) access: Vec<Access>,
    pub(crate) provider: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) groups: Vec<String>,
    pub(crate) source: String,
}

impl Wire {
    /// The claims of a verified payload.
    pub(crate) fn into_claims(self) -> Result<TokenClaims, TokenError> {
        let time =
            |t: i64| OffsetDateTime::from_unix_timestamp(t).map_err(|_| TokenError::Malformed);
        Ok(TokenClaims {
            subject: self.sub.parse().map_err(|_| TokenError::Malformed)?,
            provider: self.provider,
            groups: self
                .groups
                .iter()
                .map(|g| g.parse().map_err(|_| TokenError::Malformed))
                .collect::<Result<_, _>>()?,
            id: self.jti,
            issued_at: time(self.iat)?,
            expires_at: time(self.exp)?,
            scopes: self
                .access
                .iter()
                .map(Access::scope)
                .collect::<Result<_, _>>()?,
            source: source_from_text(&self.source)?,
        })
    }
}

/// The `source` claim: `anonymous`, `password`, `external`,
/// `access-token:<hex SHA-256>` or `refresh-token:<hex SHA-256>`.
pub(crate) fn source_text(source: &TokenSource) -> String {
    match source {
        TokenSource::Anonymous => "anonymous".to_owned(),
        TokenSource::Password => "password".to_owned(),
        TokenSource::External => "external".to_owned(),
        TokenSource::AccessToken(h) => format!("access-token:{}", hex::encode(h.as_bytes())),
        TokenSource::RefreshToken(h) => format!("refresh-token:{}", hex::encode(h.as_bytes())),
    }
}

fn source_from_text(text: &str) -> Result<TokenSource, TokenError> {
    let hash = |hex_text: &str| -> Result<TokenHash, TokenError> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(hex_text, &mut bytes).map_err(|_| TokenError::Malformed)?;
        Ok(TokenHash::from_bytes(bytes))
    };
    match text {
        "anonymous" => Ok(TokenSource::Anonymous),
        "password" => Ok(TokenSource::Password),
        "external" => Ok(TokenSource::External),
        _ => {
            if let Some(h) = text.strip_prefix("access-token:") {
                Ok(TokenSource::AccessToken(hash(h)?))
            } else if let Some(h) = text.strip_prefix("refresh-token:") {
                Ok(TokenSource::RefreshToken(hash(h)?))
            } else {
                Err(TokenError::Malformed)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_round_trips_and_refuses_nonsense() {
        let scopes =
            Scope::parse_all(["repository:team/app:pull,push registry:catalog:*"]).unwrap();
        for s in &scopes {
            assert_eq!(&Access::of(s).scope().unwrap(), s);
        }
        let json = serde_json::to_string(&Access::of(&scopes[0])).unwrap();
        assert_eq!(
            json,
            r#"{"type":"repository","name":"team/app","actions":["pull","push"]}"#
        );
        let bad = |kind: &str, name: &str, actions: &[&str]| Access {
            kind: kind.into(),
            name: name.into(),
            actions: actions.iter().map(|a| a.to_string()).collect(),
        };
        for a in [
            bad("repository", "single", &["pull"]),
            bad("repository", "team/app", &["fly"]),
            bad("repository", "team/app", &["*"]),
            bad("repository", "team/app", &["pull,push"]),
            bad("registry", "other", &["*"]),
            bad("plugin", "x/y", &["pull"]),
        ] {
            assert!(matches!(a.scope(), Err(TokenError::Malformed)), "{a:?}");
        }
    }

    #[test]
    fn sources_round_trip() {
        let h = TokenHash::of("rgt_x");
        for s in [
            TokenSource::Anonymous,
            TokenSource::Password,
            TokenSource::External,
            TokenSource::AccessToken(h),
            TokenSource::RefreshToken(h),
        ] {
            assert_eq!(source_from_text(&source_text(&s)).unwrap(), s);
        }
        for bad in ["", "pw", "access-token:zz", "refresh-token:", "at:00"] {
            assert!(source_from_text(bad).is_err(), "{bad}");
        }
    }
}
