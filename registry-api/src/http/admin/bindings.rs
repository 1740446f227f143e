//! Namespaces, role bindings and cluster role bindings.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use registry_auth::{Action, ClusterRole, ClusterRoleBinding, Resource, Role, RoleBinding};
use registry_storage::StorageError;

use super::{
    authorized, existing_namespace, invalid, namespace, parse_subject, reload, subject_text,
    JsonBody, QueryParams,
};
use crate::error::{ApiError, ApiResult};
use crate::model::admin as model;
use crate::model::admin::{BindingRequest as BindingBody, NewName as NameBody};
use crate::state::Registry;

pub(crate) async fn list_namespaces(
    State(r): State<Registry>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    authorized(&r, &headers, Action::CreateNamespace, &Resource::Cluster).await?;
    let list = r.metadata().list_namespaces().await?;
    Ok(Json(model::NamespaceList { namespaces: list }).into_response())
}

pub(crate) async fn create_namespace(
    State(r): State<Registry>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<NameBody>,
) -> ApiResult<Response> {
    let (_, caller) = authorized(&r, &headers, Action::CreateNamespace, &Resource::Cluster).await?;
    let ns = namespace(&body.name)?;
    match r.metadata().create_namespace(&ns).await {
        Ok(()) => {}
        Err(StorageError::AlreadyExists { .. }) => {
            return Err(ApiError::new(
                registry_core::ErrorCode::Unsupported,
                format!("namespace {ns} already exists"),
            )
            .with_status(StatusCode::CONFLICT))
        }
        Err(e) => return Err(e.into()),
    }
    tracing::info!(target: "audit", actor = %caller.actor(), namespace = %ns, "namespace created");
    Ok((
        StatusCode::CREATED,
        Json(model::NamespaceCreated { name: ns }),
    )
        .into_response())
}

pub(crate) async fn delete_namespace(
    State(r): State<Registry>,
    headers: HeaderMap,
    Path(ns): Path<String>,
) -> ApiResult<Response> {
    let (state, caller) =
        authorized(&r, &headers, Action::DeleteNamespace, &Resource::Cluster).await?;
    let ns = namespace(&ns)?;
    match r.metadata().delete_namespace(&ns).await {
        Ok(()) => {}
        Err(StorageError::NotFound { .. }) => {
            return Err(ApiError::new(
                registry_core::ErrorCode::NameUnknown,
                format!("namespace {ns} does not exist"),
            ))
        }
        Err(e) => return Err(e.into()),
    }
    state.store.delete_namespace_bindings(&ns).await?;
    for sa in state.store.list_service_accounts(Some(&ns)).await? {
        state.store.delete_service_account(&sa.account).await?;
    }
    reload(state).await?;
    tracing::info!(target: "audit", actor = %caller.actor(), namespace = %ns, "namespace deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn binding_json(b: &RoleBinding) -> model::RoleBinding {
    model::RoleBinding {
        namespace: b.namespace.clone(),
        role: b.role,
        subject: subject_text(&b.subject),
    }
}

/// A binding as audit lines show it: its JSON document.
fn audit_text(binding: &impl serde::Serialize) -> String {
    serde_json::to_string(binding).unwrap_or_default()
}

fn role_binding(ns: &str, body: &BindingBody) -> ApiResult<RoleBinding> {
    Ok(RoleBinding {
        namespace: namespace(ns)?,
        role: body.role.parse::<Role>().map_err(|e| invalid("role", e))?,
        subject: parse_subject(&body.subject)?,
    })
}

pub(crate) async fn list_role_bindings(
    State(r): State<Registry>,
    headers: HeaderMap,
    Path(ns): Path<String>,
) -> ApiResult<Response> {
    let ns = namespace(&ns)?;
    let (state, _) = authorized(
        &r,
        &headers,
        Action::ManageBindings,
        &Resource::Namespace(&ns),
    )
    .await?;
    let list = state.store.list_role_bindings(Some(&ns)).await?;
    let list: Vec<_> = list.iter().map(binding_json).collect();
    Ok(Json(model::RoleBindingList { rolebindings: list }).into_response())
}

pub(crate) async fn add_role_binding(
    State(r): State<Registry>,
    headers: HeaderMap,
    Path(ns): Path<String>,
    JsonBody(body): JsonBody<BindingBody>,
) -> ApiResult<Response> {
    let binding = role_binding(&ns, &body)?;
    let (state, caller) = authorized(
        &r,
        &headers,
        Action::ManageBindings,
        &Resource::Namespace(&binding.namespace),
    )
    .await?;
    existing_namespace(&r, &binding.namespace).await?;
    state.store.add_role_binding(binding.clone()).await?;
    reload(state).await?;
    tracing::info!(target: "audit", actor = %caller.actor(), binding = %audit_text(&binding_json(&binding)), "role binding added");
    Ok((StatusCode::CREATED, Json(binding_json(&binding))).into_response())
}

pub(crate) async fn remove_role_binding(
    State(r): State<Registry>,
    headers: HeaderMap,
    Path(ns): Path<String>,
    QueryParams(body): QueryParams<BindingBody>,
) -> ApiResult<Response> {
    let binding = role_binding(&ns, &body)?;
    let (state, caller) = authorized(
        &r,
        &headers,
        Action::ManageBindings,
        &Resource::Namespace(&binding.namespace),
    )
    .await?;
    state.store.remove_role_binding(&binding).await?;
    reload(state).await?;
    tracing::info!(target: "audit", actor = %caller.actor(), binding = %audit_text(&binding_json(&binding)), "role binding removed");
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn cluster_binding(body: &BindingBody) -> ApiResult<ClusterRoleBinding> {
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
    headers: HeaderMap,
) -> ApiResult<Response> {
    let (state, _) = authorized(
        &r,
        &headers,
        Action::ManageClusterBindings,
        &Resource::Cluster,
    )
    .await?;
    let list = state.store.list_cluster_role_bindings().await?;
    let list: Vec<_> = list.iter().map(cluster_json).collect();
    Ok(Json(model::ClusterRoleBindingList {
        clusterrolebindings: list,
    })
    .into_response())
}

pub(crate) async fn add_cluster_binding(
    State(r): State<Registry>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<BindingBody>,
) -> ApiResult<Response> {
    let (state, caller) = authorized(
        &r,
        &headers,
        Action::ManageClusterBindings,
        &Resource::Cluster,
    )
    .await?;
    let binding = cluster_binding(&body)?;
    state
        .store
        .add_cluster_role_binding(binding.clone())
        .await?;
    reload(state).await?;
    tracing::info!(target: "audit", actor = %caller.actor(), binding = %audit_text(&cluster_json(&binding)), "cluster role binding added");
    Ok((StatusCode::CREATED, Json(cluster_json(&binding))).into_response())
}

pub(crate) async fn remove_cluster_binding(
    State(r): State<Registry>,
    headers: HeaderMap,
    QueryParams(body): QueryParams<BindingBody>,
) -> ApiResult<Response> {
    let (state, caller) = authorized(
        &r,
        &headers,
        Action::ManageClusterBindings,
        &Resource::Cluster,
    )
    .await?;
    let binding = cluster_binding(&body)?;
    state.store.remove_cluster_role_binding(&binding).await?;
    reload(state).await?;
    tracing::info!(target: "audit", actor = %caller.actor(), binding = %audit_text(&cluster_json(&binding)), "cluster role binding removed");
    Ok(StatusCode::NO_CONTENT.into_response())
}
