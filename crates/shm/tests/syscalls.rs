//! The read path makes no system call: a child does 20,000 gets (hits,
//! misses, TTL checks) between two marker calls under strace, and nothing
//! but the markers may appear between them on its thread.

mod common;
use common::*;
use std::time::Duration;
use strata_shm::{PutOptions, Segment};

#[test]
fn child_entry() {
    let Some(role) = role() else { return };
    assert_eq!(role, "reader");
    let dir = std::env::var("SEG_DIR").unwrap();
    let seg = Segment::open("s", &strata_shm::SegmentOptions::default().dir(&dir)).unwrap();
    // Warm up: claims this thread's reader slot (which does use syscalls).
    let _ = seg.get(b"k0").unwrap();
    // SAFETY: getppid has no preconditions; it is the "start" marker.
    unsafe { libc::getppid() };
    let mut found = 0;
    for i in 0..20_000u32 {
        let key = format!("k{}", i % 200);
        if let Some(g) = seg.get(key.as_bytes()).unwrap() {
            found += g.len();
        }
    }
    // SAFETY: as above; the "end" marker.
    unsafe { libc::getppid() };
    assert!(found > 0);
    std::process::exit(0);
}

#[test]
fn reads_make_no_system_calls() {
    if std::process::Command::new("strace")
        .arg("-V")
        .output()
        .is_err()
    {
        eprintln!("skipping: strace is not installed");
        return;
    }
    let dir = ShmDir::new("syscalls");
    let seg = dir.create("s", 16 * MIB);
    for i in 0..100u32 {
        let o = if i % 2 == 0 {
            PutOptions::default().ttl(Duration::from_secs(600))
        } else {
            PutOptions::default()
        };
        seg.put(format!("k{i}").as_bytes(), &[1u8; 300], &o)
            .unwrap();
    }
    let trace = dir.path.join("trace");
    let out = std::process::Command::new("strace")
        .arg("-f")
        .arg("-o")
        .arg(&trace)
        .arg(std::env::current_exe().unwrap())
        .args(["child_entry", "--exact", "--test-threads=1"])
        .env("STRATA_TEST_ROLE", "reader")
        .env("SEG_DIR", dir.path.display().to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&trace).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let marks: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].contains("getppid("))
        .collect();
    assert_eq!(marks.len(), 2, "expected two markers in:\n{text}");
    let pid = lines[marks[0]].split_whitespace().next().unwrap();
    let between: Vec<&str> = lines[marks[0] + 1..marks[1]]
        .iter()
        .filter(|l| l.split_whitespace().next() == Some(pid))
        // With the janitor thread running, strace splits the marker call
        // in two lines; its second half is not a call.
        .filter(|l| !l.contains("<... getppid resumed>"))
        .copied()
        .collect();
    assert!(
        between.is_empty(),
        "the read path made system calls:\n{}",
        between.join("\n")
    );
}
