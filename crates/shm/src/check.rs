//! fsck: walks the segment and reports every broken invariant. Each shard
//! is checked under its lock, so `check` is exact for a quiescent segment
//! and safe (if approximate between shards) for a busy one.

use crate::alloc::{
    owner_class_of, owner_kind, owner_shard, KIND_CLASS, KIND_FREE, KIND_HEAD, KIND_TAIL,
};
use crate::block::{self, Header};
use crate::classes;
use crate::entry::{self, Fields};
use crate::error::Result;
use crate::hash::BUSY;
use crate::layout::{shard, slab};
use crate::local;
use crate::mem::Words;
use crate::segment::Segment;
use std::collections::HashSet;
use std::sync::atomic::Ordering::{Acquire, Relaxed};

/// What `check` found.
#[derive(Debug, Default, Clone)]
pub struct CheckReport {
    pub violations: Vec<String>,
    pub entries: u64,
    pub limbo_blocks: u64,
    pub pinned_blocks: u64,
}

impl CheckReport {
    pub fn is_clean(&self) -> bool {
        self.violations.is_empty()
    }
}

impl Segment {
    /// Checks every invariant of the segment. A shard whose lock is held by
    /// a dead process is reported, then taken over and repaired.
    pub fn check(&self) -> Result<CheckReport> {
        let inner = &*self.inner;
        let r = &*inner.region;
        let l = inner.layout;
        let ts = local::thread_slot(inner)?;
        let live = ts.live();
        let mut rep = CheckReport::default();
        let mut bad = |s: String| rep.violations.push(s);
        let mut all_live_blocks = HashSet::new();
        if let Err(reason) = crate::segment::verify_checksum(r) {
            bad(format!("header: {reason}"));
        }

        for sh in 0..l.shard_count {
            let base = l.shard_off(sh);
            let holder = inner.shard_lock(sh).holder(r);
            if holder != 0 && !inner.slots.is_alive(r, &live, holder, ts.idx) {
                bad(format!("shard {sh}: lock held by dead owner {holder:#x}"));
            }
            let _g = inner.lock_shard(&ts, sh);
            let mut linked = HashSet::new();
            let mut keys = HashSet::new();
            let mut bytes = 0;
            let mut small = 0u64;
            for (b, slot) in l.shard_slots(sh) {
                let w = r.load(slot, Acquire);
                if w == 0 {
                    continue;
                }
                match inner.linked_block(sh, b, w) {
                    None => bad(format!(
                        "shard {sh} bucket {b} (slot at {slot:#x}): word {w:#x} is not a valid link"
                    )),
                    Some(h) => {
                        if w & BUSY != 0 {
                            bad(format!("slot at {slot:#x}: entry left busy"));
                        }
                        if entry::fields(r, l.entry_of(slot)) != Fields::of_block(r, &h) {
                            bad(format!(
                                "slot at {slot:#x}: entry does not match block {:#x}",
                                h.off
                            ));
                        }
                        if !linked.insert(h.off) {
                            bad(format!("block {:#x} linked twice", h.off));
                        }
                        if !keys.insert(h.key(r).to_vec()) {
                            bad(format!("shard {sh}: a key occupies two slots"));
                        }
                        bytes += h.size;
                        small += u64::from(entry::meta(r, l.entry_of(slot)) & entry::SMALL != 0);
                    }
                }
            }
            let entries = r.load(base + shard::ENTRIES, Relaxed);
            if entries != linked.len() as u64 {
                bad(format!(
                    "shard {sh}: counts {entries} entries, index has {}",
                    linked.len()
                ));
            }
            if linked.len() as u64 > l.shard_cap() {
                bad(format!(
                    "shard {sh}: holds {} entries, over its share {} of max_entries",
                    linked.len(),
                    l.shard_cap()
                ));
            }
            let counted_small = r.load(base + shard::SMALL, Relaxed);
            if counted_small != small {
                bad(format!(
                    "shard {sh}: counts {counted_small} entries in the small queue, index has {small}"
                ));
            }
            let counted = r.load(base + shard::BYTES, Relaxed);
            if counted != bytes {
                bad(format!(
                    "shard {sh}: counts {counted} bytes used, index has {bytes}"
                ));
            }
            rep.entries += linked.len() as u64;

            let mut limbo = HashSet::new();
            let mut limbo_bytes = 0;
            for (off, _) in inner.limbo_entries(sh) {
                let ok = inner.allocated_block(off, sh).is_some()
                    && Header::read(r, off).is_some_and(|h| h.state() == block::RETIRED);
                if !ok {
                    bad(format!(
                        "shard {sh}: limbo names {off:#x}, not a retired block"
                    ));
                } else if linked.contains(&off) {
                    bad(format!("shard {sh}: {off:#x} is both linked and in limbo"));
                } else if !limbo.insert(off) {
                    bad(format!("shard {sh}: {off:#x} is in limbo twice"));
                } else {
                    limbo_bytes += r.load(off + crate::layout::block::SIZE, Relaxed);
                }
            }
            let counted = r.load(base + shard::LIMBO_BYTES, Relaxed);
            if counted != limbo_bytes {
                bad(format!(
                    "shard {sh}: counts {counted} limbo bytes, limbo has {limbo_bytes}"
                ));
            }
            rep.limbo_blocks += limbo.len() as u64;

            let runs = inner.valid_runs(sh);
            for s in 0..l.slab_count {
                let owner = inner.slab_owner(s);
                if owner_kind(owner) == KIND_FREE || owner_shard(owner) != sh {
                    continue;
                }
                let blocks: Vec<u64> = match owner_kind(owner) {
                    KIND_CLASS => {
                        let class = owner_class_of(owner);
                        if !classes::is_class(class) {
                            bad(format!("slab {s}: unknown class {class}"));
                            continue;
                        }
                        let stride = classes::stride(class);
                        let set: Vec<u64> = (0..classes::per_slab(class))
                            .filter(|&b| inner.bit_is_set(s, b))
                            .collect();
                        let used = r.load(l.slab_meta_off(s) + slab::USED, Relaxed);
                        if used != set.len() as u64 {
                            bad(format!(
                                "slab {s}: used count {used}, bitmap has {}",
                                set.len()
                            ));
                        }
                        set.iter().map(|b| l.slab_start(s) + b * stride).collect()
                    }
                    KIND_HEAD => {
                        if !runs.contains_key(&s) {
                            bad(format!("slab {s}: a run head whose tails are not its own"));
                        }
                        vec![l.slab_start(s)]
                    }
                    KIND_TAIL => {
                        if !runs.iter().any(|(&h, &k)| s > h && s < h + k) {
                            bad(format!("slab {s}: a run tail with no head (leaked)"));
                        }
                        continue;
                    }
                    k => {
                        bad(format!("slab {s}: unknown kind {k}"));
                        continue;
                    }
                };
                for off in blocks {
                    if !linked.contains(&off) && !limbo.contains(&off) {
                        let state = match Header::read(r, off).map(|h| h.state()) {
                            Some(block::FREE) => "free",
                            Some(block::WRITING) => "being written",
                            Some(block::SEALED) => "sealed",
                            Some(block::RETIRED) => "retired",
                            Some(_) => "of an unknown state",
                            None => "with an unreadable header",
                        };
                        bad(format!("block {off:#x} ({state}) is allocated but neither linked nor retired: leaked"));
                    }
                    all_live_blocks.insert(off);
                }
            }
        }
        for s in 0..l.slab_count {
            let owner = inner.slab_owner(s);
            if owner_kind(owner) != KIND_FREE && owner_shard(owner) >= l.shard_count {
                bad(format!(
                    "slab {s}: owned by shard {} of {}",
                    owner_shard(owner),
                    l.shard_count
                ));
            }
            if owner == 0 && r.load(l.slab_meta_off(s) + slab::USED, Relaxed) != 0 {
                bad(format!("slab {s}: free but counts used blocks"));
            }
        }
        let pins = inner.pin_pages.pinned(r);
        rep.pinned_blocks = pins.len() as u64;
        for p in pins {
            if !all_live_blocks.contains(&p) {
                bad(format!(
                    "a pin names {p:#x}, which is not an allocated block"
                ));
            }
        }
        Ok(rep)
    }
}
