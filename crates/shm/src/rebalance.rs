//! Slab reassignment. A slab belongs to one (shard, class) until it is
//! empty, so a segment filled with one size would otherwise refuse every
//! other size for good (memcached's slab calcification). When a put needs
//! space that its class cannot find by evicting its own blocks, the writer
//! empties a whole slab of another class (or, for a run of slabs, a window
//! of them) by evicting what it holds, and the freed slab goes back to the
//! pool, where the writer claims it.
//!
//! The victim is the slab that serves the fewest hits per byte: among a
//! few candidate windows from a rotating hand, the one whose live blocks
//! have the smallest summed frequency in the shared sketch (sampled, so a
//! slab of 32k small blocks costs no more to score than one of 496).
//! Slabs holding a pinned block are skipped. A slab of another shard is
//! emptied under that shard's lock, taken only if it is free at once, so
//! two writers reassigning into each other's shards never wait on each
//! other. Nothing here is a new shared state: a crash leaves at most some
//! entries evicted and a slab not yet free, which the ordinary protocols
//! (eviction, retirement, reclaim, repair) already cover.

use crate::alloc::{
    owner_class, owner_class_of, owner_kind, owner_run, owner_shard, KIND_CLASS, KIND_FREE,
    KIND_HEAD, KIND_TAIL,
};
use crate::block::{self, Header};
use crate::classes;
use crate::error::Result;
use crate::failpoint;
use crate::layout::{shard, SLAB_SIZE};
use crate::local::ThreadSlot;
use crate::lock::Acquired;
use crate::mem::Words;
use crate::read::Found;
use crate::reclaim::Backoff;
use crate::segment::Inner;
use crate::write::{Removal, ShardGuard};
use std::sync::atomic::Ordering::{Acquire, Relaxed};

/// Candidate windows scored per reassignment.
const CANDIDATES: u64 = 16;
/// A class considers growing after this many evictions of its own (or a
/// slab's worth, if fewer): often enough that a new phase's size takes the
/// arena over within a few slabs' worth of writes, rarely enough that
/// scoring candidates (about 1000 header reads) stays a small part of
/// the evicting writes' cost.
const REBALANCE_EVERY: u64 = 256;
/// Blocks sampled per slab to estimate its hits.
const SAMPLE: u64 = 64;

/// A window of slabs that could be emptied, and what it serves.
#[derive(Clone, Copy, Debug)]
struct Window {
    first: u64,
    /// Estimated sketch frequency summed over the window's live blocks.
    hits: u64,
    /// Live blocks in the window (for the per-block mean).
    blocks: u64,
    /// Whether it holds slabs of the asking class (of other shards).
    same_class: bool,
}

impl Inner {
    /// Frees `slabs` contiguous slabs (1 for a size class) for `shard`,
    /// which the caller has locked and which needs a block of `class`, by
    /// evicting a window of other slabs. `candidate` is the newcomer's
    /// frequency when it must win admission: it must be at least the
    /// window's mean frequency per block. With `beat`, only a window of
    /// other classes that serves fewer hits than that is emptied.
    pub(crate) fn reassign(
        &self,
        ts: &ThreadSlot,
        shard_no: u64,
        class: u64,
        slabs: u64,
        candidate: Option<u32>,
        beat: Option<u64>,
    ) -> Result<Reassigned> {
        let n = self.layout.slab_count;
        if slabs == 0 || slabs > n {
            return Ok(Reassigned::Nothing);
        }
        self.reap_dead_pins(ts);
        let pinned = self.pin_pages.pinned(&*self.region);
        let hand_off = self.layout.shard_off(shard_no) + shard::REASSIGN_HAND;
        let hand = self.region.load(hand_off, Relaxed) % n;
        let mut windows: Vec<Window> = (0..CANDIDATES.min(n))
            .map(|i| (hand + i * n.div_ceil(CANDIDATES)) % n)
            .filter(|&first| first + slabs <= n)
            .filter_map(|first| self.score_window(first, slabs, shard_no, class, &pinned))
            .filter(|w| beat.is_none_or(|b| !w.same_class && w.hits < b))
            .collect();
        // A slab of the same class in another shard moves space between
        // shards, not between classes: only when nothing else will do
        // (else two shards filling one class would take turns emptying
        // each other's newest slab).
        windows.sort_by_key(|w| (w.same_class, w.hits));
        self.region.store(hand_off, hand + 1, Relaxed);
        for w in windows.iter().take(3) {
            if let Some(c) = candidate {
                if w.blocks > 0 && u64::from(c) < w.hits / w.blocks {
                    return Ok(Reassigned::NotAdmitted);
                }
            }
            if self.empty_window(ts, shard_no, w.first, slabs)? {
                return Ok(Reassigned::Freed);
            }
        }
        Ok(Reassigned::Nothing)
    }

    /// The window's score, or None if it cannot be emptied: it holds a
    /// pinned block, or a slab of the very class that asks (whose own
    /// blocks the clock already offered).
    fn score_window(
        &self,
        first: u64,
        slabs: u64,
        shard_no: u64,
        class: u64,
        pinned: &[u64],
    ) -> Option<Window> {
        let own = owner_class(shard_no, class);
        let mut w = Window {
            first,
            hits: 0,
            blocks: 0,
            same_class: false,
        };
        let mut s = first;
        while s < first + slabs {
            let owner = self.slab_owner(s);
            match owner_kind(owner) {
                KIND_FREE => s += 1,
                KIND_CLASS => {
                    if owner == own || pinned_within(pinned, self.layout.slab_start(s), SLAB_SIZE) {
                        return None;
                    }
                    w.same_class |= owner_class_of(owner) == class;
                    let (hits, blocks) = self.sample_slab(s, owner_class_of(owner));
                    w.hits += hits;
                    w.blocks += blocks;
                    s += 1;
                }
                KIND_HEAD | KIND_TAIL => {
                    let (head, run) = self.run_of(s)?;
                    let start = self.layout.slab_start(head);
                    if pinned_within(pinned, start, run * SLAB_SIZE) {
                        return None;
                    }
                    w.same_class |= class == classes::LARGE;
                    if let Some(h) = Header::read(&self.region, start) {
                        w.hits += u64::from(self.sketch.estimate(&*self.region, h.hash));
                        w.blocks += 1;
                    }
                    s = head + run;
                }
                _ => return None,
            }
        }
        Some(w)
    }

    /// Called when `shard`'s class `class` evicts one of its own blocks;
    /// every `REBALANCE_EVERY` of them: if a slab of another class
    /// serves fewer hits than the slab this class's clock is sweeping,
    /// empty it for this class. True if it did (the caller retries its
    /// allocation instead of evicting). This is what moves space to where
    /// the traffic went, phase after phase, rather than only letting a
    /// new size in.
    pub(crate) fn rebalance_into(
        &self,
        ts: &ThreadSlot,
        shard_no: u64,
        class: u64,
    ) -> Result<bool> {
        let r = &*self.region;
        let count_off = self.layout.shard_off(shard_no) + shard::CLASS_EVICTIONS + class * 8;
        let churned = r.load(count_off, Relaxed) + 1;
        if churned < classes::per_slab(class).min(REBALANCE_EVERY) {
            r.store(count_off, churned, Relaxed);
            return Ok(false);
        }
        r.store(count_off, 0, Relaxed);
        let hand = r.load(
            self.layout.shard_off(shard_no) + shard::CLOCK_HAND + class * 8,
            Relaxed,
        );
        let swept = (hand >> 20) % self.layout.slab_count.max(1);
        if self.slab_owner(swept) != owner_class(shard_no, class) {
            return Ok(false);
        }
        let (own_hits, _) = self.sample_slab(swept, class);
        let got = self.reassign(ts, shard_no, class, 1, None, Some(own_hits))?;
        Ok(got == Reassigned::Freed)
    }

    /// (estimated summed frequency, live blocks) of a class slab, from up
    /// to `SAMPLE` evenly spaced blocks.
    fn sample_slab(&self, s: u64, class: u64) -> (u64, u64) {
        if !classes::is_class(class) {
            return (0, 0);
        }
        let r = &*self.region;
        let cap = classes::per_slab(class);
        let used = self.slab_used(s);
        let step = (cap / SAMPLE).max(1);
        let (mut hits, mut seen) = (0u64, 0u64);
        for bit in (0..cap).step_by(step as usize) {
            if !self.bit_is_set(s, bit) {
                continue;
            }
            let off = self.layout.slab_start(s) + bit * classes::stride(class);
            if let Some(h) = Header::read(r, off).filter(|h| h.state() == block::SEALED) {
                hits += u64::from(self.sketch.estimate(r, h.hash));
                seen += 1;
            }
        }
        if seen == 0 {
            return (0, used);
        }
        // The sample's mean frequency, over every allocated block.
        (hits * used / seen, used)
    }

    /// The run that slab `s` (a head or a tail) belongs to: (head, length).
    fn run_of(&self, s: u64) -> Option<(u64, u64)> {
        let owner = self.slab_owner(s);
        let sh = owner_shard(owner);
        let mut head = s;
        while owner_kind(self.slab_owner(head)) == KIND_TAIL {
            head = head.checked_sub(1)?;
            let o = self.slab_owner(head);
            if owner_shard(o) != sh || !matches!(owner_kind(o), KIND_HEAD | KIND_TAIL) {
                return None;
            }
        }
        let ho = self.slab_owner(head);
        let run = owner_run(ho);
        (owner_kind(ho) == KIND_HEAD && head + run > s).then_some((head, run))
    }

    /// Empties every slab of the window, locking each one's shard (at
    /// once or not at all: `shard_no` is already held by the caller).
    /// True when all of the window is free.
    fn empty_window(&self, ts: &ThreadSlot, shard_no: u64, first: u64, slabs: u64) -> Result<bool> {
        let mut s = first;
        while s < first + slabs {
            let owner = self.slab_owner(s);
            let kind = owner_kind(owner);
            if kind == KIND_FREE {
                s += 1;
                continue;
            }
            let (start, span, class) = match kind {
                KIND_CLASS => (s, 1, owner_class_of(owner)),
                KIND_HEAD | KIND_TAIL => match self.run_of(s) {
                    Some((head, run)) => (head, run, classes::LARGE),
                    None => return Ok(false),
                },
                _ => return Ok(false),
            };
            let sh = owner_shard(owner);
            let _other: Option<ShardGuard<'_>> = if sh == shard_no {
                None
            } else {
                match self.try_lock_shard(ts, sh) {
                    Some(g) => Some(g),
                    None => return Ok(false),
                }
            };
            // Still owned as it was scored: the lock now freezes it.
            if self.slab_owner(s) != owner {
                return Ok(false);
            }
            if !self.empty_slab(ts, sh, start, class)? {
                return Ok(false);
            }
            s = start + span;
        }
        Ok(true)
    }

    /// Evicts every entry in slab `s` (a class slab, or a run's head) of
    /// shard `sh`, whose lock the caller holds, and reclaims until the
    /// slab is free. False if readers or views still hold some of it when
    /// the wait for readers runs out.
    fn empty_slab(&self, ts: &ThreadSlot, sh: u64, s: u64, class: u64) -> Result<bool> {
        let r = &*self.region;
        let owner = self.slab_owner(s);
        let (cap, stride) = if class == classes::LARGE {
            (1, 0)
        } else {
            (classes::per_slab(class), classes::stride(class))
        };
        let start = self.layout.slab_start(s);
        let mut evicted = 0u64;
        for bit in 0..cap {
            if self.slab_owner(s) != owner {
                break;
            }
            if !self.bit_is_set(s, bit) {
                continue;
            }
            let off = start + bit * stride;
            let Some(hdr) = Header::read(r, off).filter(|h| h.state() == block::SEALED) else {
                continue;
            };
            let Some(slot) = self.slot_of(&hdr) else {
                continue;
            };
            self.ensure_limbo_room(ts, sh, 1)?;
            let f = Found {
                slot,
                word: r.load(slot, Acquire),
                hdr,
            };
            let expired = self.is_expired(&hdr, self.opts.clock.now_ms());
            self.remove_entry(ts, sh, &f, Removal::for_victim(expired));
            evicted += 1;
            if evicted == 1 {
                failpoint::hit("mid_reassign");
            }
        }
        self.region
            .fetch_add(self.layout.shard_off(sh) + shard::REASSIGNS, 1, Relaxed);
        let mut backoff = Backoff::default();
        while self.slab_owner(s) == owner {
            if self.reclaim(ts, sh, true) > 0 {
                continue;
            }
            if !backoff.wait() {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The shard's lock if it can be had without waiting (or taken over
    /// from a dead holder, after which the shard is repaired).
    pub(crate) fn try_lock_shard<'a>(&'a self, ts: &ThreadSlot, sh: u64) -> Option<ShardGuard<'a>> {
        let r = &*self.region;
        let live = ts.live();
        let got = self
            .shard_lock(sh)
            .try_lock(r, ts.token, |t| self.slots.is_alive(r, &live, t, ts.idx))?;
        let guard = ShardGuard::new(self, ts.token, sh);
        if let Acquired::FromDead(_) = got {
            self.repair_shard(sh);
        }
        Some(guard)
    }
}

/// What a reassignment achieved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reassigned {
    /// A window is free: retry the allocation.
    Freed,
    /// The coldest window serves more than the newcomer is worth.
    NotAdmitted,
    /// Nothing could be emptied (all pinned, or held by readers).
    Nothing,
}

/// Whether a sorted list of pinned block offsets has one in [start, start+len).
fn pinned_within(pinned: &[u64], start: u64, len: u64) -> bool {
    let i = pinned.partition_point(|&p| p < start);
    pinned.get(i).is_some_and(|&p| p < start + len)
}
