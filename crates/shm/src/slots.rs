//! Reader slots: one 128-byte line per reading thread, claimed with a
//! kernel byte lock that marks it alive, and reaped when that lock is free.

use crate::layout::{slot, SLOT_LOCK_BASE};
use crate::liveness::Liveness;
use crate::mem::Words;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};

/// Where the slots and their bookkeeping words are.
#[derive(Clone, Copy, Debug)]
pub struct Slots {
    pub first: u64,
    pub stride: u64,
    pub count: u64,
    pub generation: u64,
    pub high_water: u64,
    pub folded_hits: u64,
    pub folded_misses: u64,
}

/// A slot owner's token: a claim generation above 16 bits of slot index,
/// so that a reused slot never matches an old owner's token.
pub fn token_index(token: u64) -> u64 {
    token & 0xFFFF
}

impl Slots {
    pub fn off(&self, idx: u64) -> u64 {
        self.first + idx * self.stride
    }

    /// Claims a free (or dead) slot. Returns (index, token).
    pub fn claim<W: Words, L: Liveness>(&self, w: &W, live: &L, pid: u64) -> Option<(u64, u64)> {
        for idx in 0..self.count {
            let off = self.off(idx);
            if !live.try_lock(SLOT_LOCK_BASE + idx) {
                continue;
            }
            // We hold the byte lock, so no live process owns this slot.
            self.clear(w, idx);
            let generation = w.fetch_add(self.generation, 1, Relaxed) + 1;
            let token = (generation << 16) | idx;
            w.store(off + slot::PID, pid, Relaxed);
            w.store(off + slot::OWNER, token, Release);
            self.raise_high_water(w, idx + 1);
            return Some((idx, token));
        }
        None
    }

    fn raise_high_water<W: Words>(&self, w: &W, n: u64) {
        let mut cur = w.load(self.high_water, Acquire);
        while cur < n {
            match w.compare_exchange(self.high_water, cur, n) {
                Ok(_) => return,
                Err(now) => cur = now,
            }
        }
    }

    /// Folds a slot's counters into the totals and empties it. Only for a
    /// caller that holds the slot's byte lock.
    fn clear<W: Words>(&self, w: &W, idx: u64) {
        let off = self.off(idx);
        let hits = w.load(off + slot::HITS, Relaxed);
        let misses = w.load(off + slot::MISSES, Relaxed);
        if hits > 0 {
            w.fetch_add(self.folded_hits, hits, Relaxed);
            w.store(off + slot::HITS, 0, Relaxed);
        }
        if misses > 0 {
            w.fetch_add(self.folded_misses, misses, Relaxed);
            w.store(off + slot::MISSES, 0, Relaxed);
        }
        w.store(off + slot::EPOCH, 0, Release);
        w.store(off + slot::PID, 0, Relaxed);
        w.store(off + slot::OWNER, 0, Release);
    }

    /// Gives a slot back; the caller owns it and holds its lock.
    pub fn release<W: Words, L: Liveness>(&self, w: &W, live: &L, idx: u64) {
        self.clear(w, idx);
        live.unlock(SLOT_LOCK_BASE + idx);
    }

    /// Reaps slot `idx` if its owner is dead. `mine` is the caller's own
    /// slot, whose lock it holds and must not mistake for a dead one.
    pub fn reap<W: Words, L: Liveness>(&self, w: &W, live: &L, idx: u64, mine: u64) -> bool {
        if idx == mine || w.load(self.off(idx) + slot::OWNER, Acquire) == 0 {
            return false;
        }
        if !live.try_lock(SLOT_LOCK_BASE + idx) {
            return false;
        }
        let reaped = w.load(self.off(idx) + slot::OWNER, Acquire) != 0;
        if reaped {
            self.clear(w, idx);
        }
        live.unlock(SLOT_LOCK_BASE + idx);
        reaped
    }

    /// Whether the holder of `token` is alive. `mine` is the caller's slot.
    pub fn is_alive<W: Words, L: Liveness>(&self, w: &W, live: &L, token: u64, mine: u64) -> bool {
        let idx = token_index(token);
        if idx >= self.count || w.load(self.off(idx) + slot::OWNER, Acquire) != token {
            return false;
        }
        idx == mine || live.held_by_other(SLOT_LOCK_BASE + idx)
    }
}
