//! W-TinyLFU's window share, moved by ghosts: the rule L0's segment
//! follows (`crates/shm/src/window.rs` gives the reasoning at length),
//! and one more note, in `WTinyLfu::evict`: main's victims taken because
//! main is over its share are ghosts too. (Here that is worth 2 points
//! on P3 at 10%; in L0 it cost OLTP at 1% one, so L0 has no such note.)
//!
//! Each duel between the window's oldest entry and main's victim lets one
//! of them go, and a direct-mapped table remembers which key went and
//! from which side. A new key found there came back soon after it left:
//! a little more room on that side would have made this miss a hit, so
//! the window's share moves one entry's weight that way (ARC's rule).
//!
//! - Only returns within half the resident entries' count of inserts
//!   count. A loop longer than the cache brings every key back, late;
//!   counted, those returns would push the window to the LRU end, where
//!   a loop always misses.
//! - Duels let go of window entries far more often than of main's, so a
//!   return is weighed by how rarely its side is noted, `(w + m) / 2w` or
//!   `(w + m) / 2m`: the share drifts by the difference of the two sides'
//!   return rates, not by how many ghosts each side leaves. A weight is
//!   at most `MAX_WEIGHT`: a side noted a handful of times against
//!   thousands on the other would otherwise move the share by thousands
//!   of entries on one return, and while the share rests at its floor,
//!   the many small steps back are lost to the floor, so it ratchets.

/// A slot holds the top 32 bits of the mixed key, the insert count when
/// it was noted (30 bits), whether it left the window, and a set bit.
const STAMP_MASK: u64 = 0x3FFF_FFFF;
const TAG_MASK: u64 = !0xFFFF_FFFF;
/// The note counts halve when they pass this many times the resident
/// entries, so the weights follow the traffic.
const NOTES_PERIOD: u64 = 4;
/// The most one return moves the share, in entries.
const MAX_WEIGHT: f64 = 8.0;

pub(crate) struct GhostWindow {
    table: Vec<u64>,
    mask: u64,
    /// New keys offered so far: the clock ghosts' ages are read on.
    inserts: u64,
    /// Ghosts noted from main and from the window, halved now and then.
    notes: [u64; 2],
}

/// A return: the side the key left, and the weight its step carries.
pub(crate) struct Return {
    pub from_window: bool,
    pub weight: f64,
}

impl GhostWindow {
    pub fn new(entries: usize) -> Self {
        let slots = entries.max(16).next_power_of_two();
        GhostWindow {
            table: vec![0; slots],
            mask: slots as u64 - 1,
            inserts: 0,
            notes: [0; 2],
        }
    }

    pub fn slots(&self) -> usize {
        self.table.len()
    }

    /// Policy keys are hashes already, but a replay may hand in small
    /// integers; mixed, the tag and the slot come from independent bits.
    #[inline]
    fn mix(key: u64) -> u64 {
        let k = (key ^ (key >> 31)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        k ^ (k >> 29)
    }

    #[inline]
    fn slot(&self, h: u64) -> usize {
        (h & self.mask) as usize
    }

    /// Remembers that a duel let `key` go from the window or from main.
    pub fn note(&mut self, key: u64, from_window: bool, entries: usize) {
        let h = Self::mix(key);
        let i = self.slot(h);
        // Bit 0 set in every word keeps 0 free for an empty slot: the
        // side is then bit 1, the stamp above it.
        self.table[i] =
            (h & TAG_MASK) | (self.inserts & STAMP_MASK) << 2 | u64::from(from_window) << 1 | 1;
        self.notes[usize::from(from_window)] += 1;
        if self.notes[0] + self.notes[1] > NOTES_PERIOD * entries.max(1) as u64 {
            self.notes = [self.notes[0] / 2, self.notes[1] / 2];
        }
    }

    /// A new key is offered: if a duel let it go lately, the side it left
    /// and the weight of its return.
    pub fn check(&mut self, key: u64, entries: usize) -> Option<Return> {
        self.inserts += 1;
        let h = Self::mix(key);
        let i = self.slot(h);
        let word = self.table[i];
        if word == 0 || word & TAG_MASK != h & TAG_MASK {
            return None;
        }
        self.table[i] = 0;
        let age = self.inserts.wrapping_sub((word >> 2) & STAMP_MASK) & STAMP_MASK;
        if age > entries as u64 / 2 {
            return None;
        }
        let from_window = word & 2 != 0;
        let [m, w] = [self.notes[0] + 1, self.notes[1] + 1];
        let side = if from_window { w } else { m };
        Some(Return {
            from_window,
            weight: ((w + m) as f64 / (2 * side) as f64).min(MAX_WEIGHT),
        })
    }

    /// A table for more entries; the ghosts noted so far are dropped.
    pub fn grow(&mut self, entries: usize) {
        let notes = self.notes;
        let inserts = self.inserts;
        *self = GhostWindow::new(entries);
        self.notes = notes;
        self.inserts = inserts;
    }
}
