//! Block size classes. Plain classes: multiples of 64 bytes growing by
//! about 1.25x, from 64 B to 1 MiB, each block its header, key, type tag and
//! value end to end. Aligned classes, for values of about 1 KiB, 2 KiB or a
//! whole number of 4 KiB pages up to 64 KiB (the common sizes of embedding
//! rows) with a short key and tag: the block's head (header, key, tag)
//! sits in an array of 128-byte heads at the start of its slab, and its
//! value in an array of bodies after them, each body on a boundary of its
//! own size (or of a page), so that no value straddles a page it need
//! not. Larger blocks take a run of whole slabs.

use crate::layout::{round_up, BLOCK_HEADER, SLAB_SIZE};

/// Class numbers must stay below this: shard headers keep a hint and a
/// clock hand for each.
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
/// The plain classes: numbers `0..COUNT`.
pub const COUNT: usize = TABLE.1;

/// The bytes of an aligned block's head: its header, key and type tag.
pub const HEAD: u64 = 128;
/// Body sizes of the aligned classes, numbers `COUNT..TOTAL` in order.
pub const BODIES: [u64; 18] = bodies();
/// Plain and aligned classes: numbers `0..TOTAL`.
pub const TOTAL: usize = COUNT + BODIES.len();
const _: () = assert!(
    TOTAL <= MAX_CLASSES,
    "every class needs a hint and a clock hand"
);
/// The largest aligned body.
const MAX_BODY: u64 = BODIES[BODIES.len() - 1];

const fn bodies() -> [u64; 18] {
    let mut out = [0u64; 18];
    out[0] = 1024;
    out[1] = 2048;
    let mut k = 1;
    while k <= 16 {
        out[k as usize + 1] = k * 4096;
        k += 1;
    }
    out
}

/// For the aligned class of each body: how many blocks a slab holds, and
/// where the bodies start (past the heads, on a page boundary).
const ALIGNED: [(u64, u64); 18] = aligned_geometry();

const fn aligned_geometry() -> [(u64, u64); 18] {
    let mut out = [(0u64, 0u64); 18];
    let mut i = 0;
    while i < BODIES.len() {
        let body = BODIES[i];
        let mut n = SLAB_SIZE / (body + HEAD);
        while round_up(n * HEAD, 4096) + n * body > SLAB_SIZE {
            n -= 1;
        }
        out[i] = (n, round_up(n * HEAD, 4096));
        i += 1;
    }
    out
}

pub fn all() -> &'static [u64] {
    &TABLE.0[..COUNT]
}

/// Whether `c` names a class (plain or aligned).
pub fn is_class(c: u64) -> bool {
    (c as usize) < TOTAL
}

/// The body size of class `c`, if it is an aligned class.
#[inline(always)]
pub fn body(c: u64) -> Option<u64> {
    let i = (c as usize).checked_sub(COUNT)?;
    BODIES.get(i).copied()
}

/// The bytes one block of class `c` takes: head and body for an aligned
/// class.
pub fn size(c: u64) -> u64 {
    match body(c) {
        Some(b) => HEAD + b,
        None => TABLE.0[c as usize],
    }
}

/// How far apart blocks of class `c` start in their slab: block `i` is at
/// `slab_start + i * stride(c)` (for an aligned class, its head).
pub fn stride(c: u64) -> u64 {
    match body(c) {
        Some(_) => HEAD,
        None => TABLE.0[c as usize],
    }
}

/// How many blocks of class `c` fit in one slab.
pub fn per_slab(c: u64) -> u64 {
    match body(c) {
        Some(b) => ALIGNED[body_index(b)].0,
        None => SLAB_SIZE / size(c),
    }
}

/// The smallest plain class holding `bytes`, or None if it needs whole
/// slabs.
pub fn for_size(bytes: u64) -> Option<u64> {
    if bytes > MAX_CLASS_SIZE {
        return None;
    }
    Some(all().partition_point(|&s| s < bytes) as u64)
}

/// The body of the aligned class that an entry of these lengths takes, if
/// any: its head must fit in [`HEAD`] bytes, and its value must fill at
/// least seven eighths of the smallest body holding it. A function of the
/// lengths alone, which every reader has from the index entry, so that it
/// finds the value without reading the block's class.
#[inline(always)]
pub fn aligned_body(key_len: u64, tag_len: u64, value_len: u64) -> Option<u64> {
    if BLOCK_HEADER + key_len + tag_len > HEAD || value_len == 0 || value_len > MAX_BODY {
        return None;
    }
    let body = match value_len {
        0..=1024 => 1024,
        1025..=2048 => 2048,
        _ => value_len.div_ceil(4096) * 4096,
    };
    (value_len >= body - body / 8).then_some(body)
}

/// The class of a block for an entry of these lengths: the aligned class
/// when [`aligned_body`] gives one, else the plain class of its size, else
/// [`LARGE`].
pub fn choose(key_len: u64, tag_len: u64, value_len: u64) -> u64 {
    if let Some(b) = aligned_body(key_len, tag_len, value_len) {
        return aligned_class(b);
    }
    let need = crate::block::needed(key_len, tag_len, value_len);
    for_size(need).unwrap_or(LARGE)
}

/// The aligned class of body size `body` (one of [`BODIES`]).
fn aligned_class(body: u64) -> u64 {
    (COUNT + body_index(body)) as u64
}

/// Where `body` (one of [`BODIES`]) is in [`BODIES`]: worked out, not
/// searched, as it is on every read.
#[inline(always)]
fn body_index(body: u64) -> usize {
    match body {
        1024 => 0,
        2048 => 1,
        _ => (body / 4096) as usize + 1,
    }
}

/// Where the value of the aligned block whose head is at region offset
/// `head` starts, for body size `body`: the same index in the slab's array
/// of bodies. Slabs start on 2 MiB boundaries of the region.
#[inline(always)]
pub fn body_off(head: u64, body: u64) -> u64 {
    let slab = head & !(SLAB_SIZE - 1);
    let start = ALIGNED.get(body_index(body)).map_or(0, |a| a.1);
    slab + start + (head - slab) / HEAD * body
}

/// Whether `head` is where a block of aligned body `body` can start: a
/// head of its slab's array.
pub fn is_head(head: u64, body: u64) -> bool {
    let rel = head & (SLAB_SIZE - 1);
    ALIGNED
        .get(body_index(body))
        .is_some_and(|a| rel % HEAD == 0 && rel / HEAD < a.0)
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

    #[test]
    fn aligned_slabs_hold_their_heads_then_aligned_bodies() {
        for (i, &b) in BODIES.iter().enumerate() {
            let c = (COUNT + i) as u64;
            assert_eq!(body(c), Some(b));
            assert_eq!(body_index(b), i);
            assert!(is_class(c) && stride(c) == HEAD && size(c) == HEAD + b);
            let n = per_slab(c);
            assert!(n > 0 && n <= 32768, "the bitmap covers the slab");
            let slab = 7 * SLAB_SIZE;
            let first = body_off(slab, b);
            assert!(first >= slab + n * HEAD, "bodies start past the heads");
            assert_eq!(first % 4096, 0, "bodies start on a page");
            for j in [0, 1, n / 2, n - 1] {
                let head = slab + j * stride(c);
                assert!(is_head(head, b));
                let v = body_off(head, b);
                assert_eq!(
                    v % b.min(4096),
                    0,
                    "a body never straddles a page it need not"
                );
                assert!(v + b <= slab + SLAB_SIZE, "the last body ends in its slab");
            }
            assert!(!is_head(slab + n * HEAD, b) && !is_head(slab + 64, b));
            // Not one more block fits.
            assert!(round_up((n + 1) * HEAD, 4096) + (n + 1) * b > SLAB_SIZE);
        }
        assert!(!is_class(TOTAL as u64) && body(TOTAL as u64).is_none() && body(0).is_none());
    }

    proptest::proptest! {
        #[test]
        fn the_chosen_class_holds_the_entry(
            key in 0u64..200,
            tag in 0u64..300,
            value in proptest::prop_oneof![0u64..70_000, 0u64..(3 << 20)],
        ) {
            let c = choose(key, tag, value);
            let need = crate::block::needed(key, tag, value);
            if c == LARGE {
                proptest::prop_assert!(need > MAX_CLASS_SIZE);
            } else if let Some(b) = body(c) {
                proptest::prop_assert!(BLOCK_HEADER + key + tag <= HEAD);
                proptest::prop_assert!(value <= b && value * 8 >= b * 7);
            } else {
                proptest::prop_assert!(is_class(c) && size(c) >= need);
                proptest::prop_assert!(c == 0 || size(c - 1) < need, "the smallest that holds it");
            }
        }
    }

    #[test]
    fn lengths_choose_the_class() {
        let tag = 13; // "<f4" and one dimension
        assert_eq!(aligned_body(10, tag, 4096), Some(4096));
        assert_eq!(
            aligned_body(10, tag, 3584),
            Some(4096),
            "seven eighths of a page"
        );
        assert_eq!(aligned_body(10, tag, 3583), None);
        assert_eq!(aligned_body(10, tag, 4097), None, "not an eighth of 8 KiB");
        assert_eq!(aligned_body(10, tag, 8192), Some(8192));
        assert_eq!(aligned_body(10, tag, 1000), Some(1024));
        assert_eq!(aligned_body(10, tag, 2048), Some(2048));
        assert_eq!(aligned_body(10, tag, 65536), Some(65536));
        assert_eq!(aligned_body(10, tag, 65537), None);
        assert_eq!(aligned_body(10, tag, 0), None);
        assert_eq!(
            aligned_body(80 - tag, tag, 4096),
            Some(4096),
            "a head of 128 bytes"
        );
        assert_eq!(aligned_body(81 - tag, tag, 4096), None);
        assert_eq!(choose(10, tag, 4096), (COUNT + 2) as u64);
        assert_eq!(body(choose(10, tag, 4096)), Some(4096));
        assert_eq!(
            choose(10, tag, 100),
            for_size(crate::block::needed(10, tag, 100)).unwrap()
        );
        assert_eq!(choose(10, 0, 4 << 20), LARGE);
    }
}
