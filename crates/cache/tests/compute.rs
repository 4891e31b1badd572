//! get_or_compute: one computation per miss in a process and across
//! processes, a killed lease holder taken over, errors shared, and XFetch's
//! early refreshes.

mod common;
use common::{spawn_role, ShmDir};
use std::io::{BufRead, BufReader};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use strata::{refresh_early, Cache, ComputeOptions, Error, SegmentOptions};
use strata_shm::Clock;

fn local(dir: &str, name: &str) -> Cache {
    Cache::builder(name)
        .segment_options(SegmentOptions::default().memory(32 << 20).dir(dir))
        .build()
        .unwrap()
}

/// The processes of the multi-process tests: each runs this test binary
/// again with a role.
#[test]
fn child_entry() {
    let Ok(role) = std::env::var("STRATA_TEST_ROLE") else {
        return;
    };
    let dir = std::env::var("SEG_DIR").unwrap();
    let c = local(&dir, "s");
    let opts = ComputeOptions::default();
    match role.as_str() {
        "miss" => {
            // Wait for the others, then all miss at once.
            while c.segment().peek(b"go").unwrap().is_none() {
                std::thread::sleep(Duration::from_millis(1));
            }
            let v = c
                .get_or_compute(b"model:out", &opts, || {
                    // Count computations machine-wide.
                    c.segment()
                        .update(b"computed", &Default::default(), |cur| {
                            let n = cur.map(|b| b[0]).unwrap_or(0);
                            Some(vec![n + 1])
                        })
                        .unwrap();
                    std::thread::sleep(Duration::from_millis(300));
                    Ok((b"result".to_vec(), None))
                })
                .unwrap();
            assert_eq!(v.bytes(), b"result");
            println!("\nRESULT ok");
        }
        "stuck" => {
            let _ = c.get_or_compute(b"slow", &opts, || {
                println!("\nHOLDING");
                std::thread::sleep(Duration::from_secs(60));
                Ok((b"never".to_vec(), None))
            });
        }
        other => panic!("unknown role {other}"),
    }
    std::process::exit(0);
}

#[test]
fn sixty_four_threads_missing_one_key_compute_it_once() {
    let dir = ShmDir::new("threads");
    let c = local(dir.path.to_str().unwrap(), "t");
    let calls = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..64 {
            s.spawn(|| {
                let v = c
                    .get_or_compute(b"k", &ComputeOptions::default(), || {
                        calls.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(200));
                        Ok((b"v".to_vec(), None))
                    })
                    .unwrap();
                assert_eq!(v.bytes(), b"v");
            });
        }
    });
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let st = c.stats().unwrap();
    assert_eq!(st.computes, 1);
    assert!(st.coalesced_waits >= 1);
}

#[test]
fn an_error_reaches_every_waiter_and_caches_nothing() {
    let dir = ShmDir::new("error");
    let c = local(dir.path.to_str().unwrap(), "e");
    let calls = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                let r = c.get_or_compute(b"k", &ComputeOptions::default(), || {
                    calls.fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(100));
                    Err("model crashed".into())
                });
                assert!(
                    matches!(r, Err(Error::ComputeFailed(ref m)) if m == "model crashed"),
                    "{r:?}"
                );
            });
        }
    });
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(c.segment().get(b"k").unwrap().is_none());
}

#[test]
fn eight_processes_missing_one_key_compute_it_once() {
    let dir = ShmDir::new("procs");
    let c = local(dir.path.to_str().unwrap(), "s");
    let kids: Vec<_> = (0..8).map(|_| spawn_role("miss", &dir, &[])).collect();
    std::thread::sleep(Duration::from_millis(300));
    c.segment().put(b"go", b"1", &Default::default()).unwrap();
    for k in kids {
        let out = k.wait_with_output().unwrap();
        assert!(out.status.success());
        assert!(String::from_utf8_lossy(&out.stdout).contains("RESULT ok"));
    }
    let computed = c.segment().get(b"computed").unwrap().unwrap()[0];
    assert_eq!(computed, 1, "one computation between eight processes");
}

#[test]
fn a_killed_lease_holder_is_taken_over_and_nobody_hangs() {
    let dir = ShmDir::new("takeover");
    let c = local(dir.path.to_str().unwrap(), "s");
    let mut holder = spawn_role("stuck", &dir, &[]);
    let mut lines = BufReader::new(holder.stdout.take().unwrap()).lines();
    while !lines.next().unwrap().unwrap().contains("HOLDING") {}
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        let _ = holder.kill();
        let _ = holder.wait();
    });
    let calls = Arc::new(AtomicUsize::new(0));
    let v = c
        .get_or_compute(b"slow", &ComputeOptions::default(), || {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok((b"mine".to_vec(), None))
        })
        .unwrap();
    killer.join().unwrap();
    assert_eq!(v.bytes(), b"mine");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn xfetch_refreshes_with_the_papers_probability_and_never_at_beta_zero() {
    // P(refresh) = exp(-(expiry - now) / (delta * beta)).
    let n = 40_000;
    for (gap, beta, want) in [
        (100u64, 1.0, (-1.0f64).exp()),
        (300, 1.0, (-3.0f64).exp()),
        (100, 2.0, (-0.5f64).exp()),
    ] {
        let hits = (0..n)
            .filter(|_| refresh_early(10_000 - gap, 10_000, 100, beta))
            .count();
        let p = hits as f64 / n as f64;
        assert!(
            (p - want).abs() < 0.015,
            "gap {gap} beta {beta}: {p} vs {want}"
        );
    }
    assert!((0..n).all(|_| !refresh_early(9_999, 10_000, 100, 0.0)));
    assert!(
        (0..100).all(|_| refresh_early(10_000, 10_000, 100, 1.0)),
        "at expiry, always"
    );
}

#[test]
fn a_hot_key_is_refreshed_before_it_expires_by_one_reader() {
    let dir = ShmDir::new("xfetch");
    let clock = Clock::manual(1_000_000);
    let c = Cache::builder("x")
        .segment_options(
            SegmentOptions::default()
                .memory(32 << 20)
                .dir(&dir.path)
                .clock(clock.clone()),
        )
        .build()
        .unwrap();
    let opts = ComputeOptions {
        ttl: Some(Duration::from_secs(10)),
        ..ComputeOptions::default()
    };
    let version = AtomicUsize::new(0);
    let compute = || {
        // Computing "takes" 100 ms of the manual clock.
        clock.advance(100);
        let n = version.fetch_add(1, Ordering::SeqCst) + 1;
        Ok((vec![n as u8], None))
    };
    assert_eq!(
        c.get_or_compute(b"hot", &opts, compute).unwrap().bytes(),
        [1]
    );
    // Far from expiry: no refresh.
    for _ in 0..100 {
        assert_eq!(
            c.get_or_compute(b"hot", &opts, compute).unwrap().bytes(),
            [1]
        );
    }
    // One millisecond before expiry (delta 100 ms), a read refreshes with
    // probability 0.99: within a few reads one reader refreshes, once, and
    // gets the new value without a miss.
    clock.advance(10_000 - 1);
    let reads = (0..20)
        .map(|_| c.get_or_compute(b"hot", &opts, compute).unwrap().bytes()[0])
        .collect::<Vec<_>>();
    assert!(
        reads.contains(&2) && reads.iter().all(|&v| v == 1 || v == 2),
        "{reads:?}"
    );
    assert_eq!(c.stats().unwrap().early_refreshes, 1);
    assert_eq!(c.stats().unwrap().computes, 2);
    // beta = 0: the same moment never refreshes.
    let off = ComputeOptions {
        beta: 0.0,
        ..opts.clone()
    };
    clock.advance(10_000 - 1);
    for _ in 0..100 {
        assert_eq!(
            c.get_or_compute(b"hot", &off, compute).unwrap().bytes(),
            [2]
        );
    }
}
