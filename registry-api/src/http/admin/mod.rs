//! The admin API (JSON) under `/apis/admin/v1`: namespaces, users, role
//! bindings, service accounts, access tokens, pull secrets, `whoami` and
//! `prune` (garbage collection), namespace policies and usage, mirror sync
//! of proxy namespaces, webhooks and the audit trail.
//! `docs/admin-api.md` lists every route.

mod bindings;
mod identities;
mod mirror;
mod prune;
mod usage;
mod webhooks;

use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::routing::{delete, get, post, put};
use axum::Json;
use axum::Router;
use registry_auth::Subject;
use registry_core::{ErrorCode, Namespace};
use serde::de::DeserializeOwned;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::http::body::read_small_body;
use crate::http::error::{ApiError, ApiResult};
use crate::service::{Registry, RegistryError};

/// The admin routes (state applied by the caller).
pub(crate) fn routes() -> Router<Registry> {
    Router::new()
        .route("/apis/admin/v1/whoami", get(identities::whoami))
        .route("/apis/admin/v1/prune", post(prune::prune))
        .route(
            "/apis/admin/v1/namespaces",
            get(bindings::list_namespaces).post(bindings::create_namespace),
        )
        .route(
            "/apis/admin/v1/namespaces/{ns}",
            delete(bindings::delete_namespace),
        )
        .route(
            "/apis/admin/v1/namespaces/{ns}/policy",
            get(bindings::namespace_policy).put(bindings::set_namespace_policy),
        )
        .route(
            "/apis/admin/v1/namespaces/{ns}/usage",
            get(usage::namespace_usage),
        )
        .route(
            "/apis/admin/v1/namespaces/{ns}/usage/recompute",
            post(usage::recompute_usage),
        )
        .route(
            "/apis/admin/v1/namespaces/{ns}/mirror/sync",
            post(mirror::sync),
        )
        .route(
            "/apis/admin/v1/namespaces/{ns}/rolebindings",
            get(bindings::list_role_bindings)
                .post(bindings::add_role_binding)
                .delete(bindings::remove_role_binding),
        )
        .route(
            "/apis/admin/v1/clusterrolebindings",
            get(bindings::list_cluster_bindings)
                .post(bindings::add_cluster_binding)
                .delete(bindings::remove_cluster_binding),
        )
        .route(
            "/apis/admin/v1/users",
            get(identities::list_users).post(identities::create_user),
        )
        .route(
            "/apis/admin/v1/users/{name}",
            delete(identities::delete_user),
        )
        .route(
            "/apis/admin/v1/users/{name}/password",
            put(identities::set_password),
        )
        .route(
            "/apis/admin/v1/namespaces/{ns}/serviceaccounts",
            get(identities::list_service_accounts).post(identities::create_service_account),
        )
        .route(
            "/apis/admin/v1/namespaces/{ns}/serviceaccounts/{name}",
            delete(identities::delete_service_account),
        )
        .route(
            "/apis/admin/v1/namespaces/{ns}/serviceaccounts/{name}/pull-secret",
            get(identities::pull_secret),
        )
        .route(
            "/apis/admin/v1/namespaces/{ns}/serviceaccounts/{name}/pull-secret/rotate",
            post(identities::rotate_pull_secret),
        )
        .route(
            "/apis/admin/v1/tokens",
            get(identities::list_tokens).post(identities::create_token),
        )
        .route(
            "/apis/admin/v1/tokens/{id}",
            delete(identities::delete_token),
        )
        .route(
            "/apis/admin/v1/namespaces/{ns}/webhooks",
            get(webhooks::list).post(webhooks::create),
        )
        .route(
            "/apis/admin/v1/namespaces/{ns}/webhooks/{id}",
            get(webhooks::show).delete(webhooks::remove),
        )
        .route(
            "/apis/admin/v1/namespaces/{ns}/webhooks/{id}/deliveries",
            get(webhooks::deliveries),
        )
        .route(
            "/apis/admin/v1/namespaces/{ns}/webhooks/{id}/deliveries/{delivery}/redeliver",
            post(webhooks::redeliver),
        )
        .route("/apis/admin/v1/audit", get(webhooks::audit))
}

/// 400 `UNSUPPORTED` naming what is wrong with a request's body or query.
fn bad_request(what: &str, detail: impl std::fmt::Display) -> ApiError {
    ApiError::new(ErrorCode::Unsupported, format!("invalid {what}: {detail}"))
        .with_status(StatusCode::BAD_REQUEST)
}

/// A JSON body whose problems are answered in the OCI error envelope (400
/// `UNSUPPORTED`, saying what is wrong) rather than axum's plain text.
pub(crate) struct JsonBody<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        // Read as every small body is (limit, stall and failure answered as
        // for `SmallBody`), then parsed by axum's `Json` (content type, JSON).
        let (parts, body) = req.into_parts();
        let bytes = read_small_body(body).await?;
        let req = Request::from_parts(parts, Body::from(bytes));
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(JsonBody(value)),
            Err(e) => Err(bad_request("request body", e.body_text())),
        }
    }
}

/// Query parameters whose problems are answered like [`JsonBody`]'s.
pub(crate) struct QueryParams<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(QueryParams(value)),
            Err(e) => Err(bad_request("query", e.body_text())),
        }
    }
}

/// A body that may be empty (then `T::default()`) or a JSON object (serde's
/// derive would also read an array of field values, so `[]` would pass
/// for the defaults).
fn optional_json<T: DeserializeOwned + Default>(body: &[u8]) -> ApiResult<T> {
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        None => Ok(T::default()),
        Some(b'{') => serde_json::from_slice(body).map_err(|e| bad_request("request body", e)),
        Some(_) => Err(bad_request("request body", "expected a JSON object")),
    }
}

fn invalid(what: &str, e: impl std::fmt::Display) -> RegistryError {
    RegistryError::invalid_name(what, e)
}

fn namespace(ns: &str) -> Result<Namespace, RegistryError> {
    ns.parse().map_err(|e| invalid("namespace", e))
}

/// Parses `user:NAME`, `serviceaccount:NS:NAME`, `group:NAME`, or the
/// canonical forms (`NAME`, `ldap:NAME`, `system:serviceaccount:NS:NAME`,
/// `system:…`): see [`Subject`].
fn parse_subject(s: &str) -> Result<Subject, RegistryError> {
    s.parse().map_err(|e| invalid("subject", e))
}

/// The `kind:name` form of a subject used in requests and responses.
fn subject_text(s: &Subject) -> String {
    match s {
        Subject::User(u) => format!("user:{u}"),
        Subject::External(u) => format!("user:{u}"),
        Subject::ServiceAccount(sa) => format!("serviceaccount:{}:{}", sa.namespace, sa.name),
        Subject::Group(g) => format!("group:{g}"),
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}
