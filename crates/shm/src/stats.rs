//! Counters and gauges of a segment, summed over shards and reader slots.

use crate::alloc::{owner_class_of, owner_kind, owner_run, KIND_CLASS, KIND_HEAD};
use crate::classes;
use crate::error::Result;
use crate::layout::{hdr, shard, slot, SLAB_SIZE};
use crate::local;
use crate::mem::Words;
use crate::segment::Segment;
use std::sync::atomic::Ordering::{Acquire, Relaxed};

/// A snapshot of a segment's state. Counters are totals since creation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Entries in the index (expired ones count until swept).
    pub entries: u64,
    pub max_entries: u64,
    /// Size of the whole segment.
    pub memory_bytes: u64,
    /// Bytes of the data arena.
    pub capacity_bytes: u64,
    /// Bytes of blocks that hold linked entries.
    pub used_bytes: u64,
    /// Bytes of the arena not allocated to any block.
    pub free_bytes: u64,
    /// Bytes of replaced or removed blocks awaiting reclamation.
    pub limbo_bytes: u64,
    /// Bytes of blocks held by views.
    pub pinned_bytes: u64,
    pub hits: u64,
    pub misses: u64,
    pub inserts: u64,
    pub updates: u64,
    pub deletes: u64,
    pub evictions: u64,
    pub expirations: u64,
    pub rejections: u64,
    /// Shards rebuilt after their writer died.
    pub repairs: u64,
    /// Slabs emptied to give their space to another size class.
    pub slab_reassigns: u64,
    /// Reader slots with an owner recorded.
    pub reader_slots_attached: u64,
    /// Of those, the ones whose owner is alive.
    pub reader_slots_live: u64,
    pub global_epoch: u64,
    pub shards: u64,
}

impl Stats {
    /// Every figure with its name, in one order: what the command line's
    /// JSON and the Python `stats()` dict report.
    pub fn fields(&self) -> [(&'static str, u64); 22] {
        [
            ("entries", self.entries),
            ("max_entries", self.max_entries),
            ("memory_bytes", self.memory_bytes),
            ("capacity_bytes", self.capacity_bytes),
            ("used_bytes", self.used_bytes),
            ("free_bytes", self.free_bytes),
            ("limbo_bytes", self.limbo_bytes),
            ("pinned_bytes", self.pinned_bytes),
            ("hits", self.hits),
            ("misses", self.misses),
            ("inserts", self.inserts),
            ("updates", self.updates),
            ("deletes", self.deletes),
            ("evictions", self.evictions),
            ("expirations", self.expirations),
            ("rejections", self.rejections),
            ("repairs", self.repairs),
            ("slab_reassigns", self.slab_reassigns),
            ("reader_slots_attached", self.reader_slots_attached),
            ("reader_slots_live", self.reader_slots_live),
            ("global_epoch", self.global_epoch),
            ("shards", self.shards),
        ]
    }
}

impl Segment {
    pub fn stats(&self) -> Result<Stats> {
        let inner = &*self.inner;
        let r = &*inner.region;
        let l = inner.layout;
        let ts = local::thread_slot(inner)?;
        let live = ts.live();
        let mut st = Stats {
            max_entries: l.max_entries,
            memory_bytes: l.region_size,
            capacity_bytes: l.arena_bytes(),
            shards: l.shard_count,
            global_epoch: inner.epochs.current(r),
            hits: r.load(hdr::FOLDED_HITS, Relaxed),
            misses: r.load(hdr::FOLDED_MISSES, Relaxed),
            ..Stats::default()
        };
        for sh in 0..l.shard_count {
            let b = l.shard_off(sh);
            let g = |f| r.load(b + f, Relaxed);
            st.entries += g(shard::ENTRIES);
            st.used_bytes += g(shard::BYTES);
            st.limbo_bytes += g(shard::LIMBO_BYTES);
            st.inserts += g(shard::INSERTS);
            st.updates += g(shard::UPDATES);
            st.deletes += g(shard::DELETES);
            st.evictions += g(shard::EVICTIONS);
            st.expirations += g(shard::EXPIRATIONS);
            st.rejections += g(shard::REJECTIONS);
            st.repairs += g(shard::REPAIRS);
            st.slab_reassigns += g(shard::REASSIGNS);
        }
        let high = r.load(hdr::SLOT_HIGH_WATER, Acquire).min(inner.slots.count);
        for idx in 0..high {
            let off = inner.slots.off(idx);
            let owner = r.load(off + slot::OWNER, Acquire);
            st.hits += r.load(off + slot::HITS, Relaxed);
            st.misses += r.load(off + slot::MISSES, Relaxed);
            if owner != 0 {
                st.reader_slots_attached += 1;
                if inner.slots.is_alive(r, &live, owner, ts.idx) {
                    st.reader_slots_live += 1;
                }
            }
        }
        let mut allocated = 0;
        for s in 0..l.slab_count {
            let owner = inner.slab_owner(s);
            match owner_kind(owner) {
                KIND_CLASS if classes::is_class(owner_class_of(owner)) => {
                    allocated += inner.slab_used(s) * classes::size(owner_class_of(owner));
                }
                KIND_HEAD => allocated += owner_run(owner) * SLAB_SIZE,
                _ => {}
            }
        }
        st.free_bytes = st.capacity_bytes.saturating_sub(allocated);
        let mut pins = inner.pin_pages.pinned(r);
        pins.dedup();
        st.pinned_bytes = pins
            .iter()
            .map(|&off| r.load(off + crate::layout::block::SIZE, Relaxed))
            .sum();
        Ok(st)
    }

    /// How often `key` has been asked for lately, as the shared frequency
    /// sketch estimates it (0 to 15; it halves as the sketch ages). Counts
    /// nothing itself.
    pub fn frequency(&self, key: &[u8]) -> u32 {
        let inner = &*self.inner;
        let h = crate::hash::KeyHash::new(inner.seed, key);
        inner.sketch.estimate(&*inner.region, h.0)
    }

    /// Entries in the index, expired ones included until swept.
    pub fn len(&self) -> u64 {
        let inner = &*self.inner;
        (0..inner.layout.shard_count)
            .map(|sh| {
                inner
                    .region
                    .load(inner.layout.shard_off(sh) + shard::ENTRIES, Relaxed)
            })
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
