//! The cache's counters, and their Prometheus text rendering.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the upstream latency histogram's buckets; a last `+Inf` bucket
/// follows.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// The upstream operation the cache calls.
pub const GET_SECRET_VALUE: &str = "GetSecretValue";

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub coalesced: AtomicU64,
    pub stale_served: AtomicU64,
    pub refreshes_ahead: AtomicU64,
    pub evictions: AtomicU64,
    pub invalidations: AtomicU64,
    pub upstream_get_secret_value: AtomicU64,
    pub upstream_errors: AtomicU64,
    latency_buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    latency_sum_micros: AtomicU64,
}

impl Counters {
    pub fn inc(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub fn observe_latency(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let idx = LATENCY_BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.latency_buckets[idx].fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.latency_sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    pub fn snapshot(&self, entries: usize, inflight: usize) -> CacheMetrics {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut cumulative = 0;
        let mut buckets = Vec::with_capacity(LATENCY_BUCKETS.len() + 1);
        for (i, c) in self.latency_buckets.iter().enumerate() {
            cumulative += load(c);
            let bound = LATENCY_BUCKETS.get(i).copied().unwrap_or(f64::INFINITY);
            buckets.push((bound, cumulative));
        }
        CacheMetrics {
            hits: load(&self.hits),
            misses: load(&self.misses),
            coalesced: load(&self.coalesced),
            stale_served: load(&self.stale_served),
            refreshes_ahead: load(&self.refreshes_ahead),
            evictions: load(&self.evictions),
            invalidations: load(&self.invalidations),
            upstream_calls: vec![(GET_SECRET_VALUE, load(&self.upstream_get_secret_value))],
            upstream_errors: load(&self.upstream_errors),
            upstream_latency: LatencyHistogram {
                buckets,
                sum_seconds: load(&self.latency_sum_micros) as f64 / 1e6,
                count: cumulative,
            },
            entries: entries as u64,
            inflight: inflight as u64,
        }
    }
}

/// Upstream call latency: cumulative counts per upper bound (seconds; the last is +Inf).
#[derive(Debug, Clone, PartialEq)]
pub struct LatencyHistogram {
    pub buckets: Vec<(f64, u64)>,
    pub sum_seconds: f64,
    pub count: u64,
}

/// A point-in-time copy of the cache's counters.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheMetrics {
    /// Reads answered from the cache (including those that also started a refresh ahead).
    pub hits: u64,
    /// Reads that had to wait for upstream (whether they made the call or joined one).
    pub misses: u64,
    /// Misses that joined another reader's upstream call instead of making their own.
    pub coalesced: u64,
    /// Reads answered with an expired value because upstream failed (stale-if-error).
    pub stale_served: u64,
    /// Background refreshes started ahead of expiry.
    pub refreshes_ahead: u64,
    /// Entries dropped to stay within the size bound.
    pub evictions: u64,
    /// `invalidate` / `invalidate_all` calls.
    pub invalidations: u64,
    /// Upstream calls by operation.
    pub upstream_calls: Vec<(&'static str, u64)>,
    /// Upstream calls that failed.
    pub upstream_errors: u64,
    pub upstream_latency: LatencyHistogram,
    /// Entries in the cache now.
    pub entries: u64,
    /// Upstream calls in flight now.
    pub inflight: u64,
}

impl CacheMetrics {
    /// Upstream calls of every operation.
    pub fn upstream_total(&self) -> u64 {
        self.upstream_calls.iter().map(|(_, n)| n).sum()
    }

    /// The counters in Prometheus' text exposition format, each metric named `{prefix}_…`.
    pub fn render_prometheus(&self, prefix: &str) -> String {
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, v: u64| {
            let _ = writeln!(out, "# HELP {prefix}_{name} {help}");
            let _ = writeln!(out, "# TYPE {prefix}_{name} counter");
            let _ = writeln!(out, "{prefix}_{name} {v}");
        };
        counter(
            "cache_hits_total",
            "Reads answered from the cache.",
            self.hits,
        );
        counter(
            "cache_misses_total",
            "Reads that waited for upstream.",
            self.misses,
        );
        counter(
            "cache_coalesced_total",
            "Misses that joined another reader's upstream call.",
            self.coalesced,
        );
        counter(
            "cache_stale_served_total",
            "Expired values served because upstream failed.",
            self.stale_served,
        );
        counter(
            "cache_refresh_ahead_total",
            "Background refreshes started ahead of expiry.",
            self.refreshes_ahead,
        );
        counter(
            "cache_evictions_total",
            "Entries dropped to stay within the size bound.",
            self.evictions,
        );
        counter(
            "cache_invalidations_total",
            "Invalidations requested.",
            self.invalidations,
        );
        counter(
            "upstream_errors_total",
            "Upstream calls that failed.",
            self.upstream_errors,
        );
        let _ = writeln!(out, "# HELP {prefix}_upstream_calls_total Upstream calls.");
        let _ = writeln!(out, "# TYPE {prefix}_upstream_calls_total counter");
        for (op, n) in &self.upstream_calls {
            let _ = writeln!(
                out,
                "{prefix}_upstream_calls_total{{operation=\"{op}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP {prefix}_upstream_latency_seconds Upstream call latency."
        );
        let _ = writeln!(out, "# TYPE {prefix}_upstream_latency_seconds histogram");
        for (bound, n) in &self.upstream_latency.buckets {
            let le = if bound.is_infinite() {
                "+Inf".to_string()
            } else {
                bound.to_string()
            };
            let _ = writeln!(
                out,
                "{prefix}_upstream_latency_seconds_bucket{{le=\"{le}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "{prefix}_upstream_latency_seconds_sum {}",
            self.upstream_latency.sum_seconds
        );
        let _ = writeln!(
            out,
            "{prefix}_upstream_latency_seconds_count {}",
            self.upstream_latency.count
        );
        for (name, help, v) in [
            ("cache_entries", "Entries in the cache.", self.entries),
            (
                "upstream_inflight",
                "Upstream calls in flight.",
                self.inflight,
            ),
        ] {
            let _ = writeln!(out, "# HELP {prefix}_{name} {help}");
            let _ = writeln!(out, "# TYPE {prefix}_{name} gauge");
            let _ = writeln!(out, "{prefix}_{name} {v}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative_and_rendered() {
        let c = Counters::default();
        c.observe_latency(Duration::from_micros(300));
        c.observe_latency(Duration::from_millis(20));
        c.observe_latency(Duration::from_secs(10));
        Counters::inc(&c.hits);
        let m = c.snapshot(3, 0);
        assert_eq!(m.upstream_latency.count, 3);
        assert_eq!(m.upstream_latency.buckets[0], (0.0005, 1));
        assert_eq!(m.upstream_latency.buckets[5], (0.025, 2));
        assert_eq!(m.upstream_latency.buckets.last().unwrap().1, 3);
        let text = m.render_prometheus("keyroll_agent");
        assert!(
            text.contains("keyroll_agent_cache_hits_total 1\n"),
            "{text}"
        );
        assert!(text.contains("keyroll_agent_cache_entries 3\n"), "{text}");
        assert!(text.contains("keyroll_agent_upstream_latency_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(
            text.contains("keyroll_agent_upstream_calls_total{operation=\"GetSecretValue\"} 0\n")
        );
    }
}
