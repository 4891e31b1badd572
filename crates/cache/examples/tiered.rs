//! The tiered cache from Rust, against its peers in the same run, with a
//! redis-server it starts on a free loopback port:
//!
//! - an L0 hit through `strata::Cache::get` against a bare
//!   `Segment::get_view` of the same keys;
//! - a miss that reads through Redis and promotes, against a redis-rs GET
//!   of the same value.
//!
//! `cargo run --release -p strata --example tiered [-- KEYS]`

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use strata::{Cache, PutOptions, SegmentOptions};

fn median_ns(mut f: impl FnMut(usize), n: usize) -> f64 {
    let mut t: Vec<u64> = (0..n)
        .map(|i| {
            let a = Instant::now();
            f(i);
            a.elapsed().as_nanos() as u64
        })
        .collect();
    t.sort_unstable();
    t[n / 2] as f64
}

fn main() -> anyhow::Result<()> {
    let keys: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(20_000);
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut redis = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .spawn()?;
    let url = format!("redis://127.0.0.1:{port}/0");
    let mut conn = loop {
        if let Ok(c) = redis::Client::open(url.as_str())?.get_connection() {
            break c;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let dir = std::env::temp_dir().join(format!("strata-example-tiered-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let opts = SegmentOptions::default().memory(1 << 30).dir(&dir);
    let cache = Cache::builder("tiered")
        .segment_options(opts.clone())
        .redis(&url)
        .build()?;
    let bare = strata::Segment::open_or_create("bare", &opts)?;
    let value = vec![7u8; 4096];
    let names: Vec<Vec<u8>> = (0..keys).map(|i| format!("emb:{i}").into_bytes()).collect();
    for k in &names {
        cache.put(k, &value, &PutOptions::default())?;
        bare.put(k, &value, &PutOptions::default())?;
    }
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let ids: Vec<usize> = (0..keys)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % keys as u64) as usize
        })
        .collect();
    let n = keys;
    let (mut hit_t, mut hit_b) = (f64::MAX, f64::MAX);
    for _ in 0..3 {
        hit_b = hit_b.min(median_ns(
            |i| drop(bare.get_view(&names[ids[i]]).unwrap()),
            n,
        ));
        hit_t = hit_t.min(median_ns(|i| drop(cache.get(&names[ids[i]]).unwrap()), n));
    }
    println!(
        "L0 hit: strata::Cache::get {hit_t:.0} ns, Segment::get_view {hit_b:.0} ns: {:.2}x",
        hit_t / hit_b
    );
    let m = n.min(5000);
    let inval = median_ns(|i| drop(cache.invalidate(&names[i])), m);
    let through = median_ns(
        |i| {
            cache.invalidate(&names[i]).unwrap();
            drop(cache.get(&names[i]).unwrap());
        },
        m,
    ) - inval;
    let plain = median_ns(
        |i| {
            let v: Vec<u8> = redis::cmd("GET").arg(&names[i]).query(&mut conn).unwrap();
            drop(v);
        },
        m,
    );
    println!(
        "miss through Redis + promotion: {:.1} us, redis-rs GET {:.1} us: {:.2}x",
        through / 1000.0,
        plain / 1000.0,
        through / plain
    );
    drop(cache);
    let _ = redis.kill();
    let _ = redis.wait();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
