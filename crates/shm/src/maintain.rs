//! Housekeeping: reaping the slots, pin pages and locks of dead processes,
//! sweeping expired entries, and reclaiming limbo. Writers do a little of
//! this as they go; `maintain` does all of it, for a janitor or a test.

use crate::error::Result;
use crate::layout::{hdr, shard, SLOTS_PER_BUCKET};
use crate::local;
use crate::mem::Words;
use crate::read::Found;
use crate::segment::Segment;
use crate::write::Removal;
use std::sync::atomic::Ordering::{Acquire, Relaxed};

/// What one `maintain` pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MaintainReport {
    pub reaped_slots: u64,
    pub reaped_pin_pages: u64,
    pub recovered_shards: u64,
    pub expired: u64,
    pub freed_blocks: u64,
}

/// Index slots examined per shard per pass when sweeping TTLs.
const SWEEP_SLOTS: u64 = 8192;

impl Segment {
    /// Does all the housekeeping once: reaps dead processes' reader slots,
    /// views and shard locks, sweeps a slice of every shard for expired
    /// entries, and reclaims what is safe. The janitor thread does this on
    /// its own (`SegmentOptions::janitor`); calling it is never required.
    pub fn maintain(&self) -> Result<MaintainReport> {
        self.maintain_with(SWEEP_SLOTS)
    }

    pub(crate) fn maintain_with(&self, sweep_slots: u64) -> Result<MaintainReport> {
        let inner = &*self.inner;
        let r = &*inner.region;
        let l = inner.layout;
        let ts = local::thread_slot(inner)?;
        let live = ts.live();
        let mut rep = MaintainReport::default();

        let high = r.load(hdr::SLOT_HIGH_WATER, Acquire).min(inner.slots.count);
        for idx in 0..high {
            if inner.slots.reap(r, &live, idx, ts.idx) {
                rep.reaped_slots += 1;
            }
        }
        rep.reaped_pin_pages = inner.reap_dead_pins(&ts);
        for sh in 0..l.shard_count {
            let holder = inner.shard_lock(sh).holder(r);
            if holder != 0 && !inner.slots.is_alive(r, &live, holder, ts.idx) {
                rep.recovered_shards += 1;
            }
            let _g = inner.lock_shard(&ts, sh);
            let now = inner.opts.clock.now_ms();
            let total = l.buckets_per_shard * SLOTS_PER_BUCKET;
            let base = l.shard_off(sh);
            let cursor = r.load(base + shard::SWEEP_CURSOR, Relaxed) % total;
            for k in 0..sweep_slots.min(total) {
                let i = (cursor + k) % total;
                let (b, s) = (i / SLOTS_PER_BUCKET, i % SLOTS_PER_BUCKET);
                let slot = l.bucket_off(sh, b) + s * 8;
                let word = r.load(slot, Acquire);
                if word == 0 {
                    continue;
                }
                let Some(hdr) = inner.linked_block(sh, b, word) else {
                    continue;
                };
                if inner.is_expired(&hdr, now) {
                    if inner.ensure_limbo_room(&ts, sh, 1).is_err() {
                        break;
                    }
                    let f = Found { slot, word, hdr };
                    inner.remove_entry(&ts, sh, &f, Removal::Expired);
                    rep.expired += 1;
                }
            }
            r.store(
                base + shard::SWEEP_CURSOR,
                (cursor + sweep_slots.min(total)) % total,
                Relaxed,
            );
            rep.freed_blocks += inner.reclaim(&ts, sh, true);
        }
        Ok(rep)
    }
}
