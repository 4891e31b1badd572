//! Retirement and reclamation. An unlinked block goes to its shard's limbo
//! ring with the epoch of its retirement, and is freed once the global
//! epoch is two past that and no pin entry names it.

use crate::block;
use crate::error::{Error, Result};
use crate::layout::{shard, LIMBO_CAPACITY, LIMBO_ENTRY, LIMBO_OFFSET};
use crate::local::ThreadSlot;
use crate::mem::Words;
use crate::segment::Inner;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::time::{Duration, Instant};

/// Reclaim opportunistically once this many blocks wait in a limbo.
pub const RECLAIM_BATCH: u64 = 32;

/// How long a writer waits for readers to leave old epochs (or drop views)
/// before it reports the space as still in use. Readers hold an epoch only
/// for a lookup or a short-lived guard, so the wait is usually a few
/// yields; it is bounded by time, not by a count of attempts.
const READER_WAIT: Duration = Duration::from_secs(1);

/// The one way a writer waits for readers: yields first, then short sleeps,
/// until `READER_WAIT` has passed.
#[derive(Default)]
pub(crate) struct Backoff {
    steps: u32,
    since: Option<Instant>,
}

impl Backoff {
    /// Waits a moment. False once the whole wait has run out.
    pub fn wait(&mut self) -> bool {
        self.steps += 1;
        if self.steps <= 64 {
            std::thread::yield_now();
            return true;
        }
        let since = *self.since.get_or_insert_with(Instant::now);
        if since.elapsed() >= READER_WAIT {
            return false;
        }
        std::thread::sleep(Duration::from_micros(100));
        true
    }

    /// Whether it has waited at all (worth reaping dead readers by then).
    pub fn waited(&self) -> bool {
        self.steps > 0
    }
}

impl Inner {
    fn limbo_entry(&self, shard: u64, i: u64) -> u64 {
        self.layout.shard_off(shard) + LIMBO_OFFSET + (i % LIMBO_CAPACITY) * LIMBO_ENTRY
    }

    pub(crate) fn limbo_bounds(&self, shard: u64) -> (u64, u64) {
        let base = self.layout.shard_off(shard);
        (
            self.region.load(base + shard::LIMBO_HEAD, Relaxed),
            self.region.load(base + shard::LIMBO_TAIL, Relaxed),
        )
    }

    /// Every (block, epoch) in the shard's limbo.
    pub(crate) fn limbo_entries(&self, shard: u64) -> Vec<(u64, u64)> {
        let (head, tail) = self.limbo_bounds(shard);
        let tail = tail.min(head + LIMBO_CAPACITY);
        (head..tail)
            .map(|i| {
                let e = self.limbo_entry(shard, i);
                (
                    self.region.load(e, Relaxed),
                    self.region.load(e + 8, Relaxed),
                )
            })
            .filter(|&(off, _)| off != 0)
            .collect()
    }

    pub(crate) fn limbo_len(&self, shard: u64) -> u64 {
        let (head, tail) = self.limbo_bounds(shard);
        tail.saturating_sub(head)
    }

    /// Makes room for `n` more retirements, reclaiming and waiting briefly
    /// for readers to leave old epochs.
    pub(crate) fn ensure_limbo_room(&self, ts: &ThreadSlot, shard: u64, n: u64) -> Result<()> {
        let mut backoff = Backoff::default();
        loop {
            if LIMBO_CAPACITY - self.limbo_len(shard) >= n {
                return Ok(());
            }
            self.reclaim(ts, shard, backoff.waited());
            self.compact_limbo(shard);
            if LIMBO_CAPACITY - self.limbo_len(shard) >= n {
                return Ok(());
            }
            if !backoff.wait() {
                break;
            }
        }
        Err(Error::Full(format!(
            "{LIMBO_CAPACITY} replaced values in one shard are still held by views or readers; \
             drop long-lived views"
        )))
    }

    /// Puts an unlinked block in limbo. The caller made room beforehand.
    pub(crate) fn retire(&self, ts: &ThreadSlot, shard: u64, off: u64, size: u64) {
        let r = &*self.region;
        block::set_state(r, off, block::RETIRED);
        let epoch = if ts.depth.get() > 0 {
            // This thread is pinned already (it holds a guard); its pin
            // must stay, and it orders the unlink before this load.
            r.fence(std::sync::atomic::Ordering::SeqCst);
            self.epochs.current(r)
        } else {
            self.epochs.retire_epoch(r, ts.idx)
        };
        let base = self.layout.shard_off(shard);
        let tail = r.load(base + shard::LIMBO_TAIL, Relaxed);
        let e = self.limbo_entry(shard, tail);
        r.store(e, off, Relaxed);
        r.store(e + 8, epoch, Relaxed);
        r.store(base + shard::LIMBO_TAIL, tail + 1, Release);
        r.fetch_add(base + shard::LIMBO_BYTES, size, Relaxed);
    }

    /// Tries to move the global epoch on (twice: freeing needs two steps).
    /// With `reap`, a slot that holds it back and whose process is dead is
    /// reaped on the spot.
    pub(crate) fn advance(&self, ts: &ThreadSlot, reap: bool) {
        let r = &*self.region;
        for _ in 0..2 {
            match self.epochs.try_advance(r) {
                Ok(_) => {}
                Err(idx) => {
                    if !(reap && self.slots.reap(r, &ts.live(), idx, ts.idx)) {
                        return;
                    }
                }
            }
        }
    }

    /// Clears the pin pages of dead processes, so that what their views
    /// held can be reclaimed.
    pub(crate) fn reap_dead_pins(&self, ts: &ThreadSlot) -> u64 {
        let r = &*self.region;
        let live = ts.live();
        let pages = r
            .load(crate::layout::hdr::PIN_HIGH_WATER, Acquire)
            .min(self.pin_pages.count);
        (0..pages)
            .filter(|&p| self.pin_pages.reap(r, &live, p))
            .count() as u64
    }

    /// Frees what is safe in the shard's limbo. Caller holds the shard lock.
    /// With `reap`, dead readers that hold the epoch back, and dead
    /// processes' views that hold a block, are reaped on the way.
    pub(crate) fn reclaim(&self, ts: &ThreadSlot, shard: u64, reap: bool) -> u64 {
        let r = &*self.region;
        self.advance(ts, reap);
        let current = self.epochs.current(r);
        let (head, tail) = self.limbo_bounds(shard);
        let tail = tail.min(head + LIMBO_CAPACITY);
        let candidates: Vec<u64> = (head..tail)
            .filter(|&i| {
                let e = self.limbo_entry(shard, i);
                r.load(e, Relaxed) != 0 && self.epochs.is_safe(current, r.load(e + 8, Relaxed))
            })
            .collect();
        if candidates.is_empty() {
            return 0;
        }
        let mut pinned = self.pin_pages.pinned(r);
        let held = |pinned: &[u64]| {
            candidates.iter().any(|&i| {
                pinned
                    .binary_search(&r.load(self.limbo_entry(shard, i), Relaxed))
                    .is_ok()
            })
        };
        if reap && held(&pinned) && self.reap_dead_pins(ts) > 0 {
            pinned = self.pin_pages.pinned(r);
        }
        let base = self.layout.shard_off(shard);
        let mut freed = 0;
        for i in candidates {
            let e = self.limbo_entry(shard, i);
            let off = r.load(e, Relaxed);
            if pinned.binary_search(&off).is_ok() {
                continue;
            }
            let size = r.load(off + crate::layout::block::SIZE, Relaxed);
            self.free_block(off);
            r.store(e, 0, Relaxed);
            r.fetch_add(base + shard::LIMBO_BYTES, size.wrapping_neg(), Relaxed);
            freed += 1;
        }
        let mut h = head;
        while h < tail && r.load(self.limbo_entry(shard, h), Relaxed) == 0 {
            h += 1;
        }
        r.store(base + shard::LIMBO_HEAD, h, Release);
        freed
    }

    /// Packs the limbo's live entries together (freed ones leave holes
    /// when a pinned block sits ahead of them).
    pub(crate) fn compact_limbo(&self, shard: u64) {
        let r = &*self.region;
        let (head, tail) = self.limbo_bounds(shard);
        if tail - head < LIMBO_CAPACITY / 2 {
            return;
        }
        let live: Vec<(u64, u64)> = self.limbo_entries(shard);
        if live.len() as u64 == tail - head {
            return;
        }
        for (i, &(off, epoch)) in live.iter().enumerate() {
            let e = self.limbo_entry(shard, head + i as u64);
            r.store(e, off, Relaxed);
            r.store(e + 8, epoch, Relaxed);
        }
        for i in head + live.len() as u64..tail {
            r.store(self.limbo_entry(shard, i), 0, Relaxed);
        }
        let base = self.layout.shard_off(shard);
        r.store(base + shard::LIMBO_TAIL, head + live.len() as u64, Release);
    }
}
