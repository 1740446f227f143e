//! [`CliError`]: every way a command fails at run time (exit 1).

use std::error::Error as _;
use std::path::PathBuf;

use registry::api::client::ClientError;

use crate::target::ServerError;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The registry refused a request, or could not be reached.
    #[error("{}", describe(.0))]
    Client(#[from] ClientError),
    /// `login` with credentials the registry rejects.
    #[error("login failed: wrong username or password")]
    WrongCredentials,
    /// `login` failed for another reason.
    #[error("login failed: {}", describe(.0))]
    Login(ClientError),
    /// Stored credentials the registry rejects (401).
    #[error("{}: {}", describe(source), if *stored {
        format!("the credentials stored for {key} were rejected; run `{login}` again")
    } else {
        format!("no credentials are stored for {key}; run `{login}`")
    })]
    Rejected {
        /// The refusal.
        source: ClientError,
        /// The server's auth-file key.
        key: String,
        /// The command that logs in.
        login: String,
        /// Whether credentials were sent.
        stored: bool,
    },
    /// An admin command without stored credentials.
    #[error("no credentials for {key} in {}: run `{login}` first{}", path.display(),
        helper.as_ref().map(|h| format!(
            " (credential helper {h:?} is configured, but registryctl reads only \"auths\")"
        )).unwrap_or_default())]
    NotLoggedIn {
        /// The server's auth-file key.
        key: String,
        /// The auth file.
        path: PathBuf,
        /// The command that logs in.
        login: String,
        /// A credential helper configured for the server, if any.
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
        /// The name asked for.
        name: String,
        /// The contexts file.
        path: PathBuf,
        /// The contexts there are.
        known: Vec<String>,
    },
    /// A `SERVER` argument that is not `host[:port]` or an http(s) URL.
    #[error(transparent)]
    Server(#[from] ServerError),
    /// An ImageStream name that cannot be part of a repository name.
    #[error("invalid ImageStream name {name:?}: {source}")]
    ImageStreamName {
        /// The name.
        name: String,
        /// Why.
        source: registry::core::NameError,
    },
    /// Plain HTTP without `--insecure`.
    #[error(
        "http://{0} is plain HTTP: credentials would travel unencrypted; \
             pass --insecure to allow plain HTTP, or use https://"
    )]
    PlainHttp(String),
    /// Neither `DOCKER_CONFIG` nor `HOME`.
    #[error(
        "cannot locate the auth file: neither DOCKER_CONFIG nor HOME is set; pass --config FILE"
    )]
    NoConfigDir,
    /// A file that cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file that cannot be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// An auth or contexts file that registryctl does not understand (and
    /// so never overwrites).
    #[error("{} is not valid: {source}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Why.
        source: serde_json::Error,
    },
    /// An `auth` entry that is not base64 of `user:password`.
    #[error("auths[{0:?}].auth is not base64 of \"user:password\"")]
    BadAuthEntry(String),
    /// `--ca-file` unreadable or without certificates.
    #[error("--ca-file {}: {}", path.display(), describe(source))]
    CaFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: ClientError,
    },
    /// Standard input could not be read.
    #[error("cannot read the password from standard input: {0}")]
    Stdin(std::io::Error),
    /// An empty password.
    #[error("the password is empty")]
    EmptyPassword,
    /// A user name Basic credentials cannot carry.
    #[error("invalid user name {0:?}: it must be non-empty and contain no ':'")]
    UserName(String),
    /// Output could not be written.
    #[error("cannot write output: {0}")]
    Output(std::io::Error),
    /// The async runtime did not start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

/// A client error with its causes, and a hint where the user can act.
pub fn describe(e: &ClientError) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = s.source();
    }
    if matches!(e, ClientError::Transport { .. }) {
        let lower = message.to_ascii_lowercase();
        if lower.contains("certificate") || lower.contains("unknownissuer") {
            message
                .push_str(" (for a private CA pass --ca-file FILE; --insecure skips verification)");
        }
        if lower.contains("invalidcontenttype") || lower.contains("corrupt message") {
            message.push_str(" (the server may speak plain HTTP: use http://... with --insecure)");
        }
    }
    message
}
