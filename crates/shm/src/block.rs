//! Value blocks: a 48-byte header, the key, the type tag, then the value
//! aligned to 64 bytes; or, in an aligned class, the same head in 128
//! bytes and the value in a body of its own (`classes`). Everything but
//! the expiry word is immutable once the block is sealed.

use crate::classes;
use crate::layout::{block, round_up, BLOCK_HEADER};
use crate::mem::{Region, Words};
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};

pub const FREE: u64 = 0;
pub const WRITING: u64 = 1;
pub const SEALED: u64 = 2;
pub const RETIRED: u64 = 3;

/// The largest key, in bytes.
pub const MAX_KEY: usize = 8 * 1024;
/// The clock's usage count saturates here.
pub const MAX_USAGE: u64 = 3;

pub fn meta(state: u64, class: u64, key_len: u64, tag_len: u64) -> u64 {
    state | (class << 8) | (key_len << 16) | (tag_len << 32)
}

pub fn meta_state(m: u64) -> u64 {
    m & 0xFF
}
pub fn meta_class(m: u64) -> u64 {
    (m >> 8) & 0xFF
}
pub fn meta_key_len(m: u64) -> u64 {
    (m >> 16) & 0xFFFF
}
pub fn meta_tag_len(m: u64) -> u64 {
    (m >> 32) & 0xFFFF
}

/// Offset of the value from the block start.
pub fn value_start(key_len: u64, tag_len: u64) -> u64 {
    round_up(BLOCK_HEADER + key_len + tag_len, 64)
}

/// Where a block's key, type tag and value start, from its offset and
/// lengths: the one statement of the block layout that the header and the
/// index entry's readers share.
pub fn key_off(block: u64) -> u64 {
    block + BLOCK_HEADER
}
pub fn tag_off(block: u64, key_len: u64) -> u64 {
    key_off(block) + key_len
}
pub fn value_off(block: u64, key_len: u64, tag_len: u64, value_len: u64) -> u64 {
    match classes::aligned_body(key_len, tag_len, value_len) {
        Some(body) => classes::body_off(block, body),
        None => block + value_start(key_len, tag_len),
    }
}

/// Bytes a block needs for this entry.
pub fn needed(key_len: u64, tag_len: u64, value_len: u64) -> u64 {
    value_start(key_len, tag_len) + value_len
}

/// A decoded, bounds-checked view of a block header.
#[derive(Clone, Copy, Debug)]
pub struct Header {
    pub off: u64,
    pub meta: u64,
    pub value_len: u64,
    pub hash: u64,
    pub size: u64,
}

impl Header {
    /// Reads a header; None if its lengths do not fit inside its size or
    /// the region (a corrupt or foreign block).
    #[inline(always)]
    pub fn read(r: &Region, off: u64) -> Option<Header> {
        let meta = r.load(off + block::META, Acquire);
        let value_len = r.load(off + block::VALUE_LEN, Relaxed);
        let hash = r.load(off + block::HASH, Relaxed);
        let size = r.load(off + block::SIZE, Relaxed);
        let h = Header {
            off,
            meta,
            value_len,
            hash,
            size,
        };
        let (kl, tl) = (h.key_len(), h.tag_len());
        let class = meta_class(meta);
        match classes::aligned_body(kl, tl, value_len) {
            // The lengths say where the value is; the class must agree.
            Some(body) => {
                let end = classes::body_off(off, body).checked_add(body)?;
                if classes::body(class) != Some(body)
                    || !classes::is_head(off, body)
                    || end > r.len()
                {
                    return None;
                }
            }
            None => {
                let end = value_start(kl, tl).checked_add(value_len)?;
                if classes::body(class).is_some() || end > size || off.checked_add(size)? > r.len()
                {
                    return None;
                }
            }
        }
        Some(h)
    }

    pub fn state(&self) -> u64 {
        meta_state(self.meta)
    }
    pub fn key_len(&self) -> u64 {
        meta_key_len(self.meta)
    }
    pub fn tag_len(&self) -> u64 {
        meta_tag_len(self.meta)
    }
    pub fn key<'r>(&self, r: &'r Region) -> &'r [u8] {
        r.bytes(key_off(self.off), self.key_len())
    }
    pub fn tag<'r>(&self, r: &'r Region) -> &'r [u8] {
        r.bytes(tag_off(self.off, self.key_len()), self.tag_len())
    }
    pub fn value<'r>(&self, r: &'r Region) -> &'r [u8] {
        let off = value_off(self.off, self.key_len(), self.tag_len(), self.value_len);
        r.bytes(off, self.value_len)
    }
    pub fn expiry(&self, r: &Region) -> u64 {
        r.load(self.off + block::EXPIRY, Relaxed)
    }
    pub fn live(&self) -> bool {
        matches!(self.state(), SEALED | RETIRED)
    }
}

pub fn set_state(r: &Region, off: u64, state: u64) {
    let m = r.load(off + block::META, Relaxed);
    r.store(off + block::META, (m & !0xFF) | state, Release);
}
