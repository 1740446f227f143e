//! [`CliError`]: every way a command fails at run time (exit 1).

use std::path::PathBuf;

use registry::api::client::{ClientError, DockerConfigError};
use registry::core::NameError;

use crate::target::ServerError;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    /// The registry refused a request, or could not be reached.
    #[error("{}", describe(.0))]
    Client(#[from] ClientError),
    /// `login` with credentials the registry rejects.
    #[error("login failed: wrong username or password")]
    WrongCredentials,
    /// `login` failed otherwise.
    #[error("login failed: {}", describe(.0))]
    Login(ClientError),
    /// `GET /v2/` answered an error that is no registry's: a web server or
    /// another service on that URL.
    #[error("login failed: {url} is not an OCI registry's API ({}): check the URL and port", describe(.source))]
    NotARegistry { url: String, source: ClientError },
    /// A 401, with what the stored credentials (or their absence) mean.
    #[error("{}: {hint}", describe(source))]
    Rejected { source: ClientError, hint: String },
    /// A command that needs credentials, without any stored.
    #[error("no credentials for {key} in {}: run `{login}` first{}", path.display(),
        helper.as_ref().map(|h| format!(" (credential helper {h:?} is configured, \
            but registryctl reads only \"auths\")")).unwrap_or_default())]
    NotLoggedIn {
        key: String,
        path: PathBuf,
        login: String,
        helper: Option<String>,
    },
    /// Neither `--server` nor a current context.
    #[error(
        "no server given and no current context: run `registryctl login URL` first, \
             or pass --server URL (or set REGISTRY_SERVER), e.g. --server localhost:5000"
    )]
    NoServer,
    /// `context use` of a context that does not exist.
    #[error("no context {name:?} in {}: known contexts are {}", path.display(),
        if known.is_empty() { "none (log in first)".to_owned() } else { known.join(", ") })]
    UnknownContext {
        name: String,
        path: PathBuf,
        known: Vec<String>,
    },
    /// A mirror sync that failed, or in which some tags did.
    #[error("mirror sync: {0}")]
    Sync(String),
    /// A `SERVER` that is not `host[:port]` or an http(s) URL.
    #[error(transparent)]
    Server(#[from] ServerError),
    /// An ImageStream name that cannot be part of a repository name.
    #[error("invalid ImageStream name {name:?}: {source}")]
    ImageStreamName { name: String, source: NameError },
    /// Plain HTTP without `--insecure`.
    #[error(
        "http://{0} is plain HTTP: credentials would travel unencrypted; \
             pass --insecure to allow plain HTTP, or use https://"
    )]
    PlainHttp(String),
    /// The auth file cannot be located, read, parsed or written.
    #[error("{source}{}", if matches!(source, DockerConfigError::NoLocation) { "; pass --config FILE" } else { "" })]
    AuthFile {
        #[from]
        source: DockerConfigError,
    },
    /// A file that cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A file that cannot be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A contexts file registryctl does not understand (never overwritten).
    #[error("{} is not valid: {source}", path.display())]
    Invalid {
        path: PathBuf,
        source: serde_json::Error,
    },
    /// `--ca-file` without usable certificates.
    #[error("--ca-file {}: {}", path.display(), describe(source))]
    CaFile { path: PathBuf, source: ClientError },
    /// Standard input could not be read.
    #[error("cannot read the password from standard input: {0}")]
    Stdin(std::io::Error),
    /// An empty password.
    #[error("the password is empty")]
    EmptyPassword,
    /// `passwd` did not get two non-empty lines.
    #[error("passwd reads two lines from standard input: the current password, then the new one")]
    PasswdInput,
    /// `passwd` for a caller that is not a local user.
    #[error("{subject} is not a local user: its password is kept by identity provider {provider}")]
    NotLocalUser {
        /// The caller.
        subject: String,
        /// Who vouched for it.
        provider: String,
    },
    /// A user name Basic credentials cannot carry.
    #[error("invalid user name {0:?}: it must be non-empty and contain no ':'")]
    UserName(String),
    /// `login --oidc` without an issuer setting, given or remembered.
    #[error("login --oidc needs {0} (once: the context remembers it)")]
    OidcSetting(&'static str),
    /// The OpenID Connect issuer is misconfigured or unreachable.
    #[error("OIDC issuer: {}", oidc_failure(.0))]
    Oidc(registry::auth::oidc::OidcError),
    /// The issuer offers no device authorization grant.
    #[error("OIDC issuer {0} offers no device authorization endpoint (RFC 8628) and token endpoint in its discovery document")]
    OidcNoDeviceFlow(String),
    /// A call to the issuer failed.
    #[error("OIDC request to {endpoint} failed: {}", oidc_failure(.source))]
    OidcRequest {
        endpoint: String,
        source: reqwest::Error,
    },
    /// The issuer answered with something that is not the expected JSON.
    #[error("OIDC issuer answered {endpoint} with an invalid document: {source}")]
    OidcAnswer {
        endpoint: String,
        source: serde_json::Error,
    },
    /// The issuer refused (`access_denied`: the user declined).
    #[error("OIDC login refused: {error}{}", if description.is_empty() { String::new() } else { format!(": {description}") })]
    OidcRefused { error: String, description: String },
    /// The code expired before the user signed in.
    #[error(
        "OIDC login expired before the sign-in was completed; run `registryctl login --oidc` again"
    )]
    OidcExpired,
    /// The issuer answered without an ID token.
    #[error(
        "the OIDC issuer returned no ID token (is the `openid` scope allowed for this client?)"
    )]
    OidcNoIdToken,
    /// The registry does not accept the issuer's ID token.
    #[error("login failed: the registry does not accept this issuer's ID token (is it started with this --oidc-issuer-url and --oidc-client-id?)")]
    OidcTokenRejected,
    /// Output could not be written.
    #[error("cannot write output: {0}")]
    Output(std::io::Error),
    /// The async runtime did not start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

/// An error with those of its causes its text does not already say.
fn with_causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !message.contains(&text) {
            message = format!("{message}: {text}");
        }
        source = s.source();
    }
    message
}

/// A failed call to the OIDC issuer with its causes (a refused connection,
/// an untrusted certificate), and a hint where the user can act.
fn oidc_failure(e: &(dyn std::error::Error + 'static)) -> String {
    let message = with_causes(e);
    let lower = message.to_ascii_lowercase();
    match transport_hint(&lower) {
        Some(_) if lower.contains("unknownissuer") => format!(
            "{message} (the issuer's certificate is not signed by a CA this machine trusts: \
             for a private CA pass --oidc-ca-file FILE)"
        ),
        Some(hint) => format!("{message}{hint}"),
        None => message,
    }
}

/// A client error with its causes, and a hint where the user can act.
fn describe(e: &ClientError) -> String {
    let mut message = with_causes(e);
    if let ClientError::Transport { .. } = e {
        if let Some(hint) = transport_hint(&message.to_ascii_lowercase()) {
            message.push_str(hint);
        }
    }
    message
}

/// What the user can do about a transport error, by its text.
fn transport_hint(lower: &str) -> Option<&'static str> {
    if lower.contains("not valid for name") || lower.contains("notvalidforname") {
        Some(" (the server's certificate is for another host name: use a name it is issued for)")
    } else if lower.contains("expired") && lower.contains("certificate") {
        Some(" (the server's certificate has expired or is not yet valid: check the server's and this machine's clocks)")
    } else if lower.contains("unknownissuer") || lower.contains("certificate") {
        Some(" (the certificate is not signed by a CA this machine trusts: for a private CA pass --ca-file FILE with that CA; --insecure skips verification)")
    } else if lower.contains("invalidcontenttype") || lower.contains("corrupt message") {
        Some(" (the server may speak plain HTTP: use http://... with --insecure)")
    } else if lower.contains("invalid http version") {
        Some(" (the server may speak HTTPS: use https://... or host:port)")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::transport_hint;

    /// The hints for the texts rustls and hyper give these failures.
    #[test]
    fn transport_failures_get_the_hint_that_fits() {
        let hint = |text: &str| transport_hint(&text.to_ascii_lowercase()).unwrap_or_default();
        assert!(hint("invalid peer certificate: UnknownIssuer").contains("--ca-file"));
        let other_name = "invalid peer certificate: certificate not valid for name \"127.0.0.1\"; \
                          certificate is only valid for DnsName(\"other.example\")";
        assert!(
            hint(other_name).contains("another host name"),
            "{}",
            hint(other_name)
        );
        assert!(!hint(other_name).contains("--ca-file"));
        let expired = "invalid peer certificate: certificate expired: verification time 1, \
                       but certificate is not valid after 0";
        assert!(hint(expired).contains("expired"));
        let https = "client error (SendRequest): invalid HTTP version parsed";
        assert!(hint(https).contains("use https://"), "{}", hint(https));
        let http = "received corrupt message of type InvalidContentType";
        assert!(hint(http).contains("use http://"));
        assert_eq!(hint("connection refused"), "");
    }

    /// A failed call to the issuer says why, not only that it failed.
    #[tokio::test]
    async fn oidc_failures_keep_their_cause() {
        // A port nothing listens on (bound then released).
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/token", listener.local_addr().unwrap());
        drop(listener);
        let _ = rustls::crypto::ring::default_provider().install_default();
        let source = reqwest::get(&url).await.unwrap_err();
        let e = super::CliError::OidcRequest {
            endpoint: url.clone(),
            source,
        };
        let text = e.to_string().to_ascii_lowercase();
        // Before: "... failed: error sending request for url (...)" only.
        assert!(text.contains("connection refused"), "{text}");
    }
}
