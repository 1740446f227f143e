//! `whoami`, users, service accounts with their pull secrets, and access
//! tokens over HTTP.

use std::time::Duration;

use crate::http::body::SmallBody;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use registry_auth::{
    pull_secret as secret_document, AccessToken, AccessTokenId, Password, ServiceAccount,
    ServiceAccountRef, TokenName, UserName,
};
use time::OffsetDateTime;

use super::{invalid, namespace, optional_json, rfc3339, subject_text, JsonBody};
use crate::auth::{base_url, Origin};
use crate::http::error::{ApiError, ApiResult};
use crate::model::admin as model;
use crate::model::admin::{NewAccessToken, NewName, NewUser, PasswordChange};
use crate::service::{Caller, Registry, RegistryError};

pub(crate) async fn whoami(State(r): State<Registry>, caller: Caller) -> ApiResult<Response> {
    let caller = r.whoami(&caller)?;
    Ok(Json(model::WhoAmI {
        subject: subject_text(caller.subject()),
        groups: caller
            .identity()
            .groups()
            .iter()
            .map(|g| g.to_string())
            .collect(),
        provider: caller.identity().provider().to_owned(),
    })
    .into_response())
}

pub(crate) async fn list_users(State(r): State<Registry>, caller: Caller) -> ApiResult<Response> {
    let users = r
        .users(&caller)
        .await?
        .into_iter()
        .map(|u| model::User {
            name: u.name,
            created: rfc3339(u.created),
        })
        .collect();
    Ok(Json(model::UserList { users }).into_response())
}

pub(crate) async fn create_user(
    State(r): State<Registry>,
    caller: Caller,
    JsonBody(body): JsonBody<NewUser>,
) -> ApiResult<Response> {
    let name: UserName = body.name.parse().map_err(|e| invalid("user name", e))?;
    r.create_user(&caller, name.clone(), Password::new(body.password))
        .await?;
    Ok((StatusCode::CREATED, Json(model::UserCreated { name })).into_response())
}

pub(crate) async fn set_password(
    State(r): State<Registry>,
    caller: Caller,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<PasswordChange>,
) -> ApiResult<Response> {
    let name: UserName = name.parse().map_err(|e| invalid("user name", e))?;
    let current = body.current_password.map(Password::new);
    r.set_password(&caller, &name, current, Password::new(body.password))
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(crate) async fn delete_user(
    State(r): State<Registry>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    let name: UserName = name.parse().map_err(|e| invalid("user name", e))?;
    r.delete_user(&caller, &name).await?;
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

fn sa_ref(ns: &str, name: &str) -> Result<ServiceAccountRef, RegistryError> {
    Ok(ServiceAccountRef::new(
        namespace(ns)?,
        name.parse()
            .map_err(|e| invalid("service account name", e))?,
    ))
}

pub(crate) async fn list_service_accounts(
    State(r): State<Registry>,
    caller: Caller,
    Path(ns): Path<String>,
) -> ApiResult<Response> {
    let list = r.service_accounts(&caller, &namespace(&ns)?).await?;
    let serviceaccounts = list.iter().map(sa_json).collect();
    Ok(Json(model::ServiceAccountList { serviceaccounts }).into_response())
}

pub(crate) async fn create_service_account(
    State(r): State<Registry>,
    caller: Caller,
    Path(ns): Path<String>,
    JsonBody(body): JsonBody<NewName>,
) -> ApiResult<Response> {
    let account = sa_ref(&ns, &body.name)?;
    let sa = r.create_service_account(&caller, account).await?;
    Ok((StatusCode::CREATED, Json(sa_json(&sa))).into_response())
}

pub(crate) async fn delete_service_account(
    State(r): State<Registry>,
    caller: Caller,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult<Response> {
    r.delete_service_account(&caller, &sa_ref(&ns, &name)?)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET …/pull-secret`: the service account's current managed pull secret
/// (reading never rotates it).
pub(crate) async fn pull_secret(
    State(r): State<Registry>,
    caller: Caller,
    origin: Origin,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult<Response> {
    secret_response(&r, &caller, &origin, &ns, &name, false).await
}

/// `POST …/pull-secret/rotate`: a new managed token; every earlier one
/// stops working at once.
pub(crate) async fn rotate_pull_secret(
    State(r): State<Registry>,
    caller: Caller,
    origin: Origin,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult<Response> {
    secret_response(&r, &caller, &origin, &ns, &name, true).await
}

/// The Kubernetes Secret document of a service account's managed token,
/// for the host clients reach this registry at.
async fn secret_response(
    r: &Registry,
    caller: &Caller,
    origin: &Origin,
    ns: &str,
    name: &str,
    rotate: bool,
) -> ApiResult<Response> {
    let account = sa_ref(ns, name)?;
    let managed = r.managed_pull_secret(caller, &account, rotate).await?;
    let base = base_url(r, origin);
    let host = base.split_once("://").map_or(base.as_str(), |(_, h)| h);
    let mut document: model::PullSecret =
        serde_json::from_value(secret_document(&account, host, &managed.secret))
            .map_err(ApiError::internal)?;
    if let Some(expires) = managed.record.expires {
        document
            .metadata
            .annotations
            .insert("registry/token-expires".to_owned(), rfc3339(expires));
    }
    Ok(Json(document).into_response())
}

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

fn refresh_json(t: &registry_auth::RefreshToken) -> model::RefreshToken {
    model::RefreshToken {
        id: t.id,
        client_id: t.client_id.to_string(),
        owner: subject_text(&t.owner),
        provider: t.provider.clone(),
        groups: t.groups.iter().map(|g| g.to_string()).collect(),
        created: rfc3339(t.created),
        expires: t.expires.map(rfc3339),
        last_used: t.last_used.map(rfc3339),
    }
}

pub(crate) async fn list_tokens(State(r): State<Registry>, caller: Caller) -> ApiResult<Response> {
    let tokens = r.access_tokens(&caller).await?;
    let tokens = tokens.iter().map(token_json).collect();
    let refresh = r.refresh_tokens(&caller).await?;
    let refresh_tokens = refresh.iter().map(refresh_json).collect();
    Ok(Json(model::AccessTokenList {
        tokens,
        refresh_tokens,
    })
    .into_response())
}

/// `POST /tokens` with an optional body `{"name", "expires_in_seconds"}`
/// (unknown fields are refused, so that a misspelt expiry cannot yield a
/// token that never expires).
pub(crate) async fn create_token(
    State(r): State<Registry>,
    caller: Caller,
    SmallBody(body): SmallBody,
) -> ApiResult<Response> {
    let body: NewAccessToken = optional_json(&body)?;
    // The default is unique: two tokens made in one second (a second
    // `token-<seconds>`) no longer collide (409).
    let name = body.name.unwrap_or_else(|| {
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let now = OffsetDateTime::now_utc().unix_timestamp();
        format!("token-{now}-{}", &suffix[..8])
    });
    let name: TokenName = name.parse().map_err(|e| invalid("token name", e))?;
    // Zero and negative lifetimes are refused by the service.
    let lifetime = body
        .expires_in_seconds
        .map(|s| Duration::from_secs(u64::try_from(s).unwrap_or(0)));
    let (record, secret) = r.create_access_token(&caller, name, lifetime).await?;
    let out = model::CreatedAccessToken {
        info: token_json(&record),
        token: secret.expose().to_owned(),
    };
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

pub(crate) async fn delete_token(
    State(r): State<Registry>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id: AccessTokenId = id.parse().map_err(|e| invalid("token id", e))?;
    r.delete_access_token(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
