//! Eviction by count: a shard holds at most its share of `max_entries`,
//! and a new key that finds it full makes room by evicting per policy.
//!
//! The index has two slots per entry, so a new key nearly always finds a
//! free slot in its two buckets, and the victim can be any entry of the
//! shard: the policies here are whole-shard ones, not samples. Their
//! state lives in shared memory, under the shard lock:
//! - each entry's policy word (usage count, small flag, stamp);
//! - the shard's queue ring (`queue.rs`), in insertion order;
//! - a CLOCK hand over the shard's index slots.
//!
//! When the arena rather than the index is short, `alloc.rs`'s clock over
//! the size class picks the victim instead.

use crate::block::{Header, MAX_USAGE};
use crate::entry::{self, SMALL};
use crate::error::Result;
use crate::hash::slot_block;
use crate::layout::{hdr, shard, SLOTS_PER_BUCKET};
use crate::local::ThreadSlot;
use crate::mem::Words;
use crate::policy::Policy;
use crate::read::Found;
use crate::segment::Inner;
use crate::write::Removal;
use std::sync::atomic::Ordering::{Acquire, Relaxed};

/// S3-FIFO's small queue: this share of the entries, in 1/1024ths.
const S3_SMALL_SHARE: u64 = 102;
/// CLOCK picks W-TinyLFU compares to find main's victim.
const DUEL_SAMPLE: usize = 8;
/// Entries LFU compares per eviction.
const LFU_SAMPLE: usize = 16;

/// Who leaves the window when it is over its share.
enum Leaving {
    /// The oldest window entry.
    Resident(u64),
    /// The window is empty: the newcomer goes straight to the duel.
    Newcomer,
}

impl Inner {
    /// Makes room for one new entry in `shard_no` if it holds its cap.
    /// `freq` is the newcomer's sketch count. Returns whether the newcomer
    /// enters the small queue, or None if the policy refuses it.
    pub(crate) fn make_room(
        &self,
        ts: &ThreadSlot,
        shard_no: u64,
        hash: u64,
        freq: u32,
    ) -> Result<Option<bool>> {
        if self.policy == Policy::WTinyLfu {
            self.check_ghost(shard_no, hash);
        }
        let small = self.new_is_small(freq);
        if self.entries(shard_no) < self.layout.shard_cap() {
            return Ok(Some(small));
        }
        let evict = |slot| self.evict_slot(ts, shard_no, slot);
        match self.policy {
            Policy::NoEviction => return Ok(None),
            Policy::Fifo => match self.dequeue(shard_no) {
                Some(slot) => evict(slot)?,
                None => self.evict_any(ts, shard_no)?,
            },
            Policy::Lru => self.evict_by_clock(ts, shard_no, false)?,
            Policy::Lfu => match self.least_frequent_sample(shard_no) {
                Some(slot) => evict(slot)?,
                None => self.evict_any(ts, shard_no)?,
            },
            Policy::S3Fifo => self.s3fifo_room(ts, shard_no)?,
            Policy::WTinyLfu => return self.wtinylfu_room(ts, shard_no, freq),
        }
        Ok(Some(small))
    }

    /// Whether a new key enters the small queue: always W-TinyLFU's
    /// window; S3-FIFO's small queue unless the sketch has seen the key
    /// before (its ghost).
    pub(crate) fn new_is_small(&self, freq: u32) -> bool {
        match self.policy {
            Policy::WTinyLfu => true,
            Policy::S3Fifo => freq < 2,
            _ => false,
        }
    }

    /// The policy word for a new entry of `shard_no`, counting it into the
    /// small queue if it goes there.
    pub(crate) fn new_meta(&self, shard_no: u64, small: bool) -> u64 {
        let stamp = self
            .region
            .load(self.layout.shard_off(shard_no) + shard::INSERTS, Relaxed);
        if small {
            self.add_small(shard_no, 1);
        }
        entry::new_meta(stamp, small)
    }

    /// Whether a new entry goes into the queue ring: every one for FIFO,
    /// those in the small queue for S3-FIFO and W-TinyLFU.
    pub(crate) fn queues(&self, small: bool) -> bool {
        self.policy == Policy::Fifo || (small && self.policy.has_small_queue())
    }

    /// Whether the entry in `slot` counts in the small queue.
    pub(crate) fn is_small(&self, slot: u64) -> bool {
        self.policy.has_small_queue()
            && entry::meta(&*self.region, self.layout.entry_of(slot)) & SMALL != 0
    }

    pub(crate) fn add_small(&self, shard_no: u64, delta: i64) {
        let off = self.layout.shard_off(shard_no) + shard::SMALL;
        let now = self.region.load(off, Relaxed) as i64;
        // Clamped: a count a crash left behind must not go negative.
        self.region.store(off, (now + delta).max(0) as u64, Relaxed);
    }

    /// The rare case of a shard under its cap whose two buckets for this
    /// key are both full: the newcomer displaces the least frequent of
    /// the 16 by the sketch (the oldest of equals), whatever the policy,
    /// unless the policy never evicts.
    pub(crate) fn pair_victim(&self, cands: Vec<Found>) -> Option<Found> {
        if self.policy == Policy::NoEviction {
            return None;
        }
        let r = &*self.region;
        cands.into_iter().min_by_key(|f| {
            let m = entry::meta(r, self.layout.entry_of(f.slot));
            (self.sketch.estimate(r, f.hdr.hash), entry::stamp_of(m))
        })
    }

    pub(crate) fn entries(&self, shard_no: u64) -> u64 {
        self.region
            .load(self.layout.shard_off(shard_no) + shard::ENTRIES, Relaxed)
    }

    fn small_count(&self, shard_no: u64) -> u64 {
        self.region
            .load(self.layout.shard_off(shard_no) + shard::SMALL, Relaxed)
    }

    /// The small queue's share of a full shard, in entries.
    fn small_target(&self) -> u64 {
        let cap = self.layout.shard_cap();
        match self.policy {
            Policy::WTinyLfu => {
                cap * self.region.load(hdr::WINDOW_SHARE, Relaxed) / (1024 * crate::window::UNIT)
            }
            _ => cap * S3_SMALL_SHARE / 1024,
        }
    }

    /// The entry linked in `slot` as a removable [`Found`], if any.
    fn found_at(&self, slot: u64) -> Option<Found> {
        let word = self.region.load(slot, Acquire);
        self.block_of(word).map(|hdr| Found { slot, word, hdr })
    }

    /// The header of the block a slot word names, if the word names a
    /// readable block in the arena (an empty word names none; a word that
    /// names anything else only comes of corruption).
    pub(crate) fn block_of(&self, word: u64) -> Option<Header> {
        let off = slot_block(word);
        if off < self.layout.arena || off >= self.layout.region_size {
            return None;
        }
        Header::read(&self.region, off)
    }

    fn evict_slot(&self, ts: &ThreadSlot, shard_no: u64, slot: u64) -> Result<()> {
        if let Some(f) = self.found_at(slot) {
            self.ensure_limbo_room(ts, shard_no, 1)?;
            let expired = self.is_expired(&f.hdr, self.opts.clock.now_ms());
            self.remove_entry(ts, shard_no, &f, Removal::for_victim(expired));
        }
        Ok(())
    }

    /// Evicts whatever the clock finds first, whatever its queue.
    fn evict_any(&self, ts: &ThreadSlot, shard_no: u64) -> Result<()> {
        self.evict_by_clock(ts, shard_no, false)
    }

    /// Evicts CLOCK's pick, among main's entries only if `main_only` and
    /// main has any.
    fn evict_by_clock(&self, ts: &ThreadSlot, shard_no: u64, main_only: bool) -> Result<()> {
        let slot = self
            .clock_slot(shard_no, main_only)
            .or_else(|| self.clock_slot(shard_no, false));
        match slot {
            Some(slot) => self.evict_slot(ts, shard_no, slot),
            None => Ok(()),
        }
    }

    /// CLOCK over the shard's index slots (only main's entries if
    /// `main_only`): an expired entry or one with usage 0 is the pick;
    /// others lose a point on the way.
    fn clock_slot(&self, shard_no: u64, main_only: bool) -> Option<u64> {
        let r = &*self.region;
        if main_only && self.entries(shard_no) <= self.small_count(shard_no) {
            return None;
        }
        let now = self.opts.clock.now_ms();
        // Counts saturate at MAX_USAGE: that many sweeps and one more find
        // a zero if any entry qualifies.
        let mut hand = self.hand(shard_no, MAX_USAGE + 1);
        let pick = hand.find(|&slot| {
            let e = self.layout.entry_of(slot);
            let m = entry::meta(r, e);
            if main_only && m & SMALL != 0 {
                return false;
            }
            let expiry = r.load(e + crate::layout::entry::EXPIRY, Relaxed);
            let u = entry::usage_of(m);
            if u == 0 || (expiry != 0 && expiry <= now) {
                return true;
            }
            entry::set_usage(r, e, u - 1);
            false
        });
        hand.park();
        pick
    }

    /// The shard's CLOCK hand, to walk `sweeps` times over its slots.
    fn hand(&self, shard_no: u64, sweeps: u64) -> Hand<'_> {
        let off = self.layout.shard_off(shard_no) + shard::HAND;
        let n = self.layout.buckets_per_shard * SLOTS_PER_BUCKET;
        Hand {
            inner: self,
            shard_no,
            off,
            n,
            pos: self.region.load(off, Relaxed) % n,
            steps: sweeps * n,
        }
    }

    /// The `i`th index slot of the shard.
    fn slot_at(&self, shard_no: u64, i: u64) -> u64 {
        self.layout.bucket_off(shard_no, i / SLOTS_PER_BUCKET) + (i % SLOTS_PER_BUCKET) * 8
    }

    /// The least frequent of the next `LFU_SAMPLE` entries under the hand.
    fn least_frequent_sample(&self, shard_no: u64) -> Option<u64> {
        let r = &*self.region;
        let mut hand = self.hand(shard_no, 1);
        let best = hand.by_ref().take(LFU_SAMPLE).min_by_key(|&slot| {
            let hash = r.load(
                self.layout.entry_of(slot) + crate::layout::entry::HASH,
                Relaxed,
            );
            self.sketch.estimate(r, hash)
        });
        hand.park();
        best
    }

    /// Moves a small-queue entry to main.
    fn promote(&self, shard_no: u64, slot: u64) {
        let r = &*self.region;
        let e = self.layout.entry_of(slot);
        let m = entry::meta(r, e);
        if m & SMALL != 0 {
            entry::set_meta(r, e, entry::with_usage(m & !SMALL, 0));
            self.add_small(shard_no, -1);
        }
    }

    /// S3-FIFO: while the small queue is over its share, its oldest entry
    /// leaves it: to main if it was hit there, else out of the cache (and
    /// that is the eviction). Otherwise main evicts by CLOCK.
    fn s3fifo_room(&self, ts: &ThreadSlot, shard_no: u64) -> Result<()> {
        let r = &*self.region;
        while self.small_count(shard_no) > self.small_target() {
            let Some(slot) = self.dequeue(shard_no) else {
                break;
            };
            if entry::usage(r, self.layout.entry_of(slot)) == 0 {
                return self.evict_slot(ts, shard_no, slot);
            }
            self.promote(shard_no, slot);
        }
        self.evict_by_clock(ts, shard_no, true)
    }

    /// W-TinyLFU: the newcomer enters the window. If the window is full,
    /// its oldest entry leaves it to meet main's victim ([`Self::main_victim`]),
    /// and the sketch keeps whichever is counted more often (the resident
    /// on a tie); with an empty window the newcomer itself is the one leaving,
    /// and is refused if it loses. If the window has room, main's victim
    /// simply goes. Whoever a duel lets go is noted as a ghost, which moves
    /// the window's share if the key comes back soon (`window.rs`).
    fn wtinylfu_room(&self, ts: &ThreadSlot, shard_no: u64, freq: u32) -> Result<Option<bool>> {
        let r = &*self.region;
        if self.small_count(shard_no) < self.small_target() {
            self.evict_by_clock(ts, shard_no, true)?;
            return Ok(Some(true));
        }
        let leaving = match self.dequeue(shard_no) {
            Some(slot) => Leaving::Resident(slot),
            None => Leaving::Newcomer,
        };
        let Some(victim) = self.main_victim(shard_no) else {
            // Main is empty: the window's oldest goes.
            return match leaving {
                Leaving::Resident(slot) => {
                    self.evict_slot(ts, shard_no, slot)?;
                    Ok(Some(true))
                }
                Leaving::Newcomer => {
                    self.evict_any(ts, shard_no)?;
                    Ok(Some(false))
                }
            };
        };
        let hash_at = |slot| {
            r.load(
                self.layout.entry_of(slot) + crate::layout::entry::HASH,
                Relaxed,
            )
        };
        let victim_freq = self.sketch.estimate(r, hash_at(victim));
        match leaving {
            Leaving::Resident(slot) => {
                if self.sketch.estimate(r, hash_at(slot)) > victim_freq {
                    self.promote(shard_no, slot);
                    self.note_ghost(shard_no, hash_at(victim), false);
                    self.evict_slot(ts, shard_no, victim)?;
                } else {
                    self.note_ghost(shard_no, hash_at(slot), true);
                    self.evict_slot(ts, shard_no, slot)?;
                }
                Ok(Some(true))
            }
            Leaving::Newcomer if freq > victim_freq => {
                self.note_ghost(shard_no, hash_at(victim), false);
                self.evict_slot(ts, shard_no, victim)?;
                Ok(Some(false))
            }
            Leaving::Newcomer => Ok(None),
        }
    }

    /// Main's victim for a duel: the least frequent of CLOCK's next
    /// `DUEL_SAMPLE` picks.
    fn main_victim(&self, shard_no: u64) -> Option<u64> {
        let r = &*self.region;
        let first = self.clock_slot(shard_no, true)?;
        let freq = |slot: u64| {
            let hash = r.load(
                self.layout.entry_of(slot) + crate::layout::entry::HASH,
                Relaxed,
            );
            self.sketch.estimate(r, hash)
        };
        let mut best = (freq(first), first);
        for _ in 1..DUEL_SAMPLE {
            match self.clock_slot(shard_no, true) {
                Some(s) if s != first => {
                    let f = freq(s);
                    if f < best.0 {
                        best = (f, s);
                    }
                }
                _ => break,
            }
        }
        Some(best.1)
    }

    /// After a new entry joined the small queue of a shard that is not
    /// full: W-TinyLFU's window keeps to its share, its oldest entries
    /// moving on to main. (S3-FIFO's small queue only drains on eviction.)
    pub(crate) fn trim_window(&self, shard_no: u64) {
        if self.policy != Policy::WTinyLfu {
            return;
        }
        while self.small_count(shard_no) > self.small_target() {
            match self.dequeue(shard_no) {
                Some(slot) => self.promote(shard_no, slot),
                None => break,
            }
        }
    }
}

/// A walk of a shard's CLOCK hand over its linked index slots, at most a
/// given number of steps (empty slots count); [`Hand::park`] leaves the
/// hand where the walk stopped.
struct Hand<'a> {
    inner: &'a Inner,
    shard_no: u64,
    off: u64,
    n: u64,
    pos: u64,
    steps: u64,
}

impl Hand<'_> {
    fn park(self) {
        self.inner.region.store(self.off, self.pos, Relaxed);
    }
}

impl Iterator for Hand<'_> {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        while self.steps > 0 {
            self.steps -= 1;
            let slot = self.inner.slot_at(self.shard_no, self.pos);
            self.pos = (self.pos + 1) % self.n;
            if self.inner.region.load(slot, Relaxed) != 0 {
                return Some(slot);
            }
        }
        None
    }
}
