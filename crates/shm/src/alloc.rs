//! Block allocation: 2 MiB slabs, each owned by one shard and one size
//! class, with an allocation bitmap (no free list for a crash to tear).
//! Values above 1 MiB take a run of whole slabs. Only the shard's lock
//! holder allocates or frees in its slabs; slabs move between shards only
//! through the FREE state, by CAS.

use crate::block::{self, Header};
use crate::classes::{self, LARGE};
use crate::entry;
use crate::hash::{slot_block, KeyHash};
use crate::layout::{shard, slab, SLAB_SIZE, SLOTS_PER_BUCKET};
use crate::mem::Words;
use crate::segment::Inner;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};

pub const KIND_FREE: u64 = 0;
pub const KIND_CLASS: u64 = 1;
pub const KIND_HEAD: u64 = 2;
pub const KIND_TAIL: u64 = 3;

pub fn owner_class(shard: u64, class: u64) -> u64 {
    (KIND_CLASS << 56) | (class << 48) | (shard << 32)
}
pub fn owner_head(shard: u64, run: u64) -> u64 {
    (KIND_HEAD << 56) | (LARGE << 48) | (shard << 32) | run
}
pub fn owner_tail(shard: u64) -> u64 {
    (KIND_TAIL << 56) | (shard << 32)
}
pub fn owner_kind(w: u64) -> u64 {
    w >> 56
}
pub fn owner_class_of(w: u64) -> u64 {
    (w >> 48) & 0xFF
}
pub fn owner_shard(w: u64) -> u64 {
    (w >> 32) & 0xFFFF
}
pub fn owner_run(w: u64) -> u64 {
    w & 0xFFFF_FFFF
}

/// A block handed out by the allocator.
#[derive(Clone, Copy, Debug)]
pub struct Block {
    pub off: u64,
    pub size: u64,
    pub class: u64,
}

impl Inner {
    pub(crate) fn slab_owner(&self, s: u64) -> u64 {
        self.region
            .load(self.layout.slab_meta_off(s) + slab::OWNER, Acquire)
    }

    pub(crate) fn slab_used(&self, s: u64) -> u64 {
        self.region
            .load(self.layout.slab_meta_off(s) + slab::USED, Relaxed)
    }

    pub(crate) fn bit_is_set(&self, s: u64, bit: u64) -> bool {
        let w = self
            .region
            .load(self.layout.bitmap_off(s) + (bit / 64) * 8, Relaxed);
        w & (1 << (bit % 64)) != 0
    }

    fn set_bit(&self, s: u64, bit: u64, on: bool) {
        let off = self.layout.bitmap_off(s) + (bit / 64) * 8;
        let w = self.region.load(off, Relaxed);
        let m = 1u64 << (bit % 64);
        self.region
            .store(off, if on { w | m } else { w & !m }, Relaxed);
    }

    fn add_used(&self, s: u64, delta: i64) -> u64 {
        let off = self.layout.slab_meta_off(s) + slab::USED;
        let v = (self.region.load(off, Relaxed) as i64 + delta).max(0) as u64;
        self.region.store(off, v, Relaxed);
        v
    }

    fn hint_off(&self, shard: u64, class: u64) -> u64 {
        self.layout.shard_off(shard) + shard::ALLOC_HINT + class * 8
    }

    /// A free block of `class` in `shard`, without evicting anything.
    pub(crate) fn take_block(&self, shard: u64, class: u64) -> Option<Block> {
        let r = &*self.region;
        let hint = r.load(self.hint_off(shard, class), Relaxed);
        if hint > 0 && hint <= self.layout.slab_count {
            if let Some(b) = self.alloc_in_slab(hint - 1, shard, class) {
                return Some(b);
            }
        }
        let ours = owner_class(shard, class);
        let cap = classes::per_slab(class);
        for s in 0..self.layout.slab_count {
            if self.slab_owner(s) == ours && self.slab_used(s) < cap {
                if let Some(b) = self.alloc_in_slab(s, shard, class) {
                    r.store(self.hint_off(shard, class), s + 1, Relaxed);
                    return Some(b);
                }
            }
        }
        for s in 0..self.layout.slab_count {
            if self.slab_owner(s) != 0 {
                continue;
            }
            let meta = self.layout.slab_meta_off(s) + slab::OWNER;
            if r.compare_exchange(meta, 0, ours).is_ok() {
                r.zero_bytes(self.layout.bitmap_off(s), crate::layout::BITMAP_SIZE);
                r.store(self.layout.slab_meta_off(s) + slab::USED, 0, Relaxed);
                r.store(self.hint_off(shard, class), s + 1, Relaxed);
                return self.alloc_in_slab(s, shard, class);
            }
        }
        None
    }

    fn alloc_in_slab(&self, s: u64, shard: u64, class: u64) -> Option<Block> {
        if self.slab_owner(s) != owner_class(shard, class) {
            return None;
        }
        let cap = classes::per_slab(class);
        if self.slab_used(s) >= cap {
            return None;
        }
        let words = cap.div_ceil(64);
        let base = self.layout.bitmap_off(s);
        for wi in 0..words {
            let w = self.region.load(base + wi * 8, Relaxed);
            if w == u64::MAX {
                continue;
            }
            let bit = wi * 64 + (!w).trailing_zeros() as u64;
            if bit >= cap {
                break;
            }
            self.set_bit(s, bit, true);
            self.add_used(s, 1);
            return Some(Block {
                off: self.layout.slab_start(s) + bit * classes::stride(class),
                size: classes::size(class),
                class,
            });
        }
        None
    }

    /// A run of whole slabs for a block of `need` bytes, if one is free.
    pub(crate) fn take_run(&self, shard: u64, need: u64) -> Option<Block> {
        let r = &*self.region;
        let k = need.div_ceil(SLAB_SIZE);
        let n = self.layout.slab_count;
        let mut s = 0;
        while s + k <= n {
            if let Some(t) = (s..s + k).find(|&t| self.slab_owner(t) != 0) {
                s = t + 1;
                continue;
            }
            // Tails first, head last: a crash leaves only unowned tails,
            // which repair returns to the pool.
            let lost = (s + 1..s + k).rev().find(|&t| {
                let meta = self.layout.slab_meta_off(t) + slab::OWNER;
                r.compare_exchange(meta, 0, owner_tail(shard)).is_err()
            });
            if let Some(t) = lost {
                for u in t + 1..s + k {
                    r.store(self.layout.slab_meta_off(u) + slab::OWNER, 0, Release);
                }
                s = t + 1;
                continue;
            }
            let head = self.layout.slab_meta_off(s) + slab::OWNER;
            if r.compare_exchange(head, 0, owner_head(shard, k)).is_err() {
                for u in s + 1..s + k {
                    r.store(self.layout.slab_meta_off(u) + slab::OWNER, 0, Release);
                }
                s += 1;
                continue;
            }
            r.zero_bytes(self.layout.bitmap_off(s), 8);
            self.set_bit(s, 0, true);
            r.store(self.layout.slab_meta_off(s) + slab::USED, 1, Relaxed);
            return Some(Block {
                off: self.layout.slab_start(s),
                size: k * SLAB_SIZE,
                class: LARGE,
            });
        }
        None
    }

    /// Returns a block to its slab. Caller holds the owning shard's lock,
    /// and the block is unreachable: unpublished, or retired and safe.
    pub(crate) fn free_block(&self, off: u64) {
        let r = &*self.region;
        let Some(s) = self.layout.slab_of(off) else {
            return;
        };
        let owner = self.slab_owner(s);
        r.store(off + crate::layout::block::META, block::FREE, Release);
        match owner_kind(owner) {
            KIND_CLASS => {
                let class = owner_class_of(owner);
                let shard = owner_shard(owner);
                let bit = (off - self.layout.slab_start(s)) / classes::stride(class);
                if !self.bit_is_set(s, bit) {
                    return;
                }
                self.set_bit(s, bit, false);
                let hint = self.hint_off(shard, class);
                if self.add_used(s, -1) == 0 {
                    if r.load(hint, Relaxed) == s + 1 {
                        r.store(hint, 0, Relaxed);
                    }
                    r.store(self.layout.slab_meta_off(s) + slab::OWNER, 0, Release);
                } else {
                    r.store(hint, s + 1, Relaxed);
                }
            }
            KIND_HEAD => {
                let run = owner_run(owner);
                self.set_bit(s, 0, false);
                self.add_used(s, -1);
                // Head first, then tails (see take_run).
                r.store(self.layout.slab_meta_off(s) + slab::OWNER, 0, Release);
                for t in s + 1..(s + run).min(self.layout.slab_count) {
                    r.store(self.layout.slab_meta_off(t) + slab::OWNER, 0, Release);
                }
            }
            _ => {}
        }
    }

    /// The index slot that points at this block, if any.
    pub(crate) fn slot_of(&self, hdr: &Header) -> Option<u64> {
        let h = KeyHash(hdr.hash);
        let shard = h.shard(&self.layout);
        for b in h.buckets(&self.layout) {
            let line = self.layout.bucket_off(shard, b);
            for i in 0..SLOTS_PER_BUCKET {
                let w = self.region.load(line + i * 8, Acquire);
                if w != 0 && slot_block(w) == hdr.off {
                    return Some(line + i * 8);
                }
            }
        }
        None
    }

    /// The clock's next victim among `shard`'s blocks of `class` (LARGE
    /// for slab runs): the first linked block whose usage count is zero,
    /// decrementing the others on the way. Expired entries go first.
    pub(crate) fn clock_victim(&self, shard: u64, class: u64) -> Option<(u64, Header)> {
        let r = &*self.region;
        let n = self.layout.slab_count;
        let hand_off = if class == LARGE {
            self.layout.shard_off(shard) + shard::LARGE_HAND
        } else {
            self.layout.shard_off(shard) + shard::CLOCK_HAND + class * 8
        };
        let hand = r.load(hand_off, Relaxed);
        let (mut s, mut blk) = ((hand >> 20) % n.max(1), hand & 0xFFFFF);
        let (want, cap, stride) = if class == LARGE {
            (None, 1, 0)
        } else {
            (
                Some(owner_class(shard, class)),
                classes::per_slab(class),
                classes::stride(class),
            )
        };
        let now = self.opts.clock.now_ms();
        let mut slabs_seen = 0;
        // Up to four sweeps: a usage count saturates at 3.
        while slabs_seen <= 4 * n {
            let owner = self.slab_owner(s);
            let ours = match want {
                Some(w) => owner == w,
                None => owner_kind(owner) == KIND_HEAD && owner_shard(owner) == shard,
            };
            if !ours || blk >= cap {
                s = (s + 1) % n;
                blk = 0;
                slabs_seen += 1;
                continue;
            }
            let this = blk;
            blk += 1;
            if !self.bit_is_set(s, this) {
                continue;
            }
            let off = self.layout.slab_start(s) + this * stride;
            let Some(hdr) = Header::read(r, off) else {
                continue;
            };
            if hdr.state() != block::SEALED {
                continue;
            }
            let Some(slot) = self.slot_of(&hdr) else {
                continue;
            };
            let exp = hdr.expiry(r);
            let entry = self.layout.entry_of(slot);
            let usage = entry::usage(r, entry);
            if usage > 0 && !(exp != 0 && exp <= now) {
                entry::set_usage(r, entry, usage - 1);
                continue;
            }
            r.store(hand_off, (s << 20) | blk, Relaxed);
            return Some((slot, hdr));
        }
        None
    }
}
