//! `login`, `logout`, `whoami` and `context`, plus the connection setup
//! every other command shares: which server (`--server`, else the current
//! context), which TLS choice, which credentials.

use std::path::{Path, PathBuf};
use std::time::Duration;

use registry::api::client::{Client, ClientError, Credentials};

use crate::admin::{print_json, table};
use crate::cli::{ContextCmd, Global, Login};
use crate::config::{auth_file_path, contexts_path, load, save, AuthFile, Context, Contexts};
use crate::target::{decide_transport, Server};
use crate::{say, CliError, Io};

/// A client of the server a command is for.
pub struct Connection {
    /// The typed client.
    pub client: Client,
    server: Server,
    authenticated: bool,
}

impl Connection {
    /// Connects to the command's server with the credentials stored for
    /// it; without any, anonymously unless `required`.
    pub fn open(global: &Global, io: &mut Io<'_>, required: bool) -> Result<Self, CliError> {
        let auth_path = auth_file_path(global.config.as_deref(), &io.env)?;
        let contexts: Contexts = load(&contexts_path(&auth_path))?;
        let named = global.server.as_deref().or_else(|| {
            let current = contexts.current.as_ref()?;
            Some(contexts.contexts.get(current)?.server.as_str())
        });
        let mut server = Server::parse(named.ok_or(CliError::NoServer)?)?;
        let context = contexts.contexts.get(server.key());
        // `--server host:port` names a context without repeating its scheme.
        if let Some(c) = context.filter(|_| named.is_some_and(|n| !n.contains("://"))) {
            server = Server::parse(&c.server)?;
        }
        let insecure = global.insecure || context.is_some_and(|c| c.insecure);
        let ca_file = global
            .ca_file
            .as_deref()
            .or(context.and_then(|c| c.ca_file.as_deref()));
        let auth: AuthFile = load(&auth_path)?;
        let credentials = auth.credentials(server.key())?;
        if required && credentials.is_none() {
            return Err(CliError::NotLoggedIn {
                key: server.key().to_owned(),
                path: auth_path,
                login: server.login_command(),
                helper: auth.helper(server.key()),
            });
        }
        let authenticated = credentials.is_some();
        let client = client(&server, insecure, ca_file, credentials, io)?;
        Ok(Connection {
            client,
            server,
            authenticated,
        })
    }

    /// A failed call as the user should read it: a 401 says what to do.
    pub fn fail(&self, e: ClientError) -> CliError {
        match e {
            ClientError::Unauthorized { .. } => CliError::Rejected {
                source: e,
                key: self.server.key().to_owned(),
                login: self.server.login_command(),
                stored: self.authenticated,
            },
            e => CliError::Client(e),
        }
    }
}

/// The client for `server` (printing any `--insecure` warning).
fn client(
    server: &Server,
    insecure: bool,
    ca_file: Option<&Path>,
    credentials: Option<Credentials>,
    io: &mut Io<'_>,
) -> Result<Client, CliError> {
    let (skip_verify, warnings) = decide_transport(server, insecure, ca_file.is_some())?;
    for warning in warnings {
        say!(io.err, "{warning}")?;
    }
    let mut builder = Client::builder(server.base_url())
        .user_agent(concat!("registryctl/", env!("CARGO_PKG_VERSION")))
        .timeout(Duration::from_secs(60))
        .insecure(skip_verify);
    if let Some(path) = ca_file.filter(|_| server.is_https()) {
        let pem = std::fs::read(path).map_err(|source| CliError::Read {
            path: path.to_owned(),
            source,
        })?;
        builder = builder.ca_pem(pem);
    }
    if let Some(credentials) = credentials {
        builder = builder.credentials(credentials);
    }
    builder.build().map_err(|e| match e {
        ClientError::InvalidCa { .. } => CliError::CaFile {
            path: ca_file.map(Path::to_owned).unwrap_or_default(),
            source: e,
        },
        e => CliError::Client(e),
    })
}

/// Reads a password from `stdin`, dropping the trailing line break.
pub fn read_password(io: &mut Io<'_>) -> Result<String, CliError> {
    let mut text = String::new();
    io.stdin
        .read_to_string(&mut text)
        .map_err(CliError::Stdin)?;
    let password = text.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        return Err(CliError::EmptyPassword);
    }
    Ok(password.to_owned())
}

/// `registryctl login`.
pub async fn login(global: &Global, args: &Login, io: &mut Io<'_>) -> Result<(), CliError> {
    let server = Server::parse(&args.server)?;
    if args.username.is_empty() || args.username.contains(':') {
        return Err(CliError::UserName(args.username.clone()));
    }
    let password = match &args.password {
        Some(p) if !args.password_stdin => {
            say!(
                io.err,
                "warning: a password on the command line is visible to other local users; \
                 use --password-stdin"
            )?;
            p.clone()
        }
        _ => read_password(io)?,
    };
    if password.is_empty() {
        return Err(CliError::EmptyPassword);
    }
    // Read both files first: a file we cannot update fails before any request.
    let path = auth_file_path(global.config.as_deref(), &io.env)?;
    let mut auth: AuthFile = load(&path)?;
    let contexts_file = contexts_path(&path);
    let mut contexts: Contexts = load(&contexts_file)?;
    let credentials = Credentials::basic(&args.username, &password);
    let ca_file = global.ca_file.as_deref();
    let client = client(&server, global.insecure, ca_file, Some(credentials), io)?;
    match client.ping().await {
        Ok(()) => {}
        Err(ClientError::Unauthorized { .. }) => return Err(CliError::WrongCredentials),
        Err(e) => return Err(CliError::Login(e)),
    }
    auth.set_credentials(server.key(), &args.username, &password);
    save(&path, &auth)?;
    let ca_file = match ca_file {
        Some(f) => Some(std::path::absolute(f).map_err(|source| CliError::Read {
            path: f.to_owned(),
            source,
        })?),
        None => None,
    };
    let context = Context {
        server: server.base_url(),
        insecure: global.insecure,
        ca_file,
    };
    contexts.contexts.insert(server.key().to_owned(), context);
    contexts.current = Some(server.key().to_owned());
    save(&contexts_file, &contexts)?;
    let key = server.key();
    say!(io.err, "credentials for {key} saved in {}", path.display())?;
    say!(io.err, "current context: {key}")?;
    say!(io.out, "Login Succeeded")
}

/// `registryctl logout SERVER` (the context stays: logging in again
/// restores it).
pub fn logout(global: &Global, server: &str, io: &mut Io<'_>) -> Result<(), CliError> {
    let server = Server::parse(server)?;
    let key = server.key();
    let path = auth_file_path(global.config.as_deref(), &io.env)?;
    let mut auth: AuthFile = load(&path)?;
    if auth.remove_credentials(key) {
        save(&path, &auth)?;
        say!(
            io.out,
            "Removed login credentials for {key} from {}",
            path.display()
        )
    } else {
        say!(
            io.err,
            "Not logged in to {key} (no entry in {})",
            path.display()
        )
    }
}

/// `registryctl whoami`.
pub async fn whoami(global: &Global, io: &mut Io<'_>) -> Result<(), CliError> {
    let conn = Connection::open(global, io, true)?;
    let me = conn.client.whoami().await.map_err(|e| conn.fail(e))?;
    if global.json {
        return print_json(io, &me);
    }
    say!(io.out, "{}", me.subject)
}

/// `registryctl context list|use NAME`.
pub fn context(global: &Global, cmd: ContextCmd, io: &mut Io<'_>) -> Result<(), CliError> {
    let path: PathBuf = contexts_path(&auth_file_path(global.config.as_deref(), &io.env)?);
    let mut contexts: Contexts = load(&path)?;
    match cmd {
        ContextCmd::List if global.json => print_json(io, &contexts),
        ContextCmd::List if contexts.contexts.is_empty() => {
            say!(io.err, "no contexts: run `registryctl login URL` first")
        }
        ContextCmd::List => {
            let rows: Vec<Vec<String>> = contexts
                .contexts
                .iter()
                .map(|(name, c)| {
                    let current = contexts.current.as_deref() == Some(name.as_str());
                    let tls = match (c.server.starts_with("http://"), c.insecure, &c.ca_file) {
                        (true, _, _) => "plain HTTP (--insecure)".to_owned(),
                        (false, true, _) => "not verified (--insecure)".to_owned(),
                        (false, false, Some(ca)) => format!("verified, --ca-file {}", ca.display()),
                        (false, false, None) => "verified".to_owned(),
                    };
                    let mark = if current { "*" } else { "" };
                    vec![mark.to_owned(), name.clone(), c.server.clone(), tls]
                })
                .collect();
            say!(
                io.out,
                "{}",
                table(&["CURRENT", "NAME", "SERVER", "TLS"], &rows)
            )
        }
        ContextCmd::Use { name } => {
            // The name as logged in, or the server's URL.
            let name = match Server::parse(&name) {
                Ok(s) if !contexts.contexts.contains_key(&name) => s.key().to_owned(),
                _ => name,
            };
            if !contexts.contexts.contains_key(&name) {
                return Err(CliError::UnknownContext {
                    name,
                    path,
                    known: contexts.contexts.into_keys().collect(),
                });
            }
            contexts.current = Some(name.clone());
            save(&path, &contexts)?;
            say!(io.out, "Switched to context \"{name}\".")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Env;

    #[test]
    fn password_from_stdin_drops_line_break_only() {
        let read = |input: &str| {
            let (mut out, mut err) = (Vec::new(), Vec::new());
            let mut stdin = input.as_bytes();
            let mut io = Io {
                stdin: &mut stdin,
                out: &mut out,
                err: &mut err,
                env: Env::default(),
            };
            read_password(&mut io)
        };
        assert_eq!(read("  pa ss\r\n").unwrap(), "  pa ss");
        assert_eq!(read("tok\n").unwrap(), "tok");
        assert!(read("\n").is_err());
    }
}
