//! Iterating over the keys of a segment, a few buckets at a time.

use crate::layout::SLOTS_PER_BUCKET;
use crate::local;
use crate::mem::Words;
use crate::segment::Segment;
use std::collections::VecDeque;
use std::sync::atomic::Ordering::Acquire;

/// Buckets read per epoch pin.
const BATCH: u64 = 64;

/// The live, unexpired keys of a segment. Keys written or removed during
/// the iteration may or may not appear; no key appears twice.
pub struct Keys {
    seg: Segment,
    next_bucket: u64,
    done: bool,
    buf: VecDeque<Vec<u8>>,
}

impl Segment {
    pub fn keys(&self) -> Keys {
        Keys {
            seg: self.clone(),
            next_bucket: 0,
            done: false,
            buf: VecDeque::new(),
        }
    }
}

impl Segment {
    /// One step of a cursor walk over the index, as Redis's SCAN: reads
    /// `buckets` buckets from `cursor` on, pushes their live, unexpired
    /// keys onto `out`, and returns the next cursor, 0 when the walk is
    /// done. A key present for the whole walk is returned exactly once;
    /// one written or removed during it may or may not be.
    pub fn scan_buckets(&self, cursor: u64, buckets: u64, out: &mut Vec<Vec<u8>>) -> u64 {
        let inner = &*self.inner;
        let l = inner.layout;
        let total = l.shard_count * l.buckets_per_shard;
        if cursor >= total {
            return 0;
        }
        let Ok(ts) = local::thread_slot(inner) else {
            return 0;
        };
        let r = &*inner.region;
        let now = inner.opts.clock.now_ms();
        let end = cursor.saturating_add(buckets.max(1)).min(total);
        inner.enter(&ts);
        for g in cursor..end {
            let (sh, b) = (g / l.buckets_per_shard, g % l.buckets_per_shard);
            let line = l.bucket_off(sh, b);
            for i in 0..SLOTS_PER_BUCKET {
                let w = r.load(line + i * 8, Acquire);
                if w == 0 {
                    continue;
                }
                if let Some(h) = inner.linked_block(sh, b, w) {
                    if !inner.is_expired(&h, now) {
                        out.push(h.key(r).to_vec());
                    }
                }
            }
        }
        inner.exit(&ts);
        if end >= total {
            0
        } else {
            end
        }
    }

    /// The number of buckets a full scan walks.
    pub fn scan_len(&self) -> u64 {
        let l = self.inner.layout;
        l.shard_count * l.buckets_per_shard
    }
}

impl Iterator for Keys {
    type Item = Vec<u8>;

    fn next(&mut self) -> Option<Vec<u8>> {
        while self.buf.is_empty() {
            if self.done {
                return None;
            }
            let mut out = Vec::new();
            let next = self.seg.scan_buckets(self.next_bucket, BATCH, &mut out);
            self.buf.extend(out);
            self.done = next == 0;
            self.next_bucket = next;
        }
        self.buf.pop_front()
    }
}
