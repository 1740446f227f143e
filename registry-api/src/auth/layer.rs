//! [`AuthLayer`]: authenticates each request once and puts its [`Caller`]
//! in the request extensions.

use std::convert::Infallible;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::http::{header, HeaderValue, Request};
use axum::response::{IntoResponse, Response};
use futures::future::{BoxFuture, Either};
use registry_auth::TokenSource;

use super::{authenticate, Accepts, AuthState, Authenticated, Origin, Rejected};
use crate::http::error::{ApiError, Challenge};
use crate::service::{Caller, Registry, RegistryError};

/// The tower layer that authenticates requests for the registry's routers.
///
/// For each request it puts a [`Caller`] into the request extensions:
/// - one a host layer put there already is trusted as it is (bring your
///   own authentication: the registry's roles, layer authorization, catalog
///   filtering and audit then apply to that identity);
/// - otherwise, with access control on, the one the `Authorization` header
///   proves (wrong credentials are answered here: 401, or 429 when
///   throttled), or the anonymous caller when there is none;
/// - with access control off, the anonymous caller.
///
/// On the way out it adds the Bearer challenge (`WWW-Authenticate` with the
/// token realm) to a 401 that asks for one, unless the caller came from the
/// host (whose own layer knows its scheme).
///
/// The routers of this crate apply it themselves; use it directly only to
/// put the registry's authentication in front of routes of your own.
#[derive(Debug, Clone)]
pub struct AuthLayer {
    registry: Registry,
    accepts: Accepts,
}

impl AuthLayer {
    /// For the distribution API: registry tokens are accepted too.
    pub fn registry_tokens(registry: &Registry) -> Self {
        AuthLayer {
            registry: registry.clone(),
            accepts: Accepts::RegistryTokens,
        }
    }

    /// For everything but the distribution API: passwords and access
    /// tokens only (a registry token is refused with a 401).
    pub fn primary_only(registry: &Registry) -> Self {
        AuthLayer {
            registry: registry.clone(),
            accepts: Accepts::PrimaryOnly,
        }
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> AuthService<S> {
        AuthService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service of [`AuthLayer`].
#[derive(Debug, Clone)]
pub struct AuthService<S> {
    inner: S,
    layer: AuthLayer,
}

impl<S> tower::Service<Request<Body>> for AuthService<S>
where
    S: tower::Service<Request<Body>, Response = Response, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    /// The inner service's own future when there is nothing to
    /// authenticate (no boxing), else the boxed authentication.
    type Future = Either<S::Future, BoxFuture<'static, Result<Response, Infallible>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        // The clone is the one that was polled ready; keep a fresh one.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        if request.extensions().get::<Caller>().is_some() {
            return Either::Left(inner.call(request));
        }
        let request_id = request_id(request.headers());
        let Some(state) = self.layer.registry.inner.auth.clone() else {
            request
                .extensions_mut()
                .insert(with_request_id(Caller::anonymous(), request_id));
            return Either::Left(inner.call(request));
        };
        let accepts = self.layer.accepts;
        Either::Right(Box::pin(async move {
            let trusted = &state.settings.trusted_proxies;
            let origin =
                Origin::with_proxies(request.extensions(), request.headers(), Some(trusted));
            let value = request.headers().get(header::AUTHORIZATION).cloned();
            let authenticated = match value {
                None => Ok(Authenticated {
                    caller: Caller::anonymous(),
                    source: TokenSource::Anonymous,
                }),
                Some(value) => {
                    let peer = origin.client_ip(trusted);
                    authenticate(&state, value.to_str().unwrap_or(""), peer, accepts).await
                }
            };
            let response = match authenticated {
                Ok(Authenticated { caller, source }) => {
                    let caller = with_request_id(caller.with_source(source), request_id);
                    request.extensions_mut().insert(caller);
                    inner.call(request).await?
                }
                Err(rejected) => rejection(rejected),
            };
            Ok(with_challenge(&state, &origin, response))
        }))
    }
}

/// A client's `X-Request-Id`, when it is a short printable token.
fn request_id(headers: &axum::http::HeaderMap) -> Option<std::sync::Arc<str>> {
    let value = headers.get("x-request-id")?.to_str().ok()?;
    let usable =
        !value.is_empty() && value.len() <= 128 && value.bytes().all(|b| b.is_ascii_graphic());
    usable.then(|| value.into())
}

fn with_request_id(caller: Caller, id: Option<std::sync::Arc<str>>) -> Caller {
    match id {
        Some(id) => caller.with_request_id(id),
        None => caller,
    }
}

/// The answer to credentials that were not accepted.
pub(super) fn rejection(rejected: Rejected) -> Response {
    match rejected {
        Rejected::Invalid(message) => ApiError::unauthenticated(message).into_response(),
        Rejected::Throttled(e, retry_after) => ApiError::from(RegistryError::TooManyRequests {
            message: e.to_string(),
            retry_after,
        })
        .into_response(),
        Rejected::Internal(e) => ApiError::internal(e).into_response(),
    }
}

/// Adds the Bearer challenge to a 401 that asks for one.
fn with_challenge(state: &AuthState, origin: &Origin, mut response: Response) -> Response {
    let Some(challenge) = response.extensions_mut().remove::<Challenge>() else {
        return response;
    };
    let realm = format!("{}/v2/token", state.base_url(origin));
    let mut value = format!(
        "Bearer realm=\"{realm}\",service=\"{}\"",
        state.issuer.service()
    );
    if let Some(scope) = &challenge.scope {
        value.push_str(&format!(",scope=\"{scope}\""));
    }
    if challenge.insufficient_scope {
        value.push_str(",error=\"insufficient_scope\"");
    }
    if let Ok(value) = HeaderValue::from_str(&value) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}
