//! The admin commands: namespaces, users, role bindings, service accounts,
//! pull secrets and access tokens (`/apis/admin/v1`, see docs/admin-api.md).

use reqwest::Method;
use serde_json::{json, Value};

use crate::cli::{
    ClusterRoleBindingCmd, Global, NamespaceCmd, RoleBindingCmd, ServiceAccountCmd, TokenCmd,
    UserCmd,
};
use crate::session::{read_password, Admin};
use crate::{say, Io};

/// Prints a JSON value, pretty.
pub fn print_json(io: &mut Io<'_>, value: &Value) -> Result<(), String> {
    let text = serde_json::to_string_pretty(value).expect("a JSON value serializes");
    say!(io.out, "{text}")
}

/// A field as table text: strings bare, `null`/missing as `-`.
fn cell(item: &Value, field: &str) -> String {
    match item.get(field) {
        None | Some(Value::Null) => "-".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
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
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
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

/// Prints the array `answer[key]` as a table of `fields` (or the JSON with
/// `--json`).
fn print_list(
    global: &Global,
    io: &mut Io<'_>,
    answer: &Value,
    key: &str,
    fields: &[&str],
) -> Result<(), String> {
    if global.json {
        return print_json(io, answer);
    }
    let items = answer
        .get(key)
        .and_then(Value::as_array)
        .ok_or_else(|| format!("the server's answer has no \"{key}\" list"))?;
    if items.is_empty() {
        return say!(io.err, "no {key}");
    }
    let headers: Vec<String> = fields
        .iter()
        .map(|f| f.replace('_', " ").to_uppercase())
        .collect();
    let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|item| fields.iter().map(|f| cell(item, f)).collect())
        .collect();
    say!(io.out, "{}", table(&headers, &rows))
}

/// `registryctl namespace ...`.
pub async fn namespace(global: &Global, cmd: NamespaceCmd, io: &mut Io<'_>) -> Result<(), String> {
    let admin = Admin::connect(global, io)?;
    match cmd {
        NamespaceCmd::Create { name } => {
            let body = json!({ "name": name });
            admin
                .call(Method::POST, &["namespaces"], &[], Some(&body))
                .await?;
            say!(io.out, "namespace/{name} created")
        }
        NamespaceCmd::List => {
            let answer = admin.call(Method::GET, &["namespaces"], &[], None).await?;
            if global.json {
                return print_json(io, &answer);
            }
            let names = answer
                .get("namespaces")
                .and_then(Value::as_array)
                .ok_or("the server's answer has no \"namespaces\" list")?;
            for name in names {
                say!(io.out, "{}", name.as_str().unwrap_or_default())?;
            }
            Ok(())
        }
        NamespaceCmd::Delete { name } => {
            admin
                .call(Method::DELETE, &["namespaces", &name], &[], None)
                .await?;
            say!(io.out, "namespace/{name} deleted")
        }
    }
}

/// `registryctl user ...`.
pub async fn user(global: &Global, cmd: UserCmd, io: &mut Io<'_>) -> Result<(), String> {
    // Read the password before connecting, so a missing one fails fast.
    let password = match &cmd {
        UserCmd::Create { .. } => Some(read_password(io.stdin)?),
        _ => None,
    };
    let admin = Admin::connect(global, io)?;
    match cmd {
        UserCmd::Create { name, .. } => {
            let body = json!({ "name": name, "password": password });
            admin
                .call(Method::POST, &["users"], &[], Some(&body))
                .await?;
            say!(io.out, "user/{name} created")
        }
        UserCmd::List => {
            let answer = admin.call(Method::GET, &["users"], &[], None).await?;
            print_list(global, io, &answer, "users", &["name", "created"])
        }
        UserCmd::Delete { name } => {
            admin
                .call(Method::DELETE, &["users", &name], &[], None)
                .await?;
            say!(io.out, "user/{name} deleted")
        }
    }
}

/// `registryctl rolebinding ...`.
pub async fn rolebinding(
    global: &Global,
    cmd: RoleBindingCmd,
    io: &mut Io<'_>,
) -> Result<(), String> {
    let admin = Admin::connect(global, io)?;
    match cmd {
        RoleBindingCmd::Add { namespace, binding } => {
            let body = json!({ "role": binding.role, "subject": binding.subject });
            admin
                .call(
                    Method::POST,
                    &["namespaces", &namespace, "rolebindings"],
                    &[],
                    Some(&body),
                )
                .await?;
            say!(
                io.out,
                "rolebinding added: {} {} in namespace {namespace}",
                binding.role,
                binding.subject
            )
        }
        RoleBindingCmd::Remove { namespace, binding } => {
            let query = [
                ("role", binding.role.as_str()),
                ("subject", binding.subject.as_str()),
            ];
            admin
                .call(
                    Method::DELETE,
                    &["namespaces", &namespace, "rolebindings"],
                    &query,
                    None,
                )
                .await?;
            say!(
                io.out,
                "rolebinding removed: {} {} in namespace {namespace}",
                binding.role,
                binding.subject
            )
        }
        RoleBindingCmd::List { namespace } => {
            let answer = admin
                .call(
                    Method::GET,
                    &["namespaces", &namespace, "rolebindings"],
                    &[],
                    None,
                )
                .await?;
            print_list(global, io, &answer, "rolebindings", &["role", "subject"])
        }
    }
}

/// `registryctl clusterrolebinding ...`.
pub async fn clusterrolebinding(
    global: &Global,
    cmd: ClusterRoleBindingCmd,
    io: &mut Io<'_>,
) -> Result<(), String> {
    let admin = Admin::connect(global, io)?;
    match cmd {
        ClusterRoleBindingCmd::Add(b) => {
            let body = json!({ "role": b.role, "subject": b.subject });
            admin
                .call(Method::POST, &["clusterrolebindings"], &[], Some(&body))
                .await?;
            say!(io.out, "clusterrolebinding added: {} {}", b.role, b.subject)
        }
        ClusterRoleBindingCmd::Remove(b) => {
            let query = [("role", b.role.as_str()), ("subject", b.subject.as_str())];
            admin
                .call(Method::DELETE, &["clusterrolebindings"], &query, None)
                .await?;
            say!(
                io.out,
                "clusterrolebinding removed: {} {}",
                b.role,
                b.subject
            )
        }
        ClusterRoleBindingCmd::List => {
            let answer = admin
                .call(Method::GET, &["clusterrolebindings"], &[], None)
                .await?;
            print_list(
                global,
                io,
                &answer,
                "clusterrolebindings",
                &["role", "subject"],
            )
        }
    }
}

/// `registryctl serviceaccount ...`.
pub async fn serviceaccount(
    global: &Global,
    cmd: ServiceAccountCmd,
    io: &mut Io<'_>,
) -> Result<(), String> {
    let admin = Admin::connect(global, io)?;
    match cmd {
        ServiceAccountCmd::Create { namespace, name } => {
            let body = json!({ "name": name });
            admin
                .call(
                    Method::POST,
                    &["namespaces", &namespace, "serviceaccounts"],
                    &[],
                    Some(&body),
                )
                .await?;
            say!(
                io.out,
                "serviceaccount/{name} created in namespace {namespace}"
            )
        }
        ServiceAccountCmd::List { namespace } => {
            let answer = admin
                .call(
                    Method::GET,
                    &["namespaces", &namespace, "serviceaccounts"],
                    &[],
                    None,
                )
                .await?;
            print_list(
                global,
                io,
                &answer,
                "serviceaccounts",
                &["name", "subject", "created"],
            )
        }
        ServiceAccountCmd::Delete { namespace, name } => {
            admin
                .call(
                    Method::DELETE,
                    &["namespaces", &namespace, "serviceaccounts", &name],
                    &[],
                    None,
                )
                .await?;
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
            let mut path = vec![
                "namespaces",
                &namespace,
                "serviceaccounts",
                &name,
                "pull-secret",
            ];
            let method = if rotate {
                path.push("rotate");
                Method::POST
            } else {
                Method::GET
            };
            let secret = admin.call(method, &path, &[], None).await?;
            print_json(io, &secret)
        }
    }
}

/// `registryctl token ...`.
pub async fn token(global: &Global, cmd: TokenCmd, io: &mut Io<'_>) -> Result<(), String> {
    let admin = Admin::connect(global, io)?;
    match cmd {
        TokenCmd::Create { name, expires } => {
            let mut body = serde_json::Map::new();
            if let Some(n) = name {
                body.insert("name".into(), Value::String(n));
            }
            if let Some(seconds) = expires {
                body.insert("expires_in_seconds".into(), Value::from(seconds));
            }
            let answer = admin
                .call(Method::POST, &["tokens"], &[], Some(&Value::Object(body)))
                .await?;
            if global.json {
                return print_json(io, &answer);
            }
            let token = answer
                .get("token")
                .and_then(Value::as_str)
                .ok_or("the server's answer has no \"token\"")?;
            // Only the token on stdout, so that `$(registryctl token create)` works.
            say!(io.out, "{token}")
        }
        TokenCmd::List => {
            let answer = admin.call(Method::GET, &["tokens"], &[], None).await?;
            print_list(
                global,
                io,
                &answer,
                "tokens",
                &["id", "name", "created", "expires", "last_used"],
            )
        }
        TokenCmd::Delete { id } => {
            admin
                .call(Method::DELETE, &["tokens", &id], &[], None)
                .await?;
            say!(io.out, "token/{id} deleted")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns() {
        let rows = vec![
            vec!["registry-viewer".to_owned(), "user:alice".to_owned()],
            vec!["admin".to_owned(), "group:system:authenticated".to_owned()],
        ];
        assert_eq!(
            table(&["ROLE", "SUBJECT"], &rows),
            "ROLE              SUBJECT\n\
             registry-viewer   user:alice\n\
             admin             group:system:authenticated"
        );
    }

    #[test]
    fn cells_show_missing_as_dash() {
        let item = json!({"a": "x", "b": null, "c": 3});
        assert_eq!(cell(&item, "a"), "x");
        assert_eq!(cell(&item, "b"), "-");
        assert_eq!(cell(&item, "c"), "3");
        assert_eq!(cell(&item, "d"), "-");
    }
}
