//! The example binaries, for process-level tests: built once per test
//! binary with its own profile (`cargo build --example ...`, a quick no-op
//! when up to date), since `cargo test` builds an example with
//! `test = true`, as registryctl is, only as a test harness.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The first admin's password of servers started by [`ServerProcess`].
pub const ADMIN_PASSWORD: &str = "admin-pass-1";

pub struct Binaries {
    pub registryctl: PathBuf,
    pub server: PathBuf,
}

/// Builds the two examples with the profile of this test binary.
pub fn binaries() -> &'static Binaries {
    static BINARIES: OnceLock<Result<Binaries, String>> = OnceLock::new();
    match BINARIES.get_or_init(build_examples) {
        Ok(b) => b,
        Err(e) => panic!("{e}"),
    }
}

fn build_examples() -> Result<Binaries, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    // This binary is target/<profile dir>/deps/registryctl_e2e-<hash>.
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let profile = match exe
        .parent()
        .and_then(Path::parent)
        .and_then(Path::file_name)
        .and_then(|n| n.to_str())
    {
        Some("debug") | None => "dev",
        Some(dir) => dir,
    }
    .to_owned();
    let mut command = Command::new(&cargo);
    // What cargo set for this test process, not for builds: a build script
    // that watches one of these (ring's watches CARGO_MANIFEST_DIR) would
    // run again, and every crate above it be rebuilt twice per test run,
    // once here and once by the next `cargo test`.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        let set_for_tests = name.starts_with("CARGO_PKG_")
            || name.starts_with("CARGO_BIN_EXE_")
            || matches!(
                &*name,
                "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_MANIFEST_LINKS"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_BIN_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "CARGO_TARGET_TMPDIR"
                    | "CARGO_RUSTC_CURRENT_DIR"
                    | "OUT_DIR"
            );
        if set_for_tests {
            command.env_remove(&*name);
        }
    }
    let output = command
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["build", "--example", "registryctl", "--example"])
        .args(["registry-server", "--profile", &profile])
        .args(["--message-format", "json-render-diagnostics"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", cargo.to_string_lossy()))?;
    if !output.status.success() {
        return Err(format!(
            "`cargo build --example registryctl --example registry-server --profile {profile}` \
             failed ({}); these tests need both example binaries:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let mut registryctl = None;
    let mut server = None;
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(message) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let name = message["target"]["name"].as_str();
        let Some(executable) = message["executable"].as_str() else {
            continue;
        };
        match name {
            Some("registryctl") => registryctl = Some(PathBuf::from(executable)),
            Some("registry-server") => server = Some(PathBuf::from(executable)),
            _ => {}
        }
    }
    match (registryctl, server) {
        (Some(registryctl), Some(server)) => Ok(Binaries {
            registryctl,
            server,
        }),
        _ => Err("cargo build reported no executable for registryctl or registry-server".into()),
    }
}

/// Environment variables of the test process that would change what the
/// examples do.
pub fn scrub(command: &mut Command, home: &Path) {
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        if key.starts_with("REGISTRY_") || key == "DOCKER_CONFIG" {
            command.env_remove(key);
        }
    }
    command.env("HOME", home);
}

/// The `registry-server` binary, killed on drop if still running.
pub struct ServerProcess {
    pub child: Child,
    /// Everything it printed (stdout and stderr), for failure messages.
    output: Arc<Mutex<Vec<String>>>,
}

impl ServerProcess {
    pub fn command(dir: &Path, args: &[&str]) -> Command {
        let mut command = Command::new(&binaries().server);
        // First, so that what is set below is not scrubbed again.
        scrub(&mut command, dir);
        command.args(["--listen", "127.0.0.1:0"]);
        // Tests rarely need what syncs buy; those that do say so.
        if !args.contains(&"--durability") {
            command.args(["--durability", "none"]);
        }
        command
            .arg("--data-dir")
            .arg(dir.join("data"))
            .args(args)
            .env("REGISTRY_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("REGISTRY_LOG", "info,sqlx=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    /// Starts it and waits for `registry-server listening on URL`: the URL.
    pub fn start(dir: &Path, args: &[&str]) -> (Self, String) {
        Self::spawn(Self::command(dir, args))
    }

    /// [`start`](Self::start) with a command of one's own (a wrapper such
    /// as `prlimit` around [`command`](Self::command)'s program).
    pub fn spawn(mut command: Command) -> (Self, String) {
        let mut child = command.spawn().expect("starting registry-server");
        let output = Arc::new(Mutex::new(Vec::new()));
        let (url_tx, url_rx) = mpsc::channel();
        let drain = |stream: Box<dyn Read + Send>, url_tx: Option<mpsc::Sender<String>>| {
            let output = output.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    if let (Some(tx), Some(url)) =
                        (&url_tx, line.strip_prefix("registry-server listening on "))
                    {
                        let _ = tx.send(url.to_owned());
                    }
                    output.lock().expect("output").push(line);
                }
            });
        };
        drain(Box::new(child.stdout.take().expect("stdout")), Some(url_tx));
        drain(Box::new(child.stderr.take().expect("stderr")), None);
        let mut server = ServerProcess { child, output };
        match url_rx.recv_timeout(Duration::from_secs(30)) {
            Ok(url) => (server, url),
            Err(_) => {
                let _ = server.child.kill();
                panic!(
                    "registry-server did not start listening:\n{}",
                    server.printed()
                )
            }
        }
    }

    pub fn printed(&self) -> String {
        self.output.lock().expect("output").join("\n")
    }

    /// SIGTERM; the exit status once it has stopped.
    #[cfg(unix)]
    pub fn terminate(&mut self) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -TERM failed");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "registry-server did not stop within 10 s of SIGTERM:\n{}",
                self.printed()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
