//! [`CliError`]: every way a command fails at run time (exit 1).

use std::error::Error as _;
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
    #[error("OIDC issuer: {0}")]
    Oidc(registry::auth::oidc::OidcError),
    /// The issuer offers no device authorization grant.
    #[error("OIDC issuer {0} offers no device authorization endpoint (RFC 8628) and token endpoint in its discovery document")]
    OidcNoDeviceFlow(String),
    /// A call to the issuer failed.
    #[error("OIDC request to {endpoint} failed: {source}")]
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

/// A client error with its causes, and a hint where the user can act.
fn describe(e: &ClientError) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !message.contains(&text) {
            message = format!("{message}: {text}");
        }
        source = s.source();
    }
    if let ClientError::Transport { .. } = e {
        let lower = message.to_ascii_lowercase();
        if lower.contains("certificate") || lower.contains("unknownissuer") {
            message
                .push_str(" (for a private CA pass --ca-file FILE; --insecure skips verification)");
        } else if lower.contains("invalidcontenttype") || lower.contains("corrupt message") {
            message.push_str(" (the server may speak plain HTTP: use http://... with --insecure)");
        }
    }
    message
}
