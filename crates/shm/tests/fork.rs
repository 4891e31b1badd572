//! A segment created before fork is used by the children: they read the
//! parent's data, write their own, and get reader slots of their own.

mod common;
use common::{ShmDir, MIB};
use strata_shm::PutOptions;

#[test]
fn forked_children_read_and_write() {
    let dir = ShmDir::new("fork");
    let seg = dir.create("s", 16 * MIB);
    let no = PutOptions::default();
    seg.put(b"from-parent", b"hello", &no).unwrap();
    // The parent reads first, so it holds a reader slot when it forks.
    assert!(seg.get(b"from-parent").unwrap().is_some());
    let mut pids = Vec::new();
    for i in 0..3 {
        // SAFETY: the child only uses the segment (which re-registers
        // itself after fork) and then leaves with _exit, running no
        // destructors or atexit handlers inherited from the test harness.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let ok = (|| -> Option<()> {
                let v = seg.get(b"from-parent").ok()??;
                (&*v == b"hello").then_some(())?;
                drop(v);
                let key = format!("from-child-{i}");
                seg.put(key.as_bytes(), key.as_bytes(), &no).ok()?;
                let view = seg.get_view(key.as_bytes()).ok()??;
                (&*view == key.as_bytes()).then_some(())
            })();
            // SAFETY: ends the child at once, as intended above.
            unsafe { libc::_exit(if ok.is_some() { 0 } else { 1 }) };
        }
        pids.push(pid);
    }
    for pid in pids {
        let mut status = 0;
        // SAFETY: waiting on our own child with a valid out-pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(r, pid);
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "child {pid} failed: {status:#x}"
        );
    }
    for i in 0..3 {
        let key = format!("from-child-{i}");
        assert_eq!(&*seg.get(key.as_bytes()).unwrap().unwrap(), key.as_bytes());
    }
    // The children left without releasing anything: their slots and pin
    // pages are reaped (by maintain, or by a later child that claimed a
    // dead one), and the parent's own slot was never touched.
    let rep = seg.maintain().unwrap();
    assert!(
        rep.reaped_slots >= 1 && rep.reaped_pin_pages >= 1,
        "{rep:?}"
    );
    let st = seg.stats().unwrap();
    assert_eq!(
        (st.reader_slots_attached, st.reader_slots_live),
        (1, 1),
        "{st:?}"
    );
    assert!(
        seg.get(b"from-parent").unwrap().is_some(),
        "the parent's slot still works"
    );
    assert_eq!(st.pinned_bytes, 0);
    assert!(seg.check().unwrap().is_clean());
}
