//! One benchmark process: a reader timing every get, or the writer.
//! It prints one JSON line with its results on stdout.

use super::hist::Hist;
use super::min_index;
use super::workload::{access_pattern, key, key_into, stamp, verify, Rng, KEY_LEN};
use super::WorkerArgs;
use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};
use strata_shm::mem::Region;
use strata_shm::{PutOptions, Segment, SegmentOptions};

/// Reads of the access pattern prepared up front, so sampling costs
/// nothing while timing.
const PATTERN_LEN: usize = 1 << 20;

fn memory_kb() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/self/smaps_rollup").unwrap_or_default();
    let field = |name: &str| -> u64 {
        text.lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .sum()
    };
    (
        field("Shared_Clean:") + field("Shared_Dirty:"),
        field("Private_Clean:") + field("Private_Dirty:"),
    )
}

/// Times `op` over the pattern until the deadline. `op` returns whether
/// the value checked out (None: not found).
fn timed(
    pattern: &[u64],
    seconds: f64,
    mut op: impl FnMut(u64) -> Option<bool>,
) -> (Hist, u64, u64, u64, f64) {
    let mut hist = Hist::new();
    let (mut ops, mut bad, mut missing) = (0u64, 0u64, 0u64);
    // A warm-up pass over part of the pattern, untimed.
    for &i in pattern.iter().take(PATTERN_LEN / 8) {
        std::hint::black_box(op(i));
    }
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(seconds);
    let mut prev = Instant::now();
    'outer: loop {
        for chunk in pattern.chunks(4096) {
            for &i in chunk {
                match op(i) {
                    Some(true) => {}
                    Some(false) => bad += 1,
                    None => missing += 1,
                }
                let now = Instant::now();
                hist.record((now - prev).as_nanos() as u64);
                prev = now;
            }
            ops += chunk.len() as u64;
            if prev >= deadline {
                break 'outer;
            }
        }
    }
    (hist, ops, bad, missing, start.elapsed().as_secs_f64())
}

/// The whole of a file the parent process prepared.
fn map_file(path: &str) -> Result<Region> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .with_context(|| format!("opening {path}"))?;
    let len = file.metadata()?.len();
    Ok(Region::map(&file, len)?)
}

pub fn run(dir: &Path, a: &WorkerArgs) -> Result<()> {
    let n = a.keys;
    let zipf = match a.dist.as_str() {
        "zipf" => Some(0.99),
        "uniform" => None,
        d => bail!("unknown distribution {d}"),
    };
    if a.role == "writer" {
        return writer(dir, a);
    }
    let pattern = access_pattern(n, PATTERN_LEN, zipf, a.seed);
    let (hist, ops, bad, missing, secs) = match a.kind.as_str() {
        "l0" => {
            let seg = Segment::open(&a.segment, &SegmentOptions::default().dir(dir))?;
            let mut kb = [0; KEY_LEN];
            timed(&pattern, a.seconds, |i| {
                let g = seg.get(key_into(i, &mut kb)).ok().flatten()?;
                Some(verify(&g, i))
            })
        }
        "floor" => {
            let region = map_file(&a.floor)?;
            let vb = a.value_bytes;
            timed(&pattern, a.seconds, |i| {
                Some(verify(region.bytes(i * vb, vb), i))
            })
        }
        "min_index" => {
            let floor = map_file(&a.floor)?;
            let table = map_file(&a.table)?;
            let cap = min_index::capacity(n);
            let vb = a.value_bytes;
            let mut kb = [0; KEY_LEN];
            timed(&pattern, a.seconds, |i| {
                min_index::get(&table, cap, &floor, vb, key_into(i, &mut kb), i).map(|_| true)
            })
        }
        "hashmap" => {
            let mut map: HashMap<Vec<u8>, Vec<u8>> = HashMap::with_capacity(n as usize);
            for i in 0..n {
                let mut v = vec![0xABu8; a.value_bytes as usize];
                stamp(&mut v, i, 0);
                map.insert(key(i), v);
            }
            let mut kb = [0; KEY_LEN];
            timed(&pattern, a.seconds, |i| {
                let v = map.get(key_into(i, &mut kb))?;
                Some(verify(v, i))
            })
        }
        k => bail!("unknown kind {k}"),
    };
    let (shared_kb, private_kb) = memory_kb();
    println!(
        "{}",
        serde_json::json!({
            "ops": ops, "torn": bad, "missing": missing, "seconds": secs,
            "hist": hist.to_json(), "shared_kb": shared_kb, "private_kb": private_kb,
        })
    );
    Ok(())
}

fn writer(dir: &Path, a: &WorkerArgs) -> Result<()> {
    let seg = Segment::open(&a.segment, &SegmentOptions::default().dir(dir))?;
    let mut buf = vec![0xABu8; a.value_bytes as usize];
    let mut rng = Rng::new(a.seed);
    let no = PutOptions::default();
    let start = Instant::now();
    let deadline = Duration::from_secs_f64(a.seconds);
    let (mut done, mut version) = (0u64, 1u64);
    let mut hist = Hist::new();
    let mut kb = [0; KEY_LEN];
    loop {
        let elapsed = start.elapsed();
        if elapsed >= deadline {
            break;
        }
        if a.rate > 0 && done as f64 >= elapsed.as_secs_f64() * a.rate as f64 {
            std::thread::sleep(Duration::from_micros(200));
            continue;
        }
        for _ in 0..16 {
            let i = rng.below(a.keys);
            stamp(&mut buf, i, version);
            version += 1;
            let t = Instant::now();
            seg.put(key_into(i, &mut kb), &buf, &no)?;
            hist.record(t.elapsed().as_nanos() as u64);
            done += 1;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({ "ops": done, "seconds": secs, "hist": hist.to_json() })
    );
    Ok(())
}
