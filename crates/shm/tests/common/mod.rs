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

/// Runs this test binary again as a child process in `role`. The child
/// runs only the `child_entry` test, which dispatches on the role.
pub fn spawn_role(role: &str, env: &[(&str, String)]) -> std::process::Child {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = std::process::Command::new(exe);
    cmd.args(["child_entry", "--exact", "--nocapture", "--test-threads=1"])
        .env("STRATA_TEST_ROLE", role)
        .stdout(std::process::Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}

pub fn role() -> Option<String> {
    std::env::var("STRATA_TEST_ROLE").ok()
}

pub fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z ^= z >> 29;
    z.wrapping_mul(0xBF58_476D_1CE4_E5B9) ^ (z >> 32)
}

/// A value whose bytes all derive from (key, version): any mix of two
/// versions, or bytes of another key, fails `verify_value`.
pub fn make_value(key: u64, version: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len.max(24)];
    v[..8].copy_from_slice(&key.to_le_bytes());
    v[8..16].copy_from_slice(&version.to_le_bytes());
    let fill = mix(key ^ (version << 20)) as u8;
    let n = v.len();
    for b in &mut v[16..n - 8] {
        *b = fill;
    }
    let sum = mix(key) ^ mix(version.wrapping_add(1)) ^ n as u64;
    v[n - 8..].copy_from_slice(&sum.to_le_bytes());
    v
}

pub fn verify_value(v: &[u8], key: u64) -> bool {
    let n = v.len();
    if n < 24 {
        return false;
    }
    let k = u64::from_le_bytes(v[..8].try_into().unwrap());
    let version = u64::from_le_bytes(v[8..16].try_into().unwrap());
    let fill = mix(key ^ (version << 20)) as u8;
    let sum = u64::from_le_bytes(v[n - 8..].try_into().unwrap());
    k == key
        && sum == mix(key) ^ mix(version.wrapping_add(1)) ^ n as u64
        && v[16..n - 8].iter().all(|&b| b == fill)
}
