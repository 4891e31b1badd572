//! W-TinyLFU's window share, tuned by hill climbing on the segment's hit
//! ratio (as Caffeine does): after each sample of accesses, keep moving
//! the share the same way if the hit ratio rose, turn back if it fell,
//! with steps that shrink as the climb settles and restart large when the
//! traffic changes.
//!
//! The state lives in the segment header and any writer may take a step:
//! the one whose compare-and-swap of the sample's start wins.

use crate::layout::{hdr, slot};
use crate::mem::Words;
use crate::policy::Policy;
use crate::segment::Inner;
use std::sync::atomic::Ordering::{Acquire, Relaxed};

/// The window's share when a segment is created: 1% of the entries, in
/// the climber's units.
pub(crate) const INITIAL_WINDOW_SHARE: u64 = 10 * UNIT as u64;
/// A sample is this many times `max_entries` accesses.
const SAMPLE: u64 = 10;
/// The first step, and the step after a restart: 1/16 of the entries.
const FIRST_STEP: i64 = 64 * UNIT;
/// The share and its steps are kept in 1/1000ths of 1/1024 of the
/// entries.
pub(crate) const UNIT: i64 = 1000;
/// Each step is this fraction (in 1/1000ths) of the last.
const DECAY: i64 = 980;
/// A change of the hit ratio by this much (parts per million) restarts
/// the climb with a large step.
const RESTART_PPM: i64 = 50_000;
/// The window never takes more than this share (in 1/1024ths).
const MAX_SHARE: i64 = 819;

impl Inner {
    /// Every hit and miss counted so far, in every reader slot.
    fn accesses(&self) -> (u64, u64) {
        let r = &*self.region;
        let mut hits = r.load(hdr::FOLDED_HITS, Relaxed);
        let mut misses = r.load(hdr::FOLDED_MISSES, Relaxed);
        let high = r.load(hdr::SLOT_HIGH_WATER, Acquire).min(self.slots.count);
        for idx in 0..high {
            let off = self.slots.off(idx);
            hits += r.load(off + slot::HITS, Relaxed);
            misses += r.load(off + slot::MISSES, Relaxed);
        }
        (hits, misses)
    }

    /// Takes a step if a sample has passed. Called by writers now and then.
    pub(crate) fn climb(&self) {
        if self.policy != Policy::WTinyLfu {
            return;
        }
        let r = &*self.region;
        let (hits, misses) = self.accesses();
        let (h0, m0) = (
            r.load(hdr::CLIMB_HITS, Relaxed),
            r.load(hdr::CLIMB_MISSES, Relaxed),
        );
        let (dh, dm) = (hits.saturating_sub(h0), misses.saturating_sub(m0));
        if dh + dm < SAMPLE * self.layout.max_entries {
            return;
        }
        // Claim this step; a writer of another shard may be at it too.
        if r.compare_exchange(hdr::CLIMB_HITS, h0, hits).is_err() {
            return;
        }
        r.store(hdr::CLIMB_MISSES, misses, Relaxed);
        let ratio = (dh * 1_000_000 / (dh + dm)) as i64;
        let last = r.load(hdr::CLIMB_RATIO, Relaxed) as i64;
        r.store(hdr::CLIMB_RATIO, ratio as u64, Relaxed);
        if last == 0 {
            // The first sample only sets the baseline.
            r.store(hdr::CLIMB_STEP, FIRST_STEP as u64, Relaxed);
            return;
        }
        let step = match r.load(hdr::CLIMB_STEP, Relaxed) as i64 {
            0 => FIRST_STEP,
            s => s,
        };
        let change = ratio - last;
        // Same way if it helped, back if it hurt.
        let amount = if change >= 0 { step } else { -step };
        let next = if change.abs() >= RESTART_PPM {
            FIRST_STEP * amount.signum()
        } else {
            amount * DECAY / 1000
        };
        // Never let the step vanish: a settled climb still probes.
        let next = match next {
            n if n.abs() >= UNIT / 4 => n,
            n if n < 0 => -UNIT / 4,
            _ => UNIT / 4,
        };
        let share = r.load(hdr::WINDOW_SHARE, Relaxed) as i64;
        let share = (share + amount).clamp(0, MAX_SHARE * UNIT);
        // At a bound the next step turns inward: a flat hit ratio would
        // otherwise keep pushing against it for good.
        let next = match share {
            0 => next.abs(),
            s if s == MAX_SHARE * UNIT => -next.abs(),
            _ => next,
        };
        r.store(hdr::CLIMB_STEP, next as u64, Relaxed);
        r.store(hdr::WINDOW_SHARE, share as u64, Relaxed);
    }
}
