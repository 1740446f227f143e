//! The proxy namespaces' counters: `registry_proxy_requests_total`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Requests for manifests and blobs of proxy namespaces, by outcome.
#[derive(Debug, Default)]
pub struct ProxyCounters {
    hit: AtomicU64,
    miss: AtomicU64,
    stale: AtomicU64,
    error: AtomicU64,
}

impl ProxyCounters {
    /// Served from the cache (fresh, or revalidated unchanged).
    pub(crate) fn record_hit(&self) {
        self.hit.fetch_add(1, Relaxed);
    }

    /// Fetched from the upstream.
    pub(crate) fn record_miss(&self) {
        self.miss.fetch_add(1, Relaxed);
    }

    /// Served from the cache because the upstream failed (stale-if-error).
    pub(crate) fn record_stale(&self) {
        self.stale.fetch_add(1, Relaxed);
    }

    /// The upstream failed (or served wrong bytes) with nothing to stand in.
    pub(crate) fn record_error(&self) {
        self.error.fetch_add(1, Relaxed);
    }

    /// The count of one outcome: `hit`, `miss`, `stale` or `error` (0 for
    /// anything else).
    pub fn get(&self, result: &str) -> u64 {
        match result {
            "hit" => self.hit.load(Relaxed),
            "miss" => self.miss.load(Relaxed),
            "stale" => self.stale.load(Relaxed),
            "error" => self.error.load(Relaxed),
            _ => 0,
        }
    }

    pub(crate) fn render(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP registry_proxy_requests_total Manifest and blob requests of proxy \
             namespaces by result: hit (cache), miss (fetched upstream), stale (cache served \
             because the upstream failed), error (upstream failed, nothing cached).\n\
             # TYPE registry_proxy_requests_total counter"
        );
        for result in ["hit", "miss", "stale", "error"] {
            let _ = writeln!(
                out,
                "registry_proxy_requests_total{{result=\"{result}\"}} {}",
                self.get(result)
            );
        }
    }
}
