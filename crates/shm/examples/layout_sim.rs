//! What a read would cost under other index layouts: the memory accesses
//! alone, without the rest of a lookup, timed one read at a time over
//! 200k keys with Zipf 0.99, on this machine's memory and page size.
//!
//!   A  layout version 1: an index word, then the block header and the
//!      line after it, in a random block of the arena (two dependent loads).
//!   B  one 64-byte entry per key in a table that holds everything a view
//!      needs (one load).
//!   C  layout versions 2 and 3 (today's; 3 changed only where values
//!      sit): a bucket of one tag line followed by
//!      its eight 64-byte entries: the tag line, then an entry in the same
//!      576 bytes (two dependent loads, one page; the real reader also
//!      prefetches the first two entries with the tag line, which this
//!      does not model).
//!   D  a bucket of four 64-byte entries (256 bytes) at most half full:
//!      the link words of the entries up to the key's, then its fields
//!      (independent loads within one bucket).
//!
//! The sizes follow the benchmark's segment under layout version 1 (an
//! arena of 1.4 GB, two index slots per KiB, one table entry per KiB);
//! version 2 sizes the index for one entry per 4 KiB, a quarter as many.
//!
//!   cargo run --release -p strata-shm --example layout_sim [-- DIR]

mod common;

use common::{scratch_region, zipf_pattern, Rng};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;
use strata_shm::mem::Words;

const KEYS: usize = 200_000;
/// The spacing of blocks: about the plain size class of a 4 KiB value
/// with its header (4800 bytes), as layout version 1 spaced them.
const BLOCK: u64 = 4864;

fn main() -> std::io::Result<()> {
    let dir =
        std::path::PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "/dev/shm".into()));
    let n = KEYS as u64;
    let arena_len = n * BLOCK * 5 / 4 + (256 << 20);
    let slots = 2 * (arena_len / 1024);
    let entries = arena_len / 1024;
    let buckets = slots / 8;
    let arena = scratch_region(&dir, "arena", arena_len)?;
    let index = scratch_region(&dir, "index", slots * 8)?;
    let table = scratch_region(&dir, "table", entries * 64)?;
    let grouped = scratch_region(&dir, "grouped", buckets * 576)?;
    // D: two slots per KiB in buckets of four 64-byte entries.
    let quads = slots / 4;
    let quad = scratch_region(&dir, "quad", quads * 256)?;

    let mut rng = Rng(0x1234_5678);
    let mut order: Vec<u64> = (0..n).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let slot: Vec<u64> = (0..n).map(|_| rng.below(slots)).collect();
    let entry: Vec<u64> = (0..n).map(|_| rng.below(entries)).collect();
    let group: Vec<(u64, u64)> = (0..n).map(|_| (rng.below(buckets), rng.below(8))).collect();
    // At half load a key sits at position 0 or 1 of its bucket mostly.
    let quad_pos: Vec<(u64, u64)> = (0..n)
        .map(|_| (rng.below(quads), [0, 0, 0, 1, 1, 2][rng.below(6) as usize]))
        .collect();
    for i in 0..KEYS {
        let b = order[i] * BLOCK;
        index.store(slot[i] * 8, b, Relaxed);
        arena.store(b, i as u64, Relaxed);
        arena.store(b + 64, i as u64, Relaxed);
        table.store(entry[i] * 64, i as u64, Relaxed);
        let (g, s) = group[i];
        grouped.store(g * 576 + s * 8, s, Relaxed);
        grouped.store(g * 576 + 64 + s * 64, i as u64, Relaxed);
        let (q, p) = quad_pos[i];
        quad.store(q * 256 + p * 64 + 8, i as u64, Relaxed);
    }

    let pattern = zipf_pattern(n, 1_000_000, &mut rng);

    println!(
        "layout sim in {}: {KEYS} keys, Zipf 0.99, ns per read (incl. timer)",
        dir.display()
    );
    for round in 0..3 {
        for mode in ["A", "B", "C", "D"] {
            let mut lat = Vec::with_capacity(pattern.len());
            let mut sum = 0u64;
            for &k in &pattern {
                let t = Instant::now();
                sum += match mode {
                    "A" => {
                        let b = index.load(slot[k] * 8, Relaxed);
                        arena.load(b, Relaxed) + arena.load(b + 64, Relaxed)
                    }
                    "B" => table.load(entry[k] * 64, Relaxed),
                    "D" => {
                        let (q, p) = quad_pos[k];
                        let mut words = 0;
                        for e in 0..=p {
                            words += quad.load(q * 256 + e * 64, Relaxed);
                        }
                        words + quad.load(q * 256 + p * 64 + 8, Relaxed)
                    }
                    _ => {
                        let (g, s) = group[k];
                        let s = grouped.load(g * 576 + s * 8, Relaxed);
                        grouped.load(g * 576 + 64 + s * 64, Relaxed)
                    }
                };
                lat.push(t.elapsed().as_nanos() as u64);
            }
            std::hint::black_box(sum);
            lat.sort_unstable();
            let mean = lat.iter().sum::<u64>() as f64 / lat.len() as f64;
            println!(
                "round {round} layout {mode}: p50 {:>4}  p99 {:>5}  mean {mean:>4.0}",
                lat[lat.len() / 2],
                lat[lat.len() * 99 / 100]
            );
        }
    }
    Ok(())
}
