//! Namespaces, role bindings and cluster role bindings over HTTP.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use registry_auth::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};

use super::{invalid, namespace, parse_subject, subject_text, JsonBody, QueryParams};
use crate::http::error::ApiResult;
use crate::model::admin as model;
use crate::model::admin::{BindingRequest, NewName};
use crate::service::{Caller, Registry, RegistryError};

pub(crate) async fn list_namespaces(
    State(r): State<Registry>,
    caller: Caller,
) -> ApiResult<Response> {
    let namespaces = r.namespaces(&caller).await?;
    Ok(Json(model::NamespaceList { namespaces }).into_response())
}

pub(crate) async fn create_namespace(
    State(r): State<Registry>,
    caller: Caller,
    JsonBody(body): JsonBody<NewName>,
) -> ApiResult<Response> {
    let ns = namespace(&body.name)?;
    r.create_namespace(&caller, &ns).await?;
    let created = model::NamespaceCreated { name: ns };
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// `?cascade=true` on a namespace delete.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeleteNamespaceQuery {
    #[serde(default)]
    cascade: bool,
}

pub(crate) async fn delete_namespace(
    State(r): State<Registry>,
    caller: Caller,
    Path(ns): Path<String>,
    QueryParams(query): QueryParams<DeleteNamespaceQuery>,
) -> ApiResult<Response> {
    r.delete_namespace(&caller, &namespace(&ns)?, query.cascade)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(crate) async fn namespace_policy(
    State(r): State<Registry>,
    caller: Caller,
    Path(ns): Path<String>,
) -> ApiResult<Response> {
    Ok(Json(r.namespace_policy(&caller, &namespace(&ns)?).await?).into_response())
}

pub(crate) async fn set_namespace_policy(
    State(r): State<Registry>,
    caller: Caller,
    Path(ns): Path<String>,
    JsonBody(policy): JsonBody<model::NamespacePolicy>,
) -> ApiResult<Response> {
    let ns = namespace(&ns)?;
    Ok(Json(r.set_namespace_policy(&caller, &ns, policy).await?).into_response())
}

fn binding_json(b: &RoleBinding) -> model::RoleBinding {
    model::RoleBinding {
        namespace: b.namespace.clone(),
        role: b.role,
        subject: subject_text(&b.subject),
    }
}

fn role_binding(ns: &str, body: &BindingRequest) -> Result<RoleBinding, RegistryError> {
    Ok(RoleBinding {
        namespace: namespace(ns)?,
        role: body.role.parse::<Role>().map_err(|e| invalid("role", e))?,
        subject: parse_subject(&body.subject)?,
    })
}

pub(crate) async fn list_role_bindings(
    State(r): State<Registry>,
    caller: Caller,
    Path(ns): Path<String>,
) -> ApiResult<Response> {
    let list = r.role_bindings(&caller, &namespace(&ns)?).await?;
    let rolebindings = list.iter().map(binding_json).collect();
    Ok(Json(model::RoleBindingList { rolebindings }).into_response())
}

pub(crate) async fn add_role_binding(
    State(r): State<Registry>,
    caller: Caller,
    Path(ns): Path<String>,
    JsonBody(body): JsonBody<BindingRequest>,
) -> ApiResult<Response> {
    let binding = role_binding(&ns, &body)?;
    r.add_role_binding(&caller, binding.clone()).await?;
    Ok((StatusCode::CREATED, Json(binding_json(&binding))).into_response())
}

pub(crate) async fn remove_role_binding(
    State(r): State<Registry>,
    caller: Caller,
    Path(ns): Path<String>,
    QueryParams(body): QueryParams<BindingRequest>,
) -> ApiResult<Response> {
    let binding = role_binding(&ns, &body)?;
    r.remove_role_binding(&caller, &binding).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn cluster_binding(body: &BindingRequest) -> Result<ClusterRoleBinding, RegistryError> {
    Ok(ClusterRoleBinding {
        role: body
            .role
            .parse::<ClusterRole>()
            .map_err(|e| invalid("cluster role", e))?,
        subject: parse_subject(&body.subject)?,
    })
}

fn cluster_json(b: &ClusterRoleBinding) -> model::ClusterRoleBinding {
    model::ClusterRoleBinding {
        role: b.role,
        subject: subject_text(&b.subject),
    }
}

pub(crate) async fn list_cluster_bindings(
    State(r): State<Registry>,
    caller: Caller,
) -> ApiResult<Response> {
    let list = r.cluster_role_bindings(&caller).await?;
    let clusterrolebindings = list.iter().map(cluster_json).collect();
    Ok(Json(model::ClusterRoleBindingList {
        clusterrolebindings,
    })
    .into_response())
}

pub(crate) async fn add_cluster_binding(
    State(r): State<Registry>,
    caller: Caller,
    JsonBody(body): JsonBody<BindingRequest>,
) -> ApiResult<Response> {
    let binding = cluster_binding(&body)?;
    r.add_cluster_role_binding(&caller, binding.clone()).await?;
    Ok((StatusCode::CREATED, Json(cluster_json(&binding))).into_response())
}

pub(crate) async fn remove_cluster_binding(
    State(r): State<Registry>,
    caller: Caller,
    QueryParams(body): QueryParams<BindingRequest>,
) -> ApiResult<Response> {
    let binding = cluster_binding(&body)?;
    r.remove_cluster_role_binding(&caller, &binding).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
