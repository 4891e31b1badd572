//! `get` against an in-process `HashMap<Vec<u8>, Vec<u8>>` holding the
//! same keys and 4 KiB values, in one process, in turns: the comparison
//! `strata bench` makes across processes, without their noise. Each read
//! makes its key on the stack and touches the value's first and last byte.
//! Prints the mean time per read of each, uniform and Zipf 0.99, in three
//! rounds. With a small key count (100, say) it times a read whose memory
//! is all in cache: the fixed cost of a lookup.
//!
//!   cargo run --release -p strata-shm --example vs_hashmap [-- KEYS [DIR]]

mod common;

use common::{key_into, uniform_pattern, zipf_pattern, Rng};
use std::collections::HashMap;
use std::time::Instant;
use strata_shm::{PutOptions, Segment, SegmentOptions};

const READS: usize = 1_000_000;
const ROUNDS: usize = 3;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: u64 = match args.next() {
        Some(s) => s
            .parse()
            .map_err(|_| format!("KEYS must be a number, not {s}"))?,
        None => 200_000,
    };
    if n == 0 {
        return Err("KEYS must be at least 1".into());
    }
    let dir = std::path::PathBuf::from(args.next().unwrap_or_else(|| "/dev/shm".into()));
    let name = format!("vs-hashmap-{}", std::process::id());
    let opts = SegmentOptions::default()
        .dir(&dir)
        .memory(n * 4800 * 5 / 4 + (256 << 20));
    let seg = Segment::create(&name, &opts)?;
    Segment::unlink(&name, &dir)?;
    let mut map: HashMap<Vec<u8>, Vec<u8>> = HashMap::with_capacity(n as usize);
    let mut kb = [0u8; 14];
    for i in 0..n {
        let v = vec![(i % 251) as u8; 4096];
        seg.put(key_into(i, &mut kb), &v, &PutOptions::default())?;
        map.insert(key_into(i, &mut kb).to_vec(), v);
    }
    let mut rng = Rng(0x1234_5678_9abc_def1);
    println!("{n} keys of 4 KiB in {}: ns per read", dir.display());
    for dist in ["zipf", "uniform"] {
        let pattern = if dist == "zipf" {
            zipf_pattern(n, READS, &mut rng)
        } else {
            uniform_pattern(n, READS, &mut rng)
        };
        for round in 0..ROUNDS {
            let mut line = format!("{dist:>7} round {round}:");
            for peer in ["strata", "hashmap"] {
                let t = Instant::now();
                let mut sum = 0u64;
                for &i in &pattern {
                    let k = key_into(i as u64, &mut kb);
                    let (first, last) = if peer == "strata" {
                        let g = seg.get(k)?.ok_or("a loaded key is missing")?;
                        (g[0], g[g.len() - 1])
                    } else {
                        let v = map.get(k).ok_or("a loaded key is missing")?;
                        (v[0], v[v.len() - 1])
                    };
                    sum += u64::from(first) + u64::from(last);
                }
                std::hint::black_box(sum);
                let ns = t.elapsed().as_nanos() as f64 / pattern.len() as f64;
                line += &format!("  {peer} {ns:>4.0}");
            }
            println!("{line}");
        }
    }
    Ok(())
}
