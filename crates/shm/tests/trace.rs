//! Trace recording: reads from several processes reach the ring, whole
//! and in a consistent sample of keys; a full ring drops and counts, and
//! never blocks a reader; with recording off nothing is recorded.

mod common;
use common::{ShmDir, MIB};
use std::collections::HashMap;
use strata_shm::{PutOptions, Segment, TraceRecord};

fn drain_all(seg: &Segment) -> Vec<TraceRecord> {
    let mut out = Vec::new();
    while seg.trace_drain(&mut out, 1 << 20, false) > 0 {}
    out
}

fn reads(seg: &Segment, keys: u64, rounds: u64) {
    for r in 0..rounds {
        for i in 0..keys {
            let _ = seg.get(format!("k{i}").as_bytes()).unwrap();
        }
        let _ = seg.get(format!("missing{r}").as_bytes()).unwrap();
    }
}

fn fork_readers(seg: &Segment, n: usize, keys: u64, rounds: u64) {
    let mut pids = Vec::new();
    for _ in 0..n {
        // SAFETY: the child only reads the segment (which re-registers
        // itself after fork), then leaves with _exit, running no inherited
        // destructors.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            reads(seg, keys, rounds);
            // SAFETY: ends the child at once, as intended above.
            unsafe { libc::_exit(0) };
        }
        pids.push(pid);
    }
    for pid in pids {
        let mut status = 0;
        // SAFETY: waiting on our own child with a valid out-pointer.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    }
}

#[test]
fn every_process_s_reads_are_recorded_whole() {
    let dir = ShmDir::new("trace");
    let seg = dir.create("s", 16 * MIB);
    let no = PutOptions::default();
    for i in 0..100u64 {
        seg.put(format!("k{i}").as_bytes(), &vec![7u8; 10 + i as usize], &no)
            .unwrap();
    }
    // Off: nothing is recorded.
    reads(&seg, 100, 2);
    assert!(drain_all(&seg).is_empty());
    assert_eq!(seg.trace_rate(), None);

    assert_eq!(seg.trace_start(1.0).unwrap(), 1.0);
    reads(&seg, 100, 10);
    fork_readers(&seg, 2, 100, 10);
    let got = drain_all(&seg);
    assert_eq!(got.len(), 3 * 10 * 101, "every read of three processes");
    let sizes: HashMap<u64, u64> = (0..100u64)
        .map(|i| (seg.key_hash(format!("k{i}").as_bytes()), 10 + i))
        .collect();
    for r in &got {
        match sizes.get(&r.hash) {
            Some(&len) => assert!(r.hit && r.size == len, "{r:?}"),
            None => assert!(!r.hit && r.size == 0, "{r:?}"),
        }
    }
    assert_eq!(seg.trace_dropped(), 0);
    seg.trace_stop();
    reads(&seg, 100, 1);
    assert!(drain_all(&seg).is_empty());
}

#[test]
fn a_sample_is_a_consistent_subset_of_keys() {
    let dir = ShmDir::new("trace-sample");
    let seg = dir.create("s", 16 * MIB);
    let no = PutOptions::default();
    for i in 0..2000u64 {
        seg.put(format!("k{i}").as_bytes(), b"v", &no).unwrap();
    }
    seg.trace_start(0.25).unwrap();
    reads(&seg, 2000, 3);
    let got = drain_all(&seg);
    let mut per_key: HashMap<u64, usize> = HashMap::new();
    for r in got.iter().filter(|r| r.hit) {
        *per_key.entry(r.hash).or_default() += 1;
    }
    // A sampled key is recorded at every read of it, the others never.
    assert!(per_key.values().all(|&n| n == 3), "partial keys");
    let share = per_key.len() as f64 / 2000.0;
    assert!((0.15..0.35).contains(&share), "sampled {share}");
}

#[test]
fn a_full_ring_drops_and_counts_without_blocking() {
    let dir = ShmDir::new("trace-full");
    let seg = dir.create("s", 16 * MIB);
    seg.put(b"k0", b"v", &PutOptions::default()).unwrap();
    let slots = seg.layout().trace_slots;
    seg.trace_start(1.0).unwrap();
    // No recorder drains: the ring fills, then every further read drops.
    let n = slots + 5000;
    for _ in 0..n {
        let _ = seg.get(b"k0").unwrap();
    }
    assert_eq!(seg.trace_dropped(), n - slots);
    let got = drain_all(&seg);
    assert_eq!(got.len() as u64, slots);
    // Drained, the ring takes records again.
    let _ = seg.get(b"k0").unwrap();
    assert_eq!(drain_all(&seg).len(), 1);
    assert!(seg.trace_start(0.0).is_err() && seg.trace_start(1.5).is_err());
}
