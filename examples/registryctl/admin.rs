//! The admin commands (`/apis/admin/v1`, see docs/admin-api.md): whoami,
//! prune, namespaces, users, role bindings, service accounts with their
//! pull secrets, and access tokens.

use registry::api::model::admin::{
    BindingRequest, NewAccessToken, NewUser, PasswordChange, PruneReport, PruneRequest,
};
use serde::Serialize;

use crate::cli::{
    Binding, ClusterRoleBindingCmd as Crb, Command, Global, NamespaceCmd as Ns,
    RoleBindingCmd as Rb, ServiceAccountCmd as Sa, TokenCmd, UserCmd,
};
use crate::session::{read_password, Connection, Silence};
use crate::{say, CliError, Io};

/// Prints a document as pretty JSON.
pub(crate) fn print_json(io: &mut Io<'_>, value: &impl Serialize) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value).expect("documents serialize");
    say!(io.out, "{text}")
}

/// Renders rows under upper-case headers in aligned columns.
pub(crate) fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (c, w) in cells.iter().zip(&widths) {
            s.push_str(&format!("{c:<w$}   "));
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

/// `doc` as JSON with `--json`, else `rows` under `headers` (or `no {what}`
/// on stderr when there are none).
fn list(
    g: &Global,
    io: &mut Io<'_>,
    doc: &impl Serialize,
    (what, headers): (&str, &[&str]),
    rows: Vec<Vec<String>>,
) -> Result<(), CliError> {
    match () {
        _ if g.json => print_json(io, doc),
        _ if rows.is_empty() => say!(io.err, "no {what}"),
        _ => say!(io.out, "{}", table(headers, &rows)),
    }
}

fn request(b: &Binding) -> BindingRequest {
    BindingRequest::new(&b.role, &b.subject)
}

/// How long `command` lets the server stay silent (see [`Silence`]).
fn silence(command: &Command) -> Silence {
    match command {
        Command::Prune(_)
        | Command::Mirror(_)
        | Command::Namespace(
            Ns::Delete { cascade: true, .. }
            | Ns::Usage {
                recompute: true, ..
            },
        ) => Silence::Long,
        _ => Silence::Short,
    }
}

/// Runs an admin command (with the stored credentials).
pub(crate) async fn run(g: &Global, command: Command, io: &mut Io<'_>) -> Result<(), CliError> {
    // Read the password before connecting, so a missing one fails fast.
    let password = match &command {
        Command::User(UserCmd::Create { .. } | UserCmd::SetPassword { .. }) => read_password(io)?,
        _ => String::new(),
    };
    let conn = Connection::open(g, io, true, silence(&command))?;
    let api = &conn.client;
    let out = match command {
        Command::Whoami => {
            let me = conn.run(api.whoami()).await?;
            return if g.json {
                print_json(io, &me)
            } else {
                say!(
                    io.out,
                    "subject:  {}\nprovider: {}\ngroups:   {}",
                    me.subject,
                    me.provider,
                    me.groups.join(", ")
                )
            };
        }
        Command::Prune(a) => {
            let request = PruneRequest::new(a.dry_run, a.grace, a.upload_max_age);
            let report = conn.run(api.prune(&request)).await?;
            return if g.json {
                print_json(io, &report)
            } else {
                say!(io.out, "{}", describe(&report))
            };
        }
        Command::Namespace(Ns::Create { name }) => {
            conn.run(api.create_namespace(&name)).await?;
            format!("namespace/{name} created")
        }
        Command::Namespace(Ns::List) => {
            let doc = conn.run(api.namespaces()).await?;
            if g.json {
                return print_json(io, &doc);
            }
            if doc.namespaces.is_empty() {
                return say!(io.err, "no namespaces");
            }
            // One name per line, as scripts read them.
            return doc
                .namespaces
                .iter()
                .try_for_each(|ns| say!(io.out, "{ns}"));
        }
        Command::Namespace(Ns::Delete { name, cascade }) => {
            conn.run(api.delete_namespace(&name, cascade)).await?;
            format!("namespace/{name} deleted")
        }
        Command::Namespace(Ns::Policy(cmd)) => {
            return crate::policy::run(g, &conn, cmd, io).await;
        }
        Command::Mirror(cmd) => {
            return crate::mirror::run(g, &conn, cmd, io).await;
        }
        Command::Webhook(cmd) => {
            return crate::webhook::run(g, &conn, cmd, io).await;
        }
        Command::Namespace(Ns::Show { name }) => {
            return crate::usage::run(g, &conn, name, false, io).await;
        }
        Command::Namespace(Ns::Usage { name, recompute }) => {
            return crate::usage::run(g, &conn, name, recompute, io).await;
        }
        Command::User(UserCmd::Create { name, .. }) => {
            conn.run(api.create_user(&NewUser::new(name.as_str(), password)))
                .await?;
            format!("user/{name} created")
        }
        Command::User(UserCmd::List) => {
            let doc = conn.run(api.users()).await?;
            let rows = doc
                .users
                .iter()
                .map(|u| vec![u.name.to_string(), u.created.clone()]);
            return list(g, io, &doc, ("users", &["NAME", "CREATED"]), rows.collect());
        }
        Command::User(UserCmd::Delete { name }) => {
            conn.run(api.delete_user(&name)).await?;
            format!("user/{name} deleted")
        }
        Command::User(UserCmd::SetPassword { name, .. }) => {
            conn.run(api.set_password(&name, &PasswordChange::new(password)))
                .await?;
            format!("user/{name} password changed")
        }
        Command::Rolebinding(Rb::Add {
            namespace: ns,
            binding: b,
        }) => {
            conn.run(api.add_role_binding(&ns, &request(&b))).await?;
            format!(
                "rolebinding added: {} {} in namespace {ns}",
                b.role, b.subject
            )
        }
        Command::Rolebinding(Rb::Remove {
            namespace: ns,
            binding: b,
        }) => {
            conn.run(api.remove_role_binding(&ns, &request(&b))).await?;
            format!(
                "rolebinding removed: {} {} in namespace {ns}",
                b.role, b.subject
            )
        }
        Command::Rolebinding(Rb::List { namespace }) => {
            let doc = conn.run(api.role_bindings(&namespace)).await?;
            let rows = doc
                .rolebindings
                .iter()
                .map(|b| vec![b.role.to_string(), b.subject.clone()]);
            return list(
                g,
                io,
                &doc,
                ("rolebindings", &["ROLE", "SUBJECT"]),
                rows.collect(),
            );
        }
        Command::Clusterrolebinding(Crb::Add(b)) => {
            conn.run(api.add_cluster_role_binding(&request(&b))).await?;
            format!("clusterrolebinding added: {} {}", b.role, b.subject)
        }
        Command::Clusterrolebinding(Crb::Remove(b)) => {
            conn.run(api.remove_cluster_role_binding(&request(&b)))
                .await?;
            format!("clusterrolebinding removed: {} {}", b.role, b.subject)
        }
        Command::Clusterrolebinding(Crb::List) => {
            let doc = conn.run(api.cluster_role_bindings()).await?;
            let rows = doc.clusterrolebindings.iter();
            let rows = rows
                .map(|b| vec![b.role.to_string(), b.subject.clone()])
                .collect();
            return list(
                g,
                io,
                &doc,
                ("clusterrolebindings", &["ROLE", "SUBJECT"]),
                rows,
            );
        }
        Command::Serviceaccount(Sa::Create {
            namespace: ns,
            name,
        }) => {
            conn.run(api.create_service_account(&ns, &name)).await?;
            format!("serviceaccount/{name} created in namespace {ns}")
        }
        Command::Serviceaccount(Sa::List { namespace }) => {
            let doc = conn.run(api.service_accounts(&namespace)).await?;
            let rows = doc.serviceaccounts.iter();
            let rows = rows.map(|s| vec![s.name.to_string(), s.subject.clone(), s.created.clone()]);
            let headers: &[&str] = &["NAME", "SUBJECT", "CREATED"];
            return list(g, io, &doc, ("serviceaccounts", headers), rows.collect());
        }
        Command::Serviceaccount(Sa::Delete {
            namespace: ns,
            name,
        }) => {
            conn.run(api.delete_service_account(&ns, &name)).await?;
            format!("serviceaccount/{name} deleted from namespace {ns}")
        }
        Command::Serviceaccount(Sa::PullSecret {
            namespace,
            name,
            rotate,
        }) => {
            let secret = conn.run(api.pull_secret(&namespace, &name, rotate)).await?;
            return print_json(io, &secret);
        }
        Command::Token(TokenCmd::Create { name, expires }) => {
            let expires = expires.map(|s| i64::try_from(s).unwrap_or(i64::MAX));
            let created = conn
                .run(api.create_token(&NewAccessToken::new(name, expires)))
                .await?;
            if g.json {
                return print_json(io, &created);
            }
            // Only the token on stdout, so that `$(registryctl token create)` works.
            created.token
        }
        Command::Token(TokenCmd::List) => {
            let doc = conn.run(api.tokens()).await?;
            let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_owned());
            let access = doc.tokens.iter().map(|t| {
                let (id, name) = (t.id.to_string(), t.name.to_string());
                vec![
                    id,
                    "access".to_owned(),
                    name,
                    t.created.clone(),
                    dash(&t.expires),
                    dash(&t.last_used),
                ]
            });
            // A refresh token is named by the client it was issued to.
            let refresh = doc.refresh_tokens.iter().map(|t| {
                vec![
                    t.id.to_string(),
                    "refresh".to_owned(),
                    t.client_id.clone(),
                    t.created.clone(),
                    dash(&t.expires),
                    dash(&t.last_used),
                ]
            });
            let headers: &[&str] = &["ID", "KIND", "NAME", "CREATED", "EXPIRES", "LAST USED"];
            let rows = access.chain(refresh).collect();
            return list(g, io, &doc, ("tokens", headers), rows);
        }
        Command::Token(TokenCmd::Delete { id }) => {
            conn.run(api.delete_token(&id)).await?;
            format!("token/{id} deleted")
        }
        other => unreachable!("not an admin command: {other:?}"),
    };
    say!(io.out, "{out}")
}

/// `1536` → `1.5 KiB`.
fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let (mut value, mut unit) = (bytes as f64, 0);
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    match unit {
        0 => format!("{bytes} B"),
        _ => format!("{value:.1} {}", UNITS[unit]),
    }
}

/// The server's prune report as a few lines of text.
fn describe(r: &PruneReport) -> String {
    let (delete, expire) = match r.dry_run {
        true => ("would delete", "would expire"),
        false => ("deleted", "expired"),
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
    if r.manifests_scanned > 0 {
        let remove = if r.dry_run { "would remove" } else { "removed" };
        text.push_str(&format!(
            "\nretention: scanned {} manifests, {remove} {}",
            r.manifests_scanned, r.manifests_removed
        ));
        if r.manifests_raced > 0 {
            text.push_str(&format!(
                " ({} kept: pushed, tagged or referenced meanwhile)",
                r.manifests_raced
            ));
        }
        for m in &r.removed {
            text.push_str(&format!("\n  {}@{}: {}", m.repository, m.digest, m.reason));
        }
        if r.removed_unlisted > 0 {
            text.push_str(&format!(
                "\n  and {} more (the server's log names them)",
                r.removed_unlisted
            ));
        }
    }
    if r.dry_run {
        text.push_str("\ndry run: nothing was changed");
    }
    text
}

#[cfg(test)]
#[path = "admin_tests.rs"]
mod tests;
