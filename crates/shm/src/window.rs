//! W-TinyLFU's window share, moved by ghosts (as ARC moves its target).
//!
//! Each duel between the window's oldest entry and main's victim lets one
//! of them go, and the shard's ghost table remembers which key went and
//! from where. A new key found there came back soon after it left: had
//! the window been a little larger (it left the window) or main a little
//! larger (it left main), this miss would have been a hit, so the share
//! moves one entry that way.
//!
//! - Only returns within half a shard's capacity of inserts count: a key
//!   that comes back later would not have been kept by a slightly larger
//!   window or main either. (A loop longer than the cache brings every
//!   key back, late: counted, those returns would push the window to the
//!   LRU end, where a loop always misses.)
//! - Duels let go of window entries far more often than of main's, so a
//!   return from each side is weighed by how rarely that side is noted:
//!   the share drifts by the difference of the two sides' return rates.
//!
//! The table is direct-mapped (a newer ghost overwrites an older one), a
//! word per slot: the key hash's top 32 bits, the shard's insert count
//! when it was noted (31 bits), and which side it left. All of it is
//! written under the shard lock; the note counts and the share, which
//! every shard's writers move, are shared words.

use crate::layout::{hdr, shard};
use crate::mem::Words;
use crate::segment::Inner;
use std::sync::atomic::Ordering::Relaxed;

/// The share is kept in 1/1000ths of 1/1024 of the entries.
pub(crate) const UNIT: u64 = 1000;
/// The window's share when a segment is created: 1% of the entries.
pub(crate) const INITIAL_WINDOW_SHARE: u64 = 10 * UNIT;
/// The window never takes more than this share (in 1/1024ths), nor less
/// than one entry of a shard.
const MAX_SHARE: u64 = 1000;
/// A return counts if it comes within this share of a shard's capacity
/// of inserts (in 1/1024ths) after the key left.
const HORIZON: u64 = 512;
/// The most one return moves the share, in entries: a side noted a
/// handful of times against thousands on the other would otherwise move
/// it by thousands of entries on one return, and while the share rests
/// at its floor the many small steps back are lost to the floor, so it
/// ratchets.
const MAX_STEP: u64 = 8;
/// The note counts halve when one passes this many times `max_entries`,
/// so the weights follow the traffic.
const NOTES_PERIOD: u64 = 4;

const STAMP_MASK: u64 = 0x7FFF_FFFF;
const HASH_MASK: u64 = !0xFFFF_FFFF;

impl Inner {
    fn inserts(&self, shard_no: u64) -> u64 {
        self.region
            .load(self.layout.shard_off(shard_no) + shard::INSERTS, Relaxed)
    }

    /// Remembers that a duel let `hash` go: from the window if
    /// `from_window`, else from main. Under the shard lock.
    pub(crate) fn note_ghost(&self, shard_no: u64, hash: u64, from_window: bool) {
        let r = &*self.region;
        let word = (hash & HASH_MASK)
            | (self.inserts(shard_no) & STAMP_MASK) << 1
            | u64::from(from_window);
        r.store(self.layout.ghost_off(shard_no, hash), word, Relaxed);
        let side = if from_window {
            hdr::GHOST_NOTES_WINDOW
        } else {
            hdr::GHOST_NOTES_MAIN
        };
        if r.fetch_add(side, 1, Relaxed) > NOTES_PERIOD * self.layout.max_entries {
            for side in [hdr::GHOST_NOTES_WINDOW, hdr::GHOST_NOTES_MAIN] {
                r.store(side, r.load(side, Relaxed) / 2, Relaxed);
            }
        }
    }

    /// A new key in `shard_no`: if a duel let it go lately, the share
    /// moves towards the side it left. Under the shard lock.
    pub(crate) fn check_ghost(&self, shard_no: u64, hash: u64) {
        let r = &*self.region;
        let off = self.layout.ghost_off(shard_no, hash);
        let word = r.load(off, Relaxed);
        if word == 0 || word & HASH_MASK != hash & HASH_MASK {
            return;
        }
        r.store(off, 0, Relaxed);
        let age = self.inserts(shard_no).wrapping_sub(word >> 1) & STAMP_MASK;
        if age > self.layout.shard_cap() * HORIZON / 1024 {
            return;
        }
        let windows = r.load(hdr::GHOST_NOTES_WINDOW, Relaxed) + 1;
        let mains = r.load(hdr::GHOST_NOTES_MAIN, Relaxed) + 1;
        let entry = (1024 * UNIT).div_ceil(self.layout.max_entries);
        let from_window = word & 1 == 1;
        let side = if from_window { windows } else { mains };
        let step = (entry * (windows + mains) / (2 * side)).clamp(1, MAX_STEP * entry);
        // At least one entry of each shard: an empty window lets no one
        // go, and could then never grow again.
        let least = (1024 * UNIT).div_ceil(self.layout.shard_cap());
        let mut cur = r.load(hdr::WINDOW_SHARE, Relaxed);
        loop {
            let next = if from_window {
                (cur + step).min(MAX_SHARE * UNIT)
            } else {
                cur.saturating_sub(step).max(least)
            };
            match r.compare_exchange(hdr::WINDOW_SHARE, cur, next) {
                Ok(_) => return,
                Err(now) => cur = now,
            }
        }
    }
}
