//! The per-shard writer lock: a 64-bit word holding the owner's slot token,
//! taken by CAS. Waiters spin, then sleep on a shared futex, and take the
//! lock over when its owner is dead.

use crate::mem::Words;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::time::Duration;

#[derive(Clone, Copy, Debug)]
pub struct ShardLock {
    pub word: u64,
    pub seq: u64,
    pub waiters: u64,
    /// CAS attempts before checking the owner's liveness and sleeping.
    pub spins: u32,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Acquired {
    /// Taken normally.
    Clean,
    /// Taken over from a dead owner whose token is given; the shard may
    /// hold its half-done work and must be repaired before use.
    FromDead(u64),
}

/// Spins before a waiter checks liveness and sleeps.
pub const DEFAULT_SPINS: u32 = 100;

impl ShardLock {
    pub fn lock<W: Words>(&self, w: &W, token: u64, is_alive: impl Fn(u64) -> bool) -> Acquired {
        let mut spins = 0u32;
        loop {
            let cur = match w.compare_exchange(self.word, 0, token) {
                Ok(_) => return Acquired::Clean,
                Err(cur) => cur,
            };
            spins += 1;
            if spins < self.spins {
                w.spin();
                continue;
            }
            if !is_alive(cur) {
                if w.compare_exchange(self.word, cur, token).is_ok() {
                    return Acquired::FromDead(cur);
                }
                continue;
            }
            w.fetch_add(self.waiters, 1, SeqCst);
            let seq = w.load(self.seq, SeqCst) as u32;
            if w.load(self.word, SeqCst) != 0 {
                // A timeout, so a dead owner is noticed without a wake-up.
                w.wait(self.seq, seq, Duration::from_millis(2));
            }
            w.fetch_add(self.waiters, u64::MAX, SeqCst);
        }
    }

    /// Takes the lock only if that needs no wait: it is free, or its
    /// holder is dead (then taken over). None if a live holder has it.
    pub fn try_lock<W: Words>(
        &self,
        w: &W,
        token: u64,
        is_alive: impl Fn(u64) -> bool,
    ) -> Option<Acquired> {
        match w.compare_exchange(self.word, 0, token) {
            Ok(_) => Some(Acquired::Clean),
            Err(cur) if !is_alive(cur) => w
                .compare_exchange(self.word, cur, token)
                .ok()
                .map(|_| Acquired::FromDead(cur)),
            Err(_) => None,
        }
    }

    /// Releases the lock if `token` still holds it. A stale owner whose
    /// lock was taken over releases nothing.
    pub fn unlock<W: Words>(&self, w: &W, token: u64) -> bool {
        if w.compare_exchange(self.word, token, 0).is_err() {
            return false;
        }
        w.fetch_add(self.seq, 1, SeqCst);
        if w.load(self.waiters, SeqCst) > 0 {
            w.wake_all(self.seq);
        }
        true
    }

    pub fn holder<W: Words>(&self, w: &W) -> u64 {
        w.load(self.word, Relaxed)
    }
}
