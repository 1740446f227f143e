//! The admin API (`/apis/admin/v1`, `docs/admin-api.md`).

use registry_auth::{AccessTokenId, ServiceAccountName, UserName};
use registry_core::Namespace;
use reqwest::{Method, RequestBuilder, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::distribution::json;
use super::{Client, ClientError};
use crate::model::admin::{
    AccessTokenList, BindingRequest, ClusterRoleBinding, ClusterRoleBindingList,
    CreatedAccessToken, MirrorSyncEvent, MirrorSyncRequest, NamespaceCreated, NamespaceList,
    NamespacePolicy, NewAccessToken, NewName, NewUser, PasswordChange, PruneReport, PruneRequest,
    PullSecret, RoleBinding, RoleBindingList, ServiceAccount, ServiceAccountList, UserCreated,
    UserList, WhoAmI,
};
use crate::model::usage::{NamespaceUsage, UsageRecomputed};

/// The request a call sends: its method, path under `/apis/admin/v1`, query
/// and JSON body.
pub(super) struct Call<'a, B> {
    pub(super) method: Method,
    pub(super) path: &'a [&'a str],
    pub(super) query: &'a [(&'a str, &'a str)],
    pub(super) body: Option<&'a B>,
}

pub(super) fn call<'a>(method: Method, path: &'a [&'a str]) -> Call<'a, ()> {
    Call {
        method,
        path,
        query: &[],
        body: None,
    }
}

impl<'a, B: Serialize> Call<'a, B> {
    pub(super) fn with<C: Serialize>(self, body: &'a C) -> Call<'a, C> {
        Call {
            method: self.method,
            path: self.path,
            query: self.query,
            body: Some(body),
        }
    }
}

impl Client {
    pub(super) async fn admin_send<B: Serialize>(
        &self,
        call: Call<'_, B>,
    ) -> Result<Response, ClientError> {
        let mut segments = vec!["apis", "admin", "v1"];
        segments.extend_from_slice(call.path);
        let url = self.url(&segments, call.query);
        self.primary(|http| {
            let request: RequestBuilder = http.request(call.method.clone(), url.clone());
            match call.body {
                Some(body) => request.json(body),
                None => request,
            }
        })
        .await
    }

    pub(super) async fn admin<T: DeserializeOwned, B: Serialize>(
        &self,
        call: Call<'_, B>,
    ) -> Result<T, ClientError> {
        json(self.admin_send(call).await?).await
    }

    /// `GET /whoami`.
    pub async fn whoami(&self) -> Result<WhoAmI, ClientError> {
        self.admin(call(Method::GET, &["whoami"])).await
    }

    /// `POST /prune`: garbage collection (cluster-admin).
    pub async fn prune(&self, request: &PruneRequest) -> Result<PruneReport, ClientError> {
        self.admin(call(Method::POST, &["prune"]).with(request))
            .await
    }

    /// `GET /namespaces`.
    pub async fn namespaces(&self) -> Result<NamespaceList, ClientError> {
        self.admin(call(Method::GET, &["namespaces"])).await
    }

    /// `POST /namespaces`.
    pub async fn create_namespace(
        &self,
        name: &Namespace,
    ) -> Result<NamespaceCreated, ClientError> {
        let body = NewName::new(name.as_str());
        self.admin(call(Method::POST, &["namespaces"]).with(&body))
            .await
    }

    /// `DELETE /namespaces/{ns}[?cascade=true]`, with its bindings,
    /// service accounts and policy; with `cascade` also its ImageStreams
    /// (without, a namespace that holds some is refused).
    pub async fn delete_namespace(
        &self,
        name: &Namespace,
        cascade: bool,
    ) -> Result<(), ClientError> {
        let query: &[(&str, &str)] = if cascade { &[("cascade", "true")] } else { &[] };
        let path = ["namespaces", name.as_str()];
        let call = Call {
            query,
            ..call(Method::DELETE, &path)
        };
        self.admin_send(call).await.map(drop)
    }

    /// `GET /namespaces/{ns}/policy`.
    pub async fn namespace_policy(&self, ns: &Namespace) -> Result<NamespacePolicy, ClientError> {
        self.admin(call(Method::GET, &["namespaces", ns.as_str(), "policy"]))
            .await
    }

    /// `PUT /namespaces/{ns}/policy`: replaces the policy; returns it.
    pub async fn set_namespace_policy(
        &self,
        ns: &Namespace,
        policy: &NamespacePolicy,
    ) -> Result<NamespacePolicy, ClientError> {
        let path = ["namespaces", ns.as_str(), "policy"];
        self.admin(call(Method::PUT, &path).with(policy)).await
    }

    /// `GET /namespaces/{ns}/usage`: what the namespace stores, and its quota.
    pub async fn namespace_usage(&self, ns: &Namespace) -> Result<NamespaceUsage, ClientError> {
        self.admin(call(Method::GET, &["namespaces", ns.as_str(), "usage"]))
            .await
    }

    /// `POST /namespaces/{ns}/usage/recompute` (cluster-admin): rebuilds the
    /// usage counters from the links; returns them before and after.
    pub async fn recompute_usage(&self, ns: &Namespace) -> Result<UsageRecomputed, ClientError> {
        let path = ["namespaces", ns.as_str(), "usage", "recompute"];
        self.admin(call(Method::POST, &path)).await
    }

    /// `POST /namespaces/{ns}/mirror/sync`: mirrors an upstream repository's
    /// tags into proxy namespace `ns`, calling `on_event` with each progress
    /// event as it arrives; the last one (`finished` or `failed`).
    pub async fn mirror_sync(
        &self,
        ns: &Namespace,
        request: &MirrorSyncRequest,
        mut on_event: impl FnMut(&MirrorSyncEvent),
    ) -> Result<MirrorSyncEvent, ClientError> {
        use futures::StreamExt;
        let path = ["namespaces", ns.as_str(), "mirror", "sync"];
        let response = self
            .admin_send(call(Method::POST, &path).with(request))
            .await?;
        let url = response.url().clone();
        let mut body = response.bytes_stream();
        let mut pending: Vec<u8> = Vec::new();
        let mut last = None;
        let decode = |line: &[u8]| {
            serde_json::from_slice::<MirrorSyncEvent>(line).map_err(|source| ClientError::Decode {
                url: url.to_string(),
                source,
            })
        };
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| ClientError::transport(&url, e))?;
            pending.extend_from_slice(&chunk);
            while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                let event = decode(&line[..end])?;
                on_event(&event);
                last = Some(event);
            }
        }
        last.ok_or(ClientError::Protocol {
            url: url.to_string(),
            problem: "the mirror sync answer ended without an event",
        })
    }

    /// `GET /namespaces/{ns}/rolebindings`.
    pub async fn role_bindings(&self, ns: &Namespace) -> Result<RoleBindingList, ClientError> {
        self.admin(call(
            Method::GET,
            &["namespaces", ns.as_str(), "rolebindings"],
        ))
        .await
    }

    /// `POST /namespaces/{ns}/rolebindings`.
    pub async fn add_role_binding(
        &self,
        ns: &Namespace,
        binding: &BindingRequest,
    ) -> Result<RoleBinding, ClientError> {
        let path = ["namespaces", ns.as_str(), "rolebindings"];
        self.admin(call(Method::POST, &path).with(binding)).await
    }

    /// `DELETE /namespaces/{ns}/rolebindings?role=&subject=`.
    pub async fn remove_role_binding(
        &self,
        ns: &Namespace,
        binding: &BindingRequest,
    ) -> Result<(), ClientError> {
        let path = ["namespaces", ns.as_str(), "rolebindings"];
        let query = [
            ("role", binding.role.as_str()),
            ("subject", binding.subject.as_str()),
        ];
        let call = Call {
            query: &query,
            ..call(Method::DELETE, &path)
        };
        self.admin_send(call).await.map(drop)
    }

    /// `GET /clusterrolebindings`.
    pub async fn cluster_role_bindings(&self) -> Result<ClusterRoleBindingList, ClientError> {
        self.admin(call(Method::GET, &["clusterrolebindings"]))
            .await
    }

    /// `POST /clusterrolebindings`.
    pub async fn add_cluster_role_binding(
        &self,
        binding: &BindingRequest,
    ) -> Result<ClusterRoleBinding, ClientError> {
        self.admin(call(Method::POST, &["clusterrolebindings"]).with(binding))
            .await
    }

    /// `DELETE /clusterrolebindings?role=&subject=`.
    pub async fn remove_cluster_role_binding(
        &self,
        binding: &BindingRequest,
    ) -> Result<(), ClientError> {
        let query = [
            ("role", binding.role.as_str()),
            ("subject", binding.subject.as_str()),
        ];
        let call = Call {
            query: &query,
            ..call(Method::DELETE, &["clusterrolebindings"])
        };
        self.admin_send(call).await.map(drop)
    }

    /// `GET /users`.
    pub async fn users(&self) -> Result<UserList, ClientError> {
        self.admin(call(Method::GET, &["users"])).await
    }

    /// `POST /users`.
    pub async fn create_user(&self, user: &NewUser) -> Result<UserCreated, ClientError> {
        self.admin(call(Method::POST, &["users"]).with(user)).await
    }

    /// `PUT /users/{name}/password`.
    pub async fn set_password(
        &self,
        name: &UserName,
        change: &PasswordChange,
    ) -> Result<(), ClientError> {
        let path = ["users", name.as_str(), "password"];
        self.admin_send(call(Method::PUT, &path).with(change))
            .await
            .map(drop)
    }

    /// `DELETE /users/{name}`.
    pub async fn delete_user(&self, name: &UserName) -> Result<(), ClientError> {
        self.admin_send(call(Method::DELETE, &["users", name.as_str()]))
            .await
            .map(drop)
    }

    /// `GET /namespaces/{ns}/serviceaccounts`.
    pub async fn service_accounts(
        &self,
        ns: &Namespace,
    ) -> Result<ServiceAccountList, ClientError> {
        let path = ["namespaces", ns.as_str(), "serviceaccounts"];
        self.admin(call(Method::GET, &path)).await
    }

    /// `POST /namespaces/{ns}/serviceaccounts`.
    pub async fn create_service_account(
        &self,
        ns: &Namespace,
        name: &ServiceAccountName,
    ) -> Result<ServiceAccount, ClientError> {
        let path = ["namespaces", ns.as_str(), "serviceaccounts"];
        let body = NewName::new(name.as_str());
        self.admin(call(Method::POST, &path).with(&body)).await
    }

    /// `DELETE /namespaces/{ns}/serviceaccounts/{name}`.
    pub async fn delete_service_account(
        &self,
        ns: &Namespace,
        name: &ServiceAccountName,
    ) -> Result<(), ClientError> {
        let path = ["namespaces", ns.as_str(), "serviceaccounts", name.as_str()];
        self.admin_send(call(Method::DELETE, &path)).await.map(drop)
    }

    /// `GET …/serviceaccounts/{name}/pull-secret` (never rotates), or with
    /// `rotate` `POST …/pull-secret/rotate` (every earlier copy stops
    /// working).
    pub async fn pull_secret(
        &self,
        ns: &Namespace,
        name: &ServiceAccountName,
        rotate: bool,
    ) -> Result<PullSecret, ClientError> {
        let mut path = vec![
            "namespaces",
            ns.as_str(),
            "serviceaccounts",
            name.as_str(),
            "pull-secret",
        ];
        let method = if rotate {
            path.push("rotate");
            Method::POST
        } else {
            Method::GET
        };
        self.admin(call(method, &path)).await
    }

    /// `GET /tokens`: the caller's access tokens.
    pub async fn tokens(&self) -> Result<AccessTokenList, ClientError> {
        self.admin(call(Method::GET, &["tokens"])).await
    }

    /// `POST /tokens`: a new access token, its secret shown this once.
    pub async fn create_token(
        &self,
        request: &NewAccessToken,
    ) -> Result<CreatedAccessToken, ClientError> {
        self.admin(call(Method::POST, &["tokens"]).with(request))
            .await
    }

    /// `DELETE /tokens/{id}`.
    pub async fn delete_token(&self, id: &AccessTokenId) -> Result<(), ClientError> {
        let id = id.to_string();
        self.admin_send(call(Method::DELETE, &["tokens", &id]))
            .await
            .map(drop)
    }
}
