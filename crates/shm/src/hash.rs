//! Where a key lives: one xxh3 hash, seeded per segment, split into a
//! shard, two candidate buckets and a 16-bit tag.

use crate::layout::Layout;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyHash(pub u64);

/// Buckets per shard may not exceed 2^BUCKET_BITS.
pub const BUCKET_BITS: u32 = 20;

impl KeyHash {
    pub fn new(seed: u64, key: &[u8]) -> Self {
        KeyHash(xxhash_rust::xxh3::xxh3_64_with_seed(key, seed))
    }

    /// The top `log2 S` bits of the hash, as a multiply: `S` is a power of
    /// two, so `h · S / 2^64` is `h >> (64 - log2 S)`, and 0 when `S` is 1,
    /// with no branch.
    #[inline(always)]
    pub fn shard(self, layout: &Layout) -> u64 {
        ((u128::from(self.0) * u128::from(layout.shard_count)) >> 64) as u64
    }

    pub fn tag(self) -> u64 {
        self.0 & 0xFFFF
    }

    /// The two candidate buckets, always distinct: 32-bit numbers scaled
    /// onto the shard's `B` buckets (`x * B >> 32`), so `B` need not be a
    /// power of two. The first is bits 16..48 of the hash; the second
    /// comes from a remix of all 64 bits.
    #[inline(always)]
    pub fn buckets(self, layout: &Layout) -> [u64; 2] {
        let b1 = self.first_bucket(layout);
        [b1, self.second_bucket(layout, b1)]
    }

    /// The first of [`KeyHash::buckets`], where most keys live: readers
    /// work out the second only when they need it.
    #[inline(always)]
    pub fn first_bucket(self, layout: &Layout) -> u64 {
        (((self.0 >> 16) & 0xFFFF_FFFF) * layout.buckets_per_shard) >> 32
    }

    /// The second of [`KeyHash::buckets`], given the first.
    #[inline(always)]
    pub fn second_bucket(self, layout: &Layout, b1: u64) -> u64 {
        let n = layout.buckets_per_shard;
        let mixed = (self.0 ^ (self.0 >> 29)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        let b2 = ((mixed >> 32) * n) >> 32;
        if b2 == b1 {
            (b1 + 1) % n
        } else {
            b2
        }
    }
}

/// An index slot word: the block's offset / 64 in the low 34 bits, an
/// expiry version in bits 34..47, the BUSY bit 47 and the tag in the top
/// 16. Zero is an empty slot (no block sits at offset 0). A new link has
/// version 0 and no BUSY bit.
pub fn slot_word(block_off: u64, tag: u64) -> u64 {
    (block_off >> 6) | (tag << 48)
}

const VERSION_SHIFT: u32 = 34;
const VERSION_MASK: u64 = ((1 << 13) - 1) << VERSION_SHIFT;
/// Set while a writer rewrites the slot's entry: the word still names the
/// linked block, but the entry's fields may be half written.
pub const BUSY: u64 = 1 << 47;

/// The same link with its expiry version advanced (mod 2^13) and BUSY
/// clear: an in-place change of the entry's expiry changes its index
/// word, so a reader that remembered the word sees that the entry changed.
pub fn next_version(word: u64) -> u64 {
    let v = (word & VERSION_MASK).wrapping_add(1 << VERSION_SHIFT) & VERSION_MASK;
    (word & !VERSION_MASK & !BUSY) | v
}

pub fn slot_block(word: u64) -> u64 {
    (word & ((1 << 34) - 1)) << 6
}

pub fn slot_tag(word: u64) -> u64 {
    word >> 48
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_the_top_bits_and_buckets_differ() {
        for size_mib in [8u64, 64, 1024, 16384] {
            let size = size_mib << 20;
            let l = Layout::compute(size, Layout::default_max_entries(size)).unwrap();
            let bits = l.shard_count.trailing_zeros();
            for i in 0..10_000u64 {
                let h = KeyHash(i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (i << 7));
                let top = if bits == 0 { 0 } else { h.0 >> (64 - bits) };
                assert_eq!(h.shard(&l), top);
                let [b1, b2] = h.buckets(&l);
                assert!(b1 < l.buckets_per_shard && b2 < l.buckets_per_shard && b1 != b2);
            }
        }
    }

    #[test]
    fn versions_keep_the_link_and_wrap() {
        let w = slot_word(64 * 12345, 0xBEEF);
        let mut v = w;
        for _ in 0..(1 << 13) - 1 {
            v = next_version(v);
            assert_ne!(v, w);
            assert_eq!((slot_block(v), slot_tag(v)), (64 * 12345, 0xBEEF));
        }
        assert_eq!(next_version(v), w);
        assert_eq!(next_version(w | BUSY) & BUSY, 0);
        assert_eq!(slot_block(w | BUSY), 64 * 12345);
    }
}
