//! The namespace usage gauges, `registry_namespace_bytes{namespace}` and
//! `registry_namespace_blobs{namespace}`: read from the metadata store at
//! scrape time (one bounded query), never counted in process, so every
//! replica reports the same figures.
//!
//! Cardinality is capped: the [`NAMESPACE_SERIES`] namespaces storing the
//! most bytes get a series each, and all others are summed under
//! `namespace="_other"` (no namespace can be called that: names start
//! with a letter or digit).

use std::fmt::Write as _;

use registry_storage::UsageSummary;

/// Namespaces with their own usage series; the rest are summed under
/// `_other`.
pub const NAMESPACE_SERIES: usize = 100;

/// The label value of the namespaces beyond the cap.
const OTHER: &str = "_other";

/// Appends both gauges to `out`.
pub(crate) fn render(out: &mut String, summary: &UsageSummary) {
    for (name, help, value) in [
        (
            "registry_namespace_bytes",
            "Bytes of the distinct blobs linked to a namespace's repositories.",
            (|u: &registry_storage::NamespaceUsage| u.bytes) as fn(&_) -> u64,
        ),
        (
            "registry_namespace_blobs",
            "Distinct blobs linked to a namespace's repositories.",
            |u: &registry_storage::NamespaceUsage| u.blobs,
        ),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for (namespace, usage) in &summary.largest {
            let _ = writeln!(out, "{name}{{namespace=\"{namespace}\"}} {}", value(usage));
        }
        if summary.rest != registry_storage::NamespaceUsage::default() {
            let _ = writeln!(
                out,
                "{name}{{namespace=\"{OTHER}\"}} {}",
                value(&summary.rest)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use registry_storage::NamespaceUsage;

    use super::*;

    #[test]
    fn largest_namespaces_then_the_rest() {
        let usage = |bytes, blobs| NamespaceUsage {
            bytes,
            blobs,
            ..NamespaceUsage::default()
        };
        let summary = UsageSummary {
            largest: vec![("big".parse().unwrap(), usage(900, 3))],
            rest: usage(40, 2),
        };
        let mut out = String::new();
        render(&mut out, &summary);
        assert!(out.contains("# TYPE registry_namespace_bytes gauge\n"));
        assert!(out.contains("registry_namespace_bytes{namespace=\"big\"} 900\n"));
        assert!(out.contains("registry_namespace_bytes{namespace=\"_other\"} 40\n"));
        assert!(out.contains("registry_namespace_blobs{namespace=\"big\"} 3\n"));
        assert!(out.contains("registry_namespace_blobs{namespace=\"_other\"} 2\n"));
        let mut empty = String::new();
        render(&mut empty, &UsageSummary::default());
        assert!(!empty.contains("_other"), "no rest, no series: {empty}");
    }
}
