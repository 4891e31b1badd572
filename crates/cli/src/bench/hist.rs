//! A log-linear latency histogram: exact below 1 µs, then 128 steps per
//! power of two (under 1% error), mergeable across processes.

const EXACT: u64 = 1024;
const SUB: u64 = 128;
const BUCKETS: usize = (EXACT + 54 * SUB) as usize;

pub struct Hist {
    counts: Vec<u64>,
}

fn bucket(v: u64) -> usize {
    if v < EXACT {
        return v as usize;
    }
    let e = 63 - v.leading_zeros() as u64;
    let m = (v >> (e - 7)) & (SUB - 1);
    (EXACT + (e - 10) * SUB + m) as usize
}

fn lower_bound(b: usize) -> u64 {
    let b = b as u64;
    if b < EXACT {
        return b;
    }
    let e = (b - EXACT) / SUB + 10;
    let m = (b - EXACT) % SUB;
    (1 << e) | (m << (e - 7))
}

impl Default for Hist {
    fn default() -> Hist {
        Hist::new()
    }
}

impl Hist {
    pub fn new() -> Hist {
        Hist {
            counts: vec![0; BUCKETS],
        }
    }

    #[inline(always)]
    pub fn record(&mut self, ns: u64) {
        self.counts[bucket(ns).min(BUCKETS - 1)] += 1;
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    pub fn merge(&mut self, other: &Hist) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
    }

    /// The value below which `q` of the samples fall.
    pub fn quantile(&self, q: f64) -> u64 {
        let total = self.total();
        if total == 0 {
            return 0;
        }
        let want = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (b, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= want {
                return lower_bound(b);
            }
        }
        lower_bound(BUCKETS - 1)
    }

    pub fn to_json(&self) -> serde_json::Value {
        let pairs: Vec<[u64; 2]> = self
            .counts
            .iter()
            .enumerate()
            .filter(|(_, &c)| c > 0)
            .map(|(b, &c)| [b as u64, c])
            .collect();
        serde_json::json!(pairs)
    }

    pub fn from_json(v: &serde_json::Value) -> Hist {
        let mut h = Hist::new();
        for pair in v.as_array().into_iter().flatten() {
            let b = pair[0].as_u64().unwrap_or(0) as usize;
            let c = pair[1].as_u64().unwrap_or(0);
            if b < BUCKETS {
                h.counts[b] += c;
            }
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_close() {
        let mut h = Hist::new();
        for v in 1..=100_000u64 {
            h.record(v);
        }
        let p50 = h.quantile(0.5) as f64;
        assert!((p50 - 50_000.0).abs() / 50_000.0 < 0.01, "{p50}");
        assert_eq!(h.quantile(0.00001), 1);
        let round = Hist::from_json(&h.to_json());
        assert_eq!(round.quantile(0.99), h.quantile(0.99));
    }
}
