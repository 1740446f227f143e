//! What a namespace stores: the counters quotas are checked against.
//!
//! A namespace's usage counts the distinct blobs linked to any of its
//! repositories: a blob linked from three repositories of one namespace
//! counts once there, and once in every other namespace that links it.
//! Backends keep the byte and blob counters exact in the same transaction
//! as every change of links, and refuse a link that would take the bytes
//! past the namespace's quota (see [`crate::MetadataStore`]).

use std::fmt;

use registry_core::Namespace;

/// Usage of one namespace.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NamespaceUsage {
    /// Bytes of the distinct blobs linked to its repositories (a blob whose
    /// size the store does not know yet counts 0 until a recount learns it).
    pub bytes: u64,
    /// Distinct blobs linked to its repositories.
    pub blobs: u64,
    /// Its repositories (ImageStreams).
    pub imagestreams: u64,
    /// Manifests stored in its repositories (one per repository holding it).
    pub images: u64,
}

/// Usage of one repository (an ImageStream): its own links, so a blob
/// shared with another repository of the namespace counts in both.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RepositoryUsage {
    /// Bytes of the blobs linked to it.
    pub bytes: u64,
    /// Blobs linked to it.
    pub blobs: u64,
    /// Manifests stored in it.
    pub images: u64,
    /// Tags it has now.
    pub tags: u64,
}

/// The namespaces storing the most bytes, and the sum of all the others:
/// what metrics export without one series per namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageSummary {
    /// The largest namespaces by bytes, largest first (ties by name), with
    /// their byte and blob counters (the other counts are 0 here).
    pub largest: Vec<(Namespace, NamespaceUsage)>,
    /// Bytes and blobs of every other namespace, summed.
    pub rest: NamespaceUsage,
}

/// What a recount of a namespace's usage found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UsageRecount {
    /// The counters before the recount.
    pub before: NamespaceUsage,
    /// The counters rebuilt from the links.
    pub after: NamespaceUsage,
}

/// A byte count in binary units for people: `1.2 GiB`, `300 MiB`, `512 B`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanBytes(pub u64);

impl fmt::Display for HumanBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
        let bytes = self.0;
        if bytes < 1024 {
            return write!(f, "{bytes} B");
        }
        // Display only: f64 is precise enough for one decimal.
        let mut value = bytes as f64 / 1024.0;
        let mut unit = 0;
        // Compared rounded, so that 1023.97 KiB reads "1 MiB", not "1024 KiB".
        while (value * 10.0).round() >= 10240.0 && unit + 1 < UNITS.len() {
            value /= 1024.0;
            unit += 1;
        }
        let rounded = (value * 10.0).round() / 10.0;
        if rounded.fract() == 0.0 {
            write!(f, "{rounded:.0} {}", UNITS[unit])
        } else {
            write!(f, "{rounded:.1} {}", UNITS[unit])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::HumanBytes;

    #[test]
    fn human_bytes() {
        assert_eq!(HumanBytes(0).to_string(), "0 B");
        assert_eq!(HumanBytes(1023).to_string(), "1023 B");
        assert_eq!(HumanBytes(1024).to_string(), "1 KiB");
        assert_eq!(HumanBytes(1536).to_string(), "1.5 KiB");
        assert_eq!(HumanBytes(300 << 20).to_string(), "300 MiB");
        assert_eq!(HumanBytes((1 << 30) + (1 << 30) / 5).to_string(), "1.2 GiB");
        assert_eq!(HumanBytes(u64::MAX).to_string(), "16 EiB");
        assert_eq!(HumanBytes((1 << 20) - 10).to_string(), "1 MiB");
        assert_eq!(HumanBytes(1_000_000).to_string(), "976.6 KiB");
    }
}
