//! `registryctl namespace policy show|set`: a namespace's retention,
//! immutable tags and quota (`/apis/admin/v1/namespaces/{ns}/policy`).

use registry::api::model::admin::NamespacePolicy;
use registry::core::Namespace;

use crate::admin::print_json;
use crate::cli::{Global, PolicyCmd, PolicyField};
use crate::session::Connection;
use crate::{say, CliError, Io};

/// Runs a policy command over an open connection.
pub(crate) async fn run(
    g: &Global,
    conn: &Connection,
    command: PolicyCmd,
    io: &mut Io<'_>,
) -> Result<(), CliError> {
    let api = &conn.client;
    let (namespace, policy) = match command {
        PolicyCmd::Show { namespace } => {
            let policy = conn.run(api.namespace_policy(&namespace)).await?;
            (namespace, policy)
        }
        PolicyCmd::Set {
            namespace,
            keep_tag_revisions,
            keep_younger_than,
            prune_untagged_after,
            immutable_tags,
            quota_bytes,
            unset,
        } => {
            let mut policy = conn.run(api.namespace_policy(&namespace)).await?;
            for field in unset {
                match field {
                    PolicyField::KeepTagRevisions => policy.keep_tag_revisions = None,
                    PolicyField::KeepYoungerThan => policy.keep_younger_than = None,
                    PolicyField::PruneUntaggedAfter => policy.prune_untagged_after = None,
                    PolicyField::ImmutableTags => policy.immutable_tags.clear(),
                    PolicyField::QuotaBytes => policy.quota_bytes = None,
                }
            }
            policy.keep_tag_revisions = keep_tag_revisions.or(policy.keep_tag_revisions);
            policy.keep_younger_than = keep_younger_than.or(policy.keep_younger_than);
            policy.prune_untagged_after = prune_untagged_after.or(policy.prune_untagged_after);
            if !immutable_tags.is_empty() {
                policy.immutable_tags = immutable_tags;
            }
            policy.quota_bytes = quota_bytes.or(policy.quota_bytes);
            let set = conn
                .run(api.set_namespace_policy(&namespace, &policy))
                .await?;
            (namespace, set)
        }
    };
    if g.json {
        return print_json(io, &policy);
    }
    say!(io.out, "{}", describe(&namespace, &policy))
}

/// The policy as `field: value` lines; `-` for what is not set.
fn describe(ns: &Namespace, p: &NamespacePolicy) -> String {
    let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".to_owned());
    let patterns: Vec<String> = p.immutable_tags.iter().map(ToString::to_string).collect();
    [
        format!("namespace:            {ns}"),
        format!(
            "keep-tag-revisions:   {}",
            or_dash(p.keep_tag_revisions.map(|n| n.to_string()))
        ),
        format!(
            "keep-younger-than:    {}",
            or_dash(p.keep_younger_than.map(|d| d.to_string()))
        ),
        format!(
            "prune-untagged-after: {}",
            or_dash(p.prune_untagged_after.map(|d| d.to_string()))
        ),
        format!(
            "immutable-tags:       {}",
            if patterns.is_empty() {
                "-".to_owned()
            } else {
                patterns.join(", ")
            }
        ),
        format!(
            "quota-bytes:          {}",
            or_dash(p.quota_bytes.map(|n| n.to_string()))
        ),
    ]
    .join("\n")
}
