//! A segment in a tmpfs mounted with `huge=within_size` is mapped with
//! 2 MiB pages, and says so; one in a `huge=never` tmpfs (the default of
//! /dev/shm) says it is not. Needs root to mount; skipped otherwise.

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

fn fill_and_read(dir: &Path) -> Segment {
    let seg = Segment::create("s", &SegmentOptions::default().dir(dir).memory(32 * MIB)).unwrap();
    let v = vec![5u8; 4096];
    for i in 0..2000u32 {
        seg.put(&i.to_le_bytes(), &v, &PutOptions::default())
            .unwrap();
    }
    for i in 0..2000u32 {
        assert_eq!(&*seg.get(&i.to_le_bytes()).unwrap().unwrap(), &v[..]);
    }
    seg
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

    let seg = fill_and_read(&huge.0);
    assert!(seg.huge_pages());
    assert!(
        pmd_mapped_kb(seg.mapping().start) >= 2048,
        "the reads went through 2 MiB mappings"
    );
    assert!(seg.check().unwrap().is_clean());

    let seg = fill_and_read(&small.0);
    assert!(!seg.huge_pages());
    assert_eq!(pmd_mapped_kb(seg.mapping().start), 0);
}
