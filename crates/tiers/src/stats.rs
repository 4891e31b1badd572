//! A tier's counters and request latencies, kept with relaxed atomics and
//! a log-scale histogram (one bucket per power of two of microseconds), so
//! that recording costs a few adds.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

const BUCKETS: usize = 32;

#[derive(Debug, Default)]
pub struct TierStats {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub errors: AtomicU64,
    pub requests: AtomicU64,
    latency_us: [AtomicU64; BUCKETS],
}

/// A copy of a tier's figures at one moment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TierStatsSnapshot {
    pub hits: u64,
    pub misses: u64,
    pub errors: u64,
    /// Round trips (a batch is one).
    pub requests: u64,
    /// Request latency percentiles, in microseconds (upper bounds of
    /// power-of-two buckets; 0 before any request).
    pub latency_p50_us: u64,
    pub latency_p99_us: u64,
    /// Circuit breaker: "closed", "open" or "half-open".
    pub breaker: &'static str,
}

impl TierStats {
    pub fn record_latency(&self, took: Duration) {
        let us = took.as_micros().max(1) as u64;
        let b = (63 - us.leading_zeros() as usize).min(BUCKETS - 1);
        self.latency_us[b].fetch_add(1, Relaxed);
        self.requests.fetch_add(1, Relaxed);
    }

    fn percentile(&self, q: f64) -> u64 {
        let counts: Vec<u64> = self.latency_us.iter().map(|c| c.load(Relaxed)).collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return 0;
        }
        let want = ((total as f64) * q).ceil() as u64;
        let mut seen = 0;
        for (b, &c) in counts.iter().enumerate() {
            seen += c;
            if seen >= want {
                return 1u64 << (b + 1);
            }
        }
        1u64 << BUCKETS
    }

    pub fn snapshot(&self, breaker: &'static str) -> TierStatsSnapshot {
        TierStatsSnapshot {
            hits: self.hits.load(Relaxed),
            misses: self.misses.load(Relaxed),
            errors: self.errors.load(Relaxed),
            requests: self.requests.load(Relaxed),
            latency_p50_us: self.percentile(0.5),
            latency_p99_us: self.percentile(0.99),
            breaker,
        }
    }
}
