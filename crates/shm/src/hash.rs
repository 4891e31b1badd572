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

    pub fn shard(self, layout: &Layout) -> u64 {
        let bits = layout.shard_count.trailing_zeros();
        if bits == 0 {
            0
        } else {
            self.0 >> (64 - bits)
        }
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
        let n = layout.buckets_per_shard;
        let scale = |x: u64| ((x & 0xFFFF_FFFF) * n) >> 32;
        let b1 = scale(self.0 >> 16);
        let mixed = (self.0 ^ (self.0 >> 29)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        let mut b2 = scale(mixed >> 32);
        if b2 == b1 {
            b2 = (b1 + 1) % n;
        }
        [b1, b2]
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
