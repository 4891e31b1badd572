//! Creating a segment can take seconds (building huge pages when memory is
//! fragmented). An attacher waits for a creator that is alive, however long
//! it takes, and gives up `ready_timeout` after one that died mid-creation:
//! the creator holds a byte lock that the kernel drops when it dies.

mod common;
use common::{ShmDir, MIB};
use std::sync::Arc;
use std::time::{Duration, Instant};
use strata_shm::{Error, Segment, SegmentOptions};

/// Forks a child that creates segment `name` and, in the middle of
/// creating it, sleeps `stall`, then dies by SIGKILL if `die`.
fn create_in_child(dir: &ShmDir, name: &str, stall: Duration, die: bool) -> libc::pid_t {
    let opts = SegmentOptions::default()
        .dir(&dir.path)
        .memory(16 * MIB)
        .on_progress(Arc::new(move |_, _| {
            std::thread::sleep(stall);
            if die {
                // SAFETY: sends a signal to this (child) process only.
                unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
            }
        }));
    // SAFETY: the child only creates the segment and leaves with _exit,
    // running no destructors or atexit handlers inherited from the harness.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let ok = Segment::create(name, &opts).is_ok();
        // SAFETY: ends the child at once, as intended above.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    pid
}

fn wait_for_file(dir: &ShmDir, name: &str) {
    let path = strata_shm::segment_path(&dir.path, name);
    let start = Instant::now();
    while !path.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no file appeared"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A creation of segment "s" in a forked child that stalls `stall` in the
/// middle, and dies there if `die`, once its file exists; with options
/// for an attacher that waits only 50 ms for a creator that is not alive.
fn stalled_creation(
    dir_name: &str,
    stall: Duration,
    die: bool,
) -> (ShmDir, SegmentOptions, libc::pid_t) {
    let dir = ShmDir::new(dir_name);
    let mut opts = dir.opts(0);
    opts.ready_timeout = Duration::from_millis(50);
    let pid = create_in_child(&dir, "s", stall, die);
    wait_for_file(&dir, "s");
    (dir, opts, pid)
}

fn reap(pid: libc::pid_t) -> i32 {
    let mut status = 0;
    // SAFETY: waiting on our own child with a valid out-pointer.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    status
}

#[test]
fn attachers_wait_for_a_live_creator_however_long_it_takes() {
    let (_dir, opts, pid) = stalled_creation("slowcreate", Duration::from_millis(400), false);
    let seg = Segment::open("s", &opts).expect("a live creator is waited for");
    assert!(seg.check().unwrap().is_clean());
    let status = reap(pid);
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
}

#[test]
fn attachers_give_up_on_a_creator_that_died() {
    let (_dir, opts, pid) = stalled_creation("deadcreate", Duration::from_millis(10), true);
    let status = reap(pid);
    assert!(libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGKILL);
    assert!(matches!(
        Segment::open("s", &opts),
        Err(Error::NotReady { .. })
    ));
}
