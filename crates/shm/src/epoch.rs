//! Epoch-based reclamation across processes, with crossbeam-epoch's rules:
//! pin = store then SeqCst fence; the global epoch advances only when every
//! pinned slot is at it; garbage retired at epoch e is freed at e + 2.

use crate::mem::Words;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release, SeqCst};

/// Where the global epoch and the slots' epoch words are.
#[derive(Clone, Copy, Debug)]
pub struct Epochs {
    pub global: u64,
    pub first_slot_epoch: u64,
    pub slot_stride: u64,
    pub high_water: u64,
}

/// A pinned slot word: epoch << 1 | 1. Zero is unpinned.
pub fn pinned_value(epoch: u64) -> u64 {
    (epoch << 1) | 1
}

impl Epochs {
    pub fn slot_epoch_off(&self, idx: u64) -> u64 {
        self.first_slot_epoch + idx * self.slot_stride
    }

    /// Pins slot `idx`; returns the epoch it pinned.
    #[inline(always)]
    pub fn pin<W: Words>(&self, w: &W, idx: u64) -> u64 {
        let e = w.load(self.global, Relaxed);
        w.store(self.slot_epoch_off(idx), pinned_value(e), Relaxed);
        w.fence(SeqCst);
        e
    }

    #[inline(always)]
    pub fn unpin<W: Words>(&self, w: &W, idx: u64) {
        w.store(self.slot_epoch_off(idx), 0, Release);
    }

    /// The epoch to record for garbage that was just unlinked. The caller
    /// must have made the unlink visible (a Release store) before calling.
    /// Pinning around the read is what makes the e + 2 rule sound for a
    /// retirer that is not otherwise pinned.
    pub fn retire_epoch<W: Words>(&self, w: &W, idx: u64) -> u64 {
        self.pin(w, idx);
        let e = w.load(self.global, SeqCst);
        self.unpin(w, idx);
        e
    }

    pub fn current<W: Words>(&self, w: &W) -> u64 {
        w.load(self.global, SeqCst)
    }

    /// Advances the global epoch by one if every pinned slot is at it.
    /// Err(idx) names the first slot that holds it back.
    pub fn try_advance<W: Words>(&self, w: &W) -> Result<u64, u64> {
        let e = w.load(self.global, Relaxed);
        w.fence(SeqCst);
        let n = w.load(self.high_water, Acquire);
        for idx in 0..n {
            let v = w.load(self.slot_epoch_off(idx), Relaxed);
            if v & 1 == 1 && (v >> 1) != e {
                return Err(idx);
            }
        }
        w.fence(Acquire);
        // A CAS, not a store: an advancer that is not pinned may be slow,
        // and must never move the epoch backwards.
        match w.compare_exchange(self.global, e, e + 1) {
            Ok(_) => Ok(e + 1),
            Err(now) => Ok(now),
        }
    }

    /// Whether garbage retired at `retired` may be freed (pins aside).
    pub fn is_safe(&self, current: u64, retired: u64) -> bool {
        current >= retired + 2
    }
}
