//! Trace recording: a ring in the segment that readers of every process
//! append sampled requests to, and one recorder drains.
//!
//! While `TRACE_CTL` is 0 a read pays one load and one comparison. While
//! it holds a threshold, a read whose key falls in the sample (by its
//! hash, so the sample is a consistent subset of keys, as SHARDS needs)
//! reserves a slot by CAS on the ring's head, as long as the slot is
//! free of the recorder's position; a full ring counts a drop and never
//! waits. The record (key hash, value size, hit) is written, then its
//! sequence word `position + 1` with Release. The recorder takes records
//! in order while their sequence words match, and advances its position,
//! which frees the slots. A reader killed between reserving and
//! publishing leaves a slot the recorder skips after a while
//! ([`crate::Segment::trace_drain`] with `skip_stalled`).
//!
//! Ring header: head (reservations) at 0, the recorder's position at 64,
//! drops at 128, each on its own line; records from `TRACE_HEAD`:
//! sequence, key hash, value size | hit << 63, reserved.

use crate::layout::{hdr, Layout, TRACE_HEAD, TRACE_RECORD};
use crate::mem::Words;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};

const HEAD: u64 = 0;
const POS: u64 = 64;
const DROPPED: u64 = 128;
/// Sample buckets: a key is sampled if its bucket is below the threshold.
pub const SAMPLE_BUCKETS: u64 = 1 << 24;

/// One recorded request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceRecord {
    /// The key's hash in this segment.
    pub hash: u64,
    /// The value's length on a hit; 0 on a miss.
    pub size: u64,
    pub hit: bool,
}

/// The sample bucket of a key hash: mixed again, since the raw hash's
/// bits also pick the key's shard and bucket.
#[inline]
pub fn sample_bucket(hash: u64) -> u64 {
    hash.wrapping_mul(0xD6E8_FEB8_6659_FD93) >> 40
}

/// Records a read, if its key is in the sample. `ctl` is the threshold
/// the caller loaded (non-zero).
#[cold]
#[inline(never)]
pub(crate) fn record<W: Words>(w: &W, l: &Layout, ctl: u64, hash: u64, size: u64, hit: bool) {
    if sample_bucket(hash) >= ctl {
        return;
    }
    let base = l.trace;
    let mut p = w.load(base + HEAD, Relaxed);
    loop {
        let pos = w.load(base + POS, Acquire);
        if p.wrapping_sub(pos) >= l.trace_slots {
            w.fetch_add(base + DROPPED, 1, Relaxed);
            return;
        }
        match w.compare_exchange(base + HEAD, p, p + 1) {
            Ok(_) => break,
            Err(now) => p = now,
        }
    }
    let s = base + TRACE_HEAD + (p % l.trace_slots) * TRACE_RECORD;
    w.store(s + 8, hash, Relaxed);
    w.store(s + 16, size | (u64::from(hit) << 63), Relaxed);
    w.store(s, p + 1, Release);
}

impl crate::Segment {
    /// Starts recording reads of keys sampled at `rate` (a fraction in
    /// (0, 1]), dropping whatever the ring held. Returns the rate in
    /// effect (rounded to the sample's resolution, 1 / 2^24).
    pub fn trace_start(&self, rate: f64) -> crate::Result<f64> {
        if !(rate > 0.0 && rate <= 1.0) {
            return Err(crate::Error::InvalidConfig(format!(
                "the sample rate must be a fraction in (0, 1], not {rate}"
            )));
        }
        let inner = &*self.inner;
        let (r, l) = (&*inner.region, &inner.layout);
        let threshold = ((rate * SAMPLE_BUCKETS as f64).round() as u64).clamp(1, SAMPLE_BUCKETS);
        r.store(l.trace + POS, r.load(l.trace + HEAD, Acquire), Release);
        r.store(l.trace + DROPPED, 0, Relaxed);
        r.store(hdr::TRACE_CTL, threshold, Release);
        Ok(threshold as f64 / SAMPLE_BUCKETS as f64)
    }

    /// Stops recording; records already in the ring stay to be drained.
    pub fn trace_stop(&self) {
        self.inner.region.store(hdr::TRACE_CTL, 0, Release);
    }

    /// The sample rate being recorded at, if recording is on.
    pub fn trace_rate(&self) -> Option<f64> {
        match self.inner.region.load(hdr::TRACE_CTL, Acquire) {
            0 => None,
            t => Some(t as f64 / SAMPLE_BUCKETS as f64),
        }
    }

    /// Records dropped since recording started: the ring was full.
    pub fn trace_dropped(&self) -> u64 {
        let inner = &*self.inner;
        inner.region.load(inner.layout.trace + DROPPED, Relaxed)
    }

    /// Takes up to `max` records, in order, onto `out`; returns how many.
    /// A slot reserved but not yet published stops the drain; with
    /// `skip_stalled` (for a slot that has stayed so for a while: its
    /// reader died) it is skipped and counted as dropped.
    pub fn trace_drain(&self, out: &mut Vec<TraceRecord>, max: usize, skip_stalled: bool) -> usize {
        let inner = &*self.inner;
        let (r, l) = (&*inner.region, &inner.layout);
        let base = l.trace;
        let head = r.load(base + HEAD, Acquire);
        let mut p = r.load(base + POS, Relaxed);
        let start = p;
        let mut skipped = false;
        while p < head && ((p - start) as usize) < max {
            let s = base + TRACE_HEAD + (p % l.trace_slots) * TRACE_RECORD;
            if r.load(s, Acquire) != p + 1 {
                if skip_stalled && !skipped {
                    skipped = true;
                    r.fetch_add(base + DROPPED, 1, Relaxed);
                    p += 1;
                    continue;
                }
                break;
            }
            let word = r.load(s + 16, Relaxed);
            out.push(TraceRecord {
                hash: r.load(s + 8, Relaxed),
                size: word & !(1 << 63),
                hit: word >> 63 == 1,
            });
            p += 1;
        }
        r.store(base + POS, p, Release);
        (p - start) as usize - usize::from(skipped)
    }
}
