//! Issuing, verifying and rotating registry tokens over a store; the fixtures the tests share.

mod issuing;
mod key_rotation;
mod properties;
mod verifying;

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::Value;

use super::*;
use crate::identity::Identity;
use crate::memory::MemoryAuthStore;
use crate::scope::Scope;
use crate::store::AuthStore;

const SERVICE: &str = "registry.test";

fn settings() -> TokenSettings {
    TokenSettings {
        accepted_services: vec!["distribution.test".into()],
        ..TokenSettings::default()
    }
}

fn store() -> Arc<dyn AuthStore> {
    Arc::new(MemoryAuthStore::new())
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

async fn issuer_on(store: &Arc<dyn AuthStore>) -> TokenIssuer {
    TokenIssuer::load(store.clone(), SERVICE, &settings())
        .await
        .unwrap()
}

fn scopes() -> Vec<Scope> {
    Scope::parse_all(["repository:team/app:pull,push registry:catalog:*"]).unwrap()
}

fn alice() -> Identity {
    Identity::user("alice".parse().unwrap())
}

fn segments(token: &str) -> (Value, Value) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3);
    let decode = |s: &str| serde_json::from_slice(&URL_SAFE_NO_PAD.decode(s).unwrap()).unwrap();
    (decode(parts[0]), decode(parts[1]))
}

/// Signs arbitrary header and claims with the store's current key, as a
/// forger who stole nothing could not: tokens that are correctly signed
/// yet say the wrong thing.
async fn sign_raw(store: &Arc<dyn AuthStore>, header: &Header, claims: &Value) -> String {
    let keys = store.list_token_signing_keys().await.unwrap();
    let key = EncodingKey::from_ec_der(keys[0].private_key.as_bytes());
    jsonwebtoken::encode(header, claims, &key).unwrap()
}

fn header_of(store_key: &TokenSigningKey) -> Header {
    let mut h = Header::new(Algorithm::ES256);
    h.kid = Some(store_key.kid.to_string());
    h
}
