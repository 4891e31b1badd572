//! A count-min sketch of key frequencies in shared memory: 4-bit counters,
//! depth 4, all four counters of a key in one 64-byte block, halved after
//! a sample period so old popularity fades (as in Caffeine).

use crate::mem::Words;
use std::sync::atomic::Ordering::Relaxed;

#[derive(Clone, Copy, Debug)]
pub struct Sketch {
    pub base: u64,
    pub blocks: u64,
    pub ops: u64,
    pub period: u64,
}

const DEPTH: u64 = 4;

impl Sketch {
    /// The offset of the 64-byte block holding the key's counters.
    #[inline(always)]
    pub fn block_of(&self, hash: u64) -> u64 {
        let h = hash.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.base + ((h >> 32) & (self.blocks - 1)) * 64
    }

    /// (word offset, bit shift) of each of the key's four counters.
    fn counters(&self, hash: u64) -> [(u64, u64); DEPTH as usize] {
        let h = hash.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let block = self.block_of(hash);
        let mut out = [(0, 0); DEPTH as usize];
        for (row, slot) in out.iter_mut().enumerate() {
            let idx = (h >> (row as u64 * 5)) & 31;
            let nibble = row as u64 * 32 + idx;
            *slot = (block + (nibble / 16) * 8, (nibble % 16) * 4);
        }
        out
    }

    /// Counts one access to `hash`.
    pub fn increment<W: Words>(&self, w: &W, hash: u64) {
        if self.bump(w, hash) {
            self.count_ops(w, 1);
        }
    }

    /// Raises the key's counters without counting toward the halving
    /// period; readers count their accesses in batches with `count_ops`,
    /// so they do not all hit one shared word.
    ///
    /// Conservative: only the counters at the key's minimum rise, which
    /// keeps cold keys' estimates nearer the truth. Plain loads and stores,
    /// not read-modify-write instructions: a sketch tolerates the rare
    /// increment two writers lose to each other, and a saturated (hot)
    /// key is never written at all, so its line stays shared.
    ///
    /// Returns whether this access counts toward the halving period: a
    /// counter rose, for a key the sketch had seen already. Traffic
    /// dominated by keys already at 15 keeps its history longer, as an
    /// in-process sketch does; and so does traffic full of keys seen
    /// once (scans), which would otherwise age away what the hot keys
    /// earned, one halving per few passes.
    #[inline]
    pub fn bump<W: Words>(&self, w: &W, hash: u64) -> bool {
        let cs = self.counters(hash);
        let mut vals = [0u64; DEPTH as usize];
        for (v, &(off, shift)) in vals.iter_mut().zip(&cs) {
            *v = (w.load(off, Relaxed) >> shift) & 15;
        }
        let min = vals.iter().copied().min().unwrap_or(15);
        if min == 15 {
            return false;
        }
        for (&v, &(off, shift)) in vals.iter().zip(&cs) {
            if v == min {
                // Reloaded: another writer may have raised it meanwhile,
                // and a counter at 15 must not carry into its neighbour.
                let cur = w.load(off, Relaxed);
                if (cur >> shift) & 15 < 15 {
                    w.store(off, cur + (1 << shift), Relaxed);
                }
            }
        }
        min > 0
    }

    /// Adds `n` accesses toward the halving period; the caller whose batch
    /// crosses the period halves every counter.
    pub fn count_ops<W: Words>(&self, w: &W, n: u64) {
        let before = w.fetch_add(self.ops, n, Relaxed);
        if before < self.period && before + n >= self.period {
            self.halve(w);
            w.fetch_add(self.ops, (self.period / 2).wrapping_neg(), Relaxed);
        }
    }

    pub fn estimate<W: Words>(&self, w: &W, hash: u64) -> u32 {
        self.counters(hash)
            .iter()
            .map(|&(off, shift)| ((w.load(off, Relaxed) >> shift) & 15) as u32)
            .min()
            .unwrap_or(0)
    }

    fn halve<W: Words>(&self, w: &W) {
        for i in 0..self.blocks * 8 {
            let off = self.base + i * 8;
            let mut cur = w.load(off, Relaxed);
            loop {
                let halved = (cur >> 1) & 0x7777_7777_7777_7777;
                match w.compare_exchange(off, cur, halved) {
                    Ok(_) => break,
                    Err(now) => cur = now,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::HeapWords;

    #[test]
    fn counts_saturate_and_halve() {
        let w = HeapWords::new(64 * 64 + 64);
        let s = Sketch {
            base: 0,
            blocks: 64,
            ops: 64 * 64,
            period: 1000,
        };
        for _ in 0..20 {
            s.increment(&w, 42);
        }
        assert_eq!(s.estimate(&w, 42), 15);
        assert!(s.estimate(&w, 7) <= 15);
        // Keys seen once do not age the sketch (but for the few that
        // share all their counters with keys seen before).
        for i in 0..500u64 {
            s.increment(&w, (i + 1).wrapping_mul(0x1234_5678_9abc_def1));
        }
        assert_eq!(s.estimate(&w, 42), 15, "one-off keys halved the sketch");
        // Keys seen again do.
        for _ in 0..2 {
            for i in 0..1000u64 {
                s.increment(&w, (i + 1).wrapping_mul(0x1234_5678_9abc_def1));
            }
        }
        assert!(s.estimate(&w, 42) < 15, "halving happened");
    }
}
