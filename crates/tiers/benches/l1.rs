//! L1 against quick_cache and moka, measured in the same run: get
//! throughput on resident keys with 1 and 2 threads, and hit ratios of a
//! cache-aside loop (get, insert on a miss) on synthetic traces.
//!
//!     cargo bench -p strata-tiers --bench l1 [-- --quick] [--throughput]

use std::sync::Arc;
use std::time::Instant;
use strata_tiers::{L1Config, L1};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Zipf(s) ranks over `n` keys, scattered by a multiplier so that popular
/// keys are not neighbours.
fn zipf(n: u64, s: f64, count: usize, seed: u64) -> Vec<u64> {
    let mut cdf = Vec::with_capacity(n as usize);
    let mut acc = 0.0;
    for r in 1..=n {
        acc += (r as f64).powf(-s);
        cdf.push(acc);
    }
    let mut rng = Rng(seed | 1);
    (0..count)
        .map(|_| {
            let u = rng.unit() * acc;
            let r = cdf.partition_point(|&c| c < u) as u64;
            r.wrapping_mul(0x9E37_79B9_7F4A_7C15) % (n * 8)
        })
        .collect()
}

trait Peer: Send + Sync {
    fn name(&self) -> &'static str;
    fn get(&self, k: u64) -> bool;
    fn insert(&self, k: u64);
}

struct Strata(L1<u64>);
impl Peer for Strata {
    fn name(&self) -> &'static str {
        "strata L1"
    }
    fn get(&self, k: u64) -> bool {
        self.0.get(&k.to_le_bytes()).is_some()
    }
    fn insert(&self, k: u64) {
        self.0.insert(&k.to_le_bytes(), k, 1, None);
    }
}

struct Quick(quick_cache::sync::Cache<u64, u64>);
impl Peer for Quick {
    fn name(&self) -> &'static str {
        "quick_cache"
    }
    fn get(&self, k: u64) -> bool {
        self.0.get(&k).is_some()
    }
    fn insert(&self, k: u64) {
        self.0.insert(k, k);
    }
}

struct Moka(moka::sync::Cache<u64, u64>);
impl Peer for Moka {
    fn name(&self) -> &'static str {
        "moka"
    }
    fn get(&self, k: u64) -> bool {
        self.0.get(&k).is_some()
    }
    fn insert(&self, k: u64) {
        self.0.insert(k, k);
    }
}

fn peers(cap: u64) -> Vec<Arc<dyn Peer>> {
    vec![
        Arc::new(Strata(L1::new(&L1Config::new(cap)))),
        Arc::new(Quick(quick_cache::sync::Cache::new(cap as usize))),
        Arc::new(Moka(moka::sync::Cache::new(cap))),
    ]
}

fn throughput(quick: bool) {
    let cap = 100_000u64;
    let per_thread = if quick { 1_000_000 } else { 10_000_000 };
    println!(
        "## get throughput: {cap} resident keys, Zipf 0.99 reads, {per_thread} gets per thread\n"
    );
    println!("| cache | threads | M gets/s | vs quick_cache |");
    println!("|---|---|---|---|");
    // Keys all resident: draw from the key ids the caches were filled with.
    let ids: Vec<u64> = (0..cap)
        .map(|r| r.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .collect();
    let ranks = zipf(cap, 0.99, per_thread, 7);
    let keys: Arc<Vec<u64>> = Arc::new(ranks.iter().map(|&k| ids[(k % cap) as usize]).collect());
    for threads in [1usize, 2] {
        let mut rows = Vec::new();
        for p in peers(cap + cap / 4) {
            for &k in &ids {
                p.insert(k);
            }
            let start = Instant::now();
            std::thread::scope(|s| {
                for t in 0..threads {
                    let p = p.clone();
                    let keys = keys.clone();
                    s.spawn(move || {
                        let mut hits = 0u64;
                        let off = t * 7919;
                        for i in 0..keys.len() {
                            hits += u64::from(p.get(keys[(i + off) % keys.len()]));
                        }
                        std::hint::black_box(hits);
                    });
                }
            });
            let secs = start.elapsed().as_secs_f64();
            rows.push((p.name(), (threads * per_thread) as f64 / secs / 1e6));
        }
        let quick = rows
            .iter()
            .find(|r| r.0 == "quick_cache")
            .map_or(1.0, |r| r.1);
        for (name, mops) in rows {
            println!("| {name} | {threads} | {mops:.2} | {:.2}x |", mops / quick);
        }
    }
    println!();
}

fn hit_ratios(quick: bool) {
    let keys = if quick { 100_000 } else { 1_000_000 };
    let n = if quick { 1_000_000 } else { 10_000_000 };
    println!("## hit ratio, cache-aside, capacity 1% of {keys} keys ({n} requests)\n");
    let mut traces: Vec<(String, Vec<u64>)> = Vec::new();
    for s in [0.8, 0.99, 1.2] {
        traces.push((format!("zipf-{s}"), zipf(keys, s, n, 11)));
    }
    // Zipf 0.99 and a scan of fresh keys, interleaved 1:1.
    let z = zipf(keys, 0.99, n / 2, 13);
    let mix = z
        .iter()
        .enumerate()
        .flat_map(|(i, &k)| [k, u64::MAX / 2 + i as u64])
        .collect();
    traces.push(("scan-mix".into(), mix));
    // A loop over N+1 keys in a cache of N/2 is the next table's row.
    let cap = keys / 100;
    let loop_trace: Vec<u64> = (0..n as u64).map(|i| i % (2 * cap + 1)).collect();
    traces.push(("loop N+1 in N/2".into(), loop_trace));
    println!("| trace | strata L1 | quick_cache | moka |");
    println!("|---|---|---|---|");
    for (name, t) in &traces {
        let mut cells = Vec::new();
        for p in peers(cap) {
            let mut hits = 0u64;
            for &k in t {
                if p.get(k) {
                    hits += 1;
                } else {
                    p.insert(k);
                }
            }
            cells.push(format!("{:.1}", 100.0 * hits as f64 / t.len() as f64));
        }
        println!("| {name} | {} |", cells.join(" | "));
    }
    println!();
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    throughput(quick);
    // Repeated runs of the throughput half alone, to see past the noise.
    if !std::env::args().any(|a| a == "--throughput") {
        hit_ratios(quick);
    }
}
