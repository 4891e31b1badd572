//! One process reading 4 KiB values in a loop, as a target for `perf
//! record`: 200k keys in a fresh segment, then `get` of random keys
//! (uniform, or Zipf 0.99), each read touching the value's first and last
//! byte as `strata bench` does. Prints the mean time per get.
//!
//!   cargo run --release -p strata-shm --example read_loop [-- uniform|zipf [DIR]]
//!   perf record -p <pid printed> -- sleep 3; perf annotate

mod common;

use common::{uniform_pattern, zipf_pattern, Rng};
use std::time::Instant;
use strata_shm::{PutOptions, Segment, SegmentOptions};

const KEYS: u64 = 200_000;
const READS: usize = 2_000_000;
const PASSES: usize = 3;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dist = args.next().unwrap_or_else(|| "uniform".into());
    let dir = std::path::PathBuf::from(args.next().unwrap_or_else(|| "/dev/shm".into()));
    let zipf = match dist.as_str() {
        "uniform" => false,
        "zipf" => true,
        other => return Err(format!("unknown distribution {other}; use uniform or zipf").into()),
    };
    let name = format!("read-loop-{}", std::process::id());
    let seg = Segment::create(
        &name,
        &SegmentOptions::default().dir(&dir).memory(1536 << 20),
    )?;
    let value = vec![7u8; 4096];
    let keys: Vec<Vec<u8>> = (0..KEYS)
        .map(|i| format!("key:{i:010}").into_bytes())
        .collect();
    for k in &keys {
        seg.put(k, &value, &PutOptions::default())?;
    }
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let pattern = if zipf {
        zipf_pattern(KEYS, READS, &mut rng)
    } else {
        uniform_pattern(KEYS, READS, &mut rng)
    };
    eprintln!("pid {}: reading", std::process::id());
    let t = Instant::now();
    let mut sum = 0u64;
    for _ in 0..PASSES {
        for &i in &pattern {
            if let Some(g) = seg.get(&keys[i])? {
                sum += u64::from(g[0]) + u64::from(g[g.len() - 1]);
            }
        }
    }
    let ns = t.elapsed().as_nanos() as f64 / (PASSES * READS) as f64;
    println!(
        "{dist} get of 4 KiB values over {KEYS} keys in {}: {ns:.0} ns per get (check {sum})",
        dir.display()
    );
    drop(seg);
    Segment::unlink(&name, &dir)?;
    Ok(())
}
