//! Index entries: beside each slot word, the 64 bytes a reader needs of
//! the block the word links (lengths, expiry, hash, and the key and type
//! tag inline when they fit), so that a hit reads its bucket and no block
//! header.
//!
//! The slot word versions its entry like a seqlock. A writer (holding the
//! shard lock) marks a linked word BUSY, or clears it, before it rewrites
//! the fields, and publishes the new word after. A reader trusts the
//! fields only if it read the same word, without BUSY, before and after
//! them; otherwise it reads the block the first word named, which its
//! epoch keeps alive. Readers never wait. The same word cannot come back
//! with other fields during one read: a new link names a new block, and
//! the old one cannot be reused while the reader's epoch holds it; an
//! expiry change advances the word's 13-bit version.

use crate::block::{Header, MAX_USAGE};
pub use crate::hash::{next_version, BUSY};
use crate::layout::entry::{EXPIRY, HASH, INLINE, INLINE_BYTES, LENS, USAGE};
use crate::mem::{Region, Words};
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};

const INLINE_LEN: usize = INLINE_BYTES as usize;
const VALUE_BITS: u32 = 40;
const KEY_SHIFT: u32 = 40;
const KEY_BITS: u32 = 14;
const TAG_SHIFT: u32 = 54;
const TAG_BITS: u32 = 9;
const INLINE_FLAG: u64 = 1 << 63;
const _: () = assert!(TAG_SHIFT + TAG_BITS == 63 && KEY_SHIFT + KEY_BITS == TAG_SHIFT);
const _: () = assert!(crate::block::MAX_KEY < 1 << KEY_BITS);
const _: () = assert!(crate::tag::MAX_TAG_BYTES < 1 << TAG_BITS);
const _: () = assert!(crate::layout::MAX_REGION <= 1 << VALUE_BITS);

/// The key then the type tag, zero-padded, aligned like the words they
/// are loaded from, so a hit is copied a word at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C, align(8))]
struct Inline([u8; INLINE_LEN]);

/// What an entry says about its block: its three words as they are stored,
/// and the inline bytes (zero when the key and tag do not fit). Kept in
/// stored form, 56 bytes with no padding, because every read copies one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fields {
    lens: u64,
    pub expiry: u64,
    pub hash: u64,
    inline: Inline,
}

impl Fields {
    pub fn new(hash: u64, key: &[u8], tag: &[u8], value_len: u64, expiry: u64) -> Fields {
        let (k, t) = (key.len(), tag.len());
        let mut inline = Inline([0; INLINE_LEN]);
        let fits = k + t <= INLINE_LEN;
        if fits {
            inline.0[..k].copy_from_slice(key);
            inline.0[k..k + t].copy_from_slice(tag);
        }
        let flag = if fits { INLINE_FLAG } else { 0 };
        Fields {
            lens: (value_len & ((1 << VALUE_BITS) - 1))
                | ((k as u64) << KEY_SHIFT)
                | ((t as u64) << TAG_SHIFT)
                | flag,
            expiry,
            hash,
            inline,
        }
    }

    /// The fields a sealed block's entry must hold.
    pub(crate) fn of_block(r: &Region, hdr: &Header) -> Fields {
        Fields::new(
            hdr.hash,
            hdr.key(r),
            hdr.tag(r),
            hdr.value_len,
            hdr.expiry(r),
        )
    }

    #[inline(always)]
    pub fn value_len(&self) -> u64 {
        self.lens & ((1 << VALUE_BITS) - 1)
    }
    #[inline(always)]
    pub fn key_len(&self) -> u64 {
        (self.lens >> KEY_SHIFT) & ((1 << KEY_BITS) - 1)
    }
    #[inline(always)]
    pub fn tag_len(&self) -> u64 {
        (self.lens >> TAG_SHIFT) & ((1 << TAG_BITS) - 1)
    }
    /// Whether the key and type tag are inline.
    #[inline(always)]
    pub fn is_inline(&self) -> bool {
        self.lens & INLINE_FLAG != 0
    }

    /// The inline key, if the entry has one.
    #[inline(always)]
    pub fn key(&self) -> Option<&[u8]> {
        if !self.is_inline() {
            return None;
        }
        self.inline.0.get(..self.key_len() as usize)
    }

    /// The inline type tag, if the entry has one.
    #[inline(always)]
    pub fn tag(&self) -> Option<&[u8]> {
        if !self.is_inline() {
            return None;
        }
        let k = self.key_len() as usize;
        self.inline.0.get(k..k + self.tag_len() as usize)
    }
}

/// The fields of `entry` as they are, with no consistency check: for
/// `check()` and repair, which hold the shard lock, and for readers, which
/// check them afterwards. The inline words are loaded whatever the flag
/// says (a writer zeroes them when the key does not fit): one line, no
/// branch.
#[inline(always)]
pub fn fields(w: &impl Words, entry: u64) -> Fields {
    const _: () = assert!(LENS == 0 && EXPIRY == 8 && HASH == 24 && INLINE == 32);
    let words: [u64; 8] = w.load_n(entry, Relaxed);
    let mut inline = Inline([0; INLINE_LEN]);
    for (chunk, v) in inline.0.chunks_exact_mut(8).zip(&words[4..]) {
        chunk.copy_from_slice(&v.to_le_bytes());
    }
    Fields {
        lens: words[0],
        expiry: words[1],
        hash: words[3],
        inline,
    }
}

/// The entry of `slot`, whose word the caller loaded (Acquire) as `word`,
/// if a writer did not touch it meanwhile. None: BUSY, or changed; the
/// caller then reads the block `word` names.
#[inline(always)]
pub fn read(w: &impl Words, slot: u64, entry: u64, word: u64) -> Option<Fields> {
    if word & BUSY != 0 {
        return None;
    }
    let f = fields(w, entry);
    // Pairs with the writer's fence after it marked the word: if any field
    // above came from a later rewrite, the load below sees the mark.
    w.fence(Acquire);
    (w.load(slot, Relaxed) == word).then_some(f)
}

/// Links `word` into `slot` with entry `f`: [`begin`], [`write_fields`],
/// [`publish`]. The caller holds the shard lock.
pub fn link(w: &impl Words, slot: u64, entry: u64, word: u64, f: &Fields, meta: u64) {
    begin(w, slot);
    write_fields(w, entry, f, meta);
    crate::failpoint::hit("mid_entry");
    publish(w, slot, word);
}

/// Before a slot's entry is rewritten: a word already there is marked
/// BUSY, so readers of it stop trusting the entry. They read its block
/// meanwhile, which stays linked until [`publish`], the commit point.
pub fn begin(w: &impl Words, slot: u64) {
    let cur = w.load(slot, Relaxed);
    if cur != 0 {
        w.store(slot, cur | BUSY, Relaxed);
    }
    // Also orders a `remove_entry`'s clearing of this slot before the new
    // fields, for readers that loaded the removed word.
    w.fence(Release);
}

/// Writes an entry's fields, between [`begin`] and [`publish`].
pub fn write_fields(w: &impl Words, entry: u64, f: &Fields, meta: u64) {
    w.store(entry + LENS, f.lens, Relaxed);
    w.store(entry + EXPIRY, f.expiry, Relaxed);
    w.store(entry + USAGE, meta, Relaxed);
    w.store(entry + HASH, f.hash, Relaxed);
    for (i, chunk) in f.inline.0.chunks_exact(8).enumerate() {
        let mut v = [0u8; 8];
        v.copy_from_slice(chunk);
        w.store(
            entry + INLINE + 8 * i as u64,
            u64::from_le_bytes(v),
            Relaxed,
        );
    }
}

/// Publishes the slot's new word: the entry's fields are visible to every
/// reader that sees it.
pub fn publish(w: &impl Words, slot: u64, word: u64) {
    w.store(slot, word, Release);
}

/// Changes a linked entry's expiry in place, from word `cur` to `next`
/// (its next version), between [`begin`] and [`publish`].
pub fn write_expiry(w: &impl Words, entry: u64, at: u64) {
    w.store(entry + EXPIRY, at, Relaxed);
}

// The policy word (at USAGE): the usage count in bits 0..2, which readers
// raise and the clock lowers; the small-queue flag (W-TinyLFU's window,
// S3-FIFO's small queue) in bit 2; and from bit 8 the stamp, the shard's
// insertion count when the entry was linked, which names the entry in the
// queue ring and orders entries by age.
const USAGE_BITS: u64 = 3;
/// The entry is in the small queue.
pub const SMALL: u64 = 1 << 2;
const STAMP_SHIFT: u32 = 8;

/// A fresh policy word: usage 0, the small flag, and `stamp`.
pub fn new_meta(stamp: u64, small: bool) -> u64 {
    (stamp << STAMP_SHIFT) | if small { SMALL } else { 0 }
}

/// The entry's policy word.
#[inline(always)]
pub fn meta(w: &impl Words, entry: u64) -> u64 {
    w.load(entry + USAGE, Relaxed)
}

/// Replaces the policy word; only the shard's lock holder does.
pub fn set_meta(w: &impl Words, entry: u64, m: u64) {
    w.store(entry + USAGE, m, Relaxed);
}

pub fn usage_of(m: u64) -> u64 {
    m & USAGE_BITS
}

pub fn stamp_of(m: u64) -> u64 {
    m >> STAMP_SHIFT
}

/// `m` with its usage count replaced.
pub fn with_usage(m: u64, u: u64) -> u64 {
    (m & !USAGE_BITS) | u.min(MAX_USAGE)
}

/// The clock's usage count of the entry's block.
pub fn usage(w: &impl Words, entry: u64) -> u64 {
    usage_of(meta(w, entry))
}

/// Lowers or resets the usage count, keeping the rest of the word. The
/// caller holds the shard lock; a reader racing with it loses its bump,
/// which only costs the entry one hit's worth of standing.
pub fn set_usage(w: &impl Words, entry: u64, u: u64) {
    let m = meta(w, entry);
    let _ = w.compare_exchange(entry + USAGE, m, with_usage(m, u));
}

/// Bumps the usage count, writing only when it changes, so hot keys do
/// not bounce their entry's line between cores. A compare-and-swap, so a
/// reader never overwrites what the lock holder just wrote to the word.
#[inline(always)]
pub fn touch(w: &impl Words, entry: u64) {
    let m = meta(w, entry);
    if usage_of(m) < MAX_USAGE {
        let _ = w.compare_exchange(entry + USAGE, m, m + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::HeapWords;

    #[test]
    fn fields_round_trip_inline_or_not() {
        let w = HeapWords::new(128);
        let (slot, entry) = (0, 64);
        for (key, tag) in [
            (
                &b"emb:123456"[..],
                &b"\x03<f4\x01\x00\x04\x00\x00\x00\x00\x00\x00"[..],
            ),
            (&[7u8; 32][..], &b""[..]),
            (&[7u8; 33][..], &b""[..]),
            (&b""[..], &b""[..]),
        ] {
            let f = Fields::new(0xABCD, key, tag, 5 << 30, 1234);
            link(&w, slot, entry, 0x40 | (9 << 48), &f, 0);
            let got = read(&w, slot, entry, w.load(slot, Acquire)).unwrap();
            assert_eq!(got, f);
            assert_eq!(got.is_inline(), key.len() + tag.len() <= 32);
            assert_eq!(
                (got.key_len(), got.tag_len()),
                (key.len() as u64, tag.len() as u64)
            );
            assert_eq!(got.value_len(), 5 << 30);
            if let Some(k) = got.key() {
                assert_eq!((k, got.tag().unwrap()), (key, tag));
            }
        }
    }

    #[test]
    fn a_busy_or_changed_word_is_not_trusted() {
        let w = HeapWords::new(128);
        let f = Fields::new(1, b"k", b"", 3, 0);
        link(&w, 0, 64, 0x40, &f, 0);
        assert!(read(&w, 0, 64, 0x40 | BUSY).is_none());
        assert!(read(&w, 0, 64, 0x80).is_none());
        begin(&w, 0);
        write_expiry(&w, 64, 99);
        publish(&w, 0, crate::hash::next_version(0x40));
        assert!(read(&w, 0, 64, 0x40).is_none());
        let now = w.load(0, Acquire);
        assert_eq!(read(&w, 0, 64, now).unwrap().expiry, 99);
    }
}
