//! Exporting a cache's figures through the `metrics` facade (feature
//! `metrics`): whatever recorder the application installed (Prometheus,
//! StatsD, ...) gets every figure of [`Cache::stats`], labelled with the
//! cache's name. Call `record_metrics` periodically, or before a scrape.

use crate::cache::Cache;
use crate::error::Result;

/// Figures that only grow: recorded as counters, the others as gauges.
const COUNTERS: &[&str] = &[
    "hits",
    "misses",
    "inserts",
    "updates",
    "deletes",
    "evictions",
    "expirations",
    "rejections",
    "repairs",
    "slab_reassigns",
    "l2_hits",
    "l2_misses",
    "l2_errors",
    "l2_requests",
    "promotions",
    "write_back_flushed",
    "write_back_errors",
    "computes",
    "coalesced_waits",
    "early_refreshes",
    "invalidations_sent",
    "invalidations_received",
    "invalidation_gaps",
];

impl Cache {
    /// Records every figure of `stats()` as `strata_<figure>`, labelled
    /// `cache = <name>`.
    pub fn record_metrics(&self) -> Result<()> {
        let s = self.stats()?;
        let cache = self.segment().name().to_string();
        let mut figures: Vec<(&str, u64)> = s.l0.fields().to_vec();
        figures.extend([
            ("l0_latency_p50_ns", s.l0_latency.p50_ns),
            ("l0_latency_p99_ns", s.l0_latency.p99_ns),
        ]);
        if let Some(l2) = &s.l2 {
            figures.extend([
                ("l2_hits", l2.hits),
                ("l2_misses", l2.misses),
                ("l2_errors", l2.errors),
                ("l2_requests", l2.requests),
                ("l2_latency_p50_us", l2.latency_p50_us),
                ("l2_latency_p99_us", l2.latency_p99_us),
                ("l2_breaker_open", u64::from(l2.breaker != "closed")),
            ]);
        }
        figures.extend([
            ("promotions", s.promotions),
            ("write_back_pending", s.write_back_pending),
            ("write_back_lag_ms", s.write_back_lag_ms),
            ("write_back_flushed", s.write_back_flushed),
            ("write_back_errors", s.write_back_errors),
            ("computes", s.computes),
            ("coalesced_waits", s.coalesced_waits),
            ("early_refreshes", s.early_refreshes),
            ("invalidations_sent", s.invalidations_sent),
            ("invalidations_received", s.invalidations_received),
            ("invalidation_gaps", s.invalidation_gaps),
        ]);
        for (name, value) in figures {
            let key = format!("strata_{name}");
            if COUNTERS.contains(&name) {
                metrics::counter!(key, "cache" => cache.clone()).absolute(value);
            } else {
                metrics::gauge!(key, "cache" => cache.clone()).set(value as f64);
            }
        }
        Ok(())
    }
}
