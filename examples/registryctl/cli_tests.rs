//! Command-line definitions and usage errors.

use super::*;
use clap::error::ErrorKind;
use clap::CommandFactory;

#[test]
fn definitions_are_consistent() {
    Cli::command().debug_assert();
}

#[test]
fn usage_errors() {
    let kind = |args: &[&str]| {
        let mut all = vec!["registryctl"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).unwrap_err().kind()
    };
    assert_eq!(
        kind(&["login", "h", "-u", "a"]),
        ErrorKind::MissingRequiredArgument
    );
    assert_eq!(
        kind(&["login", "h", "-u", "a", "-p", "x", "--password-stdin"]),
        ErrorKind::ArgumentConflict
    );
    assert_eq!(
        kind(&["user", "create", "bob"]),
        ErrorKind::MissingRequiredArgument
    );
    assert_eq!(
        kind(&["rolebinding", "add", "team", "registry-viewer", "alice"]),
        ErrorKind::ValueValidation
    );
    assert_eq!(
        kind(&["token", "create", "--expires", "soon"]),
        ErrorKind::ValueValidation
    );
}

#[test]
fn global_options_after_subcommand() {
    let cli = Cli::try_parse_from([
        "registryctl",
        "login",
        "http://localhost:5000",
        "-u",
        "admin",
        "--password-stdin",
        "--to",
        "/tmp/auth.json",
        "--insecure",
    ])
    .unwrap();
    assert!(cli.global.insecure);
    assert_eq!(cli.global.config, Some(PathBuf::from("/tmp/auth.json")));
    let cli = Cli::try_parse_from([
        "registryctl",
        "token",
        "create",
        "--expires",
        "12h",
        "--server",
        "reg:5000",
    ])
    .unwrap();
    assert_eq!(cli.global.server.as_deref(), Some("reg:5000"));
    assert!(matches!(
        cli.command,
        Command::Token(TokenCmd::Create {
            expires: Some(43_200),
            ..
        })
    ));
}
