//! `login`, `logout` and `whoami`, plus the connection setup that the admin
//! commands share.

use std::io::{Read, Write};
use std::path::PathBuf;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::authfile::{self, Credentials};
use crate::cli::{Global, Login};
use crate::client::{http_client, Api, SendError};
use crate::target::{decide_transport, Server};
use crate::{say, Env, Io};

/// The auth file selected by `--config`/`--to` and the environment.
pub fn auth_file_path(global: &Global, env: &Env) -> Result<PathBuf, String> {
    authfile::resolve_path(
        global.config.as_deref(),
        env.docker_config.as_deref(),
        env.home.as_deref(),
    )
}

/// Decides the transport for `server` (printing any `--insecure` warning)
/// and builds an API client with `credentials`.
pub fn connect(
    global: &Global,
    server: &Server,
    credentials: Option<Credentials>,
    err: &mut dyn Write,
) -> Result<Api, String> {
    let decision = decide_transport(server, global.insecure, global.ca_file.is_some())?;
    for warning in &decision.warnings {
        say!(err, "{warning}")?;
    }
    let http = http_client(decision.transport, global.ca_file.as_deref())?;
    Ok(Api::new(http, server.base_url(), credentials))
}

/// Reads a password from `stdin`, dropping the trailing line break.
pub fn read_password(stdin: &mut dyn Read) -> Result<String, String> {
    let mut text = String::new();
    stdin
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
    let password = text.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        return Err("the password read from standard input is empty".to_owned());
    }
    Ok(password.to_owned())
}

/// `registryctl login`.
pub async fn login(global: &Global, args: &Login, io: &mut Io<'_>) -> Result<(), String> {
    let server = Server::parse(&args.server)?;
    if args.username.is_empty() || args.username.contains(':') {
        return Err(format!(
            "invalid user name {:?}: it must be non-empty and contain no ':'",
            args.username
        ));
    }
    let password = match (&args.password, args.password_stdin) {
        (_, true) => read_password(io.stdin)?,
        (Some(p), false) => {
            say!(
                io.err,
                "warning: a password on the command line is visible to other local users; \
                 use --password-stdin"
            )?;
            p.clone()
        }
        (None, false) => return Err("give --password-stdin or --password".to_owned()),
    };
    if password.is_empty() {
        return Err("the password is empty".to_owned());
    }
    let credentials = Credentials {
        username: args.username.clone(),
        password,
    };
    // Read the auth file first: a file we cannot update fails before any request.
    let path = auth_file_path(global, &io.env)?;
    let mut doc = authfile::load(&path)?;

    let api = connect(global, &server, Some(credentials.clone()), io.err)?;
    // Only the status matters: 200 for good credentials, 401 otherwise.
    match api
        .send_raw(Method::GET, api.url(&["v2", ""], &[]), None)
        .await
    {
        Ok(_) => {}
        Err(SendError::Refused { status, .. }) if status == StatusCode::UNAUTHORIZED => {
            return Err("login failed: wrong username or password".to_owned())
        }
        Err(SendError::Refused { message, .. }) => return Err(format!("login failed: {message}")),
        Err(SendError::Failed(message)) => return Err(format!("login failed: {message}")),
    }

    authfile::set_credentials(&mut doc, server.key(), &credentials)?;
    authfile::save(&path, &doc)?;
    say!(
        io.err,
        "credentials for {} saved in {}",
        server.key(),
        path.display()
    )?;
    say!(io.out, "Login Succeeded")
}

/// `registryctl logout SERVER`.
pub fn logout(global: &Global, server: &str, io: &mut Io<'_>) -> Result<(), String> {
    let server = Server::parse(server)?;
    let path = auth_file_path(global, &io.env)?;
    let mut doc = authfile::load(&path)?;
    if authfile::remove_credentials(&mut doc, server.key())? {
        authfile::save(&path, &doc)?;
        say!(
            io.out,
            "Removed login credentials for {} from {}",
            server.key(),
            path.display()
        )
    } else {
        say!(
            io.err,
            "Not logged in to {} (no entry in {})",
            server.key(),
            path.display()
        )
    }
}

/// An authenticated client of the admin API (`/apis/admin/v1`).
pub struct Admin {
    api: Api,
    server: Server,
}

impl Admin {
    /// Connects to `--server` with the credentials stored for it.
    pub fn connect(global: &Global, io: &mut Io<'_>) -> Result<Self, String> {
        let raw = global.server.as_deref().ok_or(
            "no server given: pass --server URL or set REGISTRY_SERVER \
             (e.g. --server localhost:5000)",
        )?;
        let server = Server::parse(raw)?;
        let key = server.key();
        let path = auth_file_path(global, &io.env)?;
        let doc = authfile::load(&path)?;
        let credentials = authfile::credentials(&doc, key)?.ok_or_else(|| {
            authfile::missing_credentials_hint(&doc, key, &path, &server.login_command())
        })?;
        let api = connect(global, &server, Some(credentials), io.err)?;
        Ok(Admin { api, server })
    }

    /// Calls `/apis/admin/v1/<segments>`; the JSON answer (`Null` if empty).
    pub async fn call(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Value, String> {
        let mut all = vec!["apis", "admin", "v1"];
        all.extend_from_slice(segments);
        let url = self.api.url(&all, query);
        match self.api.send(method, url, body).await {
            Ok(body) => Ok(body),
            Err(SendError::Refused { status, message }) if status == StatusCode::UNAUTHORIZED => {
                Err(format!(
                    "{message}: the credentials stored for {} were rejected; run `{}` again",
                    self.server.key(),
                    self.server.login_command()
                ))
            }
            Err(SendError::Refused { message, .. }) => Err(message),
            Err(SendError::Failed(message)) => Err(message),
        }
    }
}

/// `registryctl whoami`.
pub async fn whoami(global: &Global, io: &mut Io<'_>) -> Result<(), String> {
    let admin = Admin::connect(global, io)?;
    let answer = admin.call(Method::GET, &["whoami"], &[], None).await?;
    if global.json {
        return crate::admin::print_json(io, &answer);
    }
    let subject = answer
        .get("subject")
        .and_then(Value::as_str)
        .ok_or("the server's whoami answer has no \"subject\"")?;
    say!(io.out, "{subject}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_from_stdin_drops_line_break_only() {
        let mut input: &[u8] = b"  pa ss\r\n";
        assert_eq!(read_password(&mut input).unwrap(), "  pa ss");
        let mut input: &[u8] = b"tok\n";
        assert_eq!(read_password(&mut input).unwrap(), "tok");
        let mut input: &[u8] = b"\n";
        assert!(read_password(&mut input).is_err());
    }
}
