//! Real processes sharing one segment: no torn reads while a writer flips
//! a large value, and recovery from `kill -9` at random points and at
//! named failpoints.

mod common;
use common::*;
use std::io::Read;
use std::time::{Duration, Instant};
use strata_shm::{Policy, PutOptions, Segment, SegmentOptions};

fn opts(dir: &str) -> SegmentOptions {
    SegmentOptions::default().dir(dir)
}

fn until(secs: u64) -> Instant {
    Instant::now() + Duration::from_secs(secs)
}

/// Entry point of every child process; a no-op in a normal test run.
#[test]
fn child_entry() {
    let Some(role) = role() else { return };
    let dir = std::env::var("SEG_DIR").unwrap();
    let janitor = env_u64("JANITOR", 1) == 1;
    let seg = Segment::open("s", &opts(&dir).janitor(janitor)).unwrap();
    let secs = env_u64("SECS", 2);
    let seed = env_u64("SEED", 1);
    let keys = env_u64("KEYS", 64);
    let no = PutOptions::default();
    match role.as_str() {
        "flipper" => {
            let (a, b) = (vec![0xAAu8; 1 << 20], vec![0x55u8; 1 << 20]);
            let end = until(secs);
            let mut n = 0u64;
            while Instant::now() < end {
                seg.put(b"big", if n % 2 == 0 { &b } else { &a }, &no)
                    .unwrap();
                n += 1;
            }
            println!("\nRESULT {n}");
        }
        "uniform_reader" => {
            let end = until(secs);
            let (mut reads, mut mixed) = (0u64, 0u64);
            while Instant::now() < end {
                if let Some(g) = seg.get(b"big").unwrap() {
                    let first = g[0];
                    if g.len() != 1 << 20 || g.iter().any(|&x| x != first) {
                        mixed += 1;
                    }
                    reads += 1;
                }
                if let Some(v) = seg.get_view(b"big").unwrap() {
                    let first = v[0];
                    if v.iter().any(|&x| x != first) {
                        mixed += 1;
                    }
                    reads += 1;
                }
            }
            println!("\nRESULT {reads} {mixed}");
        }
        "chaos" => {
            // Writes, expiry changes, reads and views at random until
            // killed (or done).
            let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            let mut rnd = move || {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x
            };
            let mut views = Vec::new();
            let mut bad = 0u64;
            let end = until(secs);
            let mut version = seed << 32;
            while Instant::now() < end {
                let k = rnd() % keys;
                let key = format!("k{k}");
                match rnd() % 9 {
                    0..=2 => {
                        version += 1;
                        // Plain classes, aligned ones (1 KiB, 4 KiB) and
                        // runs of slabs.
                        let lens = [24usize, 200, 1024, 4096, 5000, 70_000, 1_500_000];
                        let len = lens[(rnd() % lens.len() as u64) as usize];
                        seg.put(key.as_bytes(), &make_value(k, version, len), &no)
                            .unwrap();
                    }
                    3 => {
                        seg.delete(key.as_bytes()).unwrap();
                    }
                    // Expiry changes rewrite the index entry in place.
                    8 if rnd() % 2 == 0 => {
                        seg.expire(key.as_bytes(), Duration::from_secs(3600))
                            .unwrap();
                    }
                    8 => {
                        seg.persist(key.as_bytes()).unwrap();
                    }
                    4 => {
                        if let Some(v) = seg.get_view(key.as_bytes()).unwrap() {
                            views.push((k, v));
                        }
                        if views.len() > 8 {
                            views.remove(0);
                        }
                    }
                    _ => {
                        if let Some(g) = seg.get(key.as_bytes()).unwrap() {
                            bad += u64::from(!verify_value(&g, k));
                        }
                    }
                }
                for (k, v) in &views {
                    bad += u64::from(!verify_value(v, *k));
                }
            }
            println!("\nRESULT {bad}");
        }
        "viewer" => {
            // Holds a view of "big"; with a janitor, waits until this
            // process's janitor holds the lease (it is the only one that
            // competes for it), then idles until killed.
            let _view = seg.get_view(b"big").unwrap().unwrap();
            while janitor && seg.janitor_token() == 0 {
                std::thread::sleep(Duration::from_millis(10));
            }
            println!("READY {}", seg.janitor_token());
            std::thread::sleep(Duration::from_secs(60));
        }
        "counter" => {
            for _ in 0..keys {
                seg.update(b"count", &no, |cur| {
                    let n = cur
                        .and_then(|c| <[u8; 8]>::try_from(c).ok())
                        .map(u64::from_le_bytes)
                        .unwrap_or(0);
                    Some((n + 1).to_le_bytes().to_vec())
                })
                .unwrap();
            }
            println!("\nRESULT done");
        }
        "idle" => {
            assert!(seg.get(b"big").unwrap().is_some());
            println!("READY");
            std::thread::sleep(Duration::from_secs(60));
        }
        other => panic!("unknown role {other}"),
    }
    std::process::exit(0);
}

fn output(mut c: std::process::Child) -> (String, std::process::ExitStatus) {
    let mut s = String::new();
    c.stdout.take().unwrap().read_to_string(&mut s).unwrap();
    let status = c.wait().unwrap();
    let line = s
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or("")
        .to_string();
    (line, status)
}

#[test]
fn no_torn_reads_across_processes() {
    let dir = ShmDir::new("torn");
    let seg = dir.create("s", 64 * MIB);
    seg.put(b"big", &vec![0xAAu8; 1 << 20], &PutOptions::default())
        .unwrap();
    let env = vec![
        ("SEG_DIR", dir.path.display().to_string()),
        ("SECS", env_u64("STRATA_TORN_SECONDS", 3).to_string()),
    ];
    let writer = spawn_role("flipper", &env);
    let readers: Vec<_> = (0..2).map(|_| spawn_role("uniform_reader", &env)).collect();
    let mut total = 0;
    for r in readers {
        let (line, status) = output(r);
        assert!(status.success(), "reader failed: {status}");
        let mut it = line.split_whitespace().map(|x| x.parse::<u64>().unwrap());
        let (reads, mixed) = (it.next().unwrap(), it.next().unwrap());
        assert_eq!(mixed, 0, "a reader saw a mixed value");
        total += reads;
    }
    let (flips, status) = output(writer);
    assert!(status.success());
    assert!(
        total > 0 && flips.parse::<u64>().unwrap() > 10,
        "reads {total}, flips {flips}"
    );
    seg.maintain().unwrap();
    let rep = seg.check().unwrap();
    assert!(rep.is_clean(), "{:?}", rep.violations);
    let st = seg.stats().unwrap();
    assert_eq!(st.limbo_bytes, 0, "{st:?}");
}

/// Waits for a child's "READY" line and returns what follows it.
fn ready(c: &mut std::process::Child) -> String {
    use std::io::BufRead;
    let out = c.stdout.as_mut().unwrap();
    let mut lines = std::io::BufReader::new(out).lines();
    loop {
        let line = lines.next().expect("child exited before READY").unwrap();
        // libtest's "test child_entry ... " may open the line.
        if let Some(at) = line.find("READY") {
            return line[at + 5..].trim().to_string();
        }
    }
}

/// Polls until the segment reports no pinned bytes, for up to `secs`.
/// Nothing here calls `maintain`: only the janitor can release them.
fn pins_released_within(seg: &Segment, secs: u64) -> bool {
    let end = until(secs);
    while Instant::now() < end {
        if seg.stats().unwrap().pinned_bytes == 0 {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn a_killed_viewers_pins_are_released_without_maintain() {
    let dir = ShmDir::new("reap");
    let seg = dir.create("s", 64 * MIB);
    seg.put(b"big", &vec![1u8; 4 << 20], &PutOptions::default())
        .unwrap();
    let env = vec![
        ("SEG_DIR", dir.path.display().to_string()),
        ("JANITOR", "0".to_string()),
    ];
    let mut viewer = spawn_role("viewer", &env);
    ready(&mut viewer);
    assert!(seg.stats().unwrap().pinned_bytes >= 4 << 20);
    kill9(&mut viewer);
    // This process's janitor thread (started by its first use of the
    // segment) reaps the dead viewer's pin page.
    assert!(pins_released_within(&seg, 5), "{:?}", seg.stats().unwrap());
}

#[test]
fn a_writer_short_of_space_reaps_a_dead_viewer_before_evicting() {
    let dir = ShmDir::new("reap-writer");
    // No janitor anywhere: only the writer can release the view.
    let seg = Segment::create("s", &dir.opts(16 * MIB).janitor(false)).unwrap();
    seg.put(b"big", &vec![1u8; 4 << 20], &PutOptions::default())
        .unwrap();
    let env = vec![
        ("SEG_DIR", dir.path.display().to_string()),
        ("JANITOR", "0".to_string()),
    ];
    let mut viewer = spawn_role("viewer", &env);
    ready(&mut viewer);
    kill9(&mut viewer);
    // The viewed block is replaced: it waits in limbo, pinned by the dead
    // process's page, until a writer needs its space.
    seg.put(b"big", b"small now", &PutOptions::default())
        .unwrap();
    assert!(seg.stats().unwrap().pinned_bytes >= 4 << 20);
    for i in 0..400u64 {
        seg.put(
            format!("fill:{i}").as_bytes(),
            &make_value(i, 1, 64 << 10),
            &PutOptions::default(),
        )
        .unwrap();
    }
    let st = seg.stats().unwrap();
    assert_eq!(st.pinned_bytes, 0, "{st:?}");
    assert!(seg.check().unwrap().is_clean());
}

#[test]
fn the_janitor_lease_passes_on_when_its_process_is_killed() {
    let dir = ShmDir::new("lease");
    let seg = Segment::create("s", &dir.opts(64 * MIB).janitor(false)).unwrap();
    seg.put(b"big", &vec![1u8; 4 << 20], &PutOptions::default())
        .unwrap();
    let env = vec![("SEG_DIR", dir.path.display().to_string())];
    // The viewer's janitor takes the lease (nobody else competes yet)...
    let mut viewer = spawn_role("viewer", &env);
    let first: u64 = ready(&mut viewer).parse().unwrap();
    assert_ne!(first, 0);
    let mut idle = spawn_role("idle", &env);
    ready(&mut idle);
    // ...and dies holding it and a view: the other process's janitor
    // takes the lease over and releases the view.
    kill9(&mut viewer);
    let released = pins_released_within(&seg, 5);
    let now = seg.janitor_token();
    let alive = seg.janitor_alive().unwrap();
    kill9(&mut idle);
    assert!(released, "{:?}", seg.stats().unwrap());
    assert_ne!(now, first, "the lease moved to the surviving process");
    assert!(alive);
}

fn kill9(c: &mut std::process::Child) {
    // Child::kill sends SIGKILL.
    let _ = c.kill();
    let _ = c.wait();
}

#[test]
fn kill_dash_nine_anywhere_costs_nothing_lasting() {
    let dir = ShmDir::new("chaos");
    // No janitor here, so that the slots counted at the end are exactly
    // this thread's; the children's janitors compete for the lease.
    let seg = Segment::create("s", &dir.opts(64 * MIB).janitor(false)).unwrap();
    let secs = env_u64("STRATA_CHAOS_SECONDS", 6);
    chaos(&dir, &seg, secs, 64);
}

/// Every policy keeps its books through `kill -9`: a segment of 512
/// entries under 2000 keys evicts all the time, by count and by space.
#[test]
fn kill_dash_nine_costs_nothing_lasting_under_every_policy() {
    for policy in Policy::ALL {
        let dir = ShmDir::new("chaos-policy");
        let seg = Segment::create(
            "s",
            &dir.opts(64 * MIB)
                .janitor(false)
                .max_entries(512)
                .policy(policy),
        )
        .unwrap();
        assert_eq!(seg.policy(), policy);
        chaos(&dir, &seg, 2, 2000);
        if policy != Policy::NoEviction {
            assert!(seg.stats().unwrap().evictions > 0, "{policy} never evicted");
        }
    }
}

/// Two survivors and a stream of victims (killed from outside at random
/// moments, or by themselves at named failpoints) run `chaos` over `keys`
/// keys for `secs`; then the segment must be whole.
fn chaos(dir: &ShmDir, seg: &Segment, secs: u64, keys: u64) {
    let base_env = |seed: u64, secs: u64| {
        vec![
            ("SEG_DIR", dir.path.display().to_string()),
            ("SECS", secs.to_string()),
            ("SEED", seed.to_string()),
            ("KEYS", keys.to_string()),
        ]
    };
    // Survivors verify every value they read from start to end.
    let survivors: Vec<_> = (0..2)
        .map(|i| spawn_role("chaos", &base_env(1000 + i, secs + 1)))
        .collect();
    let end = until(secs);
    let mut seed = 1u64;
    let mut killed = 0;
    let points = [
        "after_alloc",
        "mid_copy",
        "mid_entry",
        "after_publish",
        "holding_lock",
        "holding_pin",
        "mid_reassign",
    ];
    while Instant::now() < end {
        seed += 1;
        // A victim killed from outside at a random moment...
        let mut victim = spawn_role("chaos", &base_env(seed, 30));
        std::thread::sleep(Duration::from_millis(20 + seed * 37 % 150));
        kill9(&mut victim);
        killed += 1;
        // ...and one that kills itself at a named failpoint.
        let mut env = base_env(seed + 10_000, 30);
        env.push((
            "STRATA_FAILPOINT",
            points[(seed as usize) % points.len()].to_string(),
        ));
        env.push(("STRATA_FAILPOINT_SKIP", (seed * 7 % 40).to_string()));
        let mut fp = spawn_role("chaos", &env);
        let t = Instant::now();
        while fp.try_wait().unwrap().is_none() && t.elapsed() < Duration::from_millis(400) {
            std::thread::sleep(Duration::from_millis(5));
        }
        kill9(&mut fp);
        killed += 1;
    }
    for s in survivors {
        let (line, status) = output(s);
        assert!(status.success(), "a surviving process failed: {status}");
        assert_eq!(line.trim(), "0", "a surviving process read a bad value");
    }
    assert!(killed >= 4);
    let rep = seg.maintain().unwrap();
    let st = seg.stats().unwrap();
    let check = seg.check().unwrap();
    assert!(check.is_clean(), "{:?}", check.violations);
    // Every dead slot reaped: only this thread's slot remains.
    assert_eq!(st.reader_slots_attached, 1, "{st:?} {rep:?}");
    assert_eq!(st.reader_slots_live, 1);
    assert_eq!(st.pinned_bytes, 0, "{st:?}");
    // No lock held by anyone.
    let again = seg.maintain().unwrap();
    assert_eq!(again.recovered_shards, 0);
    // No leak: what is allocated is exactly what is linked or in limbo.
    assert_eq!(
        st.capacity_bytes - st.free_bytes,
        st.used_bytes + st.limbo_bytes,
        "{st:?}"
    );
    assert!(st.entries <= seg.layout().max_entries, "{st:?}");
    // Delete everything: the arena must come back whole.
    let keys: Vec<_> = seg.keys().collect();
    for k in keys {
        seg.delete(&k).unwrap();
    }
    seg.maintain().unwrap();
    let st = seg.stats().unwrap();
    assert_eq!(st.free_bytes, st.capacity_bytes, "{st:?}");
    eprintln!(
        "chaos: {killed} processes killed, {} shard repairs",
        st.repairs
    );
}

#[test]
fn updates_from_many_processes_and_threads_lose_no_increment() {
    let dir = ShmDir::new("counter");
    let seg = dir.create("s", 16 * MIB);
    let env = vec![
        ("SEG_DIR", dir.path.display().to_string()),
        ("KEYS", "2000".to_string()),
    ];
    let procs: Vec<_> = (0..3).map(|_| spawn_role("counter", &env)).collect();
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                for _ in 0..2000 {
                    seg.update(b"count", &PutOptions::default(), |cur| {
                        let n = cur
                            .and_then(|c| <[u8; 8]>::try_from(c).ok())
                            .map(u64::from_le_bytes)
                            .unwrap_or(0);
                        Some((n + 1).to_le_bytes().to_vec())
                    })
                    .unwrap();
                }
            });
        }
    });
    for p in procs {
        let (line, status) = output(p);
        assert!(status.success() && line == "done", "{line} {status}");
    }
    let v = seg.get(b"count").unwrap().unwrap();
    assert_eq!(u64::from_le_bytes(v[..8].try_into().unwrap()), 5 * 2000);
    assert!(seg.check().unwrap().is_clean());
}
