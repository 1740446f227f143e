//! Managed pull secrets: the `kubernetes.io/dockerconfigjson` Secret that
//! lets a service account's workloads pull, and which namespaces get one.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use registry_core::Namespace;
use serde_json::{json, Value};

use hmac::{KeyInit, Mac};
use time::{Duration, OffsetDateTime};

use crate::credentials::{
    random_bytes, AccessToken, AccessTokenId, AccessTokenSecret, CredentialError, TokenName,
};
use crate::subject::{ServiceAccountRef, Subject};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// The registry's server secret: a 32-byte key from which derived secrets
/// come (the managed pull-secret tokens below), so that every replica
/// configured with the same key derives the same ones. `Debug` does not
/// show it. (Registry tokens are signed with the ES256 keys of the auth
/// store instead: see [`crate::token`].)
#[derive(Clone)]
pub struct SigningKey([u8; 32]);

impl SigningKey {
    /// 32 fresh random bytes from the CSPRNG (derived secrets die with the
    /// process: give a fixed key to every replica instead).
    pub fn generate() -> Result<Self, CredentialError> {
        Ok(SigningKey(random_bytes::<32>()?))
    }

    /// A key from configuration.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        SigningKey(bytes)
    }

    /// A key for another purpose derived from this one (HMAC of `label`),
    /// so that one configured secret serves several uses without reuse.
    pub(crate) fn derive(&self, label: &str) -> [u8; 32] {
        // HMAC accepts keys of any length: this cannot fail.
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(label.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(***)")
    }
}

/// Name prefix of the managed tokens behind pull secrets (the rest is the
/// start of the token id, as names are unique per owner).
pub const MANAGED_TOKEN_PREFIX: &str = "managed-pull-secret";

/// The secret of a service account's managed token with id `id`.
///
/// Managed tokens are derived, not drawn: HMAC-SHA256 under a key derived
/// from the registry's [`SigningKey`] (which every replica shares) of the
/// service account and the token's id. The store still holds only the
/// token's hash, yet the current pull secret can be shown again on every
/// read without rotating it. Ids are random and never reused, so a deleted
/// (revoked) managed token's secret never comes back.
pub fn managed_token(
    key: &SigningKey,
    sa: &ServiceAccountRef,
    id: &AccessTokenId,
) -> AccessTokenSecret {
    let derived = key.derive("registry managed pull-secret tokens v1");
    // HMAC accepts keys of any length: this cannot fail.
    let mut mac = HmacSha256::new_from_slice(&derived).expect("HMAC takes any key length");
    mac.update(sa.to_string().as_bytes());
    mac.update(&[0]);
    mac.update(id.as_uuid().as_bytes());
    AccessTokenSecret::from_bytes(mac.finalize().into_bytes().into())
}

/// A fresh managed token for `sa`, valid for `lifetime` from `now`: the
/// record to store and its (re-derivable) secret.
pub fn new_managed_token(
    key: &SigningKey,
    sa: &ServiceAccountRef,
    lifetime: Duration,
    now: OffsetDateTime,
) -> (AccessToken, AccessTokenSecret) {
    let id = AccessTokenId::generate();
    let secret = managed_token(key, sa, &id);
    let simple = id.as_uuid().simple().to_string();
    // Always valid: the prefix and hex digits.
    let name: TokenName = format!("{MANAGED_TOKEN_PREFIX}-{}", &simple[..12])
        .parse()
        .expect("managed token names are valid");
    let record = AccessToken {
        id,
        name,
        owner: Subject::ServiceAccount(sa.clone()),
        hash: secret.hash(),
        created: now,
        expires: now.checked_add(lifetime),
        last_used: None,
    };
    (record, secret)
}

/// Whether `token` is one of the managed pull-secret tokens.
pub fn is_managed_token(token: &AccessToken) -> bool {
    token.name.as_str().starts_with(MANAGED_TOKEN_PREFIX)
}

/// Of `sa`'s tokens, the managed one to hand out at `now`, with its secret:
/// the newest unexpired one whose secret re-derives under `key` and that
/// has more than a third of `lifetime` left. `None`: issue a new one.
pub fn current_managed_token(
    key: &SigningKey,
    sa: &ServiceAccountRef,
    tokens: &[AccessToken],
    lifetime: Duration,
    now: OffsetDateTime,
) -> Option<(AccessToken, AccessTokenSecret)> {
    let renew_at = lifetime / 3;
    tokens
        .iter()
        .filter(|t| is_managed_token(t) && !t.is_expired(now))
        .filter(|t| t.expires.is_some_and(|e| e - now > renew_at))
        .filter_map(|t| {
            let secret = managed_token(key, sa, &t.id);
            // Another key (or a record not made here) cannot be shown.
            secret.hash().ct_eq(&t.hash).then(|| (t.clone(), secret))
        })
        .max_by_key(|(t, _)| t.created)
}

/// The user name written into pull secrets. Any user name works with an
/// access token; this one has no `:` (which would break Basic auth parsing,
/// as a `system:serviceaccount:…` subject would).
pub const PULL_SECRET_USERNAME: &str = "serviceaccount";

/// The suffix of a pull secret's name: `<service account>-pull-secret`.
pub const PULL_SECRET_SUFFIX: &str = "-pull-secret";

/// The name of a service account's managed pull secret.
pub fn pull_secret_name(sa: &ServiceAccountRef) -> String {
    format!("{}{PULL_SECRET_SUFFIX}", sa.name)
}

/// Builds the Kubernetes Secret document for `sa` holding `token` for
/// `registry_host` (as clients name the registry, e.g. `registry.example.com:5000`):
///
/// ```json
/// {"apiVersion":"v1","kind":"Secret",
///  "metadata":{"name":"<sa>-pull-secret","namespace":"<ns>",
///              "labels":{"app.kubernetes.io/managed-by":"registry"},
///              "annotations":{"registry/service-account":"system:serviceaccount:<ns>:<sa>"}},
///  "type":"kubernetes.io/dockerconfigjson",
///  "data":{".dockerconfigjson":"<base64 of {\"auths\":{host:{username,password,auth}}}>"}}
/// ```
///
/// The result holds the token: treat it as a secret.
pub fn pull_secret(
    sa: &ServiceAccountRef,
    registry_host: &str,
    token: &AccessTokenSecret,
) -> Value {
    let docker_config = docker_config_json(registry_host, PULL_SECRET_USERNAME, token.expose());
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": pull_secret_name(sa),
            "namespace": sa.namespace.as_str(),
            "labels": { "app.kubernetes.io/managed-by": "registry" },
            "annotations": { "registry/service-account": sa.to_string() },
        },
        "type": "kubernetes.io/dockerconfigjson",
        "data": { ".dockerconfigjson": STANDARD.encode(docker_config.to_string()) },
    })
}

/// `{"auths":{host:{"username","password","auth"}}}`: the Docker config
/// document (also what `registryctl login` writes).
pub fn docker_config_json(registry_host: &str, username: &str, password: &str) -> Value {
    json!({
        "auths": {
            registry_host: {
                "username": username,
                "password": password,
                "auth": STANDARD.encode(format!("{username}:{password}")),
            }
        }
    })
}

/// Which namespaces get managed pull secrets: all but the ignored ones.
///
/// An entry is an exact namespace name, or a prefix ending in `*`
/// (`kube-*` ignores `kube-system` and `kube-public`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PullSecretPolicy {
    ignored: Vec<Box<str>>,
}

impl PullSecretPolicy {
    /// A policy ignoring the given namespaces or `prefix*` patterns.
    pub fn new<I, S>(ignored_namespaces: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        PullSecretPolicy {
            ignored: ignored_namespaces
                .into_iter()
                .map(|s| s.as_ref().into())
                .collect(),
        }
    }

    /// Whether `namespace` is in the ignore list.
    pub fn is_ignored(&self, namespace: &Namespace) -> bool {
        let ns = namespace.as_str();
        self.ignored
            .iter()
            .any(|pattern| match pattern.strip_suffix('*') {
                Some(prefix) => ns.starts_with(prefix),
                None => **pattern == *ns,
            })
    }

    /// Whether service accounts of `namespace` get a managed token and pull
    /// secret.
    pub fn manages(&self, namespace: &Namespace) -> bool {
        !self.is_ignored(namespace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_key_is_redacted_and_derives_per_label() {
        let key = SigningKey::from_bytes([7; 32]);
        assert!(!format!("{key:?}").contains('7'));
        assert_ne!(key.derive("a"), key.derive("b"));
        assert_eq!(key.derive("a"), SigningKey::from_bytes([7; 32]).derive("a"));
        assert_ne!(key.derive("a"), SigningKey::from_bytes([8; 32]).derive("a"));
    }

    #[test]
    fn secret_document() {
        let sa = ServiceAccountRef::new("team".parse().unwrap(), "builder".parse().unwrap());
        let token = AccessTokenSecret::generate().unwrap();
        let doc = pull_secret(&sa, "registry.example.com:5000", &token);
        assert_eq!(doc["apiVersion"], "v1");
        assert_eq!(doc["kind"], "Secret");
        assert_eq!(doc["type"], "kubernetes.io/dockerconfigjson");
        assert_eq!(doc["metadata"]["name"], "builder-pull-secret");
        assert_eq!(doc["metadata"]["namespace"], "team");
        let encoded = doc["data"][".dockerconfigjson"].as_str().unwrap();
        let config: Value = serde_json::from_slice(&STANDARD.decode(encoded).unwrap()).unwrap();
        let entry = &config["auths"]["registry.example.com:5000"];
        assert_eq!(entry["username"], PULL_SECRET_USERNAME);
        assert_eq!(entry["password"], token.expose());
        let auth = STANDARD.decode(entry["auth"].as_str().unwrap()).unwrap();
        assert_eq!(
            String::from_utf8(auth).unwrap(),
            format!("serviceaccount:{}", token.expose())
        );
    }

    #[test]
    fn ignored_namespaces() {
        let policy = PullSecretPolicy::new(["default", "kube-*"]);
        let ns = |s: &str| s.parse::<Namespace>().unwrap();
        assert!(policy.is_ignored(&ns("default")));
        assert!(policy.is_ignored(&ns("kube-system")));
        assert!(policy.manages(&ns("team")));
        assert!(policy.manages(&ns("defaults")));
        assert!(PullSecretPolicy::default().manages(&ns("default")));
    }
}
