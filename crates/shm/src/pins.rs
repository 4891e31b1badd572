//! Pin pages: how a view keeps its block alive beyond an epoch. A process
//! that holds views owns one or more pages of entries (alive through a
//! kernel byte lock, like reader slots); each entry names one block that
//! the reclaimer must not free.

use crate::layout::{pin, PIN_ENTRIES, PIN_LOCK_BASE, PIN_PAGE_HEADER, PIN_PAGE_SIZE};
use crate::liveness::Liveness;
use crate::mem::Words;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release, SeqCst};

#[derive(Clone, Copy, Debug)]
pub struct PinPages {
    pub first: u64,
    pub count: u64,
    pub high_water: u64,
    pub generation: u64,
}

impl PinPages {
    pub fn page_off(&self, page: u64) -> u64 {
        self.first + page * PIN_PAGE_SIZE
    }

    pub fn entry_off(&self, page: u64, entry: u64) -> u64 {
        self.page_off(page) + PIN_PAGE_HEADER + entry * 8
    }

    /// Claims a free or dead page for this process. `owned` lists the pages
    /// it holds already: its own description would re-lock those.
    pub fn claim<W: Words, L: Liveness>(
        &self,
        w: &W,
        live: &L,
        pid: u64,
        owned: &[u64],
    ) -> Option<u64> {
        for page in 0..self.count {
            if owned.contains(&page) || !live.try_lock(PIN_LOCK_BASE + page) {
                continue;
            }
            let off = self.page_off(page);
            if w.load(off + pin::OWNER, Acquire) != 0 {
                // Locked by nobody else yet owned: its process died.
                self.clear_entries(w, page);
            }
            let generation = w.fetch_add(self.generation, 1, Relaxed) + 1;
            w.store(off + pin::PID, pid, Relaxed);
            w.store(off + pin::OWNER, (generation << 16) | page, Release);
            let mut hw = w.load(self.high_water, Acquire);
            while hw < page + 1 {
                match w.compare_exchange(self.high_water, hw, page + 1) {
                    Ok(_) => break,
                    Err(now) => hw = now,
                }
            }
            return Some(page);
        }
        None
    }

    fn clear_entries<W: Words>(&self, w: &W, page: u64) {
        for e in 0..PIN_ENTRIES {
            w.store(self.entry_off(page, e), 0, Release);
        }
    }

    /// Records that `block` must not be freed. Called inside an epoch pin,
    /// before unpinning, so the reclaimer sees it before the block's
    /// retirement can become old enough to free.
    pub fn publish<W: Words>(&self, w: &W, entry: u64, block: u64) {
        w.store(entry, block, SeqCst);
    }

    pub fn clear<W: Words>(&self, w: &W, entry: u64) {
        w.store(entry, 0, Release);
    }

    /// Gives a page back; the caller owns it.
    pub fn release<W: Words, L: Liveness>(&self, w: &W, live: &L, page: u64) {
        self.clear_entries(w, page);
        let off = self.page_off(page);
        w.store(off + pin::PID, 0, Relaxed);
        w.store(off + pin::OWNER, 0, Release);
        live.unlock(PIN_LOCK_BASE + page);
    }

    /// Clears the page of a dead process. `live` must not be a description
    /// that holds pin pages itself.
    pub fn reap<W: Words, L: Liveness>(&self, w: &W, live: &L, page: u64) -> bool {
        let off = self.page_off(page);
        if w.load(off + pin::OWNER, Acquire) == 0 || !live.try_lock(PIN_LOCK_BASE + page) {
            return false;
        }
        let reaped = w.load(off + pin::OWNER, Acquire) != 0;
        if reaped {
            self.clear_entries(w, page);
            w.store(off + pin::PID, 0, Relaxed);
            w.store(off + pin::OWNER, 0, Release);
        }
        live.unlock(PIN_LOCK_BASE + page);
        reaped
    }

    /// Every block named by a pin entry, in any page.
    pub fn pinned<W: Words>(&self, w: &W) -> Vec<u64> {
        let mut out = Vec::new();
        let n = w.load(self.high_water, Acquire).min(self.count);
        for page in 0..n {
            if w.load(self.page_off(page) + pin::OWNER, Acquire) == 0 {
                continue;
            }
            for e in 0..PIN_ENTRIES {
                let v = w.load(self.entry_off(page, e), SeqCst);
                if v != 0 {
                    out.push(v);
                }
            }
        }
        out.sort_unstable();
        out
    }
}
