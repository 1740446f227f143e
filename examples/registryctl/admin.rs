//! The admin commands: namespaces, users, role bindings, service accounts,
//! pull secrets, access tokens and prune (`/apis/admin/v1`, see
//! docs/admin-api.md).

use registry::api::model::admin::{
    BindingRequest, NewAccessToken, NewUser, PruneReport, PruneRequest,
};
use serde::Serialize;

use crate::cli::{
    Binding, ClusterRoleBindingCmd, Global, NamespaceCmd, PruneArgs, RoleBindingCmd,
    ServiceAccountCmd, TokenCmd, UserCmd,
};
use crate::session::{read_password, Connection};
use crate::{say, CliError, Io};

/// Prints a document as pretty JSON.
pub fn print_json(io: &mut Io<'_>, value: &impl Serialize) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value).expect("documents serialize");
    say!(io.out, "{text}")
}

/// Renders rows under upper-case headers in aligned columns.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len() - 1;
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            if i == last {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}   "));
            }
        }
        s.trim_end().to_owned()
    };
    let mut out = vec![line(headers.to_vec())];
    out.extend(
        rows.iter()
            .map(|r| line(r.iter().map(String::as_str).collect())),
    );
    out.join("\n")
}

/// Prints `doc` as JSON with `--json`, else `rows` under `headers` (or
/// `no {what}` on stderr when there are none).
fn print_list(
    global: &Global,
    io: &mut Io<'_>,
    doc: &impl Serialize,
    what: &str,
    headers: &[&str],
    rows: Vec<Vec<String>>,
) -> Result<(), CliError> {
    if global.json {
        print_json(io, doc)
    } else if rows.is_empty() {
        say!(io.err, "no {what}")
    } else {
        say!(io.out, "{}", table(headers, &rows))
    }
}

fn or_dash(value: Option<&str>) -> String {
    value.unwrap_or("-").to_owned()
}

fn request(b: &Binding) -> BindingRequest {
    BindingRequest::new(&b.role, &b.subject)
}

/// `registryctl namespace ...`.
pub async fn namespace(
    global: &Global,
    cmd: NamespaceCmd,
    io: &mut Io<'_>,
) -> Result<(), CliError> {
    let conn = Connection::open(global, io, true)?;
    let api = &conn.client;
    match cmd {
        NamespaceCmd::Create { name } => {
            api.create_namespace(&name)
                .await
                .map_err(|e| conn.fail(e))?;
            say!(io.out, "namespace/{name} created")
        }
        NamespaceCmd::List => {
            let list = api.namespaces().await.map_err(|e| conn.fail(e))?;
            if global.json {
                return print_json(io, &list);
            }
            list.namespaces
                .iter()
                .try_for_each(|ns| say!(io.out, "{ns}"))
        }
        NamespaceCmd::Delete { name } => {
            api.delete_namespace(&name)
                .await
                .map_err(|e| conn.fail(e))?;
            say!(io.out, "namespace/{name} deleted")
        }
    }
}

/// `registryctl user ...`.
pub async fn user(global: &Global, cmd: UserCmd, io: &mut Io<'_>) -> Result<(), CliError> {
    // Read the password before connecting, so a missing one fails fast.
    let password = match &cmd {
        UserCmd::Create { .. } => Some(read_password(io)?),
        _ => None,
    };
    let conn = Connection::open(global, io, true)?;
    let api = &conn.client;
    match cmd {
        UserCmd::Create { name, .. } => {
            let new = NewUser::new(name.as_str(), password.unwrap_or_default());
            api.create_user(&new).await.map_err(|e| conn.fail(e))?;
            say!(io.out, "user/{name} created")
        }
        UserCmd::List => {
            let list = api.users().await.map_err(|e| conn.fail(e))?;
            let rows = list
                .users
                .iter()
                .map(|u| vec![u.name.to_string(), u.created.clone()])
                .collect();
            print_list(global, io, &list, "users", &["NAME", "CREATED"], rows)
        }
        UserCmd::Delete { name } => {
            api.delete_user(&name).await.map_err(|e| conn.fail(e))?;
            say!(io.out, "user/{name} deleted")
        }
    }
}

/// `registryctl rolebinding ...`.
pub async fn rolebinding(
    global: &Global,
    cmd: RoleBindingCmd,
    io: &mut Io<'_>,
) -> Result<(), CliError> {
    let conn = Connection::open(global, io, true)?;
    let api = &conn.client;
    match cmd {
        RoleBindingCmd::Add { namespace, binding } => {
            api.add_role_binding(&namespace, &request(&binding))
                .await
                .map_err(|e| conn.fail(e))?;
            let Binding { role, subject } = binding;
            say!(
                io.out,
                "rolebinding added: {role} {subject} in namespace {namespace}"
            )
        }
        RoleBindingCmd::Remove { namespace, binding } => {
            api.remove_role_binding(&namespace, &request(&binding))
                .await
                .map_err(|e| conn.fail(e))?;
            let Binding { role, subject } = binding;
            say!(
                io.out,
                "rolebinding removed: {role} {subject} in namespace {namespace}"
            )
        }
        RoleBindingCmd::List { namespace } => {
            let list = api
                .role_bindings(&namespace)
                .await
                .map_err(|e| conn.fail(e))?;
            let rows = list
                .rolebindings
                .iter()
                .map(|b| vec![b.role.to_string(), b.subject.clone()])
                .collect();
            print_list(
                global,
                io,
                &list,
                "rolebindings",
                &["ROLE", "SUBJECT"],
                rows,
            )
        }
    }
}

/// `registryctl clusterrolebinding ...`.
pub async fn clusterrolebinding(
    global: &Global,
    cmd: ClusterRoleBindingCmd,
    io: &mut Io<'_>,
) -> Result<(), CliError> {
    let conn = Connection::open(global, io, true)?;
    let api = &conn.client;
    match cmd {
        ClusterRoleBindingCmd::Add(b) => {
            api.add_cluster_role_binding(&request(&b))
                .await
                .map_err(|e| conn.fail(e))?;
            say!(io.out, "clusterrolebinding added: {} {}", b.role, b.subject)
        }
        ClusterRoleBindingCmd::Remove(b) => {
            api.remove_cluster_role_binding(&request(&b))
                .await
                .map_err(|e| conn.fail(e))?;
            say!(
                io.out,
                "clusterrolebinding removed: {} {}",
                b.role,
                b.subject
            )
        }
        ClusterRoleBindingCmd::List => {
            let list = api
                .cluster_role_bindings()
                .await
                .map_err(|e| conn.fail(e))?;
            let rows = list
                .clusterrolebindings
                .iter()
                .map(|b| vec![b.role.to_string(), b.subject.clone()])
                .collect();
            let headers = ["ROLE", "SUBJECT"];
            print_list(global, io, &list, "clusterrolebindings", &headers, rows)
        }
    }
}

/// `registryctl serviceaccount ...`.
pub async fn serviceaccount(
    global: &Global,
    cmd: ServiceAccountCmd,
    io: &mut Io<'_>,
) -> Result<(), CliError> {
    let conn = Connection::open(global, io, true)?;
    let api = &conn.client;
    match cmd {
        ServiceAccountCmd::Create { namespace, name } => {
            api.create_service_account(&namespace, &name)
                .await
                .map_err(|e| conn.fail(e))?;
            say!(
                io.out,
                "serviceaccount/{name} created in namespace {namespace}"
            )
        }
        ServiceAccountCmd::List { namespace } => {
            let list = api
                .service_accounts(&namespace)
                .await
                .map_err(|e| conn.fail(e))?;
            let rows = list
                .serviceaccounts
                .iter()
                .map(|s| vec![s.name.to_string(), s.subject.clone(), s.created.clone()])
                .collect();
            let headers = ["NAME", "SUBJECT", "CREATED"];
            print_list(global, io, &list, "serviceaccounts", &headers, rows)
        }
        ServiceAccountCmd::Delete { namespace, name } => {
            api.delete_service_account(&namespace, &name)
                .await
                .map_err(|e| conn.fail(e))?;
            say!(
                io.out,
                "serviceaccount/{name} deleted from namespace {namespace}"
            )
        }
        ServiceAccountCmd::PullSecret {
            namespace,
            name,
            rotate,
        } => {
            let secret = api
                .pull_secret(&namespace, &name, rotate)
                .await
                .map_err(|e| conn.fail(e))?;
            print_json(io, &secret)
        }
    }
}

/// `registryctl token ...`.
pub async fn token(global: &Global, cmd: TokenCmd, io: &mut Io<'_>) -> Result<(), CliError> {
    let conn = Connection::open(global, io, true)?;
    let api = &conn.client;
    match cmd {
        TokenCmd::Create { name, expires } => {
            let expires = expires.map(|s| i64::try_from(s).unwrap_or(i64::MAX));
            let created = api
                .create_token(&NewAccessToken::new(name, expires))
                .await
                .map_err(|e| conn.fail(e))?;
            if global.json {
                return print_json(io, &created);
            }
            // Only the token on stdout, so that `$(registryctl token create)` works.
            say!(io.out, "{}", created.token)
        }
        TokenCmd::List => {
            let list = api.tokens().await.map_err(|e| conn.fail(e))?;
            let rows = list
                .tokens
                .iter()
                .map(|t| {
                    let (expires, used) = (t.expires.as_deref(), t.last_used.as_deref());
                    let (id, name) = (t.id.to_string(), t.name.to_string());
                    vec![id, name, t.created.clone(), or_dash(expires), or_dash(used)]
                })
                .collect();
            let headers = ["ID", "NAME", "CREATED", "EXPIRES", "LAST USED"];
            print_list(global, io, &list, "tokens", &headers, rows)
        }
        TokenCmd::Delete { id } => {
            api.delete_token(&id).await.map_err(|e| conn.fail(e))?;
            say!(io.out, "token/{id} deleted")
        }
    }
}

/// `1536` → `1.5 KiB`.
fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let (mut value, mut unit) = (bytes as f64, 0);
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// The server's prune report as a few lines of text.
fn describe(r: &PruneReport) -> String {
    let (delete, expire) = if r.dry_run {
        ("would delete", "would expire")
    } else {
        ("deleted", "expired")
    };
    let mut text = format!(
        "scanned {} blobs: {} referenced, {} younger than the grace period\n\
         {delete} {} blobs ({})\n{expire} {} upload sessions",
        r.blobs_scanned,
        r.blobs_referenced,
        r.blobs_young,
        r.blobs_deleted,
        human_bytes(r.bytes_freed),
        r.uploads_expired
    );
    if r.dry_run {
        text.push_str("\ndry run: nothing was changed");
    }
    text
}

/// `registryctl prune [--dry-run] [--grace D] [--upload-max-age D]`.
pub async fn prune(global: &Global, args: &PruneArgs, io: &mut Io<'_>) -> Result<(), CliError> {
    let conn = Connection::open(global, io, true)?;
    let request = PruneRequest::new(args.dry_run, args.grace, args.upload_max_age);
    let report = conn
        .client
        .prune(&request)
        .await
        .map_err(|e| conn.fail(e))?;
    if global.json {
        return print_json(io, &report);
    }
    say!(io.out, "{}", describe(&report))
}

#[cfg(test)]
#[path = "admin_tests.rs"]
mod tests;
