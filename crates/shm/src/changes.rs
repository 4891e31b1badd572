//! The change log: per shard, a ring of the hashes of keys written or
//! deleted, for caches outside the segment (each process's L1) that keep
//! copies of values and must drop them when any process changes the key.
//!
//! A writer appends under its shard lock, so each ring has one producer
//! at a time: it stores the hash in slot `head mod CHANGE_SLOTS`, then
//! `head + 1` with Release. A ring has about one slot per entry its shard
//! holds (`Layout::change_slots`). A reader that remembers a position reads the
//! head (Acquire), the slots in between, then the head again: if the
//! writer has lapped the first slot meanwhile, the reader is told so and
//! must drop everything it holds from that shard. A writer killed between
//! its two stores leaves a slot the next writer overwrites: nothing to
//! repair.

use crate::layout::{Layout, CHANGE_HEAD};
use crate::mem::Words;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};

/// Appends `hash` to `shard`'s ring. Caller holds the shard lock.
pub(crate) fn append<W: Words>(w: &W, l: &Layout, shard: u64, hash: u64) {
    let base = l.change_ring_off(shard);
    let head = w.load(base, Relaxed);
    w.store(
        base + CHANGE_HEAD + (head % l.change_slots) * 8,
        hash,
        Relaxed,
    );
    w.store(base, head + 1, Release);
}

pub(crate) fn head<W: Words>(w: &W, l: &Layout, shard: u64) -> u64 {
    w.load(l.change_ring_off(shard), Acquire)
}

/// The hashes appended to `shard`'s ring from position `from` up to its
/// head, pushed onto `out`; returns the head. Err(head) when the ring has
/// lapped `from` (more changes since than it has slots), and `out` is
/// then incomplete.
pub(crate) fn since<W: Words>(
    w: &W,
    l: &Layout,
    shard: u64,
    from: u64,
    out: &mut Vec<u64>,
) -> Result<u64, u64> {
    let base = l.change_ring_off(shard);
    let head = w.load(base, Acquire);
    let slots = l.change_slots;
    if head.wrapping_sub(from) > slots || from > head {
        return Err(head);
    }
    for p in from..head {
        out.push(w.load(base + CHANGE_HEAD + (p % slots) * 8, Relaxed));
    }
    std::sync::atomic::fence(Acquire);
    // A slot p is overwritten by the write of position p + slots,
    // which may be stored before the head says so: only a head below that
    // proves every slot read was still ours.
    let now = w.load(base, Acquire);
    if now >= from + slots {
        return Err(now);
    }
    Ok(head)
}

impl crate::Segment {
    /// The key's hash as this segment computes it (seeded per segment):
    /// what the change log records.
    pub fn key_hash(&self, key: &[u8]) -> u64 {
        crate::hash::KeyHash::new(self.inner.seed, key).0
    }

    /// The shard of a key hash, and the position its change log has
    /// reached: a copy of the key's value taken now is stale once the
    /// hash appears at or after that position.
    pub fn change_position(&self, hash: u64) -> (u64, u64) {
        let inner = &*self.inner;
        let shard = crate::hash::KeyHash(hash).shard(&inner.layout);
        (shard, head(&*inner.region, &inner.layout, shard))
    }

    /// The position `shard`'s change log has reached.
    pub fn change_head(&self, shard: u64) -> u64 {
        head(&*self.inner.region, &self.inner.layout, shard)
    }

    /// The key hashes written or deleted in `shard` since position
    /// `from`, onto `out`; returns the new position. Err(position) when
    /// more changes happened than the log keeps: whatever a caller holds
    /// from that shard may be stale.
    pub fn changes_since(&self, shard: u64, from: u64, out: &mut Vec<u64>) -> Result<u64, u64> {
        since(&*self.inner.region, &self.inner.layout, shard, from, out)
    }
}
