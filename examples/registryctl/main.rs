//! `registryctl`: log in to the registry and administer it over its HTTP API.
//!
//! ```text
//! cargo run --example registryctl -- login localhost:5000 -u admin --password-stdin
//! cargo run --example registryctl -- --server localhost:5000 namespace create team
//! cargo run --example registryctl -- --server localhost:5000 \
//!     rolebinding add team registry-editor user:alice
//! TOKEN=$(cargo run -q --example registryctl -- --server localhost:5000 token create --expires 12h)
//! cargo run --example registryctl -- --server localhost:5000 imagestreams list team
//! ```
//!
//! `login` checks the credentials (`GET /v2/`) and stores them in a
//! Docker-compatible auth file (`--to FILE`, else `$DOCKER_CONFIG/config.json`,
//! else `~/.docker/config.json`), which docker, podman and skopeo read too.
//! The admin commands read the credentials for `--server` (or
//! `REGISTRY_SERVER`) from that file and call `/apis/admin/v1`
//! (see `docs/admin-api.md`); the Image API commands (`imagestreams`, `tag
//! history`, `image show`, `repositories`) call `/apis/image/v1` (see
//! `docs/image-api.md`), anonymously when no credentials are stored.
//!
//! HTTPS is the default and is verified against the system roots plus
//! `--ca-file`. `--insecure` allows plain `http://` servers or skips
//! certificate verification, with a warning. Errors print
//! `registryctl: <message>` and exit 1; usage errors exit 2.

mod admin;
mod authfile;
mod cli;
mod client;
mod image;
mod parse;
mod prune;
mod session;
mod target;

#[cfg(test)]
mod stub_tests;

use std::ffi::OsString;
use std::io::{Read, Write};
use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};

/// The process environment that matters to registryctl (explicit, so tests
/// do not depend on the real one).
#[derive(Debug, Clone, Default)]
pub struct Env {
    /// `$DOCKER_CONFIG`: directory of the auth file.
    pub docker_config: Option<OsString>,
    /// `$HOME`.
    pub home: Option<OsString>,
}

impl Env {
    /// Reads the variables from the process environment.
    fn from_process() -> Self {
        Env {
            docker_config: std::env::var_os("DOCKER_CONFIG"),
            home: std::env::var_os("HOME"),
        }
    }
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

/// Writes a line to a stream; a closed pipe is not worth a panic.
macro_rules! say {
    ($w:expr, $($arg:tt)*) => {
        writeln!($w, $($arg)*).map_err(|e| format!("cannot write output: {e}"))
    };
}
pub(crate) use say;

/// Runs one parsed command line.
pub async fn run(cli: Cli, io: &mut Io<'_>) -> Result<(), String> {
    let global = &cli.global;
    match cli.command {
        Command::Login(login) => session::login(global, &login, io).await,
        Command::Logout { server } => session::logout(global, &server, io),
        Command::Whoami => session::whoami(global, io).await,
        Command::Prune(args) => prune::prune(global, &args, io).await,
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
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("registryctl: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let mut io = Io {
        stdin: &mut stdin.lock(),
        out: &mut stdout.lock(),
        err: &mut stderr.lock(),
        env: Env::from_process(),
    };
    let result = runtime.block_on(run(cli, &mut io));
    let _ = io.out.flush();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            let _ = writeln!(io.err, "registryctl: {message}");
            ExitCode::FAILURE
        }
    }
}
