//! Identities: who the caller is, service accounts with their managed pull
//! secrets, and access tokens.

use std::time::Duration;

use registry_auth::{
    current_managed_token, is_managed_token, new_managed_token, AccessToken, AccessTokenId,
    AccessTokenSecret, Action, AuthChange, AuthStoreError, Resource, ServiceAccount,
    ServiceAccountRef, Subject, TokenName,
};
use registry_core::Namespace;
use time::OffsetDateTime;

use registry_storage::EventType;
use serde_json::json;

use super::{Caller, Registry, RegistryError, RegistryResult};

/// The longest lifetime an access token may be given (10 years): far
/// below where adding it to the clock could overflow.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// A service account's managed pull secret: its current token.
#[derive(Debug)]
#[non_exhaustive]
pub struct ManagedSecret {
    /// The token's record (its expiry among it).
    pub record: AccessToken,
    /// The token itself.
    pub secret: AccessTokenSecret,
}

impl Registry {
    /// The caller, once logged in (what `whoami` shows).
    pub fn whoami<'a>(&self, caller: &'a Caller) -> RegistryResult<&'a Caller> {
        self.logged_in(caller)?;
        Ok(caller)
    }

    /// The service accounts of a namespace (`ManageServiceAccounts` there:
    /// registry-admin).
    pub async fn service_accounts(
        &self,
        caller: &Caller,
        ns: &Namespace,
    ) -> RegistryResult<Vec<ServiceAccount>> {
        let resource = Resource::Namespace(ns);
        let state = self.admin(caller, Action::ManageServiceAccounts, &resource)?;
        self.existing_namespace(ns).await?;
        Ok(state.store.list_service_accounts(Some(ns)).await?)
    }

    /// Creates a service account in an existing namespace.
    pub async fn create_service_account(
        &self,
        caller: &Caller,
        account: ServiceAccountRef,
    ) -> RegistryResult<ServiceAccount> {
        let resource = Resource::Namespace(&account.namespace);
        let state = self.admin(caller, Action::ManageServiceAccounts, &resource)?;
        self.existing_namespace(&account.namespace).await?;
        let sa = ServiceAccount {
            account,
            created: OffsetDateTime::now_utc(),
        };
        let data = json!({ "serviceaccount": sa.account.to_string() });
        let (ns, subject) = (Some(&sa.account.namespace), sa.account.to_string());
        let events = self.raise(caller, EventType::ServiceAccountCreated, ns, subject, data);
        let change = AuthChange::CreateServiceAccount(sa.clone());
        self.apply_auth_change(state, change, events).await?;
        tracing::info!(target: "audit", actor = %caller.subject(), serviceaccount = %sa.account, "service account created");
        Ok(sa)
    }

    /// Deletes a service account; its tokens stop working.
    pub async fn delete_service_account(
        &self,
        caller: &Caller,
        account: &ServiceAccountRef,
    ) -> RegistryResult<()> {
        let resource = Resource::Namespace(&account.namespace);
        let state = self.admin(caller, Action::ManageServiceAccounts, &resource)?;
        super::admin::keep_a_cluster_admin(state, |b| {
            b.subject.as_service_account() == Some(account)
        })
        .await?;
        let data = json!({ "serviceaccount": account.to_string() });
        let (ns, subject) = (Some(&account.namespace), account.to_string());
        let events = self.raise(caller, EventType::ServiceAccountDeleted, ns, subject, data);
        let change = AuthChange::DeleteServiceAccount(account.clone());
        self.apply_auth_change(state, change, events).await?;
        self.reload_bindings(state).await?;
        tracing::info!(target: "audit", actor = %caller.subject(), serviceaccount = %account, "service account deleted");
        Ok(())
    }

    /// The service account's managed pull-secret token. Reading never
    /// rotates it: the same token comes back until it is renewed (a new
    /// one once a third of its lifetime is left; the old one keeps working
    /// until it expires) or `rotate` asks for a new one, which retires
    /// every earlier one (and every registry token obtained with them) at
    /// once.
    pub async fn managed_pull_secret(
        &self,
        caller: &Caller,
        account: &ServiceAccountRef,
        rotate: bool,
    ) -> RegistryResult<ManagedSecret> {
        let resource = Resource::Namespace(&account.namespace);
        let state = self.admin(caller, Action::ManageServiceAccounts, &resource)?;
        if !state.pull_secrets.manages(&account.namespace) {
            return Err(RegistryError::RecordUnknown(format!(
                "namespace {} is configured to get no managed pull secrets",
                account.namespace
            )));
        }
        if state.store.get_service_account(account).await?.is_none() {
            return Err(RegistryError::RecordUnknown(format!(
                "service account {account} does not exist"
            )));
        }
        let owner = Subject::ServiceAccount(account.clone());
        let now = OffsetDateTime::now_utc();
        let lifetime = time::Duration::try_from(state.settings.pull_secret_lifetime)
            .map_err(RegistryError::internal)?;
        let tokens = state.store.list_tokens(Some(&owner)).await?;
        let current = if rotate {
            None
        } else {
            current_managed_token(&state.signing_key, account, &tokens, lifetime, now)
        };
        if let Some((record, secret)) = current {
            return Ok(ManagedSecret { record, secret });
        }
        let (record, secret) = new_managed_token(&state.signing_key, account, lifetime, now);
        let data = json!({ "serviceaccount": account.to_string(), "token": record.id.to_string(), "rotated": rotate });
        let (ns, subject) = (Some(&account.namespace), account.to_string());
        let events = self.raise(caller, EventType::PullSecretRotated, ns, subject, data);
        self.apply_auth_change(state, AuthChange::CreateToken(record.clone()), events)
            .await?;
        // Rotation retires every earlier managed token; renewal only the
        // expired ones (the others still work until they expire).
        for old in tokens.iter().filter(|t| is_managed_token(t)) {
            if rotate || old.is_expired(now) {
                match state.store.delete_token(&old.id).await {
                    Ok(()) | Err(AuthStoreError::NotFound(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        let what = if rotate { "rotated" } else { "issued" };
        tracing::info!(target: "audit", actor = %caller.subject(), serviceaccount = %account, token = %record.id, "pull secret {what}");
        Ok(ManagedSecret { record, secret })
    }

    /// The caller's own access tokens.
    pub async fn access_tokens(&self, caller: &Caller) -> RegistryResult<Vec<AccessToken>> {
        let state = self.logged_in(caller)?;
        Ok(state.store.list_tokens(Some(caller.subject())).await?)
    }

    /// A new access token for the caller, expiring after `lifetime` (at
    /// most [`MAX_TOKEN_LIFETIME`]) or never. The secret is shown once.
    pub async fn create_access_token(
        &self,
        caller: &Caller,
        name: TokenName,
        lifetime: Option<Duration>,
    ) -> RegistryResult<(AccessToken, AccessTokenSecret)> {
        let state = self.logged_in(caller)?;
        if !matches!(
            caller.subject(),
            Subject::User(_) | Subject::ServiceAccount(_)
        ) {
            return Err(RegistryError::invalid(
                "caller",
                format!(
                    "access tokens belong to local users and service accounts; {} signs in through {}",
                    caller.subject(),
                    caller.identity().provider()
                ),
            ));
        }
        let expires = match lifetime {
            Some(l) if l.is_zero() || l > MAX_TOKEN_LIFETIME => {
                return Err(RegistryError::invalid_name(
                    "expires_in_seconds",
                    format!(
                        "it must be between 1 and {} (10 years)",
                        MAX_TOKEN_LIFETIME.as_secs()
                    ),
                ))
            }
            Some(l) => Some(
                OffsetDateTime::now_utc()
                    + time::Duration::try_from(l).map_err(RegistryError::internal)?,
            ),
            None => None,
        };
        let owner = caller.subject().clone();
        let (record, secret) =
            AccessToken::generate(owner, name, expires).map_err(RegistryError::internal)?;
        // The token's id and owner, never its secret.
        let data = json!({ "token": record.id.to_string(), "owner": caller.actor() });
        let ns = caller
            .subject()
            .as_service_account()
            .map(|sa| &sa.namespace);
        let subject = record.id.to_string();
        let events = self.raise(caller, EventType::TokenCreated, ns, subject, data);
        self.apply_auth_change(state, AuthChange::CreateToken(record.clone()), events)
            .await?;
        tracing::info!(target: "audit", actor = %caller.subject(), token = %record.id, "access token created");
        Ok((record, secret))
    }

    /// Deletes one of the caller's access or refresh tokens (ids are
    /// unique across both), or anyone's for a caller who manages users
    /// (cluster-admin).
    pub async fn delete_access_token(
        &self,
        caller: &Caller,
        id: &AccessTokenId,
    ) -> RegistryResult<()> {
        let state = self.logged_in(caller)?;
        let me = Some(caller.subject());
        let access = state
            .store
            .list_tokens(me)
            .await?
            .iter()
            .any(|t| &t.id == id);
        let refresh = !access
            && state
                .store
                .list_refresh_tokens(me)
                .await?
                .iter()
                .any(|t| &t.id == id);
        if !(access || refresh) {
            self.authorize(caller, Action::ManageUsers, &Resource::Cluster)?;
        }
        let deleted = |kind: &str| {
            let data = json!({ "token": id.to_string(), "kind": kind });
            self.raise(caller, EventType::TokenDeleted, None, id.to_string(), data)
        };
        let change = AuthChange::DeleteToken(*id);
        let kind = match self
            .apply_auth_change(state, change, deleted("access"))
            .await
        {
            Ok(()) => "access",
            Err(RegistryError::RecordUnknown(_)) if !access => {
                let change = AuthChange::DeleteRefreshToken(*id);
                match self
                    .apply_auth_change(state, change, deleted("refresh"))
                    .await
                {
                    Ok(()) => "refresh",
                    Err(RegistryError::RecordUnknown(_)) => {
                        return Err(RegistryError::RecordUnknown(format!(
                            "token {id} not found"
                        )))
                    }
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        };
        tracing::info!(target: "audit", actor = %caller.subject(), token = %id, "{kind} token deleted");
        Ok(())
    }
}
