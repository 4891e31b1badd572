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
    buf: VecDeque<Vec<u8>>,
}

impl Segment {
    pub fn keys(&self) -> Keys {
        Keys {
            seg: self.clone(),
            next_bucket: 0,
            buf: VecDeque::new(),
        }
    }
}

impl Iterator for Keys {
    type Item = Vec<u8>;

    fn next(&mut self) -> Option<Vec<u8>> {
        let inner = &*self.seg.inner;
        let l = inner.layout;
        let total = l.shard_count * l.buckets_per_shard;
        while self.buf.is_empty() {
            if self.next_bucket >= total {
                return None;
            }
            let ts = local::thread_slot(inner).ok()?;
            let r = &*inner.region;
            let now = inner.opts.clock.now_ms();
            inner.enter(&ts);
            let end = (self.next_bucket + BATCH).min(total);
            for g in self.next_bucket..end {
                let (sh, b) = (g / l.buckets_per_shard, g % l.buckets_per_shard);
                let line = l.bucket_off(sh, b);
                for i in 0..SLOTS_PER_BUCKET {
                    let w = r.load(line + i * 8, Acquire);
                    if w == 0 {
                        continue;
                    }
                    if let Some(h) = inner.linked_block(sh, b, w) {
                        if !inner.is_expired(&h, now) {
                            self.buf.push_back(h.key(r).to_vec());
                        }
                    }
                }
            }
            inner.exit(&ts);
            self.next_bucket = end;
        }
        self.buf.pop_front()
    }
}
