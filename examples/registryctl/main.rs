//! `registryctl`: log in to the registry and administer it over its HTTP API,
//! on the typed client of `registry_api::client`.
//!
//! ```text
//! cargo run --example registryctl -- login localhost:5000 -u admin --password-stdin
//! cargo run --example registryctl -- namespace create team
//! cargo run --example registryctl -- rolebinding add team registry-editor user:alice
//! TOKEN=$(cargo run -q --example registryctl -- token create --expires 12h)
//! cargo run --example registryctl -- imagestreams list team
//! cargo run --example registryctl -- context list
//! ```
//!
//! `login` checks the credentials (`GET /v2/`, through the token flow) and
//! stores them in a Docker-compatible auth file (`--to FILE`, else
//! `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`), which
//! docker, podman and skopeo read too. The server and its TLS choice
//! (`--insecure`, `--ca-file`) become the current *context*, kept in
//! `registryctl.json` beside the auth file, so later commands need no
//! `--server`; `--server` (or `REGISTRY_SERVER`) still overrides it, and
//! `context list|use NAME` shows and switches contexts. The admin commands
//! call `/apis/admin/v1` (`docs/admin-api.md`); the Image API commands
//! (`imagestreams`, `tag history`, `image show`, `repositories`) call
//! `/apis/image/v1` (`docs/image-api.md`), anonymously when no credentials
//! are stored.
//!
//! HTTPS is the default and is verified against the system roots plus
//! `--ca-file`. `--insecure` allows plain `http://` servers or skips
//! certificate verification, with a warning. Errors print
//! `registryctl: <message>` and exit 1; usage errors exit 2.

mod admin;
mod cli;
mod config;
mod error;
mod image;
mod parse;
mod session;
mod target;

#[cfg(test)]
mod stub_tests;

use std::ffi::OsString;
use std::io::{Read, Write};
use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};
pub use error::CliError;

/// The process environment that matters to registryctl (explicit, so tests
/// do not depend on the real one).
#[derive(Debug, Clone, Default)]
pub struct Env {
    /// `$DOCKER_CONFIG`: directory of the auth file.
    pub docker_config: Option<OsString>,
    /// `$HOME`.
    pub home: Option<OsString>,
}

/// Standard streams and environment of one invocation.
pub struct Io<'a> {
    /// Where passwords are read from (`--password-stdin`).
    pub stdin: &'a mut dyn Read,
    /// Results.
    pub out: &'a mut dyn Write,
    /// Warnings and progress notes.
    pub err: &'a mut dyn Write,
    /// Environment variables.
    pub env: Env,
}

/// Writes a line to a stream; a closed pipe is an error, not a panic.
macro_rules! say {
    ($w:expr, $($arg:tt)*) => {
        writeln!($w, $($arg)*).map_err($crate::CliError::Output)
    };
}
pub(crate) use say;

/// Runs one parsed command line.
pub async fn run(cli: Cli, io: &mut Io<'_>) -> Result<(), CliError> {
    let global = &cli.global;
    match cli.command {
        Command::Login(login) => session::login(global, &login, io).await,
        Command::Logout { server } => session::logout(global, &server, io),
        Command::Context(cmd) => session::context(global, cmd, io),
        Command::Whoami => session::whoami(global, io).await,
        Command::Prune(args) => admin::prune(global, &args, io).await,
        Command::Namespace(cmd) => admin::namespace(global, cmd, io).await,
        Command::User(cmd) => admin::user(global, cmd, io).await,
        Command::Rolebinding(cmd) => admin::rolebinding(global, cmd, io).await,
        Command::Clusterrolebinding(cmd) => admin::clusterrolebinding(global, cmd, io).await,
        Command::Serviceaccount(cmd) => admin::serviceaccount(global, cmd, io).await,
        Command::Token(cmd) => admin::token(global, cmd, io).await,
        Command::Imagestreams(cmd) => image::imagestreams(global, cmd, io).await,
        Command::Tag(cmd) => image::tag(global, cmd, io).await,
        Command::Image(cmd) => image::image(global, cmd, io).await,
        Command::Repositories => image::repositories(global, io).await,
    }
}

fn main() -> ExitCode {
    // Usage errors: clap prints them and exits 2 (0 for --help/--version).
    let cli = Cli::parse();
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let mut io = Io {
        stdin: &mut stdin.lock(),
        out: &mut stdout.lock(),
        err: &mut stderr.lock(),
        env: Env {
            docker_config: std::env::var_os("DOCKER_CONFIG"),
            home: std::env::var_os("HOME"),
        },
    };
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(CliError::Runtime)
        .and_then(|runtime| runtime.block_on(run(cli, &mut io)));
    let _ = io.out.flush();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(io.err, "registryctl: {e}");
            ExitCode::FAILURE
        }
    }
}
