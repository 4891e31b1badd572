//! Each shard's queue ring: the insertion order the eviction policy needs
//! (all entries for FIFO; the small queue for S3-FIFO and W-TinyLFU).
//!
//! A record is an index slot and the stamp its entry had when queued.
//! Records are not removed when their entry goes (deleted, updated into
//! another queue, promoted): a record is live only while its slot still
//! holds an entry with that stamp (and, for a small queue, the flag), and
//! stale ones are skipped when popped or dropped when the ring is packed.
//! Only the shard's lock holder touches the ring. A crash can leave a
//! record half written; it is stale by the check above, and repair
//! rebuilds the ring.

use crate::entry::{self, SMALL};
use crate::layout::{shard, BUCKET_SIZE, TAG_LINE};
use crate::mem::Words;
use crate::policy::Policy;
use crate::segment::Inner;
use std::sync::atomic::Ordering::Relaxed;

impl Inner {
    fn queue_bounds(&self, shard_no: u64) -> (u64, u64) {
        let base = self.layout.shard_off(shard_no);
        (
            self.region.load(base + shard::QUEUE_HEAD, Relaxed),
            self.region.load(base + shard::QUEUE_TAIL, Relaxed),
        )
    }

    fn set_queue_bounds(&self, shard_no: u64, head: u64, tail: u64) {
        let base = self.layout.shard_off(shard_no);
        self.region.store(base + shard::QUEUE_HEAD, head, Relaxed);
        self.region.store(base + shard::QUEUE_TAIL, tail, Relaxed);
    }

    /// Whether the record (slot, stamp) still names its entry in the queue.
    fn record_is_live(&self, shard_no: u64, slot: u64, stamp: u64) -> bool {
        let r = &*self.region;
        // Records become visible only once complete, so a bad one means
        // corrupted memory; it is skipped rather than trusted.
        let start = self.layout.bucket_off(shard_no, 0);
        let end = self.layout.bucket_off(shard_no + 1, 0);
        let in_shard =
            slot >= start && slot < end && slot % 8 == 0 && (slot - start) % BUCKET_SIZE < TAG_LINE;
        if !in_shard || r.load(slot, Relaxed) == 0 {
            return false;
        }
        let m = entry::meta(r, self.layout.entry_of(slot));
        // A small queue holds only flagged entries; FIFO's holds all.
        entry::stamp_of(m) == stamp && (!self.policy.has_small_queue() || m & SMALL != 0)
    }

    /// Queues the entry just linked into `slot` with policy word `meta`.
    pub(crate) fn enqueue(&self, shard_no: u64, slot: u64, meta: u64) {
        let (mut head, tail) = self.queue_bounds(shard_no);
        if tail - head >= self.layout.queue_slots {
            head = self.pack_queue(shard_no);
        }
        let (_, tail) = self.queue_bounds(shard_no);
        if tail - head >= self.layout.queue_slots {
            // Not reached: live records never outnumber the entries, and
            // the ring holds more than a shard may. Drop the oldest.
            head += 1;
        }
        let r = &*self.region;
        let off = self.layout.queue_off(shard_no, tail);
        r.store(off, slot, Relaxed);
        r.store(off + 8, entry::stamp_of(meta), Relaxed);
        self.set_queue_bounds(shard_no, head, tail + 1);
    }

    /// The oldest live record's slot, taken off the ring.
    pub(crate) fn dequeue(&self, shard_no: u64) -> Option<u64> {
        let r = &*self.region;
        let (mut head, tail) = self.queue_bounds(shard_no);
        let mut found = None;
        while head < tail {
            let off = self.layout.queue_off(shard_no, head);
            head += 1;
            let (slot, stamp) = (r.load(off, Relaxed), r.load(off + 8, Relaxed));
            if self.record_is_live(shard_no, slot, stamp) {
                found = Some(slot);
                break;
            }
        }
        self.set_queue_bounds(shard_no, head, tail);
        found
    }

    /// Drops stale records, keeping the live ones in order. Returns the
    /// new head.
    fn pack_queue(&self, shard_no: u64) -> u64 {
        let r = &*self.region;
        let (head, tail) = self.queue_bounds(shard_no);
        let mut out = head;
        for i in head..tail {
            let off = self.layout.queue_off(shard_no, i);
            let (slot, stamp) = (r.load(off, Relaxed), r.load(off + 8, Relaxed));
            if self.record_is_live(shard_no, slot, stamp) {
                let to = self.layout.queue_off(shard_no, out);
                r.store(to, slot, Relaxed);
                r.store(to + 8, stamp, Relaxed);
                out += 1;
            }
        }
        self.set_queue_bounds(shard_no, head, out);
        head
    }

    /// Rebuilds the ring from the shard's linked entries, oldest first:
    /// for repair, after which nothing in the ring can be trusted.
    pub(crate) fn rebuild_queue(&self, shard_no: u64) {
        let r = &*self.region;
        let mut live: Vec<(u64, u64)> = self
            .layout
            .shard_slots(shard_no)
            .filter(|&(_, slot)| r.load(slot, Relaxed) != 0)
            .map(|(_, slot)| (entry::meta(r, self.layout.entry_of(slot)), slot))
            .filter(|&(m, _)| self.policy == Policy::Fifo || m & SMALL != 0)
            .map(|(m, slot)| (entry::stamp_of(m), slot))
            .collect();
        live.sort_unstable();
        self.set_queue_bounds(shard_no, 0, 0);
        if !matches!(self.policy, Policy::Fifo) && !self.policy.has_small_queue() {
            return;
        }
        for (stamp, slot) in live {
            self.enqueue(shard_no, slot, entry::new_meta(stamp, false));
        }
    }
}
