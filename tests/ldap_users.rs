//! LDAP users through the registry's HTTP API, against the real OpenLDAP of
//! `.ci/services/ldap.sh` (skipped, saying so, when `REGISTRY_TEST_LDAP_URL`
//! is unset): an LDAP user pulls with `oci-client` through a binding to its
//! directory group (`group:ldap:ops`) and is refused where none grants it;
//! a wrong password and filter-injection attempts are 401s; with the
//! directory stopped, LDAP users fail closed within the timeouts while a
//! local user still pulls.
//!
//!     eval "$(bash .ci/services/ldap.sh start /tmp/svc-ldap)"
//!     cargo test --test ldap_users

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::manifest::{OciImageManifest, IMAGE_LAYER_MEDIA_TYPE};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use registry::api::{AuthConfig, Registry};
use registry::auth::ldap::{LdapConfig, LdapProvider};
use registry::auth::{
    AuthStore, ClusterRole, ClusterRoleBinding, LoginGuard, LoginLimits, MemoryAuthStore, Password,
    PasswordHasher, Role, RoleBinding, SigningKey, Subject, User,
};

const ROOT_PASSWORD: &str = "root-password";

fn ldap_config(url: &str) -> Option<LdapConfig> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    if var("REGISTRY_TEST_LDAP_URL").is_none() {
        eprintln!(
            "SKIPPED ldap_users: REGISTRY_TEST_LDAP_URL is not set \
             (eval \"$(bash .ci/services/ldap.sh start DIR)\" runs a test directory)"
        );
        return None;
    }
    let need = |name: &str| var(name).unwrap_or_else(|| panic!("{name} must be set"));
    let password = std::fs::read_to_string(need("REGISTRY_TEST_LDAP_BIND_PASSWORD_FILE")).unwrap();
    let mut config = LdapConfig::new(url, need("REGISTRY_TEST_LDAP_USER_BASE"))
        .with_bind(
            need("REGISTRY_TEST_LDAP_BIND_DN"),
            Password::new(password.trim()),
        )
        .with_group_base(need("REGISTRY_TEST_LDAP_GROUP_BASE"));
    // StartTLS with the test CA, as an operator would run it.
    config.start_tls = true;
    config.ca_file = Some(need("REGISTRY_TEST_LDAP_CA_FILE").into());
    config.connect_timeout = Duration::from_secs(1);
    config.operation_timeout = Duration::from_secs(1);
    // Short, so the test sees the directory's absence after it.
    config.cache_ttl = Duration::from_secs(2);
    Some(config)
}

/// A TCP relay to the directory that the test can cut, as if slapd stopped.
struct Relay {
    url: String,
    task: tokio::task::JoinHandle<()>,
    accepted: Arc<AtomicUsize>,
}

impl Relay {
    async fn to(target: &str) -> Relay {
        let upstream = target.trim_start_matches("ldap://").to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        // The test CA's certificate names 127.0.0.1: StartTLS still verifies.
        let url = format!("ldap://{}", listener.local_addr().unwrap());
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            while let Ok((mut client, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let upstream = upstream.clone();
                conns.spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        Relay {
            url,
            task,
            accepted,
        }
    }

    /// Stops accepting and cuts every relayed connection.
    fn cut(&self) {
        self.task.abort();
    }
}

fn client() -> Client {
    Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        read_timeout: Some(Duration::from_secs(30)),
        connect_timeout: Some(Duration::from_secs(5)),
        ..Default::default()
    })
}

fn basic(user: &str, password: &str) -> RegistryAuth {
    RegistryAuth::Basic(user.to_owned(), password.to_owned())
}

/// A registry with the LDAP provider before its own users: `root`
/// (cluster-admin, local), `group:ldap:ops` viewer of namespace `team`,
/// `ldap:carol` viewer of `other`.
async fn serve(ldap: LdapConfig) -> (String, tokio::task::JoinHandle<()>) {
    let store = Arc::new(MemoryAuthStore::new());
    let hasher = PasswordHasher::insecure_fast();
    store
        .create_user(User {
            name: "root".parse().unwrap(),
            password_hash: Some(hasher.hash(&Password::new(ROOT_PASSWORD)).unwrap()),
            created: time::OffsetDateTime::now_utc(),
        })
        .await
        .unwrap();
    store
        .add_cluster_role_binding(ClusterRoleBinding {
            role: ClusterRole::ClusterAdmin,
            subject: "root".parse().unwrap(),
        })
        .await
        .unwrap();
    for (namespace, subject) in [("team", "group:ldap:ops"), ("other", "ldap:carol")] {
        store
            .add_role_binding(RoleBinding {
                namespace: namespace.parse().unwrap(),
                role: Role::Viewer,
                subject: subject.parse::<Subject>().unwrap(),
            })
            .await
            .unwrap();
    }
    let guard = Arc::new(LoginGuard::new(LoginLimits::default()));
    let mut config =
        AuthConfig::new(SigningKey::from_bytes([7; 32])).with_store(store as Arc<dyn AuthStore>);
    config.hasher = hasher;
    config
        .providers
        .push(Arc::new(LdapProvider::new(ldap, guard.clone()).unwrap()));
    config.login_guard = Some(guard);
    let registry = Registry::builder(registry::storage::Stores::in_memory())
        .auth(config)
        .build()
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let app = registry::api::router(&registry);
    let task = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
        .unwrap()
    });
    (host, task)
}

async fn pull(reference: &Reference, auth: &RegistryAuth) -> Result<Vec<u8>, String> {
    client()
        .pull(reference, auth, vec![IMAGE_LAYER_MEDIA_TYPE])
        .await
        .map(|image| image.layers[0].data.to_vec())
        .map_err(|e| e.to_string())
}

/// The status of `GET /v2/team/app/manifests/v1` with Basic credentials.
async fn manifest_status(host: &str, user: &str, password: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("http://{host}/v2/team/app/manifests/v1"))
        .header("Accept", "application/vnd.oci.image.manifest.v1+json")
        .basic_auth(user, Some(password))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn ldap_users_pull_through_their_groups_and_fail_closed() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let Ok(target) = std::env::var("REGISTRY_TEST_LDAP_URL") else {
        ldap_config("");
        return;
    };
    let relay = Relay::to(&target).await;
    let Some(config) = ldap_config(&relay.url) else {
        return;
    };
    let (host, server) = serve(config).await;

    // The local cluster-admin pushes team/app:v1.
    let reference: Reference = format!("{host}/team/app:v1").parse().unwrap();
    let layers = vec![ImageLayer::oci_v1(b"a layer for LDAP users".to_vec(), None)];
    let config = Config::oci_v1(
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#
            .to_vec(),
        None,
    );
    let manifest = OciImageManifest::build(&layers, &config, None);
    client()
        .push(
            &reference,
            &layers,
            config,
            &basic("root", ROOT_PASSWORD),
            Some(manifest),
        )
        .await
        .expect("root pushes");

    // alice is in ops: the group binding lets her pull.
    let pulled = pull(&reference, &basic("alice", "alice-password"))
        .await
        .expect("alice pulls through group:ldap:ops");
    assert_eq!(pulled, layers[0].data.to_vec());
    assert_eq!(manifest_status(&host, "alice", "alice-password").await, 200);
    let whoami: registry::api::model::admin::WhoAmI = reqwest::Client::new()
        .get(format!("http://{host}/apis/admin/v1/whoami"))
        .basic_auth("alice", Some("alice-password"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(whoami.subject, "user:ldap:alice");
    assert_eq!(whoami.provider, "ldap");
    for group in ["ldap:ops", "ldap:devs", "system:authenticated"] {
        assert!(
            whoami.groups.iter().any(|g| g.ends_with(group)),
            "{whoami:?}"
        );
    }
    // bob (devs) and carol (no group; a binding in another namespace) log
    // in, and nothing grants them team/.
    for (user, password) in [("bob", "bob-password"), ("carol", "carol-password")] {
        assert!(
            pull(&reference, &basic(user, password)).await.is_err(),
            "{user}"
        );
        assert_eq!(manifest_status(&host, user, password).await, 403, "{user}");
    }
    // Wrong password, empty password and injection attempts: 401.
    for (user, password) in [
        ("alice", "wrong"),
        ("alice", ""),
        ("*", "alice-password"),
        ("al*", "alice-password"),
        ("alice)(uid=*", "alice-password"),
        ("*)(|(objectClass=*", "alice-password"),
    ] {
        assert_eq!(
            manifest_status(&host, user, password).await,
            401,
            "{user:?} / {password:?}"
        );
    }
    assert!(pull(&reference, &basic("alice", "wrong")).await.is_err());

    // A burst of requests with the same credentials is one bind: the first
    // login of émile (no binding: 403 after logging in) connects, the rest
    // are remembered.
    let before = relay.accepted.load(Ordering::SeqCst);
    let started = Instant::now();
    for _ in 0..20 {
        assert_eq!(manifest_status(&host, "émile", "émile-password").await, 403);
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "within the cache's time to live"
    );
    assert_eq!(
        relay.accepted.load(Ordering::SeqCst),
        before + 1,
        "one directory connection for 20 requests"
    );

    // The directory stops: once alice's login is no longer remembered, LDAP
    // users are refused (not hung), and the local user still pulls.
    relay.cut();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let started = Instant::now();
    assert_eq!(manifest_status(&host, "alice", "alice-password").await, 401);
    assert_eq!(manifest_status(&host, "bob", "bob-password").await, 401);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "bounded by the timeouts: {:?}",
        started.elapsed()
    );
    assert!(pull(&reference, &basic("alice", "alice-password"))
        .await
        .is_err());
    let pulled = pull(&reference, &basic("root", ROOT_PASSWORD))
        .await
        .expect("the local user still pulls");
    assert_eq!(pulled, layers[0].data.to_vec());
    server.abort();
}
