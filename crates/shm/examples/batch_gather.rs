//! `get_batch` of 1000 random 4 KiB values (Zipf 0.99 over 200k keys),
//! copied into one buffer, against a plain gather of the same rows from an
//! array with no index, in a file of the same directory with the same page
//! size (2 MiB pages for both, where the kernel builds them): the Rust side
//! of `get_numpy_many` against `np.take`. The segment keeps these rows in
//! an aligned class, each on a page of its own. A third case gathers from
//! rows spaced as a plain class spaces 4 KiB values (one per 4800-byte
//! block, 128 bytes in, so that most cross a page boundary), with no
//! index: what layout version 2 cost these rows, and what rows that take a
//! plain class (a key too long for an aligned head, or a length no aligned
//! body fits) still pay. A fourth gathers the plain rows through a minimal
//! index, a hash table of 8-byte slots (32 bits of the key's hash and the
//! row) at most half full: what any index adds to the gather at the least.
//! A fifth gathers rows 8 KiB apart, each starting on a page: spaced more
//! widely than either, but never straddling two pages, which tells the
//! cost of the spacing from that of the straddling. All run in one
//! process, in turns, over eight rounds.
//!
//! Every case writes into the same output buffer, page-aligned unless
//! OFFSET says how many bytes into a page it starts. The offset matters:
//! 16 bytes in (where a fresh 4 MiB allocation from the C heap lands),
//! the plain gather, whose rows all start on a page, ran up to half again
//! as long, which flattered the cases compared with it. Loads that share
//! a recent store's offset within a page are the likely cause.
//!
//!   cargo run --release -p strata-shm --example batch_gather [-- DIR [OFFSET]]

mod common;

use common::{scratch_region, zipf_pattern, Rng};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;
use strata_shm::mem::Words;
use strata_shm::{PutOptions, Segment, SegmentOptions, TypeTag};

const KEYS: u64 = 200_000;
const ROW: usize = 4096;
const BATCH: usize = 1000;
/// The plain size class of a 4 KiB value with its header, and where in
/// the block the value starts (after a 48-byte header, a short key and a
/// tag).
const BLOCK: u64 = 4800;
const BLOCK_VALUE: u64 = 128;
/// The fifth case's spacing: every row on a page of its own, then a gap.
const APART: u64 = 8192;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "/dev/shm".into());
    let dir = std::path::PathBuf::from(dir);
    let offset: usize = match std::env::args().nth(2) {
        Some(o) => o.parse().map_err(|e| format!("OFFSET {o:?}: {e}"))?,
        None => 0,
    };
    if offset >= 4096 {
        return Err(format!("OFFSET {offset} is not below 4096").into());
    }
    let name = format!("batch-gather-{}", std::process::id());
    let seg = Segment::create(
        &name,
        &SegmentOptions::default().dir(&dir).memory(1600 << 20),
    )?;
    let opts = PutOptions::default().tag(TypeTag::new("<f4", vec![1024]));
    let keys: Vec<Vec<u8>> = (0..KEYS).map(|i| format!("emb:{i}").into_bytes()).collect();
    let floor = scratch_region(&dir, "floor", KEYS * ROW as u64)?;
    let spaced = scratch_region(&dir, "spaced", KEYS * BLOCK)?;
    let apart = scratch_region(&dir, "apart", KEYS * APART)?;
    let mut row = vec![0u8; ROW];
    for (i, k) in keys.iter().enumerate() {
        row.fill(i as u8);
        floor.write_bytes((i * ROW) as u64, &row);
        spaced.write_bytes(i as u64 * BLOCK + BLOCK_VALUE, &row);
        apart.write_bytes(i as u64 * APART, &row);
        seg.put(k, &row, &opts)?;
    }
    // The minimal index: slot = hash & (cap - 1), linear probing; a slot
    // holds the hash's top 32 bits and row + 1 (0: empty).
    let cap = (2 * KEYS).next_power_of_two();
    let table = scratch_region(&dir, "table", cap * 8)?;
    let hash = |k: &[u8]| xxhash_rust::xxh3::xxh3_64(k);
    for (i, k) in keys.iter().enumerate() {
        let h = hash(k);
        let mut s = h & (cap - 1);
        while table.load(s * 8, Relaxed) != 0 {
            s = (s + 1) & (cap - 1);
        }
        table.store(s * 8, (h >> 32) << 32 | (i as u64 + 1), Relaxed);
    }
    let pattern = zipf_pattern(KEYS, 2_000_000, &mut Rng(0x1234_5678_9abc_def1));
    let mut buf = vec![0u8; BATCH * ROW + 8192];
    let start = buf.as_ptr().align_offset(4096) + offset;
    let out = &mut buf[start..start + BATCH * ROW];
    // The gathers with no index: rows `stride` bytes apart, the first one
    // `first` bytes in. Plain, spaced as blocks, then page-aligned apart.
    let strided = [
        (&floor, ROW as u64, 0),
        (&spaced, BLOCK, BLOCK_VALUE),
        (&apart, APART, 0),
    ];
    let (mut strata, mut indexed) = (Vec::new(), Vec::new());
    let mut by_stride = [Vec::new(), Vec::new(), Vec::new()];
    let mut at = 0usize;
    let mut next = || {
        let ids = &pattern[at..at + BATCH];
        at = (at + BATCH) % (pattern.len() - BATCH);
        ids
    };
    for _ in 0..8 {
        for _ in 0..40 {
            let ids = next();
            let ks: Vec<&[u8]> = ids.iter().map(|&i| keys[i].as_slice()).collect();
            let t = Instant::now();
            seg.get_batch(&ks, |i, e| {
                if let Some(e) = e {
                    e.copy_to(&mut out[i * ROW..(i + 1) * ROW]);
                }
            })?;
            strata.push(t.elapsed().as_nanos() as u64);
        }
        for (&(rows, stride, first), times) in strided.iter().zip(&mut by_stride) {
            for _ in 0..40 {
                let ids = next();
                let t = Instant::now();
                for (i, &id) in ids.iter().enumerate() {
                    let off = id as u64 * stride + first;
                    out[i * ROW..(i + 1) * ROW].copy_from_slice(rows.bytes(off, ROW as u64));
                }
                times.push(t.elapsed().as_nanos() as u64);
            }
        }
        for _ in 0..40 {
            let ids = next();
            let ks: Vec<&[u8]> = ids.iter().map(|&i| keys[i].as_slice()).collect();
            let t = Instant::now();
            // Hashed up front, and loaded ahead, as get_batch does: the
            // slots 16 keys ahead, the row two keys ahead.
            let hashes: Vec<u64> = ks.iter().map(|k| hash(k)).collect();
            let find = |h: u64| {
                let mut s = h & (cap - 1);
                loop {
                    let v = table.load(s * 8, Relaxed);
                    if v == 0 || v >> 32 == h >> 32 {
                        break (v & 0xFFFF_FFFF).checked_sub(1);
                    }
                    s = (s + 1) & (cap - 1);
                }
            };
            for &h in hashes.iter().take(16) {
                table.prefetch((h & (cap - 1)) * 8);
            }
            for (i, &h) in hashes.iter().enumerate() {
                if let Some(&ahead) = hashes.get(i + 16) {
                    table.prefetch((ahead & (cap - 1)) * 8);
                }
                if let Some(r) = hashes.get(i + 2).and_then(|&h2| find(h2)) {
                    floor.prefetch(r * ROW as u64);
                }
                if let Some(r) = find(h) {
                    out[i * ROW..(i + 1) * ROW]
                        .copy_from_slice(floor.bytes(r * ROW as u64, ROW as u64));
                }
            }
            indexed.push(t.elapsed().as_nanos() as u64);
        }
    }
    std::hint::black_box(&*out);
    let [p, b, a] = by_stride.each_mut().map(|v| median(v));
    let (s, m) = (median(&mut strata), median(&mut indexed));
    println!(
        "batch of {BATCH} x {ROW} B, Zipf 0.99 over {KEYS} keys, in {}, output {offset} B into a page: get_batch p50 {} us, plain gather p50 {} us, ratio {:.2}; gather of rows spaced as blocks p50 {} us, ratio {:.2}; plain gather through a minimal index p50 {} us, ratio {:.2}; gather of page-aligned rows {APART} B apart p50 {} us, ratio {:.2} (huge pages: {})",
        dir.display(),
        s / 1000,
        p / 1000,
        s as f64 / p as f64,
        b / 1000,
        b as f64 / p as f64,
        m / 1000,
        m as f64 / p as f64,
        a / 1000,
        a as f64 / p as f64,
        seg.huge_pages()
    );
    drop(seg);
    Segment::unlink(&name, &dir)?;
    Ok(())
}

fn median(v: &mut [u64]) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}
