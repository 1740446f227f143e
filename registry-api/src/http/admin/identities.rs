//! `whoami`, users, service accounts with their pull secrets, and access tokens.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use registry_auth::{
    current_managed_token, is_managed_token, new_managed_token, pull_secret as secret_document,
    AccessToken, AccessTokenId, Action, AuthStoreError, Password, Resource, ServiceAccount,
    ServiceAccountRef, Subject, TokenName, User, UserName,
};
use registry_core::ErrorCode;
use time::OffsetDateTime;

use super::{
    authorized, caller, existing_namespace, groups_text, invalid, namespace, optional_json, reload,
    rfc3339, subject_text, JsonBody,
};
use crate::access::require_resource;
use crate::error::{ApiError, ApiResult};
use crate::model::admin as model;
use crate::model::admin::{NewAccessToken as NewToken, NewName as NewServiceAccount, NewUser};
use crate::state::Registry;

pub(crate) async fn whoami(State(r): State<Registry>, headers: HeaderMap) -> ApiResult<Response> {
    let (_, caller) = caller(&r, &headers).await?;
    Ok(Json(model::WhoAmI {
        subject: subject_text(caller.identity.subject()),
        groups: groups_text(caller.identity.groups()),
    })
    .into_response())
}

pub(crate) async fn list_users(
    State(r): State<Registry>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let (state, _) = authorized(&r, &headers, Action::ManageUsers, &Resource::Cluster).await?;
    let users = state.store.list_users().await?;
    let users: Vec<_> = users
        .iter()
        .map(|u| model::User {
            name: u.name.clone(),
            created: rfc3339(u.created),
        })
        .collect();
    Ok(Json(model::UserList { users }).into_response())
}

pub(crate) async fn create_user(
    State(r): State<Registry>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<NewUser>,
) -> ApiResult<Response> {
    let (state, caller) = authorized(&r, &headers, Action::ManageUsers, &Resource::Cluster).await?;
    let name: UserName = body.name.parse().map_err(|e| invalid("user name", e))?;
    if body.password.len() < 8 {
        return Err(invalid("password", "it must have at least 8 characters"));
    }
    let hasher = state.hasher.clone();
    let password = Password::new(body.password);
    let hash = tokio::task::spawn_blocking(move || hasher.hash(&password))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    state
        .store
        .create_user(User {
            name: name.clone(),
            password_hash: Some(hash),
            created: OffsetDateTime::now_utc(),
        })
        .await?;
    tracing::info!(target: "audit", actor = %caller.actor(), user = %name, "user created");
    Ok((StatusCode::CREATED, Json(model::UserCreated { name })).into_response())
}

pub(crate) async fn delete_user(
    State(r): State<Registry>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    let (state, caller) = authorized(&r, &headers, Action::ManageUsers, &Resource::Cluster).await?;
    let name: UserName = name.parse().map_err(|e| invalid("user name", e))?;
    state.store.delete_user(&name).await?;
    reload(state).await?;
    tracing::info!(target: "audit", actor = %caller.actor(), user = %name, "user deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn sa_json(sa: &ServiceAccount) -> model::ServiceAccount {
    model::ServiceAccount {
        namespace: sa.account.namespace.clone(),
        name: sa.account.name.clone(),
        subject: sa.account.to_string(),
        created: rfc3339(sa.created),
    }
}

pub(crate) async fn list_service_accounts(
    State(r): State<Registry>,
    headers: HeaderMap,
    Path(ns): Path<String>,
) -> ApiResult<Response> {
    let ns = namespace(&ns)?;
    let (state, _) = authorized(
        &r,
        &headers,
        Action::ManageServiceAccounts,
        &Resource::Namespace(&ns),
    )
    .await?;
    let list = state.store.list_service_accounts(Some(&ns)).await?;
    let list: Vec<_> = list.iter().map(sa_json).collect();
    Ok(Json(model::ServiceAccountList {
        serviceaccounts: list,
    })
    .into_response())
}

pub(crate) async fn create_service_account(
    State(r): State<Registry>,
    headers: HeaderMap,
    Path(ns): Path<String>,
    JsonBody(body): JsonBody<NewServiceAccount>,
) -> ApiResult<Response> {
    let ns = namespace(&ns)?;
    let (state, caller) = authorized(
        &r,
        &headers,
        Action::ManageServiceAccounts,
        &Resource::Namespace(&ns),
    )
    .await?;
    existing_namespace(&r, &ns).await?;
    let name = body
        .name
        .parse()
        .map_err(|e| invalid("service account name", e))?;
    let sa = ServiceAccount {
        account: ServiceAccountRef::new(ns, name),
        created: OffsetDateTime::now_utc(),
    };
    state.store.create_service_account(sa.clone()).await?;
    tracing::info!(target: "audit", actor = %caller.actor(), serviceaccount = %sa.account, "service account created");
    Ok((StatusCode::CREATED, Json(sa_json(&sa))).into_response())
}

fn sa_ref(ns: &str, name: &str) -> ApiResult<ServiceAccountRef> {
    Ok(ServiceAccountRef::new(
        namespace(ns)?,
        name.parse()
            .map_err(|e| invalid("service account name", e))?,
    ))
}

pub(crate) async fn delete_service_account(
    State(r): State<Registry>,
    headers: HeaderMap,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult<Response> {
    let sa = sa_ref(&ns, &name)?;
    let (state, caller) = authorized(
        &r,
        &headers,
        Action::ManageServiceAccounts,
        &Resource::Namespace(&sa.namespace),
    )
    .await?;
    state.store.delete_service_account(&sa).await?;
    reload(state).await?;
    tracing::info!(target: "audit", actor = %caller.actor(), serviceaccount = %sa, "service account deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET …/pull-secret`: the service account's current managed pull secret.
/// Reading never rotates it: the same secret comes back until it is
/// renewed (a new token once a third of its lifetime is left; the old one
/// keeps working until it expires) or rotated explicitly.
pub(crate) async fn pull_secret(
    State(r): State<Registry>,
    headers: HeaderMap,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult<Response> {
    managed_pull_secret(&r, &headers, &ns, &name, false).await
}

/// `POST …/pull-secret/rotate`: a new managed token; every earlier one
/// (and every registry token obtained with it) stops working at once.
pub(crate) async fn rotate_pull_secret(
    State(r): State<Registry>,
    headers: HeaderMap,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult<Response> {
    managed_pull_secret(&r, &headers, &ns, &name, true).await
}

async fn managed_pull_secret(
    r: &Registry,
    headers: &HeaderMap,
    ns: &str,
    name: &str,
    rotate: bool,
) -> ApiResult<Response> {
    let sa = sa_ref(ns, name)?;
    let (state, caller) = authorized(
        r,
        headers,
        Action::ManageServiceAccounts,
        &Resource::Namespace(&sa.namespace),
    )
    .await?;
    if !state.pull_secrets.manages(&sa.namespace) {
        return Err(ApiError::new(
            ErrorCode::NameUnknown,
            format!(
                "namespace {} is configured to get no managed pull secrets",
                sa.namespace
            ),
        ));
    }
    if state.store.get_service_account(&sa).await?.is_none() {
        return Err(ApiError::new(
            ErrorCode::NameUnknown,
            format!("service account {sa} does not exist"),
        ));
    }
    let owner = Subject::ServiceAccount(sa.clone());
    let now = OffsetDateTime::now_utc();
    let lifetime = time::Duration::try_from(state.settings.pull_secret_lifetime)
        .map_err(ApiError::internal)?;
    let tokens = state.store.list_tokens(Some(&owner)).await?;
    let current = if rotate {
        None
    } else {
        current_managed_token(&state.signing_key, &sa, &tokens, lifetime, now)
    };
    let (record, secret) = match current {
        Some(found) => found,
        None => {
            let (record, secret) = new_managed_token(&state.signing_key, &sa, lifetime, now);
            state.store.create_token(record.clone()).await?;
            // Rotation retires every earlier managed token; renewal only
            // the expired ones (the others still work until they expire).
            for old in tokens.iter().filter(|t| is_managed_token(t)) {
                if rotate || old.is_expired(now) {
                    match state.store.delete_token(&old.id).await {
                        Ok(()) | Err(AuthStoreError::NotFound(_)) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            let what = if rotate { "rotated" } else { "issued" };
            tracing::info!(target: "audit", actor = %caller.actor(), serviceaccount = %sa, token = %record.id, "pull secret {what}");
            (record, secret)
        }
    };
    let base = state.base_url(headers);
    let host = base.split_once("://").map_or(base.as_str(), |(_, h)| h);
    let mut document: model::PullSecret =
        serde_json::from_value(secret_document(&sa, host, &secret)).map_err(ApiError::internal)?;
    if let Some(expires) = record.expires {
        document
            .metadata
            .annotations
            .insert("registry/token-expires".to_owned(), rfc3339(expires));
    }
    Ok(Json(document).into_response())
}

/// The longest lifetime an access token may be given (10 years): far
/// below where adding it to the clock could overflow.
const MAX_TOKEN_LIFETIME_SECONDS: i64 = 10 * 365 * 24 * 3600;

// `NewToken` refuses unknown fields so that a misspelt expiry cannot
// yield a token that never expires.

fn token_json(t: &AccessToken) -> model::AccessToken {
    model::AccessToken {
        id: t.id,
        name: t.name.clone(),
        owner: subject_text(&t.owner),
        created: rfc3339(t.created),
        expires: t.expires.map(rfc3339),
        last_used: t.last_used.map(rfc3339),
    }
}

pub(crate) async fn list_tokens(
    State(r): State<Registry>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let (state, caller) = caller(&r, &headers).await?;
    let tokens = state
        .store
        .list_tokens(Some(caller.identity.subject()))
        .await?;
    let tokens: Vec<_> = tokens.iter().map(token_json).collect();
    Ok(Json(model::AccessTokenList { tokens }).into_response())
}

pub(crate) async fn create_token(
    State(r): State<Registry>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let (state, caller) = caller(&r, &headers).await?;
    let body: NewToken = optional_json(&body)?;
    let name = body
        .name
        .unwrap_or_else(|| format!("token-{}", OffsetDateTime::now_utc().unix_timestamp()));
    let name: TokenName = name.parse().map_err(|e| invalid("token name", e))?;
    let expires = match body.expires_in_seconds {
        Some(s) if !(1..=MAX_TOKEN_LIFETIME_SECONDS).contains(&s) => {
            return Err(invalid(
                "expires_in_seconds",
                format!("it must be between 1 and {MAX_TOKEN_LIFETIME_SECONDS} (10 years)"),
            ))
        }
        Some(s) => Some(OffsetDateTime::now_utc() + time::Duration::seconds(s)),
        None => None,
    };
    let owner = caller.identity.subject().clone();
    let (record, secret) =
        AccessToken::generate(owner, name, expires).map_err(ApiError::internal)?;
    state.store.create_token(record.clone()).await?;
    tracing::info!(target: "audit", actor = %caller.actor(), token = %record.id, "access token created");
    let out = model::CreatedAccessToken {
        info: token_json(&record),
        token: secret.expose().to_owned(),
    };
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

pub(crate) async fn delete_token(
    State(r): State<Registry>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let (state, caller) = caller(&r, &headers).await?;
    let id: AccessTokenId = id.parse().map_err(|e| invalid("token id", e))?;
    let owned = state
        .store
        .list_tokens(Some(caller.identity.subject()))
        .await?
        .iter()
        .any(|t| t.id == id);
    if !owned {
        require_resource(
            state,
            &headers,
            &caller,
            Action::ManageUsers,
            &Resource::Cluster,
        )?;
    }
    state.store.delete_token(&id).await?;
    tracing::info!(target: "audit", actor = %caller.actor(), token = %id, "access token deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
}
