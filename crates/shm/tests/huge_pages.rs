//! Huge pages. A new segment is built on 2 MiB pages on any tmpfs where
//! the kernel can (Linux 6.1 and later), and every process that attaches
//! maps them as such. A segment in a tmpfs mounted with
//! `huge=within_size` has them anyway; one created without them in a
//! `huge=never` tmpfs (the default of /dev/shm) has 4 KiB pages, and says
//! so. The mount test needs root; it is skipped otherwise.

mod common;
use common::{ShmDir, MIB};
use std::path::{Path, PathBuf};
use strata_shm::{PutOptions, Segment, SegmentOptions};

/// A tmpfs mounted for the test, unmounted when dropped.
struct Mount(PathBuf);

impl Mount {
    fn new(dir: &ShmDir, name: &str, huge: &str) -> Option<Mount> {
        let mnt = dir.path.join(name);
        std::fs::create_dir_all(&mnt).unwrap();
        let ok = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size=64m,huge={huge}"),
                "tmpfs",
            ])
            .arg(&mnt)
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Mount(mnt))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        // Lazily: a failed assertion may leave a segment mapped.
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Kilobytes of this process's mapping at `start` mapped with 2 MiB pages.
fn pmd_mapped_kb(start: usize) -> u64 {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let head = format!("{start:x}-");
    smaps
        .lines()
        .skip_while(|l| !l.starts_with(&head))
        .skip(1)
        .take_while(|l| l.starts_with(|c: char| c.is_ascii_uppercase()))
        .filter_map(|l| l.strip_prefix("ShmemPmdMapped:"))
        .filter_map(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .sum()
}

fn fill_and_read(dir: &Path, huge_pages: bool) -> Segment {
    let opts = SegmentOptions::default()
        .dir(dir)
        .memory(32 * MIB)
        .huge_pages(huge_pages);
    let seg = Segment::create("s", &opts).unwrap();
    let v = vec![5u8; 4096];
    for i in 0..2000u32 {
        seg.put(&i.to_le_bytes(), &v, &PutOptions::default())
            .unwrap();
    }
    read_all(&seg, &v);
    seg
}

fn read_all(seg: &Segment, v: &[u8]) {
    for i in 0..2000u32 {
        assert_eq!(&*seg.get(&i.to_le_bytes()).unwrap().unwrap(), v);
    }
}

/// Whether this kernel builds huge pages for a tmpfs file on request
/// (`MADV_COLLAPSE`, Linux 6.1, unless tmpfs huge pages are denied).
fn kernel_collapses() -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut nums = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|n| n.parse::<u32>().unwrap_or(0));
    let version = (nums.next().unwrap_or(0), nums.next().unwrap_or(0));
    let shmem = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/shmem_enabled");
    version >= (6, 1) && shmem.is_ok_and(|s| !s.contains("[deny]"))
}

#[test]
fn new_segments_are_built_on_huge_pages_that_every_process_maps() {
    if !kernel_collapses() {
        eprintln!("skipping: this kernel cannot build huge pages on request");
        return;
    }
    let dir = ShmDir::new("collapse");
    let seg = fill_and_read(&dir.path, true);
    assert!(seg.huge_pages());
    assert!(
        pmd_mapped_kb(seg.mapping().start) >= 2048,
        "the creator's reads went through 2 MiB mappings"
    );
    assert!(seg.check().unwrap().is_clean());
    drop(seg);

    // Another process attaches and reads: its own page faults map the huge
    // pages the creator built, with no request of its own.
    // SAFETY: the child only attaches, reads and reads its smaps, then
    // leaves with _exit, running no destructors or atexit handlers
    // inherited from the test harness.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let ok = (|| -> Option<()> {
            let seg = Segment::open("s", &SegmentOptions::default().dir(&dir.path)).ok()?;
            for i in 0..2000u32 {
                let v = seg.get(&i.to_le_bytes()).ok()??;
                v.iter().all(|&b| b == 5).then_some(())?;
            }
            (pmd_mapped_kb(seg.mapping().start) >= 2048).then_some(())
        })();
        // SAFETY: ends the child at once, as intended above.
        unsafe { libc::_exit(if ok.is_some() { 0 } else { 1 }) };
    }
    let mut status = 0;
    // SAFETY: waiting on our own child with a valid out-pointer.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the attaching process did not read through 2 MiB mappings"
    );
}

#[test]
fn huge_page_mounts_are_used_and_reported() {
    let thp = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/shmem_enabled");
    if thp.as_deref().map_or(true, |s| s.contains("[deny]")) {
        eprintln!("skipping: this kernel has no transparent huge pages for tmpfs");
        return;
    }
    let dir = ShmDir::new("huge");
    let (Some(huge), Some(small)) = (
        Mount::new(&dir, "huge", "within_size"),
        Mount::new(&dir, "small", "never"),
    ) else {
        eprintln!("skipping: cannot mount a tmpfs here (needs root)");
        return;
    };

    let seg = fill_and_read(&huge.0, false);
    assert!(seg.huge_pages());
    assert!(
        pmd_mapped_kb(seg.mapping().start) >= 2048,
        "the reads went through 2 MiB mappings"
    );
    assert!(seg.check().unwrap().is_clean());

    let seg = fill_and_read(&small.0, false);
    assert!(!seg.huge_pages());
    assert_eq!(pmd_mapped_kb(seg.mapping().start), 0);
}

#[test]
fn creation_reports_its_progress_to_the_end() {
    let dir = ShmDir::new("progress");
    let calls = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = calls.clone();
    let opts = SegmentOptions::default()
        .dir(&dir.path)
        .memory(512 * MIB)
        .on_progress(std::sync::Arc::new(move |done, total| {
            seen.lock().unwrap().push((done, total))
        }));
    let seg = Segment::create("p", &opts).unwrap();
    let calls = calls.lock().unwrap().clone();
    let size = seg.layout().region_size;
    assert_eq!(
        calls.last(),
        Some(&(size, size)),
        "the last report is the end"
    );
    assert!(calls.iter().all(|&(d, t)| t == size && d <= t));
    assert!(calls.windows(2).all(|w| w[0].0 <= w[1].0));
    if kernel_collapses() {
        assert!(calls.len() > 2, "reports along the way: {calls:?}");
    }
}
