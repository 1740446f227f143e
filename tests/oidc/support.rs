//! What the tests share: an issuer stand-in over HTTPS, and a registry client with Basic credentials.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use bytes::Bytes;
use registry::api::client::Client;
use registry::auth::oidc::testing::{TestIssuer, TEST_CLIENT_ID};
use registry::auth::oidc::OidcConfig;
use serde_json::{json, Value};

/// What the stand-in serves.
pub(crate) struct Served {
    pub(crate) discovery: Value,
    pub(crate) jwks: Bytes,
    /// How long `/jwks` takes to answer.
    pub(crate) jwks_delay: Duration,
}

pub(crate) struct Stand {
    pub(crate) url: String,
    pub(crate) ca_pem: String,
    pub(crate) issuer: Arc<TestIssuer>,
    pub(crate) served: Arc<Mutex<Served>>,
}

async fn discovery(State(s): State<Arc<Mutex<Served>>>) -> Json<Value> {
    Json(s.lock().unwrap().discovery.clone())
}

async fn jwks(State(s): State<Arc<Mutex<Served>>>) -> Response {
    let (body, delay) = {
        let s = s.lock().unwrap();
        (s.jwks.clone(), s.jwks_delay)
    };
    tokio::time::sleep(delay).await;
    ([("content-type", "application/json")], body).into_response()
}

/// Serves discovery and JWKS over HTTPS on 127.0.0.1 with a fresh CA.
pub(crate) async fn stand_in() -> Stand {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    let tls = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    let issuer = Arc::new(TestIssuer::new(&url, "stand-in"));
    let served = Arc::new(Mutex::new(Served {
        discovery: json!({"issuer": url, "jwks_uri": format!("{url}/jwks")}),
        jwks: Bytes::from(issuer.jwks().to_string()),
        jwks_delay: Duration::ZERO,
    }));
    let app = Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks", get(jwks))
        .with_state(served.clone());
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, app) = (acceptor.clone(), app.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper_util::service::TowerToHyperService::new(app);
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                .await;
            });
        }
    });
    Stand {
        url,
        ca_pem: ca.pem(),
        issuer,
        served,
    }
}

impl Stand {
    pub(crate) fn config(&self) -> OidcConfig {
        OidcConfig::new(self.url.parse().unwrap(), TEST_CLIENT_ID)
            .unwrap()
            .with_ca_pem(self.ca_pem.clone())
    }
}

pub(crate) fn client(url: &str, user: &str, password: &str) -> Client {
    Client::builder(url)
        .basic_auth(user, password)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}
