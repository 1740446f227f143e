//! `login`, `logout` and `context`, and the connection every other command
//! opens: which server (`--server`, else the current context), which TLS
//! choice (the flags, else the context's), which credentials.

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use registry::api::client::{Client, ClientError, Credentials, DockerConfig};
use registry::api::model::admin::PasswordChange;
use registry::auth::{RefreshTokenSecret, UserName};

use crate::admin::{print_json, table};
use crate::cli::{ContextCmd, Global, Login};
use crate::config::{auth_file_path, contexts_path, Context, Contexts};
use crate::oidc::{self, OidcContext};
use crate::target::{decide_transport, Server};
use crate::{say, CliError, Io};

/// How long a command lets the server stay silent while it answers: a
/// minute, which catches a server that hangs, or an hour for a command whose
/// answer comes when a long piece of work is done (`prune`, a `--cascade`
/// delete, a usage recount) or between two tags of a mirror sync, which
/// may each fetch gigabytes. Neither limits how long a whole answer takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Silence {
    /// 60 s.
    Short,
    /// 3600 s.
    Long,
}

impl Silence {
    fn limit(self) -> Duration {
        match self {
            Silence::Short => Duration::from_secs(60),
            Silence::Long => Duration::from_secs(3600),
        }
    }
}

/// A client of the server a command is for.
pub(crate) struct Connection {
    pub client: Client,
    server: Server,
    /// The `registryctl login` command line for this server and TLS choice.
    login: String,
    authenticated: bool,
}

impl Connection {
    /// Connects to the command's server with the credentials stored for
    /// it; without any, anonymously unless `required`.
    pub fn open(
        g: &Global,
        io: &mut Io<'_>,
        required: bool,
        silence: Silence,
    ) -> Result<Self, CliError> {
        let auth_path = auth_file_path(g.config.as_deref(), &io.env)?;
        let contexts = Contexts::load(&contexts_path(&auth_path))?;
        let current = contexts
            .current
            .as_ref()
            .and_then(|c| contexts.contexts.get(c));
        // An empty `REGISTRY_SERVER` counts as unset, as an empty
        // `DOCKER_CONFIG` does.
        let given = g.server.as_deref().filter(|s| !s.trim().is_empty());
        let named = given.or(current.map(|c| c.server.as_str()));
        let mut server = Server::parse(named.ok_or(CliError::NoServer)?)?;
        let context = contexts.contexts.get(server.key());
        // `--server host:port` names a context without repeating its scheme.
        if let Some(c) = context.filter(|_| named.is_some_and(|n| !n.contains("://"))) {
            server = Server::parse(&c.server)?;
        }
        let insecure = g.insecure || context.is_some_and(|c| c.insecure);
        let ca_file = g
            .ca_file
            .as_deref()
            .or(context.and_then(|c| c.ca_file.as_deref()));
        let login = server.login_command(insecure, ca_file);
        let auth = DockerConfig::load(&auth_path)?;
        let credentials = auth.credentials(server.key())?;
        if required && credentials.is_none() {
            return Err(CliError::NotLoggedIn {
                key: server.key().to_owned(),
                path: auth_path,
                login,
                helper: auth.credential_helper(server.key()).map(str::to_owned),
            });
        }
        let authenticated = credentials.is_some();
        let client = client(&server, insecure, ca_file, credentials, silence, io)?;
        Ok(Connection {
            client,
            server,
            login,
            authenticated,
        })
    }

    /// Awaits a call; a 401 says what the stored credentials have to do
    /// with it.
    pub async fn run<T>(
        &self,
        call: impl Future<Output = Result<T, ClientError>>,
    ) -> Result<T, CliError> {
        call.await.map_err(|e| match e {
            ClientError::Unauthorized { .. } => {
                let (key, login) = (self.server.key(), &self.login);
                let hint = match self.authenticated {
                    true => format!(
                        "the credentials stored for {key} were rejected; run `{login}` again"
                    ),
                    false => format!("no credentials are stored for {key}; run `{login}`"),
                };
                CliError::Rejected { source: e, hint }
            }
            e => CliError::Client(e),
        })
    }
}

/// The client for `server` (printing any `--insecure` warning).
fn client(
    server: &Server,
    insecure: bool,
    ca_file: Option<&Path>,
    credentials: Option<Credentials>,
    silence: Silence,
    io: &mut Io<'_>,
) -> Result<Client, CliError> {
    let (skip_verify, warnings) = decide_transport(server, insecure, ca_file.is_some())?;
    for warning in warnings {
        say!(io.err, "{warning}")?;
    }
    let mut builder = Client::builder(server.base_url())
        .user_agent(concat!("registryctl/", env!("CARGO_PKG_VERSION")))
        .read_timeout(silence.limit())
        .insecure(skip_verify);
    let ca_file = ca_file.filter(|_| server.is_https());
    if let Some(path) = ca_file {
        let read = std::fs::read(path);
        let path = path.to_owned();
        builder = builder.ca_pem(read.map_err(|source| CliError::Read { path, source })?);
    }
    if let Some(credentials) = credentials {
        builder = builder.credentials(credentials);
    }
    builder.build().map_err(|e| match (e, ca_file) {
        (source @ ClientError::InvalidCa { .. }, Some(path)) => CliError::CaFile {
            path: path.to_owned(),
            source,
        },
        (e, _) => CliError::Client(e),
    })
}

/// Reads a password from `stdin`, dropping the trailing line break.
pub(crate) fn read_password(io: &mut Io<'_>) -> Result<String, CliError> {
    let mut text = String::new();
    io.stdin
        .read_to_string(&mut text)
        .map_err(CliError::Stdin)?;
    match text.trim_end_matches(['\r', '\n']) {
        "" => Err(CliError::EmptyPassword),
        password => Ok(password.to_owned()),
    }
}

/// `registryctl passwd`: changes the logged-in local user's password, then
/// the stored credentials if they held the old one.
pub(crate) async fn passwd(g: &Global, io: &mut Io<'_>) -> Result<(), CliError> {
    let mut text = String::new();
    io.stdin
        .read_to_string(&mut text)
        .map_err(CliError::Stdin)?;
    let mut lines = text.lines().map(|l| l.trim_end_matches('\r'));
    let (current, new) = match (lines.next(), lines.next()) {
        (Some(c), Some(n)) if !c.is_empty() && !n.is_empty() => (c.to_owned(), n.to_owned()),
        _ => return Err(CliError::PasswdInput),
    };
    let conn = Connection::open(g, io, true, Silence::Short)?;
    let me = conn.run(conn.client.whoami()).await?;
    let name = me
        .subject
        .strip_prefix("user:")
        .and_then(|n| n.parse::<UserName>().ok())
        .ok_or_else(|| CliError::NotLocalUser {
            subject: me.subject.clone(),
            provider: me.provider.clone(),
        })?;
    let change = PasswordChange::own(current.as_str(), new.as_str());
    conn.run(conn.client.set_password(&name, &change)).await?;
    say!(io.out, "password of user/{name} changed")?;
    let auth_path = auth_file_path(g.config.as_deref(), &io.env)?;
    let mut auth = DockerConfig::load(&auth_path)?;
    let key = conn.server.key().to_owned();
    let updated = match auth.credentials(&key)? {
        Some(Credentials::Basic { username, password }) if password == current => {
            auth.set_credentials(&key, &username, &new);
            true
        }
        // The change revoked the identity token: a new one for the new
        // password.
        Some(Credentials::AccessToken(token)) if RefreshTokenSecret::looks_like(&token) => {
            store_login(&conn.client, &mut auth, &key, name.as_str(), &new, io).await?;
            true
        }
        _ => false,
    };
    if updated {
        auth.save(&auth_path)?;
        say!(
            io.out,
            "credentials for {key} in {} updated",
            auth_path.display()
        )?;
    }
    Ok(())
}

/// `registryctl login`: checks the credentials, stores them and makes the
/// server (with its TLS choice) the current context. With `--oidc`, the
/// credentials are an ID token from the device flow.
pub(crate) async fn login(g: &Global, args: &Login, io: &mut Io<'_>) -> Result<(), CliError> {
    let mut server = Server::parse(&args.server)?;
    let key = server.key().to_owned();
    // Read both files first: a file we cannot update fails before any request.
    let path = auth_file_path(g.config.as_deref(), &io.env)?;
    let mut auth = DockerConfig::load(&path)?;
    let contexts_file = contexts_path(&path);
    let mut contexts = Contexts::load(&contexts_file)?;
    let mut insecure = g.insecure;
    let mut ca_file = match g.ca_file.as_deref() {
        Some(f) => Some(std::path::absolute(f).map_err(|source| CliError::Read {
            path: f.to_owned(),
            source,
        })?),
        None => None,
    };
    // `login host:port` again, as the hints print it, reaches the server as
    // its context does: its scheme, and its TLS choice unless one is given.
    if let Some(c) = contexts.contexts.get(&key) {
        if !args.server.contains("://") {
            server = Server::parse(&c.server)?;
        }
        if !insecure && ca_file.is_none() {
            insecure = c.insecure;
            ca_file = c.ca_file.clone();
        }
    }
    // Checked before the issuer is asked for anything.
    decide_transport(&server, insecure, ca_file.is_some())?;
    let (username, password, oidc) = if args.oidc.enabled {
        let settings = OidcContext::resolve(&args.oidc, contexts.contexts.get(&key))?;
        let issuer = oidc::Issuer::discover(&settings).await?;
        let id_token = oidc::device_flow(&issuer, &settings, oidc::Polling::default(), io).await?;
        // Any user name: the registry reads the user from the token.
        ("oidc".to_owned(), id_token, Some(settings))
    } else {
        let username = args.username.clone().unwrap_or_default();
        if username.is_empty() || username.contains(':') {
            return Err(CliError::UserName(username));
        }
        let password = match &args.password {
            Some(p) if !args.password_stdin => {
                say!(io.err, "warning: a password on the command line is visible to other local users; use --password-stdin")?;
                p.clone()
            }
            _ => read_password(io)?,
        };
        (username, password, None)
    };
    if password.is_empty() {
        return Err(CliError::EmptyPassword);
    }
    let credentials = Credentials::basic(&username, &password);
    let client = client(
        &server,
        insecure,
        ca_file.as_deref(),
        Some(credentials),
        Silence::Short,
        io,
    )?;
    match client.ping().await {
        Ok(()) => {}
        Err(ClientError::Unauthorized { .. }) if oidc.is_some() => {
            return Err(CliError::OidcTokenRejected)
        }
        Err(ClientError::Unauthorized { .. }) => return Err(CliError::WrongCredentials),
        // A registry answers `/v2/` with 200 or 401, and its other errors
        // with an OCI error document.
        Err(e) if e.code() == Some("") && e.status().is_some_and(|s| s.is_client_error()) => {
            let url = format!("{}v2/", server.base_url());
            return Err(CliError::NotARegistry { url, source: e });
        }
        Err(e) => return Err(CliError::Login(e)),
    }
    let kept = if oidc.is_some() {
        // The ID token itself: the issuer, not this registry, decides how
        // long it lives.
        auth.set_credentials(&key, &username, &password);
        "the ID token"
    } else {
        store_login(&client, &mut auth, &key, &username, &password, io).await?
    };
    auth.save(&path)?;
    let remembered = contexts.contexts.get(&key).and_then(|c| c.oidc.clone());
    let context = Context {
        server: server.base_url(),
        insecure,
        ca_file,
        oidc: oidc.or(remembered),
    };
    contexts.contexts.insert(key.clone(), context);
    contexts.current = Some(key.clone());
    contexts.save(&contexts_file)?;
    say!(
        io.err,
        "{kept} for {key} saved in {}; current context: {key}",
        path.display()
    )?;
    if let Some(helper) = auth.credential_helper(&key) {
        say!(
            io.err,
            "warning: {} names the credential helper {helper:?} for {key}: docker asks that \
             helper and does not see these credentials (podman, skopeo and registryctl do)",
            path.display()
        )?;
    }
    if args.oidc.enabled {
        let minutes = oidc::lifetime(&password).map(|d| d.as_secs().div_ceil(60));
        say!(
            io.err,
            "the password stored is the ID token{}: run `registryctl login {} --oidc` again when it has expired",
            minutes.map(|m| format!(", valid for {m} more minutes")).unwrap_or_default(),
            args.server
        )?;
    }
    say!(io.out, "Login Succeeded")
}

/// The OAuth2 client id registryctl asks identity tokens for.
const CLIENT_ID: &str = "registryctl";

/// Puts a login into `auth`: an identity token when the server trades the
/// password for one (docker, podman and skopeo use it as docker login's
/// identity token; the password itself is not kept), else the password
/// (or access token) itself. Says which.
async fn store_login(
    client: &Client,
    auth: &mut DockerConfig,
    key: &str,
    username: &str,
    password: &str,
    io: &mut Io<'_>,
) -> Result<&'static str, CliError> {
    match client.identity_token(username, password, CLIENT_ID).await {
        Ok(Some(token)) => {
            auth.set_identity_token(key, username, &token);
            return Ok("an identity token (not the password)");
        }
        Ok(None) => {}
        Err(e) => say!(
            io.err,
            "warning: no identity token from {key} ({e}); keeping the password instead"
        )?,
    }
    auth.set_credentials(key, username, password);
    Ok("credentials")
}

/// `registryctl token-ca [--output FILE]`: the token CA, fetched without
/// credentials.
pub(crate) async fn token_ca(
    g: &Global,
    output: Option<&Path>,
    io: &mut Io<'_>,
) -> Result<(), CliError> {
    let conn = Connection::open(g, io, false, Silence::Short)?;
    let pem = conn.run(conn.client.token_ca_pem()).await?;
    match output {
        None => write!(io.out, "{pem}").map_err(CliError::Output),
        Some(path) => {
            std::fs::write(path, &pem).map_err(|source| CliError::Write {
                path: path.to_owned(),
                source,
            })?;
            say!(io.err, "token CA written to {}", path.display())
        }
    }
}

/// `registryctl logout SERVER` (the context stays: logging in again
/// restores its credentials).
pub(crate) fn logout(g: &Global, server: &str, io: &mut Io<'_>) -> Result<(), CliError> {
    let server = Server::parse(server)?;
    let key = server.key();
    let path = auth_file_path(g.config.as_deref(), &io.env)?;
    let mut auth = DockerConfig::load(&path)?;
    if !auth.remove_credentials(key) {
        return say!(
            io.err,
            "Not logged in to {key} (no entry in {})",
            path.display()
        );
    }
    auth.save(&path)?;
    say!(
        io.out,
        "Removed login credentials for {key} from {}",
        path.display()
    )
}

/// `registryctl context list|use NAME`.
pub(crate) fn context(g: &Global, cmd: ContextCmd, io: &mut Io<'_>) -> Result<(), CliError> {
    let path = contexts_path(&auth_file_path(g.config.as_deref(), &io.env)?);
    let mut contexts = Contexts::load(&path)?;
    let name = match cmd {
        ContextCmd::List if g.json => return print_json(io, &contexts),
        ContextCmd::List if contexts.contexts.is_empty() => {
            return say!(io.err, "no contexts: run `registryctl login URL` first")
        }
        ContextCmd::List => {
            let rows: Vec<Vec<String>> = contexts
                .contexts
                .iter()
                .map(|(name, c)| {
                    let current = contexts.current.as_ref() == Some(name);
                    let tls = match (c.server.starts_with("http://"), c.insecure, &c.ca_file) {
                        (true, _, _) => "plain HTTP (--insecure)".to_owned(),
                        (false, true, _) => "not verified (--insecure)".to_owned(),
                        (false, false, Some(ca)) => {
                            format!("verified (--ca-file {})", ca.display())
                        }
                        (false, false, None) => "verified".to_owned(),
                    };
                    let mark = if current { "*" } else { "" }.to_owned();
                    vec![mark, name.clone(), c.server.clone(), tls]
                })
                .collect();
            return say!(
                io.out,
                "{}",
                table(&["CURRENT", "NAME", "SERVER", "TLS"], &rows)
            );
        }
        // The name as logged in, or the server's URL.
        ContextCmd::Use { name } if contexts.contexts.contains_key(&name) => name,
        ContextCmd::Use { name } => match Server::parse(&name) {
            Ok(s) if contexts.contexts.contains_key(s.key()) => s.key().to_owned(),
            _ => {
                let known = contexts.contexts.into_keys().collect();
                return Err(CliError::UnknownContext { name, path, known });
            }
        },
    };
    contexts.current = Some(name.clone());
    contexts.save(&path)?;
    say!(io.out, "Switched to context \"{name}\".")
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
