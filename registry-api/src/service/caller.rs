//! [`Caller`]: who an operation runs for.

use std::sync::Arc;

use registry_auth::{Identity, Subject, TokenClaims, TokenSource};

/// Who an operation runs for: an identity and, when the caller came with a
/// registry token, its claims (whose scopes then bound what it may do on
/// repositories).
///
/// The authentication layer puts one into each request's extensions; a
/// host with its own authentication inserts its own before the registry's
/// routers see the request, and the registry trusts it (its roles, layer
/// authorization, catalog filtering and audit then apply to that identity).
#[derive(Debug, Clone)]
pub struct Caller {
    identity: Identity,
    token: Option<Arc<TokenClaims>>,
    /// The registry credential it authenticated with, when the registry
    /// authenticated it (the token endpoint records it in the tokens it
    /// issues, so that they die with it).
    source: Option<TokenSource>,
    /// The request's `X-Request-Id`, when the client sent one: events
    /// raised for the request carry it.
    request_id: Option<Arc<str>>,
}

impl Caller {
    /// An anonymous caller.
    pub fn anonymous() -> Self {
        Caller::new(Identity::anonymous())
    }

    /// A caller with this identity and no registry token.
    pub fn new(identity: Identity) -> Self {
        Caller {
            identity,
            token: None,
            source: None,
            request_id: None,
        }
    }

    /// A caller that presented this registry token.
    pub fn from_token(claims: impl Into<Arc<TokenClaims>>) -> Self {
        let claims = claims.into();
        Caller {
            identity: claims.identity(),
            token: Some(claims),
            source: None,
            request_id: None,
        }
    }

    /// Who it is.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// Its subject: what tag history and the audit log record.
    pub fn subject(&self) -> &Subject {
        self.identity.subject()
    }

    /// The registry token it presented, if any.
    pub fn token(&self) -> Option<&TokenClaims> {
        self.token.as_deref()
    }

    /// This caller, acting for the request with this id (`X-Request-Id`).
    #[must_use]
    pub fn with_request_id(mut self, id: impl Into<Arc<str>>) -> Self {
        self.request_id = Some(id.into());
        self
    }

    /// The id of the request it acts for, if known.
    pub fn request_id(&self) -> Option<&str> {
        self.request_id.as_deref()
    }

    /// Whether it is anonymous.
    pub fn is_anonymous(&self) -> bool {
        self.identity.is_anonymous()
    }

    /// This caller, authenticated by the registry with `source`.
    pub(crate) fn with_source(mut self, source: TokenSource) -> Self {
        self.source = Some(source);
        self
    }

    /// The registry credential it authenticated with (`None` for a caller
    /// a host put in the request).
    pub(crate) fn source(&self) -> Option<&TokenSource> {
        self.source.as_ref()
    }

    /// The subject as text (`alice`, `system:serviceaccount:ns:ci`,
    /// `system:anonymous`), as the metadata store records actors.
    pub(crate) fn actor(&self) -> String {
        self.identity.subject().to_string()
    }
}
