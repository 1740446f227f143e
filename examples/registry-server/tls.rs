//! HTTPS: the rustls server configuration from PEM files.
//!
//! Handshakes run in each connection's own task, with a deadline
//! (`--tls-handshake-timeout-secs`), in the accept loop of `serve.rs`: a
//! slow or failing client never holds up the others or the accept loop.

use std::path::Path;
use std::sync::Arc;

use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;

/// Reads the certificate chain (leaf first) from `cert` and the private key
/// (PKCS#8, PKCS#1 RSA or SEC1 EC) from `key`, both PEM, and builds the
/// server configuration (TLS 1.2 and 1.3 with the ring provider, ALPN h2
/// and http/1.1). Errors name the file at fault.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, String> {
    let chain = read_chain(cert)?;
    let private_key = read_key(key)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup failed: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, private_key)
        .map_err(|e| {
            format!(
                "TLS certificate {} and key {} cannot be used together: {e}",
                cert.display(),
                key.display()
            )
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn read_file(path: &Path, what: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {what} {}: {e}", path.display()))
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = read_file(path, "TLS certificate")?;
    let chain = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("TLS certificate {} is not valid PEM: {e}", path.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "TLS certificate {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        ));
    }
    Ok(chain)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let bytes = read_file(path, "TLS key")?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        pem::Error::NoItemsFound => format!(
            "TLS key {} holds no PEM private key (PKCS#8, RSA or EC)",
            path.display()
        ),
        e => format!("TLS key {} is not valid PEM: {e}", path.display()),
    })
}

/// For requests that arrived over TLS: tells the registry the scheme is
/// `https` (token realm and pull secrets are derived from the request when
/// no public URL is configured) and fills `Host` from the HTTP/2
/// `:authority`, which HTTP/2 clients send instead.
pub async fn mark_https(mut request: Request, next: Next) -> Response {
    // The listener's own scheme, as an extension: a header could be forged
    // by the client (and would then be believed on plain HTTP).
    request
        .extensions_mut()
        .insert(registry::api::auth::SecureListener);
    if !request.headers().contains_key(header::HOST) {
        let authority = request
            .uri()
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok());
        if let Some(authority) = authority {
            request.headers_mut().insert(header::HOST, authority);
        }
    }
    next.run(request).await
}
