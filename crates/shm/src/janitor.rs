//! Housekeeping without a daemon. Every process that uses a segment starts
//! one background thread for it, lazily, on the first use of the segment
//! by any of its threads (never on the read path itself: claiming a reader
//! slot is already the cold path). The threads compete for one lease in
//! the segment header, a word holding the slot token of the thread that
//! holds it; liveness is the slot's kernel byte lock, as for every other
//! owner in L0, so a `kill -9`ed janitor's lease is taken over at the next
//! tick of any other process. Only the holder works: it reaps dead
//! processes' reader slots and views, sweeps a slice of each shard for
//! expired entries and reclaims limbo, once a `PERIOD`.
//!
//! The tiered cache reuses the lease for its own machine-wide jobs
//! (`Segment::janitor_token`, `Segment::holds_janitor_lease`).

use crate::error::Result;
use crate::layout::hdr;
use crate::local;
use crate::mem::{sys, Words};
use crate::segment::{Inner, Segment};
use std::sync::atomic::Ordering::{Acquire, Relaxed};
use std::sync::Weak;
use std::time::Duration;

/// How often each process's janitor thread checks the lease, and how
/// often the holder does its rounds: a dead process's views are released
/// within about this long.
pub const PERIOD: Duration = Duration::from_millis(500);

/// Index slots of each shard the janitor sweeps for expired entries per
/// round: a whole segment of 1 GiB (262k entries, 32 shards) in about
/// eight seconds, at a small fraction of a core.
const SWEEP_SLOTS: u64 = 2048;

impl Inner {
    /// Starts this process's janitor thread for the segment unless one is
    /// running (a forked child starts its own: threads do not survive a
    /// fork).
    #[cold]
    pub(crate) fn ensure_janitor(&self) {
        if !self.opts.janitor {
            return;
        }
        // An atomic, not a mutex: a fork while another thread held a
        // mutex here would leave the child's copy locked for good.
        let want = sys::fork_generation() + 1;
        let cur = self.janitor_gen.load(Relaxed);
        if cur == want
            || self
                .janitor_gen
                .compare_exchange(cur, want, Relaxed, Relaxed)
                .is_err()
        {
            return;
        }
        let me = self.me.clone();
        let spawned = std::thread::Builder::new()
            .name("strata-janitor".into())
            .spawn(move || run(me));
        if spawned.is_err() {
            // No thread to be had: housekeeping falls to writers and
            // other processes, and the next first use tries again.
            self.janitor_gen.store(0, Relaxed);
        }
    }
}

fn run(me: Weak<Inner>) {
    loop {
        std::thread::sleep(PERIOD);
        let Some(inner) = me.upgrade() else { return };
        if inner.closed.load(Relaxed) || inner.janitor_gen_is_stale() {
            return;
        }
        let seg = Segment { inner };
        // An error here (no reader slot to be had) is retried next round.
        let _ = seg.janitor_round();
    }
}

impl Inner {
    /// Whether this thread was started before a fork: the child's copy
    /// of the handle starts a thread of its own.
    fn janitor_gen_is_stale(&self) -> bool {
        self.janitor_gen.load(Relaxed) != sys::fork_generation() + 1
    }
}

impl Segment {
    /// One round of the janitor: take the lease if its holder is gone,
    /// and if this thread holds it, do the housekeeping. Ok(true) if it
    /// did.
    pub fn janitor_round(&self) -> Result<bool> {
        if !self.try_take_janitor_lease()? {
            return Ok(false);
        }
        self.maintain_with(SWEEP_SLOTS)?;
        Ok(true)
    }

    /// Takes the janitor lease for the calling thread if nobody alive
    /// holds it. True if this thread holds it afterwards.
    pub fn try_take_janitor_lease(&self) -> Result<bool> {
        let inner = &*self.inner;
        let r = &*inner.region;
        let ts = local::thread_slot(inner)?;
        let cur = r.load(hdr::JANITOR, Acquire);
        if cur == ts.token {
            return Ok(true);
        }
        if cur != 0 && inner.slots.is_alive(r, &ts.live(), cur, ts.idx) {
            return Ok(false);
        }
        Ok(r.compare_exchange(hdr::JANITOR, cur, ts.token).is_ok())
    }

    /// The slot token of the janitor lease's holder (0: none yet). It may
    /// name a thread that has died; `janitor_round` takes such a lease over.
    pub fn janitor_token(&self) -> u64 {
        self.inner.region.load(hdr::JANITOR, Acquire)
    }

    /// Whether the calling thread holds the janitor lease.
    pub fn holds_janitor_lease(&self) -> Result<bool> {
        let ts = local::thread_slot(&self.inner)?;
        Ok(self.janitor_token() == ts.token)
    }

    /// Whether the lease is held by a live thread (of any process).
    pub fn janitor_alive(&self) -> Result<bool> {
        let inner = &*self.inner;
        let ts = local::thread_slot(inner)?;
        let cur = self.janitor_token();
        Ok(cur != 0
            && inner
                .slots
                .is_alive(&*inner.region, &ts.live(), cur, ts.idx))
    }
}

impl Segment {
    /// A token naming the calling thread as an owner, for leases kept in
    /// the segment (single-flight, elections): its reader slot and that
    /// slot's claim generation, so that a reused slot never passes for an
    /// old owner.
    pub fn owner_token(&self) -> Result<u64> {
        Ok(local::thread_slot(&self.inner)?.token)
    }

    /// Whether the owner named by `token` is alive: its slot still records
    /// it and the slot's kernel byte lock is held. A dead owner's lease
    /// may be taken over.
    pub fn is_owner_alive(&self, token: u64) -> Result<bool> {
        let inner = &*self.inner;
        let ts = local::thread_slot(inner)?;
        Ok(token != 0
            && inner
                .slots
                .is_alive(&*inner.region, &ts.live(), token, ts.idx))
    }
}
