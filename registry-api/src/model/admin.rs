//! The JSON documents of the admin API (`/apis/admin/v1`,
//! `docs/admin-api.md`): namespaces, role bindings, users, service accounts
//! with their pull secrets, access tokens, `whoami` and prune.
//!
//! Subjects are written `user:NAME`, `serviceaccount:NS:NAME` or
//! `group:NAME`; times are RFC 3339 in UTC. Fields are declared in
//! alphabetical order, the order the server has always written them in.
//!
//! Requests keep their names and values as strings: the server validates
//! them and answers a bad one with `NAME_INVALID` naming what is wrong.

use std::collections::BTreeMap;
use std::fmt;

use registry_auth::{AccessTokenId, ClusterRole, Role, ServiceAccountName, TokenName, UserName};
use registry_core::Namespace;
use serde::{Deserialize, Serialize};

mod mirror;
mod prune;
pub use mirror::{MirrorSyncEvent, MirrorSyncRequest, SyncedTag};
pub use prune::{PruneReport, PruneRequest, PrunedManifest};

/// `GET` and `PUT /namespaces/{ns}/policy`: retention, immutable tags and
/// quota (JSON, unknown fields refused; durations as `30d`, `12h`).
pub use registry_storage::NamespacePolicy;

/// `GET /whoami`: who the server takes the caller for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WhoAmI {
    /// Every group the caller is in (`system:authenticated`,
    /// `system:serviceaccounts:ns`, a provider's `ldap:ops`, …).
    pub groups: Vec<String>,
    /// The caller (`user:alice`, `user:ldap:bob`, `serviceaccount:ns:ci`).
    pub subject: String,
    /// The identity provider that vouched for the caller (`local`,
    /// `htpasswd`, `ldap`, `oidc`, or a host application's name).
    #[serde(default)]
    pub provider: String,
}

/// `GET /namespaces`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct NamespaceList {
    /// Every namespace, by name.
    pub namespaces: Vec<Namespace>,
}

/// `POST /namespaces` and `POST /namespaces/{ns}/serviceaccounts`: the
/// name of what to create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
#[serde(deny_unknown_fields)]
pub struct NewName {
    /// The name.
    pub name: String,
}

impl NewName {
    /// A request to create `name`.
    pub fn new(name: impl Into<String>) -> Self {
        NewName { name: name.into() }
    }
}

/// The answer to `POST /namespaces` (201).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct NamespaceCreated {
    /// The new namespace.
    pub name: Namespace,
}

/// `POST` and `DELETE` (as query parameters) of `/namespaces/{ns}/rolebindings`
/// and `/clusterrolebindings`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
#[serde(deny_unknown_fields)]
pub struct BindingRequest {
    /// The role (`registry-viewer`, `registry-editor`, `registry-admin`) or
    /// cluster role (`cluster-admin`, `metrics-viewer`).
    pub role: String,
    /// `user:NAME`, `serviceaccount:NS:NAME`, `group:NAME`, or the
    /// canonical forms.
    pub subject: String,
}

impl BindingRequest {
    /// Binds `role` to `subject`.
    pub fn new(role: impl Into<String>, subject: impl Into<String>) -> Self {
        BindingRequest {
            role: role.into(),
            subject: subject.into(),
        }
    }
}

/// A role bound to a subject in a namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RoleBinding {
    /// The namespace.
    pub namespace: Namespace,
    /// The role.
    pub role: Role,
    /// The subject (`user:alice`).
    pub subject: String,
}

/// `GET /namespaces/{ns}/rolebindings`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RoleBindingList {
    /// The bindings of the namespace.
    pub rolebindings: Vec<RoleBinding>,
}

/// A cluster role bound to a subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ClusterRoleBinding {
    /// The cluster role.
    pub role: ClusterRole,
    /// The subject (`user:alice`).
    pub subject: String,
}

/// `GET /clusterrolebindings`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ClusterRoleBindingList {
    /// Every cluster role binding.
    pub clusterrolebindings: Vec<ClusterRoleBinding>,
}

/// `POST /users`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// The user name.
    pub name: String,
    /// The password (at least 8 characters).
    pub password: String,
}

impl NewUser {
    /// A request to create user `name` with `password`.
    pub fn new(name: impl Into<String>, password: impl Into<String>) -> Self {
        NewUser {
            name: name.into(),
            password: password.into(),
        }
    }
}

impl fmt::Debug for NewUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewUser")
            .field("name", &self.name)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// `PUT /users/{name}/password`: a cluster-admin sends `password`; a user
/// changing their own sends `current_password` too. `Debug` hides both.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    /// The new password (at least 8 characters).
    pub password: String,
    /// The caller's current password, when changing their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_password: Option<String>,
}

impl PasswordChange {
    /// A cluster-admin setting a user's password.
    pub fn new(password: impl Into<String>) -> Self {
        PasswordChange {
            password: password.into(),
            current_password: None,
        }
    }

    /// A user changing their own password.
    pub fn own(current_password: impl Into<String>, password: impl Into<String>) -> Self {
        PasswordChange {
            password: password.into(),
            current_password: Some(current_password.into()),
        }
    }
}

impl fmt::Debug for PasswordChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordChange")
            .field("password", &"<redacted>")
            .field(
                "current_password",
                &self.current_password.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// The answer to `POST /users` (201).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct UserCreated {
    /// The new user.
    pub name: UserName,
}

/// A local user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct User {
    /// When it was created.
    pub created: String,
    /// Its name.
    pub name: UserName,
}

/// `GET /users`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct UserList {
    /// Every local user.
    pub users: Vec<User>,
}

/// A service account (also the answer to its creation, 201).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ServiceAccount {
    /// When it was created.
    pub created: String,
    /// Its name within the namespace.
    pub name: ServiceAccountName,
    /// Its namespace.
    pub namespace: Namespace,
    /// Its canonical subject, `system:serviceaccount:NS:NAME`.
    pub subject: String,
}

/// `GET /namespaces/{ns}/serviceaccounts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ServiceAccountList {
    /// The namespace's service accounts.
    pub serviceaccounts: Vec<ServiceAccount>,
}

/// `GET …/serviceaccounts/{name}/pull-secret` (and `…/rotate`): a
/// Kubernetes `kubernetes.io/dockerconfigjson` Secret holding the service
/// account's managed token. It is a secret: its `Debug` hides the data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
#[serde(rename_all = "camelCase")]
pub struct PullSecret {
    /// `v1`.
    pub api_version: String,
    /// The Docker config, base64-encoded.
    pub data: PullSecretData,
    /// `Secret`.
    pub kind: String,
    /// Name (`<sa>-pull-secret`), namespace, labels, annotations (the
    /// service account; `registry/token-expires` when the token expires).
    pub metadata: SecretMeta,
    /// `kubernetes.io/dockerconfigjson`.
    #[serde(rename = "type")]
    pub secret_type: String,
}

/// `metadata` of a [`PullSecret`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SecretMeta {
    /// Annotations (`registry/service-account`, `registry/token-expires`).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Labels (`app.kubernetes.io/managed-by: registry`).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The Secret's name.
    pub name: String,
    /// The service account's namespace.
    pub namespace: Namespace,
}

/// `data` of a [`PullSecret`].
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PullSecretData {
    /// Base64 of `{"auths":{host:{"username","password","auth"}}}`.
    #[serde(rename = ".dockerconfigjson")]
    pub docker_config_json: String,
}

impl fmt::Debug for PullSecretData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PullSecretData(<redacted>)")
    }
}

/// An access token, without its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AccessToken {
    /// When it was created.
    pub created: String,
    /// When it expires, `null` if never.
    pub expires: Option<String>,
    /// Its identifier (to revoke it).
    pub id: AccessTokenId,
    /// When it was last used, `null` if never.
    pub last_used: Option<String>,
    /// Its name.
    pub name: TokenName,
    /// Its owner (`user:alice`).
    pub owner: String,
}

/// A refresh token (an identity token kept by `docker login` and the
/// like), without its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RefreshToken {
    /// Its identifier (to revoke it with `DELETE /tokens/{id}`).
    pub id: AccessTokenId,
    /// The OAuth2 client it was issued to (`docker`, `registryctl`…).
    pub client_id: String,
    /// Its owner.
    pub owner: String,
    /// The provider that authenticated the owner (`local`, `ldap`…).
    pub provider: String,
    /// The groups that provider gave the owner at login.
    #[serde(default)]
    pub groups: Vec<String>,
    /// When it was created.
    pub created: String,
    /// When it expires, `null` if never.
    pub expires: Option<String>,
    /// When it was last used, `null` if never.
    pub last_used: Option<String>,
}

/// `GET /tokens`: the caller's tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AccessTokenList {
    /// The access tokens.
    pub tokens: Vec<AccessToken>,
    /// The refresh tokens (from OAuth2 grants with offline access).
    #[serde(default)]
    pub refresh_tokens: Vec<RefreshToken>,
}

/// `POST /tokens` (the body is optional: both fields default).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
#[serde(deny_unknown_fields)]
pub struct NewAccessToken {
    /// Its name (default `token-<unix time>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Its lifetime in seconds (1 to 10 years; default: no expiry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_seconds: Option<i64>,
}

impl NewAccessToken {
    /// A token named `name` (or the default name), expiring after
    /// `expires_in_seconds` (or never).
    pub fn new(name: Option<String>, expires_in_seconds: Option<i64>) -> Self {
        NewAccessToken {
            name,
            expires_in_seconds,
        }
    }
}

/// The answer to `POST /tokens` (201): the record and the secret, which
/// is shown this once. Its `Debug` hides the secret.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CreatedAccessToken {
    /// The stored record.
    #[serde(flatten)]
    pub info: AccessToken,
    /// The secret: a password for `podman login` and a bearer token.
    pub token: String,
}

impl fmt::Debug for CreatedAccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreatedAccessToken")
            .field("info", &self.info)
            .field("token", &"<redacted>")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use registry_core::Digest;
    use serde_json::{json, Value};

    /// The typed document writes the same bytes as the `json!` literal the
    /// server used to answer with (whose keys serde_json sorts), and reads
    /// them back to itself.
    fn same_bytes<T>(typed: &T, literal: Value)
    where
        T: Serialize + serde::de::DeserializeOwned + PartialEq + fmt::Debug,
    {
        let text = serde_json::to_string(typed).unwrap();
        assert_eq!(text, serde_json::to_string(&literal).unwrap());
        assert_eq!(&serde_json::from_str::<T>(&text).unwrap(), typed);
    }

    #[test]
    fn documents_keep_their_bytes() {
        let token = AccessToken {
            created: "2026-01-01T00:00:00Z".into(),
            expires: None,
            id: "7b0e5d4e-8a51-4c2e-9a38-4a5b2c1d0e9f".parse().unwrap(),
            last_used: Some("2026-01-02T00:00:00Z".into()),
            name: "ci".parse().unwrap(),
            owner: "user:alice".into(),
        };
        let literal = json!({
            "id": "7b0e5d4e-8a51-4c2e-9a38-4a5b2c1d0e9f", "name": "ci", "owner": "user:alice",
            "created": "2026-01-01T00:00:00Z", "expires": null,
            "last_used": "2026-01-02T00:00:00Z",
        });
        same_bytes(&token, literal.clone());
        let mut with_secret = literal;
        with_secret["token"] = json!("s3cret");
        let created = CreatedAccessToken {
            info: token,
            token: "s3cret".into(),
        };
        same_bytes(&created, with_secret);
        assert!(!format!("{created:?}").contains("s3cret"));

        same_bytes(
            &RoleBinding {
                namespace: "team".parse().unwrap(),
                role: Role::Editor,
                subject: "user:bob".into(),
            },
            json!({ "namespace": "team", "role": "registry-editor", "subject": "user:bob" }),
        );
        same_bytes(
            &ServiceAccount {
                created: "2026-01-01T00:00:00Z".into(),
                name: "ci".parse().unwrap(),
                namespace: "team".parse().unwrap(),
                subject: "system:serviceaccount:team:ci".into(),
            },
            json!({ "namespace": "team", "name": "ci", "subject": "system:serviceaccount:team:ci",
                    "created": "2026-01-01T00:00:00Z" }),
        );
        same_bytes(
            &PruneReport {
                blobs_deleted: 1,
                blobs_referenced: 2,
                blobs_scanned: 4,
                blobs_young: 1,
                bytes_freed: 10,
                deleted: vec![Digest::sha256_of(b"x")],
                deleted_unlisted: 0,
                dry_run: false,
                duration_seconds: 0.5,
                manifests_raced: 0,
                manifests_removed: 1,
                manifests_scanned: 5,
                removed: vec![PrunedManifest {
                    repository: "team/app".parse().unwrap(),
                    digest: Digest::sha256_of(b"m"),
                    reason: "child of removed index sha256:0".into(),
                }],
                removed_unlisted: 0,
                uploads_expired: 3,
            },
            json!({ "dry_run": false, "blobs_scanned": 4, "blobs_referenced": 2, "blobs_young": 1,
                    "blobs_deleted": 1, "bytes_freed": 10, "uploads_expired": 3,
                    "duration_seconds": 0.5, "deleted": [Digest::sha256_of(b"x")],
                    "deleted_unlisted": 0, "manifests_scanned": 5, "manifests_removed": 1,
                    "manifests_raced": 0, "removed_unlisted": 0,
                    "removed": [{ "repository": "team/app", "digest": Digest::sha256_of(b"m"),
                                  "reason": "child of removed index sha256:0" }] }),
        );
    }

    #[test]
    fn pull_secret_reads_the_auth_crates_document() {
        let sa =
            registry_auth::ServiceAccountRef::new("team".parse().unwrap(), "ci".parse().unwrap());
        let (_, secret) = registry_auth::AccessToken::generate(
            registry_auth::Subject::ServiceAccount(sa.clone()),
            "t".parse().unwrap(),
            None,
        )
        .unwrap();
        let document = registry_auth::pull_secret(&sa, "localhost:5000", &secret);
        let typed: PullSecret = serde_json::from_value(document.clone()).unwrap();
        assert_eq!(typed.metadata.name, "ci-pull-secret");
        assert_eq!(serde_json::to_value(&typed).unwrap(), document);
        assert!(!format!("{typed:?}").contains(&typed.data.docker_config_json));
    }

    #[test]
    fn requests_refuse_unknown_fields_and_default() {
        assert!(serde_json::from_str::<PruneRequest>(r#"{"grace":1}"#).is_err());
        assert!(serde_json::from_str::<NewAccessToken>(r#"{"expires_in":1}"#).is_err());
        assert_eq!(
            serde_json::to_string(&NewAccessToken::default()).unwrap(),
            "{}"
        );
    }
}
