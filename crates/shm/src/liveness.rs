//! Liveness through kernel-held byte locks: a process holds one byte lock
//! per reader slot and pin page it owns, and the kernel drops them the
//! moment it dies. No PIDs, no timeouts.

use crate::mem::sys;
use std::os::fd::RawFd;

/// Exclusive "alive" locks on numbered bytes. Each implementor speaks for
/// one owner (an open file description in production).
pub trait Liveness {
    /// Takes the lock on `byte`; false if another owner holds it.
    fn try_lock(&self, byte: u64) -> bool;
    fn unlock(&self, byte: u64);
    /// Whether an owner other than this one holds `byte`.
    fn held_by_other(&self, byte: u64) -> bool;
}

/// Open-file-description locks (`F_OFD_SETLK`) through one descriptor.
pub struct OfdLiveness {
    pub fd: RawFd,
}

impl Liveness for OfdLiveness {
    fn try_lock(&self, byte: u64) -> bool {
        sys::try_lock_byte(self.fd, byte).unwrap_or(false)
    }
    fn unlock(&self, byte: u64) {
        let _ = sys::unlock_byte(self.fd, byte);
    }
    fn held_by_other(&self, byte: u64) -> bool {
        // If the kernel cannot answer, assume alive: never reap on doubt.
        sys::byte_locked_by_other(self.fd, byte).unwrap_or(true)
    }
}
