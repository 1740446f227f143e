//! `registryctl`: log in to the registry and administer it over its HTTP
//! APIs, on the typed client of `registry_api::client`.
//!
//! ```text
//! registryctl login localhost:5000 -u admin --password-stdin   # credentials + current context
//! registryctl namespace create team
//! registryctl namespace usage team
//! TOKEN=$(registryctl token create --expires 12h)
//! registryctl imagestreams list team
//! registryctl context list
//! registryctl webhook add team https://ci.example.com/hook
//! ```
//!
//! Credentials live in Docker's auth file (`--to FILE`, else
//! `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`); the contexts
//! (servers logged in to, their TLS choice, the current one) in
//! `registryctl.json` beside it. `--server` (or `REGISTRY_SERVER`) overrides
//! the current context. HTTPS is verified against the system roots plus
//! `--ca-file`; `--insecure` allows plain HTTP or skips verification, with a
//! warning. Errors print `registryctl: <message>` and exit 1; usage errors
//! exit 2.

mod admin;
mod cli;
mod config;
mod error;
mod image;
mod mirror;
mod oidc;
mod parse;
mod policy;
mod session;
mod target;
mod usage;
mod webhook;

#[cfg(test)]
mod stub_tests;

use std::ffi::OsString;
use std::io::{Read, Write};
use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};
pub(crate) use error::CliError;

/// The environment variables that matter (explicit, so tests do not
/// depend on the real ones).
#[derive(Debug, Clone, Default)]
pub(crate) struct Env {
    /// `$DOCKER_CONFIG`: directory of the auth file.
    pub docker_config: Option<OsString>,
    /// `$HOME`.
    pub home: Option<OsString>,
}

/// Standard streams and environment of one invocation.
pub(crate) struct Io<'a> {
    pub stdin: &'a mut dyn Read,
    pub out: &'a mut dyn Write,
    pub err: &'a mut dyn Write,
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
pub(crate) async fn run(cli: Cli, io: &mut Io<'_>) -> Result<(), CliError> {
    let g = &cli.global;
    match cli.command {
        Command::Login(login) => session::login(g, &login, io).await,
        Command::Logout { server } => session::logout(g, &server, io),
        Command::Context(cmd) => session::context(g, cmd, io),
        Command::Passwd { .. } => session::passwd(g, io).await,
        Command::TokenCa { output } => session::token_ca(g, output.as_deref(), io).await,
        c @ (Command::Imagestreams(_) | Command::Tag(_) | Command::Image(_)) => {
            image::run(g, c, io).await
        }
        Command::Repositories => image::run(g, Command::Repositories, io).await,
        admin => admin::run(g, admin, io).await,
    }
}

fn main() -> ExitCode {
    // Usage errors: clap prints them and exits 2 (0 for --help/--version).
    let cli = Cli::parse();
    let (stdin, stdout, stderr) = (std::io::stdin(), std::io::stdout(), std::io::stderr());
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
