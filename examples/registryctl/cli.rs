//! Command-line definitions (clap derive). Names are parsed into their
//! types here, so a malformed one is a usage error (exit 2).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use registry::auth::{AccessTokenId, ServiceAccountName, UserName};
use registry::core::{Digest, Namespace, Tag};
use registry::storage::{PolicyDuration, TagPattern};

use crate::parse::{parse_duration, parse_grace, parse_name_tag, parse_subject};

/// Log in to an OCI registry and administer it: namespaces, users, role
/// bindings, service accounts, pull secrets and access tokens; inspect its
/// ImageStreams and images.
///
/// Credentials are kept in a Docker-compatible auth file, which docker,
/// podman and skopeo read too; the server logged in to becomes the current
/// context.
#[derive(Debug, Parser)]
#[command(name = "registryctl", version)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options accepted by every command.
#[derive(Debug, Args)]
pub(crate) struct Global {
    /// Registry to call: host[:port] (HTTPS) or http[s]://host[:port]
    /// [default: the current context, set by `login`].
    #[arg(long, global = true, env = "REGISTRY_SERVER", value_name = "URL")]
    pub server: Option<String>,
    /// Auth file to read and write [default: $DOCKER_CONFIG/config.json, else
    /// ~/.docker/config.json]; the contexts are in registryctl.json beside it.
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
pub(crate) enum Command {
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
    /// Print who the stored credentials authenticate as: subject,
    /// identity provider and groups.
    Whoami,
    /// Print the registry's token CA certificate (PEM), no login needed:
    /// the `rootcertbundle` of a registry (CNCF Distribution's
    /// `auth.token`) that uses this one as its token server.
    TokenCa {
        /// Write it to FILE instead of standard output.
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Change your own password: reads the current password, then the new
    /// one, one per line, from standard input. Stored credentials holding
    /// the old password are updated.
    Passwd {
        /// Read both passwords from standard input (required).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
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
    /// Manage your access tokens (usable as passwords) and refresh tokens
    /// (identity tokens kept by `login` and docker).
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
    /// Mirror an upstream repository into a proxy namespace ahead of time.
    #[command(subcommand)]
    Mirror(MirrorCmd),
    /// Manage a namespace's webhooks and see their deliveries.
    #[command(subcommand)]
    Webhook(WebhookCmd),
}

/// `registryctl webhook ...` (registry-admin of the namespace).
#[derive(Debug, Subcommand)]
pub(crate) enum WebhookCmd {
    /// Send the namespace's events to URL, signed with a secret (generated
    /// unless given on stdin; shown once).
    Add {
        /// The namespace.
        namespace: registry::core::Namespace,
        /// Where deliveries are POSTed (http or https).
        url: String,
        /// Only these event types (repeatable), e.g.
        /// io.registry.manifest.pushed [default: all].
        #[arg(long = "event", value_name = "TYPE")]
        events: Vec<String>,
        /// Send pulls too (high volume).
        #[arg(long)]
        include_pulls: bool,
        /// Read the signing secret from standard input.
        #[arg(long)]
        secret_stdin: bool,
    },
    /// List the namespace's webhooks (never their secrets).
    List {
        /// The namespace.
        namespace: registry::core::Namespace,
    },
    /// Remove a webhook and its delivery records.
    Remove {
        /// The namespace.
        namespace: registry::core::Namespace,
        /// The webhook's id.
        id: u64,
    },
    /// Show a webhook's deliveries, newest first: status, attempts, last
    /// response code; or send one again.
    Deliveries {
        /// The namespace.
        namespace: registry::core::Namespace,
        /// The webhook's id.
        id: u64,
        /// Send this delivery again (a failed one, or one a receiver lost).
        #[arg(long, value_name = "DELIVERY")]
        redeliver: Option<u64>,
        /// Show at most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
}

/// `registryctl mirror ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum MirrorCmd {
    /// Copy the tags of NAMESPACE/REPOSITORY from the upstream of proxy
    /// namespace NAMESPACE (registry-admin there): manifests, an index's
    /// manifest for the server's platform (or all), and their blobs.
    /// Prints a line per tag as it goes; what is stored already is skipped,
    /// so running it again resumes an interrupted sync.
    Sync {
        /// e.g. hub/library/alpine.
        #[arg(value_name = "NAMESPACE/REPOSITORY")]
        target: registry::core::RepositoryName,
        /// Only tags matching this glob (`*` and `?`), e.g. '3.*'.
        #[arg(long, value_name = "GLOB")]
        tags: Option<String>,
        /// Every platform of an index, not only the server's own.
        #[arg(long)]
        all_platforms: bool,
    },
}

/// `registryctl login`.
#[derive(Debug, Args)]
pub(crate) struct Login {
    /// host[:port] (HTTPS) or http[s]://host[:port].
    pub server: String,
    /// User name (any name when logging in with an access token).
    #[arg(short, long, required_unless_present = "oidc", conflicts_with = "oidc")]
    pub username: Option<String>,
    /// Read the password (or access token) from standard input.
    #[arg(long, conflicts_with_all = ["password", "oidc"])]
    pub password_stdin: bool,
    /// Password or access token (visible to other local users: prefer --password-stdin).
    #[arg(short, long, required_unless_present_any = ["password_stdin", "oidc"], conflicts_with = "oidc")]
    pub password: Option<String>,
    #[command(flatten)]
    pub oidc: OidcLogin,
}

/// The password login's flags, which the `--oidc-*` ones exclude.
const PASSWORD_ARGS: [&str; 3] = ["username", "password", "password_stdin"];

/// `registryctl login --oidc`: the device flow against an OpenID Connect
/// issuer the registry trusts. The issuer settings are remembered in the
/// context, so later logins need only `--oidc`.
#[derive(Debug, Args)]
pub(crate) struct OidcLogin {
    /// Log in with an ID token from the registry's OpenID Connect issuer:
    /// prints a URL and a code to enter there, waits for the sign-in, and
    /// stores the ID token as the password (it lasts as long as the issuer
    /// made it last; then log in again).
    #[arg(id = "oidc", long = "oidc")]
    pub enabled: bool,
    /// The issuer (https), as the registry's --oidc-issuer-url [default:
    /// the context's].
    #[arg(long, conflicts_with_all = PASSWORD_ARGS, value_name = "URL")]
    pub oidc_issuer_url: Option<String>,
    /// The client id, as the registry's --oidc-client-id [default: the
    /// context's].
    #[arg(long, conflicts_with_all = PASSWORD_ARGS, value_name = "ID")]
    pub oidc_client_id: Option<String>,
    /// PEM CA certificates the issuer's certificate must chain to
    /// [default: the context's, else the system roots].
    #[arg(long, conflicts_with_all = PASSWORD_ARGS, value_name = "FILE")]
    pub oidc_ca_file: Option<PathBuf>,
    /// Scopes to ask for besides `openid`, e.g. groups,email [default:
    /// the context's, else none].
    #[arg(long = "oidc-scope", conflicts_with_all = PASSWORD_ARGS, value_delimiter = ',', value_name = "SCOPE")]
    pub oidc_scopes: Vec<String>,
}

/// `registryctl context ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum ContextCmd {
    /// List the contexts (`*` marks the current one).
    List,
    /// Make NAME (a server as logged in to, e.g. localhost:5000) current.
    Use { name: String },
}

/// `registryctl prune`.
#[derive(Debug, Args)]
pub(crate) struct PruneArgs {
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

/// `registryctl namespace ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum NamespaceCmd {
    /// Create a namespace.
    Create { name: Namespace },
    /// List namespaces.
    List,
    /// Delete a namespace with its bindings and service accounts; one that
    /// holds ImageStreams only with --cascade.
    Delete {
        name: Namespace,
        /// Delete its ImageStreams too (their space returns at the next prune).
        #[arg(long)]
        cascade: bool,
    },
    /// Show or set a namespace's policy: retention, immutable tags, quota.
    #[command(subcommand)]
    Policy(PolicyCmd),
    /// Show a namespace: its quota and what it stores (namespace viewer).
    Show { name: Namespace },
    /// Show what a namespace stores: bytes and blobs (each blob counted
    /// once), ImageStreams and images.
    Usage {
        name: Namespace,
        /// Rebuild the counters from the blob links first, learning sizes
        /// the registry does not know from storage (cluster-admin).
        #[arg(long)]
        recompute: bool,
    },
}

/// `registryctl namespace policy ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum PolicyCmd {
    /// Show the policy of NAMESPACE.
    Show { namespace: Namespace },
    /// Change the policy of NAMESPACE: each flag replaces its field, the
    /// others stay (registry-admin; the quota needs cluster-admin).
    Set {
        namespace: Namespace,
        /// Keep the N most recent images of each tag's history.
        #[arg(long, value_name = "N")]
        keep_tag_revisions: Option<u32>,
        /// Keep images pushed within this long (30d, 12h, 2w).
        #[arg(long, value_name = "DURATION")]
        keep_younger_than: Option<PolicyDuration>,
        /// Prune untagged manifests this long after their push.
        #[arg(long, value_name = "DURATION")]
        prune_untagged_after: Option<PolicyDuration>,
        /// Immutable tag patterns (globs with * and ?), replacing the list;
        /// repeat for several.
        #[arg(long = "immutable-tags", value_name = "PATTERN")]
        immutable_tags: Vec<TagPattern>,
        /// Bytes the namespace may store.
        #[arg(long, value_name = "BYTES")]
        quota_bytes: Option<u64>,
        /// Remove a field (keep-tag-revisions, keep-younger-than,
        /// prune-untagged-after, immutable-tags, quota-bytes); repeatable.
        #[arg(long, value_name = "FIELD")]
        unset: Vec<PolicyField>,
    },
}

/// A field of a namespace policy, for `--unset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum PolicyField {
    KeepTagRevisions,
    KeepYoungerThan,
    PruneUntaggedAfter,
    ImmutableTags,
    QuotaBytes,
}

/// `registryctl user ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum UserCmd {
    /// Create a user; the password is read from standard input.
    Create {
        name: UserName,
        /// Read the password from standard input (required).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// List users.
    List,
    /// Delete a user.
    Delete { name: UserName },
    /// Set a user's password (cluster-admin); the new password is read
    /// from standard input. The old one stops working at once.
    SetPassword {
        name: UserName,
        /// Read the password from standard input (required).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
}

/// A role and the subject it is bound to.
#[derive(Debug, Args)]
pub(crate) struct Binding {
    /// Role, e.g. registry-viewer, registry-editor, registry-admin.
    pub role: String,
    /// user:NAME, serviceaccount:NS:NAME or group:NAME.
    #[arg(value_parser = parse_subject)]
    pub subject: String,
}

/// `registryctl rolebinding ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum RoleBindingCmd {
    /// Bind ROLE to SUBJECT in namespace NAMESPACE.
    Add {
        namespace: Namespace,
        #[command(flatten)]
        binding: Binding,
    },
    /// Remove the binding of ROLE to SUBJECT in namespace NAMESPACE.
    Remove {
        namespace: Namespace,
        #[command(flatten)]
        binding: Binding,
    },
    /// List the role bindings of namespace NAMESPACE.
    List { namespace: Namespace },
}

/// `registryctl clusterrolebinding ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum ClusterRoleBindingCmd {
    /// Bind cluster role ROLE to SUBJECT (e.g. cluster-admin, metrics-viewer).
    Add(Binding),
    /// Remove the binding of cluster role ROLE to SUBJECT.
    Remove(Binding),
    /// List cluster role bindings.
    List,
}

/// `registryctl serviceaccount ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum ServiceAccountCmd {
    /// Create service account NAME in namespace NAMESPACE.
    Create {
        namespace: Namespace,
        name: ServiceAccountName,
    },
    /// List the service accounts of namespace NAMESPACE.
    List { namespace: Namespace },
    /// Delete service account NAME in namespace NAMESPACE.
    Delete {
        namespace: Namespace,
        name: ServiceAccountName,
    },
    /// Print the Kubernetes pull Secret (JSON) for service account NAME.
    PullSecret {
        namespace: Namespace,
        name: ServiceAccountName,
        /// Replace the secret: every copy handed out before stops working.
        #[arg(long)]
        rotate: bool,
    },
}

/// `registryctl token ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum TokenCmd {
    /// Create an access token and print it (shown only once).
    Create {
        /// A label for the token.
        #[arg(long)]
        name: Option<String>,
        /// Lifetime, e.g. 30m, 12h, 7d [default: the server's].
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        expires: Option<u64>,
    },
    /// List your access and refresh tokens.
    List,
    /// Delete an access or refresh token by id (from `token list`).
    Delete { id: AccessTokenId },
}

/// `registryctl imagestreams ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum ImageStreamsCmd {
    /// List the ImageStreams of namespace NAMESPACE with their tags.
    List { namespace: Namespace },
    /// Show ImageStream NAME (the repository without its namespace; may hold
    /// `/`) of namespace NAMESPACE and where its tags point.
    Show { namespace: Namespace, name: String },
    /// Delete ImageStream NAME of namespace NAMESPACE with its tags and
    /// manifests (registry-admin); its blobs go at the next prune.
    Delete { namespace: Namespace, name: String },
}

/// `registryctl tag ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum TagCmd {
    /// Show where NAME:TAG of namespace NAMESPACE points and every move,
    /// newest first.
    History {
        namespace: Namespace,
        /// ImageStream and tag, e.g. app:v1.
        #[arg(value_parser = parse_name_tag, value_name = "NAME:TAG")]
        name_tag: (String, Tag),
    },
}

/// `registryctl image ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum ImageCmd {
    /// Show an image's metadata (repositories, layers or platforms, config)
    /// by manifest DIGEST.
    Show { digest: Digest },
}

#[cfg(test)]
#[path = "cli_tests.rs"]
mod tests;
