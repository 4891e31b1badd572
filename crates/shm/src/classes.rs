//! Block size classes: multiples of 64 bytes growing by about 1.25x, from
//! 64 B to 1 MiB. Larger blocks take a run of whole slabs.

use crate::layout::SLAB_SIZE;

const MAX_CLASSES: usize = 64;
/// The largest block a class slab holds; beyond it a block is "large".
pub const MAX_CLASS_SIZE: u64 = SLAB_SIZE / 2;
/// The class number recorded for blocks made of whole slabs.
pub const LARGE: u64 = 255;

const fn generate() -> ([u64; MAX_CLASSES], usize) {
    let mut out = [0u64; MAX_CLASSES];
    let mut n = 0;
    let mut size = 64;
    while size < MAX_CLASS_SIZE {
        out[n] = size;
        n += 1;
        let grown = size + size / 4;
        let next = if grown > size + 64 { grown } else { size + 64 };
        size = next.div_ceil(64) * 64;
    }
    out[n] = MAX_CLASS_SIZE;
    n += 1;
    (out, n)
}

const TABLE: ([u64; MAX_CLASSES], usize) = generate();
pub const COUNT: usize = TABLE.1;

pub fn all() -> &'static [u64] {
    &TABLE.0[..COUNT]
}

/// The byte size of class `c`.
pub fn size(c: u64) -> u64 {
    TABLE.0[c as usize]
}

/// The smallest class holding `bytes`, or None if it needs whole slabs.
pub fn for_size(bytes: u64) -> Option<u64> {
    if bytes > MAX_CLASS_SIZE {
        return None;
    }
    Some(all().partition_point(|&s| s < bytes) as u64)
}

/// How many blocks of class `c` fit in one slab.
pub fn per_slab(c: u64) -> u64 {
    SLAB_SIZE / size(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_are_sorted_aligned_and_bounded() {
        let a = all();
        assert!(a.len() < 64);
        assert_eq!(a[0], 64);
        assert_eq!(*a.last().unwrap(), MAX_CLASS_SIZE);
        for w in a.windows(2) {
            assert!(w[0] < w[1]);
            assert_eq!(w[1] % 64, 0);
        }
        assert_eq!(for_size(1), Some(0));
        assert_eq!(for_size(64), Some(0));
        assert_eq!(size(for_size(65).unwrap()), 128);
        assert_eq!(for_size(MAX_CLASS_SIZE + 1), None);
        // A slab's bitmap (4 KiB = 32768 bits) covers the smallest class.
        assert!(per_slab(0) <= 32768);
    }
}
