//! Command-line definitions (clap derive).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use registry::auth::{AccessTokenId, ServiceAccountName, UserName};
use registry::core::{Digest, Namespace, Tag};

use crate::parse::{parse_duration, parse_grace, parse_name_tag, parse_subject};

/// Log in to an OCI registry and administer it: namespaces, users, role
/// bindings, service accounts, pull secrets and access tokens.
///
/// Credentials are kept in a Docker-compatible auth file, which docker,
/// podman and skopeo read too.
#[derive(Debug, Parser)]
#[command(name = "registryctl", version)]
pub struct Cli {
    /// Options shared by every command.
    #[command(flatten)]
    pub global: Global,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options accepted by every command.
#[derive(Debug, Args)]
pub struct Global {
    /// Registry to call: host[:port] (HTTPS) or http[s]://host[:port]
    /// [default: the current context, set by `login`].
    #[arg(long, global = true, env = "REGISTRY_SERVER", value_name = "URL")]
    pub server: Option<String>,

    /// Auth file to read and write [default: $DOCKER_CONFIG/config.json, else
    /// ~/.docker/config.json].
    #[arg(long, visible_alias = "to", global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// PEM file with extra CA certificates to trust (besides the system roots).
    #[arg(long, global = true, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,

    /// Allow plain http:// servers, or skip verification of an HTTPS
    /// certificate that is not trusted. Weakens security: prints a warning.
    #[arg(long, global = true)]
    pub insecure: bool,

    /// Print the server's JSON answer instead of text (list and show commands).
    #[arg(long, global = true)]
    pub json: bool,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check credentials against SERVER, store them in the auth file and
    /// make SERVER the current context.
    Login(Login),
    /// Remove the stored credentials for SERVER.
    Logout {
        /// host[:port] or http[s]://host[:port].
        server: String,
    },
    /// List the servers logged in to, or switch the current one.
    #[command(subcommand)]
    Context(ContextCmd),
    /// Print who the stored credentials authenticate as.
    Whoami,
    /// Delete blobs no manifest references and expire abandoned uploads
    /// (cluster-admin).
    Prune(PruneArgs),
    /// Manage namespaces (cluster-admin).
    #[command(subcommand)]
    Namespace(NamespaceCmd),
    /// Manage users (cluster-admin).
    #[command(subcommand)]
    User(UserCmd),
    /// Manage role bindings in a namespace.
    #[command(subcommand)]
    Rolebinding(RoleBindingCmd),
    /// Manage cluster-wide role bindings (cluster-admin).
    #[command(subcommand)]
    Clusterrolebinding(ClusterRoleBindingCmd),
    /// Manage service accounts and their pull secrets.
    #[command(subcommand, visible_alias = "sa")]
    Serviceaccount(ServiceAccountCmd),
    /// Manage your access tokens (usable as passwords).
    #[command(subcommand)]
    Token(TokenCmd),
    /// Inspect the ImageStreams (repositories) of a namespace.
    #[command(subcommand, visible_alias = "is")]
    Imagestreams(ImageStreamsCmd),
    /// Inspect a tag's history.
    #[command(subcommand)]
    Tag(TagCmd),
    /// Inspect an image by digest.
    #[command(subcommand)]
    Image(ImageCmd),
    /// List the repositories you may pull.
    Repositories,
}

/// `registryctl login`.
#[derive(Debug, Args)]
pub struct Login {
    /// host[:port] (HTTPS) or http[s]://host[:port].
    pub server: String,
    /// User name (any name when logging in with an access token).
    #[arg(short, long)]
    pub username: String,
    /// Read the password (or access token) from standard input.
    #[arg(long, conflicts_with = "password")]
    pub password_stdin: bool,
    /// Password or access token (visible to other local users: prefer --password-stdin).
    #[arg(
        short,
        long,
        required_unless_present = "password_stdin",
        value_name = "PASSWORD"
    )]
    pub password: Option<String>,
}

/// `registryctl namespace ...`.
#[derive(Debug, Subcommand)]
pub enum NamespaceCmd {
    /// Create a namespace.
    Create {
        /// Namespace name.
        name: Namespace,
    },
    /// List namespaces.
    List,
    /// Delete a namespace.
    Delete {
        /// Namespace name.
        name: Namespace,
    },
}

/// `registryctl user ...`.
#[derive(Debug, Subcommand)]
pub enum UserCmd {
    /// Create a user; the password is read from standard input.
    Create {
        /// User name.
        name: UserName,
        /// Read the password from standard input (required).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// List users.
    List,
    /// Delete a user.
    Delete {
        /// User name.
        name: UserName,
    },
}

/// A role and the subject it is bound to.
#[derive(Debug, Args)]
pub struct Binding {
    /// Role, e.g. registry-viewer, registry-editor, registry-admin.
    pub role: String,
    /// user:NAME, serviceaccount:NS:NAME or group:NAME.
    #[arg(value_parser = parse_subject)]
    pub subject: String,
}

/// `registryctl rolebinding ...`.
#[derive(Debug, Subcommand)]
pub enum RoleBindingCmd {
    /// Bind ROLE to SUBJECT in namespace NS.
    Add {
        /// Namespace.
        namespace: Namespace,
        /// Role and subject.
        #[command(flatten)]
        binding: Binding,
    },
    /// Remove the binding of ROLE to SUBJECT in namespace NS.
    Remove {
        /// Namespace.
        namespace: Namespace,
        /// Role and subject.
        #[command(flatten)]
        binding: Binding,
    },
    /// List the role bindings of namespace NS.
    List {
        /// Namespace.
        namespace: Namespace,
    },
}

/// `registryctl clusterrolebinding ...`.
#[derive(Debug, Subcommand)]
pub enum ClusterRoleBindingCmd {
    /// Bind cluster role ROLE to SUBJECT (e.g. cluster-admin, metrics-viewer).
    Add(Binding),
    /// Remove the binding of cluster role ROLE to SUBJECT.
    Remove(Binding),
    /// List cluster role bindings.
    List,
}

/// `registryctl serviceaccount ...`.
#[derive(Debug, Subcommand)]
pub enum ServiceAccountCmd {
    /// Create service account NAME in namespace NS.
    Create {
        /// Namespace.
        namespace: Namespace,
        /// Service account name.
        name: ServiceAccountName,
    },
    /// List the service accounts of namespace NS.
    List {
        /// Namespace.
        namespace: Namespace,
    },
    /// Delete service account NAME in namespace NS.
    Delete {
        /// Namespace.
        namespace: Namespace,
        /// Service account name.
        name: ServiceAccountName,
    },
    /// Print the Kubernetes pull Secret (JSON) for service account NAME.
    PullSecret {
        /// Namespace.
        namespace: Namespace,
        /// Service account name.
        name: ServiceAccountName,
        /// Replace the secret: every copy handed out before stops working.
        #[arg(long)]
        rotate: bool,
    },
}

/// `registryctl token ...`.
#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// Create an access token and print it (shown only once).
    Create {
        /// A label for the token.
        #[arg(long)]
        name: Option<String>,
        /// Lifetime, e.g. 30m, 12h, 7d [default: the server's].
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        expires: Option<u64>,
    },
    /// List your access tokens.
    List,
    /// Delete an access token by id.
    Delete {
        /// Token id (from `token list`).
        id: AccessTokenId,
    },
}

/// `registryctl context ...`.
#[derive(Debug, Subcommand)]
pub enum ContextCmd {
    /// List the contexts (`*` marks the current one).
    List,
    /// Make NAME (a server as logged in to, e.g. localhost:5000) current.
    Use {
        /// The context's name.
        name: String,
    },
}

/// `registryctl prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Report what would be deleted without deleting anything.
    #[arg(long)]
    pub dry_run: bool,
    /// Keep unreferenced blobs younger than this, e.g. 30m, 1h, 2d, or 0
    /// for none [default: the server's, 1h]. Blobs of a push in progress
    /// are unreferenced until its manifest arrives: keep this longer than
    /// your slowest push.
    #[arg(long, value_name = "DURATION", value_parser = parse_grace)]
    pub grace: Option<u64>,
    /// Cancel upload sessions started longer ago than this [default: the
    /// server's, 24h].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub upload_max_age: Option<u64>,
}

/// `registryctl imagestreams ...`.
#[derive(Debug, Subcommand)]
pub enum ImageStreamsCmd {
    /// List the ImageStreams of namespace NS with their tags.
    List {
        /// Namespace.
        namespace: Namespace,
    },
    /// Show ImageStream NAME of namespace NS and where its tags point.
    Show {
        /// Namespace.
        namespace: Namespace,
        /// ImageStream name (the repository without its namespace; may hold `/`).
        name: String,
    },
}

/// `registryctl tag ...`.
#[derive(Debug, Subcommand)]
pub enum TagCmd {
    /// Show where NAME:TAG of namespace NS points and every move, newest first.
    History {
        /// Namespace.
        namespace: Namespace,
        /// ImageStream and tag, e.g. app:v1.
        #[arg(value_parser = parse_name_tag, value_name = "NAME:TAG")]
        name_tag: (String, Tag),
    },
}

/// `registryctl image ...`.
#[derive(Debug, Subcommand)]
pub enum ImageCmd {
    /// Show an image's metadata: repositories, layers or platforms, config.
    Show {
        /// Manifest digest, e.g. sha256:0123….
        digest: Digest,
    },
}

#[cfg(test)]
mod tests {
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
}
