//! Repairing a shard whose writer died holding its lock. Instead of
//! replaying an intent record, the new holder rebuilds the shard's state
//! from what is in memory: every index word is validated (and its entry
//! rebuilt from the block if a writer died rewriting it), and every
//! allocated block is either linked, waiting in limbo, or handled here
//! (retired if a reader might have seen it, freed if nobody could have).

use crate::alloc::{
    owner_class_of, owner_kind, owner_run, owner_shard, owner_tail, KIND_CLASS, KIND_HEAD,
    KIND_TAIL,
};
use crate::block::{self, Header};
use crate::classes;
use crate::entry::{self, Fields};
use crate::hash::{next_version, slot_block, slot_tag, KeyHash, BUSY};
use crate::layout::{shard, slab, LIMBO_CAPACITY, LIMBO_ENTRY, LIMBO_OFFSET};
use crate::mem::Words;
use crate::segment::Inner;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};

impl Inner {
    /// The size of the block at `off` if it is the start of an allocated
    /// block in a slab that `shard` owns.
    pub(crate) fn allocated_block(&self, off: u64, shard_no: u64) -> Option<u64> {
        let s = self.layout.slab_of(off)?;
        let owner = self.slab_owner(s);
        if owner_shard(owner) != shard_no {
            return None;
        }
        let start = self.layout.slab_start(s);
        match owner_kind(owner) {
            KIND_CLASS => {
                let class = owner_class_of(owner);
                if !classes::is_class(class) {
                    return None;
                }
                let stride = classes::stride(class);
                let rel = off - start;
                let bit = rel / stride;
                (rel % stride == 0 && bit < classes::per_slab(class) && self.bit_is_set(s, bit))
                    .then_some(classes::size(class))
            }
            KIND_HEAD => (off == start && self.bit_is_set(s, 0))
                .then_some(owner_run(owner) * crate::layout::SLAB_SIZE),
            _ => None,
        }
    }

    /// The header of the block an index word in (shard, bucket) points to,
    /// if the word is a valid link.
    pub(crate) fn linked_block(&self, shard_no: u64, bucket: u64, word: u64) -> Option<Header> {
        let off = slot_block(word);
        let size = self.allocated_block(off, shard_no)?;
        let hdr = Header::read(&self.region, off)?;
        let h = KeyHash(hdr.hash);
        let ok = hdr.state() == block::SEALED
            && hdr.size == size
            && h.shard(&self.layout) == shard_no
            && h.tag() == slot_tag(word)
            && h.buckets(&self.layout).contains(&bucket);
        ok.then_some(hdr)
    }

    /// Valid heads of slab runs owned by `shard`, mapped to their run length.
    pub(crate) fn valid_runs(&self, shard_no: u64) -> HashMap<u64, u64> {
        let n = self.layout.slab_count;
        let mut runs = HashMap::new();
        for s in 0..n {
            let owner = self.slab_owner(s);
            if owner_kind(owner) != KIND_HEAD || owner_shard(owner) != shard_no {
                continue;
            }
            let run = owner_run(owner);
            let ok = run >= 1
                && s + run <= n
                && (s + 1..s + run).all(|t| self.slab_owner(t) == owner_tail(shard_no));
            if ok {
                runs.insert(s, run);
            }
        }
        runs
    }

    pub(crate) fn repair_shard(&self, shard_no: u64) {
        let r = &*self.region;
        let l = self.layout;
        let base = l.shard_off(shard_no);
        r.fetch_add(base + shard::REPAIRS, 1, Relaxed);

        // 1. Broken slab runs (a crash mid-claim or mid-free): heads whose
        //    tails are not all theirs, and tails no valid head covers, go
        //    back to the pool. Done first, so step 2 sees no link into them.
        let runs = self.valid_runs(shard_no);
        for s in 0..l.slab_count {
            let owner = self.slab_owner(s);
            let broken = owner_shard(owner) == shard_no
                && match owner_kind(owner) {
                    KIND_HEAD => !runs.contains_key(&s),
                    KIND_TAIL => !runs.iter().any(|(&h, &k)| s > h && s < h + k),
                    _ => false,
                };
            if broken {
                r.store(l.slab_meta_off(s) + slab::OWNER, 0, Release);
            }
        }

        // 2. The index: drop every word that is not a valid link.
        let mut linked: HashMap<u64, u64> = HashMap::new();
        let mut small = 0u64;
        for (b, slot) in l.shard_slots(shard_no) {
            let w = r.load(slot, Acquire);
            if w == 0 {
                continue;
            }
            match self.linked_block(shard_no, b, w) {
                Some(h) if !linked.contains_key(&h.off) => {
                    linked.insert(h.off, h.size);
                    // A writer that died rewriting the entry left BUSY and
                    // fields that may be half new: rebuild them from the
                    // block, under a new version of the word.
                    let want = Fields::of_block(r, &h);
                    let entry = l.entry_of(slot);
                    // The policy word is only a hint; a torn one costs
                    // nothing but a misplaced eviction.
                    let meta = entry::meta(r, entry);
                    if w & BUSY != 0 || entry::fields(r, entry) != want {
                        entry::link(r, slot, entry, next_version(w), &want, meta);
                    }
                    small += u64::from(meta & entry::SMALL != 0);
                }
                _ => r.store(slot, 0, Release),
            }
        }

        // 3. The limbo: keep valid, distinct, retired, unlinked blocks.
        let mut limbo: Vec<(u64, u64)> = Vec::new();
        let mut in_limbo = HashSet::new();
        for (off, epoch) in self.limbo_entries(shard_no) {
            let ok = self.allocated_block(off, shard_no).is_some()
                && !linked.contains_key(&off)
                && Header::read(r, off).is_some_and(|h| h.state() == block::RETIRED)
                && in_limbo.insert(off);
            if ok {
                limbo.push((off, epoch));
            }
        }

        // 4. Every allocated block must be linked or in limbo.
        let epoch = self.epochs.current(r);
        let mut orphans_to_free = Vec::new();
        for s in 0..l.slab_count {
            let owner = self.slab_owner(s);
            if owner_shard(owner) != shard_no {
                continue;
            }
            let blocks: Vec<u64> = match owner_kind(owner) {
                KIND_CLASS => {
                    let class = owner_class_of(owner);
                    if !classes::is_class(class) {
                        r.store(l.slab_meta_off(s) + slab::OWNER, 0, Release);
                        continue;
                    }
                    let stride = classes::stride(class);
                    let cap = classes::per_slab(class);
                    let set: Vec<u64> = (0..cap).filter(|&b| self.bit_is_set(s, b)).collect();
                    // The used count may be torn; the bitmap is the truth.
                    r.store(l.slab_meta_off(s) + slab::USED, set.len() as u64, Relaxed);
                    if set.is_empty() {
                        r.store(l.slab_meta_off(s) + slab::OWNER, 0, Release);
                    }
                    set.iter().map(|b| l.slab_start(s) + b * stride).collect()
                }
                KIND_HEAD if self.bit_is_set(s, 0) => vec![l.slab_start(s)],
                KIND_HEAD => {
                    orphans_to_free.push(l.slab_start(s));
                    continue;
                }
                _ => continue,
            };
            for off in blocks {
                if linked.contains_key(&off) || in_limbo.contains(&off) {
                    continue;
                }
                let state = Header::read(r, off).map(|h| h.state());
                match state {
                    // A reader may have seen it: retire, don't free.
                    Some(block::SEALED) | Some(block::RETIRED)
                        if (limbo.len() as u64) < LIMBO_CAPACITY =>
                    {
                        block::set_state(r, off, block::RETIRED);
                        limbo.push((off, epoch));
                        in_limbo.insert(off);
                    }
                    // Limbo full of pinned blocks: left allocated, which
                    // check() reports as a leak until a later repair.
                    Some(block::SEALED) | Some(block::RETIRED) => {}
                    // Never published (or never even written): free now.
                    _ => orphans_to_free.push(off),
                }
            }
        }
        for off in orphans_to_free {
            self.free_block(off);
        }

        // 5. Rewrite the limbo ring and the counters from what was found.
        let mut limbo_bytes = 0;
        for i in 0..LIMBO_CAPACITY {
            let e = base + LIMBO_OFFSET + i * LIMBO_ENTRY;
            let (off, ep) = limbo.get(i as usize).copied().unwrap_or((0, 0));
            r.store(e, off, Relaxed);
            r.store(e + 8, ep, Relaxed);
            if off != 0 {
                limbo_bytes += r.load(off + crate::layout::block::SIZE, Relaxed);
            }
        }
        r.store(base + shard::LIMBO_HEAD, 0, Relaxed);
        r.store(base + shard::LIMBO_TAIL, limbo.len() as u64, Release);
        r.store(base + shard::LIMBO_BYTES, limbo_bytes, Relaxed);
        r.store(base + shard::ENTRIES, linked.len() as u64, Relaxed);
        r.store(base + shard::SMALL, small, Relaxed);
        self.rebuild_queue(shard_no);
        r.store(base + shard::BYTES, linked.values().sum(), Relaxed);
        for c in 0..classes::TOTAL as u64 {
            r.store(base + shard::ALLOC_HINT + c * 8, 0, Relaxed);
        }
    }
}
