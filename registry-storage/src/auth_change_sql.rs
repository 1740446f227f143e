//! The one mapping from an [`AuthChange`](registry_auth::AuthChange) to the
//! query functions of a SQL backend, shared by SQLite and PostgreSQL (their
//! auth query modules name the functions alike).

/// Applies `$change` with the backend's queries in the caller's transaction
/// `$tx`: `$q` is its auth-queries module, `$tq` its token-queries module,
/// `$unknown` the error variant (taking a `String`) for a change it has no
/// query for (a newer `registry-auth`).
macro_rules! apply_auth_change {
    ($tx:expr, $change:expr, $q:ident, $tq:ident, $unknown:path) => {{
        use registry_auth::AuthChange;
        let tx = $tx;
        match $change {
            AuthChange::CreateUser(user) => $q::create_user(&mut *tx, user).await,
            AuthChange::DeleteUser(name) => $q::delete_user(&mut *tx, name).await,
            AuthChange::SetPassword(name, hash) => {
                $q::set_password(&mut *tx, name, hash.as_ref()).await
            }
            AuthChange::CreateServiceAccount(sa) => $q::create_service_account(&mut *tx, sa).await,
            AuthChange::DeleteServiceAccount(sa) => $q::delete_service_account(&mut *tx, sa).await,
            AuthChange::CreateToken(token) => $q::create_token(&mut *tx, token).await,
            AuthChange::DeleteToken(id) => $q::delete_token(&mut *tx, id).await,
            AuthChange::DeleteRefreshToken(id) => $tq::delete_refresh_token(&mut *tx, id).await,
            AuthChange::AddRoleBinding(b) => $q::add_role_binding(&mut *tx, b).await,
            AuthChange::RemoveRoleBinding(b) => $q::remove_role_binding(&mut *tx, b).await,
            AuthChange::AddClusterRoleBinding(b) => $q::add_cluster_role_binding(&mut *tx, b).await,
            AuthChange::RemoveClusterRoleBinding(b) => {
                $q::remove_cluster_role_binding(&mut *tx, b).await
            }
            other => Err($unknown(format!("{other:?}"))),
        }
    }};
}

pub(crate) use apply_auth_change;
