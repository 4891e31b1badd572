//! Miss-ratio curves: LRU's for every size at once from stack distances
//! (Mattson et al., 1970), exact or from a spatial sample of the keys
//! (SHARDS, Waldspurger et al., FAST 2015), and Belady's OPT by replay.
//!
//! A request's stack distance is the number of distinct keys (or their
//! bytes) requested since its key's previous request, itself included:
//! LRU of capacity C hits exactly the requests whose distance is at most
//! C. A Fenwick tree over request times, with a mark at each key's latest
//! request, counts the distinct keys in between in O(log n).

use std::collections::{BinaryHeap, HashMap};

/// Keys sampled: those whose hash falls under `rate` × 2^24.
const SAMPLE_MODULUS: u64 = 1 << 24;

/// The stack distances of a trace: sorted, with the bytes of the
/// requests at each, so that hit and byte hit ratios at any size are one
/// binary search.
pub struct Mrc {
    /// (distance, size of the request), sorted by distance; first
    /// requests (infinite distance) are left out.
    distances: Vec<(u64, u64)>,
    /// Prefix sums of the sizes over `distances`.
    bytes_prefix: Vec<u64>,
    /// Requests and their bytes, including cold ones (sampled ones
    /// corrected to the expected count, SHARDS-adj).
    requests: f64,
    bytes: f64,
    /// Extra hits credited at the smallest distance by the SHARDS-adj
    /// correction (may be negative).
    adjust: f64,
    pub sample_rate: f64,
}

struct Fenwick(Vec<u64>);

impl Fenwick {
    fn add(&mut self, mut i: usize, v: u64, neg: bool) {
        i += 1;
        while i < self.0.len() {
            if neg {
                self.0[i] -= v;
            } else {
                self.0[i] += v;
            }
            i += i & i.wrapping_neg();
        }
    }
    /// The sum over positions 0 ..= i.
    fn prefix(&self, i: usize) -> u64 {
        let mut i = i + 1;
        let mut s = 0;
        while i > 0 {
            s += self.0[i];
            i -= i & i.wrapping_neg();
        }
        s
    }
}

/// Whether SHARDS samples `key`. The hash must scatter small integers
/// well (key 0 is often a trace's hottest), hence a full mixer.
pub fn sampled(key: u64, threshold: u64) -> bool {
    let mut z = key.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) % SAMPLE_MODULUS < threshold
}

impl Mrc {
    /// The curve of `keys`, by entries (`weights` None) or by bytes, from
    /// the keys that `rate` samples (1.0: every key, exact).
    pub fn build(
        keys: &[u64],
        sizes: &[u32],
        by_bytes: bool,
        rate: f64,
        mut tick: impl FnMut(usize),
    ) -> Mrc {
        let threshold = ((rate * SAMPLE_MODULUS as f64).round() as u64).clamp(1, SAMPLE_MODULUS);
        let exact = threshold == SAMPLE_MODULUS;
        let rate = threshold as f64 / SAMPLE_MODULUS as f64;
        let n_sampled = if exact {
            keys.len()
        } else {
            keys.iter().filter(|&&k| sampled(k, threshold)).count()
        };
        let mut tree = Fenwick(vec![0; n_sampled + 1]);
        let mut last: HashMap<u64, (usize, u64)> = HashMap::with_capacity(n_sampled / 4);
        let mut distances = Vec::with_capacity(n_sampled);
        let (mut total_bytes, mut t) = (0u64, 0usize);
        for (i, (&k, &size)) in keys.iter().zip(sizes).enumerate() {
            if i & 0xFFFFF == 0 {
                tick(i);
            }
            if !exact && !sampled(k, threshold) {
                continue;
            }
            let size = u64::from(size);
            let w = if by_bytes { size } else { 1 };
            total_bytes += size;
            if let Some((p, pw)) = last.insert(k, (t, w)) {
                // Distinct keys since p, this one included.
                let between = tree.prefix(t.saturating_sub(1)) - tree.prefix(p);
                let d = between + w;
                // Scaled to the whole trace's size.
                let d = if exact {
                    d
                } else {
                    (d as f64 / rate).round() as u64
                };
                distances.push((d, size));
                tree.add(p, pw, true);
            }
            tree.add(t, w, false);
            t += 1;
        }
        distances.sort_unstable();
        let mut acc = 0;
        let bytes_prefix = distances
            .iter()
            .map(|&(_, s)| {
                acc += s;
                acc
            })
            .collect();
        // SHARDS-adj: the sample may hold more or fewer requests than
        // its rate promises; the difference is credited to (or taken
        // from) the smallest distances, which bounds the error there.
        let expected = keys.len() as f64 * rate;
        let adjust = if exact {
            0.0
        } else {
            expected - n_sampled as f64
        };
        let scale = if n_sampled == 0 {
            0.0
        } else {
            expected / n_sampled as f64
        };
        Mrc {
            distances,
            bytes_prefix,
            requests: expected.max(1.0),
            bytes: (total_bytes as f64 * scale).max(1.0),
            adjust,
            sample_rate: rate,
        }
    }

    /// LRU's hit ratio at `capacity` (entries or bytes, as built).
    pub fn hit_ratio(&self, capacity: u64) -> f64 {
        let n = self.distances.partition_point(|&(d, _)| d <= capacity);
        let adj = if n > 0 { self.adjust } else { 0.0 };
        ((n as f64 + adj) / self.requests).clamp(0.0, 1.0)
    }

    /// LRU's byte hit ratio at `capacity`.
    pub fn byte_hit_ratio(&self, capacity: u64) -> f64 {
        let n = self.distances.partition_point(|&(d, _)| d <= capacity);
        let hit_bytes = if n == 0 { 0 } else { self.bytes_prefix[n - 1] };
        let scale = if self.adjust != 0.0 {
            self.requests / (self.requests - self.adjust)
        } else {
            1.0
        };
        (hit_bytes as f64 * scale / self.bytes).clamp(0.0, 1.0)
    }

    /// The smallest capacity at which LRU reaches `target`, if any.
    pub fn size_for(&self, target: f64) -> Option<u64> {
        let want = target * self.requests - self.adjust;
        if want <= 0.0 {
            return self.distances.first().map(|d| d.0);
        }
        let idx = want.ceil() as usize;
        self.distances.get(idx.checked_sub(1)?).map(|d| d.0)
    }
}

/// Belady's OPT (evict the key requested furthest in the future) with
/// unit sizes: the hits at `capacity` entries.
pub fn opt_hits(keys: &[u64], capacity: usize) -> u64 {
    if capacity == 0 {
        return 0;
    }
    let mut next = vec![usize::MAX; keys.len()];
    let mut seen: HashMap<u64, usize> = HashMap::with_capacity(keys.len() / 4);
    for i in (0..keys.len()).rev() {
        if let Some(&j) = seen.get(&keys[i]) {
            next[i] = j;
        }
        seen.insert(keys[i], i);
    }
    drop(seen);
    // Resident keys with their next request; the heap holds (next, key)
    // pairs, stale ones skipped on pop.
    let mut resident: HashMap<u64, usize> = HashMap::with_capacity(capacity * 2);
    let mut heap: BinaryHeap<(usize, u64)> = BinaryHeap::with_capacity(capacity * 2);
    let mut hits = 0;
    for (i, &k) in keys.iter().enumerate() {
        if let Some(n) = resident.get_mut(&k) {
            hits += 1;
            *n = next[i];
            heap.push((next[i], k));
            continue;
        }
        if next[i] == usize::MAX {
            // Never requested again: OPT does not keep it.
            continue;
        }
        while resident.len() >= capacity {
            let Some((n, victim)) = heap.pop() else { break };
            if resident.get(&victim) == Some(&n) {
                if n < next[i] {
                    // Every resident key is wanted sooner than this one.
                    heap.push((n, victim));
                    break;
                }
                resident.remove(&victim);
            }
        }
        if resident.len() < capacity {
            resident.insert(k, next[i]);
            heap.push((next[i], k));
        }
        if heap.len() > 4 * capacity + 1024 {
            heap.retain(|&(n, key)| resident.get(&key) == Some(&n));
        }
    }
    hits
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_tiers::policy::PolicyKind;

    fn trace(seed: u64, n: usize, keys: u64) -> Vec<u64> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let u = (x >> 11) as f64 / (1u64 << 53) as f64;
                (u * u * keys as f64) as u64
            })
            .collect()
    }

    fn lru_hits(keys: &[u64], sizes: &[u32], cap: u64) -> u64 {
        let mut p = PolicyKind::Lru.build(cap, 16);
        let mut ev = Vec::new();
        keys.iter()
            .zip(sizes)
            .map(|(&k, &s)| u64::from(p.access(k, s, &mut ev)))
            .sum()
    }

    #[test]
    fn the_exact_curve_equals_lru_replays_at_every_size() {
        let keys = trace(7, 20_000, 3_000);
        let ones = vec![1u32; keys.len()];
        let m = Mrc::build(&keys, &ones, false, 1.0, |_| {});
        for cap in [1u64, 2, 5, 17, 100, 333, 1000, 2999, 5000] {
            let want = lru_hits(&keys, &ones, cap) as f64 / keys.len() as f64;
            assert!(
                (m.hit_ratio(cap) - want).abs() < 1e-12,
                "cap {cap}: {} vs {want}",
                m.hit_ratio(cap)
            );
        }
        // By bytes, with each key's size fixed, the curve is exact too.
        let sizes: Vec<u32> = keys.iter().map(|k| 1 + (k % 7) as u32).collect();
        let m = Mrc::build(&keys, &sizes, true, 1.0, |_| {});
        for cap in [50u64, 400, 2_000, 9_000] {
            let want = lru_hits(&keys, &sizes, cap) as f64 / keys.len() as f64;
            assert!((m.hit_ratio(cap) - want).abs() < 1e-12, "bytes {cap}");
        }
        let target = m.hit_ratio(2_000);
        let at = m.size_for(target).expect("reachable");
        assert!(at <= 2_000 && m.hit_ratio(at) >= target);
    }

    /// SHARDS at a 10% rate stays within 0.02 of the exact curve on a
    /// skewed trace of a million requests, at sizes where the sample holds
    /// 100 entries or more (docs/sizing.md gives the error measured on the
    /// suite; below that it grows).
    #[test]
    fn the_sampled_curve_is_close_to_the_exact_one() {
        let keys = trace(11, 1_000_000, 200_000);
        let ones = vec![1u32; keys.len()];
        let exact = Mrc::build(&keys, &ones, false, 1.0, |_| {});
        let sampled = Mrc::build(&keys, &ones, false, 0.1, |_| {});
        let worst = [1_000u64, 5_000, 20_000, 50_000, 100_000]
            .iter()
            .map(|&c| (exact.hit_ratio(c) - sampled.hit_ratio(c)).abs())
            .fold(0.0, f64::max);
        assert!(worst < 0.02, "worst error {worst}");
    }

    #[test]
    fn opt_is_optimal_on_small_traces() {
        // Classic example: with 2 slots, OPT misses only the first
        // requests and the one forced eviction.
        let keys = [1, 2, 3, 1, 2, 1, 3];
        assert_eq!(opt_hits(&keys, 2), 3);
        let keys = trace(3, 5_000, 400);
        for cap in [1usize, 10, 50, 200] {
            let opt = opt_hits(&keys, cap);
            for kind in PolicyKind::ALL {
                let mut p = kind.build(cap as u64, cap);
                let mut ev = Vec::new();
                let hits: u64 = keys
                    .iter()
                    .map(|&k| u64::from(p.access(k, 1, &mut ev)))
                    .sum();
                assert!(opt >= hits, "{kind} at {cap}: {hits} > opt {opt}");
            }
        }
    }
}
