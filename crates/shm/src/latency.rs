//! How long this process's reads of L0 take: one read in 64 per thread is
//! timed, so that the figure costs the hot path a thread-local count and
//! a branch. Kept per process, in ordinary memory, not in the segment.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

/// One read in this many, per thread, is timed.
pub const SAMPLE_EVERY: u32 = 64;

/// Log-linear buckets: 8 per power of two, up to 2^32 ns.
const SUB: usize = 8;
const OCTAVES: usize = 32;
const BUCKETS: usize = SUB * OCTAVES;

thread_local! {
    static TICK: Cell<u32> = const { Cell::new(0) };
}

/// Percentiles of the sampled read latency.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LatencySnapshot {
    /// Reads timed so far.
    pub samples: u64,
    /// Upper bounds of the buckets holding the 50th and 99th percentile
    /// (within 1/8 of the true value); 0 before any sample.
    pub p50_ns: u64,
    pub p99_ns: u64,
}

pub struct ReadLatency {
    buckets: Box<[AtomicU64; BUCKETS]>,
}

impl Default for ReadLatency {
    fn default() -> Self {
        ReadLatency {
            buckets: Box::new(std::array::from_fn(|_| AtomicU64::new(0))),
        }
    }
}

fn bucket(ns: u64) -> usize {
    if ns < SUB as u64 {
        return ns as usize;
    }
    let octave = 63 - ns.leading_zeros() as usize; // >= 3
    let sub = ((ns >> (octave - 3)) & (SUB as u64 - 1)) as usize;
    ((octave - 2) * SUB + sub).min(BUCKETS - 1)
}

/// The largest value that falls in bucket `b`.
fn upper(b: usize) -> u64 {
    if b < SUB {
        return b as u64;
    }
    let octave = b / SUB + 2;
    let sub = (b % SUB) as u64;
    ((SUB as u64 + sub + 1) << (octave - 3)) - 1
}

impl ReadLatency {
    /// Called as a read starts: Some(start) for the reads to time.
    #[inline(always)]
    pub fn start() -> Option<Instant> {
        TICK.with(|t| {
            let n = t.get().wrapping_add(1);
            t.set(n);
            (n % SAMPLE_EVERY == 0).then(Instant::now)
        })
    }

    #[inline(always)]
    pub fn finish(&self, started: Option<Instant>) {
        if let Some(s) = started {
            self.record(s.elapsed().as_nanos() as u64);
        }
    }

    #[cold]
    fn record(&self, ns: u64) {
        self.buckets[bucket(ns)].fetch_add(1, Relaxed);
    }

    pub fn snapshot(&self) -> LatencySnapshot {
        let counts: Vec<u64> = self.buckets.iter().map(|b| b.load(Relaxed)).collect();
        let samples: u64 = counts.iter().sum();
        let at = |q: f64| {
            if samples == 0 {
                return 0;
            }
            let want = ((samples as f64 * q).ceil() as u64).max(1);
            let mut seen = 0;
            for (b, c) in counts.iter().enumerate() {
                seen += c;
                if seen >= want {
                    return upper(b);
                }
            }
            upper(BUCKETS - 1)
        };
        LatencySnapshot {
            samples,
            p50_ns: at(0.50),
            p99_ns: at(0.99),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_values_within_an_eighth() {
        for ns in [0u64, 1, 7, 8, 9, 15, 16, 100, 1000, 123_456, 10_000_000_000] {
            let b = bucket(ns);
            assert!(upper(b) >= ns.min(upper(BUCKETS - 1)), "{ns} -> {b}");
            if ns >= 8 && b + 1 < BUCKETS {
                assert!(
                    upper(b) - ns <= ns / 8 + 1,
                    "{ns}: bucket bound {}",
                    upper(b)
                );
            }
            if b > 0 {
                assert!(upper(b - 1) < ns, "{ns}");
            }
        }
    }

    #[test]
    fn percentiles_come_from_the_samples() {
        let l = ReadLatency::default();
        for _ in 0..98 {
            l.record(100);
        }
        l.record(5000);
        l.record(5000);
        let s = l.snapshot();
        assert_eq!(s.samples, 100);
        assert!((100..=112).contains(&s.p50_ns), "{s:?}");
        assert!((5000..=5600).contains(&s.p99_ns), "{s:?}");
    }
}
