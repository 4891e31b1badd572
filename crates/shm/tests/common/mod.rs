//! Helpers shared by the integration tests: a private directory for
//! segment files, so tests never touch each other's segments.

#![allow(dead_code)]

use std::path::PathBuf;
use strata_shm::{Segment, SegmentOptions};

/// A directory under /dev/shm removed when dropped.
pub struct ShmDir {
    pub path: PathBuf,
}

impl ShmDir {
    pub fn new(tag: &str) -> ShmDir {
        let path = PathBuf::from(format!(
            "/dev/shm/strata-test-{tag}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&path).unwrap();
        ShmDir { path }
    }

    pub fn opts(&self, memory: u64) -> SegmentOptions {
        SegmentOptions::default().memory(memory).dir(&self.path)
    }

    pub fn create(&self, name: &str, memory: u64) -> Segment {
        Segment::create(name, &self.opts(memory)).unwrap()
    }
}

impl Drop for ShmDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

pub const MIB: u64 = 1 << 20;
