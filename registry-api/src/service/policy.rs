//! Namespace policies: retention, immutable tags and the quota, read by
//! the namespace's viewers and set by its registry-admins (the quota by a
//! cluster-admin).

use registry_auth::{Action, Resource};
use registry_core::Namespace;
use registry_storage::{NamespacePolicy, StorageError};

use super::{Caller, Registry, RegistryError, RegistryResult};

impl Registry {
    /// A namespace's policy (needs `ReadImageStreams` there: viewer), so
    /// that those who push know which tags are immutable.
    pub async fn namespace_policy(
        &self,
        caller: &Caller,
        ns: &Namespace,
    ) -> RegistryResult<NamespacePolicy> {
        self.authorize(caller, Action::ReadImageStreams, &Resource::Namespace(ns))?;
        self.stored_policy(ns).await
    }

    /// Replaces a namespace's policy (needs `ManagePolicy` there:
    /// registry-admin; changing `quota_bytes` needs `SetQuota`:
    /// cluster-admin). Returns the policy now in force.
    pub async fn set_namespace_policy(
        &self,
        caller: &Caller,
        ns: &Namespace,
        policy: NamespacePolicy,
    ) -> RegistryResult<NamespacePolicy> {
        self.authorize(caller, Action::ManagePolicy, &Resource::Namespace(ns))?;
        if policy.keep_tag_revisions == Some(0) {
            return Err(RegistryError::invalid(
                "keep_tag_revisions",
                "it must be at least 1 (leave it out to keep every revision)",
            ));
        }
        let current = self.stored_policy(ns).await?;
        if current.quota_bytes != policy.quota_bytes {
            self.authorize(caller, Action::SetQuota, &Resource::Cluster)?;
        }
        let data = serde_json::json!({ "policy": &policy });
        let kind = registry_storage::EventType::PolicyChanged;
        let events = self.raise(caller, kind, Some(ns), ns.as_str(), data);
        match self
            .metadata()
            .set_namespace_policy_raising(ns, &policy, events.clone())
            .await
        {
            Ok(()) => self.raised(&events),
            Err(StorageError::NotFound { .. }) => {
                return Err(RegistryError::NamespaceUnknown(ns.clone()))
            }
            Err(e) => return Err(e.into()),
        }
        tracing::info!(target: "audit", actor = %caller.subject(), namespace = %ns,
            policy = %serde_json::to_string(&policy).unwrap_or_default(), "namespace policy set");
        Ok(policy)
    }

    pub(super) async fn stored_policy(&self, ns: &Namespace) -> RegistryResult<NamespacePolicy> {
        match self.metadata().namespace_policy(ns).await {
            Ok(policy) => Ok(policy),
            Err(StorageError::NotFound { .. }) => Err(RegistryError::NamespaceUnknown(ns.clone())),
            Err(e) => Err(e.into()),
        }
    }
}
