//! `registryctl namespace show|usage [--recompute]`: what a namespace
//! stores against its quota (`/apis/admin/v1/namespaces/{ns}/usage`).

use registry::api::model::usage::{NamespaceUsage, UsageFigures};
use registry::storage::HumanBytes;

use crate::admin::print_json;
use registry::core::Namespace;

use crate::cli::Global;
use crate::session::Connection;
use crate::{say, CliError, Io};

/// Runs `namespace show NAME` (`recompute: false`) or `namespace usage
/// NAME [--recompute]` over an open connection.
pub(crate) async fn run(
    g: &Global,
    conn: &Connection,
    name: Namespace,
    recompute: bool,
    io: &mut Io<'_>,
) -> Result<(), CliError> {
    let api = &conn.client;
    if recompute {
        let done = conn.run(api.recompute_usage(&name)).await?;
        if g.json {
            return print_json(io, &done);
        }
        let verdict = if done.before == done.after {
            "the counters were exact".to_owned()
        } else {
            format!(
                "the counters were {} in {} blobs, now {} in {} blobs",
                HumanBytes(done.before.bytes),
                done.before.blobs,
                HumanBytes(done.after.bytes),
                done.after.blobs
            )
        };
        say!(
            io.out,
            "usage of namespace {name} recomputed: {verdict}; {} blob sizes learned, {} blobs \
             missing from storage",
            done.sizes_learned,
            done.sizes_missing
        )?;
    }
    let usage = conn.run(api.namespace_usage(&name)).await?;
    if g.json {
        return print_json(io, &usage);
    }
    say!(io.out, "{}", describe(&usage))
}

/// `field: value` lines, bytes in binary units and exact.
pub(crate) fn describe(u: &NamespaceUsage) -> String {
    let UsageFigures {
        blobs,
        bytes,
        images,
        imagestreams,
        ..
    } = u.usage;
    let quota = match u.quota_bytes {
        None => "-".to_owned(),
        Some(q) => format!("{} ({q} bytes)", HumanBytes(q)),
    };
    // Rounded down: 100% only once the quota is reached.
    let share = match u.quota_bytes {
        Some(q) if q > 0 => format!(", {}% of the quota", bytes.saturating_mul(100) / q),
        _ => String::new(),
    };
    [
        format!("namespace:    {}", u.namespace),
        format!("quota:        {quota}"),
        format!("bytes:        {} ({bytes} bytes{share})", HumanBytes(bytes)),
        format!("blobs:        {blobs}"),
        format!("imagestreams: {imagestreams}"),
        format!("images:       {images}"),
    ]
    .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_as_text() {
        let usage: NamespaceUsage = serde_json::from_value(serde_json::json!({
            "namespace": "team", "quota_bytes": 1073741824,
            "usage": {"blobs": 12, "bytes": 322122547, "images": 7, "imagestreams": 3},
        }))
        .unwrap();
        assert_eq!(
            describe(&usage),
            "namespace:    team\n\
             quota:        1 GiB (1073741824 bytes)\n\
             bytes:        307.2 MiB (322122547 bytes, 29% of the quota)\n\
             blobs:        12\n\
             imagestreams: 3\n\
             images:       7"
        );
        let open: NamespaceUsage = serde_json::from_value(serde_json::json!({
            "namespace": "team", "quota_bytes": null,
            "usage": {"blobs": 0, "bytes": 0, "images": 0, "imagestreams": 0},
        }))
        .unwrap();
        assert!(describe(&open).contains("quota:        -\nbytes:        0 B (0 bytes)\n"));
    }
}
