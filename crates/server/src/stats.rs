//! The server's own counters: what INFO's stats and commandstats
//! sections and the metrics endpoint report.

use crate::command::TABLE;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

pub struct ServerStats {
    pub calls: Vec<AtomicU64>,
    pub connections_received: AtomicU64,
    pub rejected_connections: AtomicU64,
    pub keyspace_hits: AtomicU64,
    pub keyspace_misses: AtomicU64,
    pub errors: AtomicU64,
    pub protocol_errors: AtomicU64,
    pub net_input_bytes: AtomicU64,
    pub net_output_bytes: AtomicU64,
    /// Commands that waited for the upstream Redis.
    pub upstream_commands: AtomicU64,
    /// Command latency: bucket i counts commands that took under 2^i µs.
    pub latency: [AtomicU64; LATENCY_BUCKETS],
    pub latency_sum_ns: AtomicU64,
    /// Commands per second over the last sampling period.
    pub ops_per_sec: AtomicU64,
}

pub const LATENCY_BUCKETS: usize = 24;

impl Default for ServerStats {
    fn default() -> Self {
        ServerStats {
            calls: TABLE.iter().map(|_| AtomicU64::new(0)).collect(),
            connections_received: AtomicU64::new(0),
            rejected_connections: AtomicU64::new(0),
            keyspace_hits: AtomicU64::new(0),
            keyspace_misses: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            protocol_errors: AtomicU64::new(0),
            net_input_bytes: AtomicU64::new(0),
            net_output_bytes: AtomicU64::new(0),
            upstream_commands: AtomicU64::new(0),
            latency: std::array::from_fn(|_| AtomicU64::new(0)),
            latency_sum_ns: AtomicU64::new(0),
            ops_per_sec: AtomicU64::new(0),
        }
    }
}

impl ServerStats {
    pub fn count(&self, index: usize) {
        if let Some(c) = self.calls.get(index) {
            c.fetch_add(1, Relaxed);
        }
    }

    /// Records `n` commands applied in `took` together (a pipelined
    /// batch), each as taking an equal share: timing every command alone
    /// would cost more than a cached GET.
    pub fn record_batch(&self, took: std::time::Duration, n: u64) {
        if n == 0 {
            return;
        }
        let us = (took.as_nanos() as u64 / n) / 1000;
        let b = (64 - us.leading_zeros() as usize).min(LATENCY_BUCKETS - 1);
        self.latency[b].fetch_add(n, Relaxed);
        self.latency_sum_ns
            .fetch_add(took.as_nanos() as u64, Relaxed);
    }

    pub fn total_commands(&self) -> u64 {
        self.calls.iter().map(|c| c.load(Relaxed)).sum()
    }

    /// Calls per command, for the commands called at least once.
    pub fn by_command(&self) -> Vec<(&'static str, u64)> {
        TABLE
            .iter()
            .zip(&self.calls)
            .map(|(s, c)| (s.name, c.load(Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }
}

/// Milliseconds since the server started, advanced by a ticker: what
/// idle times need, without a clock read per command.
#[derive(Default)]
pub struct CoarseClock {
    ms: AtomicU64,
}

impl CoarseClock {
    pub const TICK: std::time::Duration = std::time::Duration::from_millis(100);

    pub fn now_ms(&self) -> u64 {
        self.ms.load(Relaxed)
    }

    pub fn set(&self, ms: u64) {
        self.ms.store(ms, Relaxed);
    }
}
