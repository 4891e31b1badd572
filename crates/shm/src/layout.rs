//! Where everything sits in a segment. Every offset is derived from two
//! numbers (the region size and the entry capacity), so an attacher
//! recomputes the whole layout and refuses a header that disagrees.
//! `docs/design/l0-segment.md` specifies the same thing in prose.

pub const MAGIC: u64 = u64::from_le_bytes(*b"STRATAL0");
pub const LAYOUT_VERSION: u64 = 7;

pub const KIB: u64 = 1024;
pub const MIB: u64 = 1024 * KIB;
pub const HEADER_SIZE: u64 = 4 * KIB;
pub const SLAB_SIZE: u64 = 2 * MIB;
pub const MIN_REGION: u64 = 8 * MIB;
pub const MAX_REGION: u64 = 1 << 40;

pub const READER_SLOTS: u64 = 4096;
pub const SLOT_SIZE: u64 = 128;
/// Pin pages: at least this many, else four pin entries per index entry
/// the segment is sized for, so that several processes can each hold
/// views of every key.
pub const MIN_PIN_PAGES: u64 = 256;
pub const PINS_PER_ENTRY: u64 = 4;
/// The most pin pages (their byte locks must fit below 2^20).
pub const MAX_PIN_PAGES: u64 = 1 << 16;
pub const PIN_PAGE_SIZE: u64 = 4 * KIB;
pub const PIN_PAGE_HEADER: u64 = 16;
pub const PIN_ENTRIES: u64 = (PIN_PAGE_SIZE - PIN_PAGE_HEADER) / 8;
pub const SHARD_HEADER_SIZE: u64 = 16 * KIB;
pub const LIMBO_OFFSET: u64 = 2 * KIB;
pub const LIMBO_ENTRY: u64 = 16;
pub const LIMBO_CAPACITY: u64 = (SHARD_HEADER_SIZE - LIMBO_OFFSET) / LIMBO_ENTRY;
pub const SLOTS_PER_BUCKET: u64 = 8;
/// The change log of a shard: its head (alone on a line), then a ring of
/// key hashes, about one per entry the shard holds, within these bounds.
pub const MIN_CHANGE_SLOTS: u64 = 1024;
pub const MAX_CHANGE_SLOTS: u64 = 1 << 16;
pub const CHANGE_HEAD: u64 = 64;
/// The trace ring: three counters on lines of their own, then records of
/// 32 bytes, about one slot per 8 entries within these bounds.
pub const TRACE_HEAD: u64 = 192;
/// A queue record: an index slot's offset and its entry's stamp.
pub const QUEUE_RECORD: u64 = 16;
pub const TRACE_RECORD: u64 = 32;
pub const MIN_TRACE_SLOTS: u64 = 4096;
pub const MAX_TRACE_SLOTS: u64 = 1 << 15;
/// A bucket's first line: its slot words.
pub const TAG_LINE: u64 = 64;
const _: () = assert!(
    TAG_LINE == SLOTS_PER_BUCKET * 8,
    "a bucket starts with one cache line of slot words"
);
/// One entry per slot, after the tag line: what a reader needs of the
/// block the slot links, so that a hit reads no block header.
pub const ENTRY_SIZE: u64 = 64;
pub const BUCKET_SIZE: u64 = TAG_LINE + SLOTS_PER_BUCKET * ENTRY_SIZE;
pub const SKETCH_BLOCK: u64 = 64;
pub const SLAB_META_SIZE: u64 = 64;
pub const BITMAP_SIZE: u64 = 4 * KIB;
/// A short key (up to 16 bytes) shares the header's cache line.
pub const BLOCK_HEADER: u64 = 48;
pub const MAX_SHARDS: u64 = 64;
/// The smallest `max_entries` a segment takes.
pub const MIN_ENTRIES: u64 = 256;

/// Lock bytes (in the segment file, beyond nothing in particular: byte
/// locks need not cover file data) whose holders are alive.
pub const SLOT_LOCK_BASE: u64 = 1 << 40;
pub const PIN_LOCK_BASE: u64 = (1 << 40) + (1 << 20);
/// Held by the creator from creating the file until the segment is READY:
/// attachers wait for a live creator however long creation takes.
pub const CREATOR_LOCK: u64 = (1 << 40) + (1 << 22);

/// Header fields (byte offsets).
pub mod hdr {
    pub const MAGIC: u64 = 0;
    pub const VERSION: u64 = 8;
    pub const LAYOUT_HASH: u64 = 16;
    pub const REGION_SIZE: u64 = 24;
    pub const INSTANCE: u64 = 32;
    pub const STATE: u64 = 40;
    pub const SEED: u64 = 48;
    pub const MAX_ENTRIES: u64 = 56;
    pub const SHARD_COUNT: u64 = 64;
    pub const BUCKETS: u64 = 72;
    pub const READER_SLOTS: u64 = 80;
    pub const PIN_PAGES: u64 = 88;
    pub const SKETCH_BLOCKS: u64 = 96;
    pub const SLAB_COUNT: u64 = 104;
    pub const OFF_READERS: u64 = 112;
    pub const OFF_PINS: u64 = 120;
    pub const OFF_SHARDS: u64 = 128;
    pub const OFF_INDEX: u64 = 136;
    pub const OFF_SKETCH: u64 = 144;
    pub const OFF_SLAB_META: u64 = 152;
    pub const OFF_BITMAPS: u64 = 160;
    pub const OFF_ARENA: u64 = 168;
    pub const CREATED_MS: u64 = 176;
    pub const SLOT_GENERATION: u64 = 184;
    pub const SLOT_HIGH_WATER: u64 = 192;
    pub const PIN_HIGH_WATER: u64 = 200;
    pub const SKETCH_OPS: u64 = 208;
    /// The janitor lease: the slot token of the thread doing housekeeping.
    pub const JANITOR: u64 = 216;
    /// A checksum of the fields fixed at creation (0..CREATED_MS).
    pub const CHECKSUM: u64 = 224;
    /// The offset of the change logs (one ring per shard).
    pub const OFF_CHANGES: u64 = 232;
    /// Trace recording: 0 when off, else the sampling threshold (keys
    /// whose sample bucket, out of 2^24, is below it are recorded).
    pub const TRACE_CTL: u64 = 240;
    /// The offset of the trace ring.
    pub const OFF_TRACE: u64 = 248;
    /// Global epoch, alone on its 128-byte line.
    pub const EPOCH: u64 = 256;
    /// Hit and miss counts of reader slots that have been released.
    pub const FOLDED_HITS: u64 = 384;
    pub const FOLDED_MISSES: u64 = 392;
    /// The eviction policy's code ([`crate::policy::Policy::code`]).
    pub const POLICY: u64 = 400;
    /// W-TinyLFU's window share, in 1/1024ths of the entries.
    pub const WINDOW_SHARE: u64 = 408;
    /// Ghosts noted lately (`window.rs`): window entries and main
    /// entries that duels let go.
    pub const GHOST_NOTES_WINDOW: u64 = 416;
    pub const GHOST_NOTES_MAIN: u64 = 424;
    /// The offset of the ghost tables, and the slots of each.
    pub const OFF_GHOSTS: u64 = 432;
    pub const GHOST_SLOTS: u64 = 440;
    pub const OFF_QUEUES: u64 = 448;
    pub const QUEUE_SLOTS: u64 = 456;
}

pub mod state {
    pub const INIT: u64 = 0;
    pub const READY: u64 = 1;
}

/// Reader slot fields.
pub mod slot {
    pub const OWNER: u64 = 0;
    pub const EPOCH: u64 = 8;
    pub const HITS: u64 = 16;
    pub const MISSES: u64 = 24;
    pub const PID: u64 = 32;
}

/// Pin page fields; entries follow the header.
pub mod pin {
    pub const OWNER: u64 = 0;
    pub const PID: u64 = 8;
}

/// Shard header fields.
pub mod shard {
    pub const LOCK: u64 = 0;
    pub const LOCK_SEQ: u64 = 128;
    pub const LOCK_WAITERS: u64 = 136;
    pub const ENTRIES: u64 = 256;
    pub const BYTES: u64 = 264;
    pub const INSERTS: u64 = 272;
    pub const UPDATES: u64 = 280;
    pub const EVICTIONS: u64 = 288;
    pub const EXPIRATIONS: u64 = 296;
    pub const REJECTIONS: u64 = 304;
    pub const DELETES: u64 = 312;
    pub const LIMBO_BYTES: u64 = 320;
    pub const REPAIRS: u64 = 328;
    pub const LIMBO_HEAD: u64 = 384;
    pub const LIMBO_TAIL: u64 = 392;
    pub const SWEEP_CURSOR: u64 = 400;
    pub const LARGE_HAND: u64 = 408;
    /// Where the next slab reassignment starts looking for a victim.
    pub const REASSIGN_HAND: u64 = 416;
    /// Slabs this shard's writers emptied for another class (a counter).
    pub const REASSIGNS: u64 = 336;
    /// Entries in the small queue (the window or S3-FIFO's small FIFO).
    pub const SMALL: u64 = 344;
    /// The queue ring's head and tail (monotonic record indices).
    pub const QUEUE_HEAD: u64 = 352;
    pub const QUEUE_TAIL: u64 = 360;
    /// The CLOCK hand over the shard's index slots.
    pub const HAND: u64 = 368;
    /// Per size class: 1 + the slab to allocate from next (0: none).
    pub const ALLOC_HINT: u64 = 512;
    /// Per size class: the clock hand, as slab << 20 | block.
    pub const CLOCK_HAND: u64 = 1024;
    /// Per size class: evictions of its own blocks since it last grew.
    pub const CLASS_EVICTIONS: u64 = 1536;
}

// The per-class arrays of a shard header stay clear of each other and of
// the limbo ring.
const _: () = assert!(shard::ALLOC_HINT + 8 * crate::classes::TOTAL as u64 <= shard::CLOCK_HAND);
const _: () =
    assert!(shard::CLOCK_HAND + 8 * crate::classes::TOTAL as u64 <= shard::CLASS_EVICTIONS);
const _: () = assert!(shard::CLASS_EVICTIONS + 8 * crate::classes::TOTAL as u64 <= LIMBO_OFFSET);

/// Slab table entry fields.
pub mod slab {
    pub const OWNER: u64 = 0;
    pub const USED: u64 = 8;
}

/// Index entry fields (see `entry.rs`).
pub mod entry {
    /// value length (40 bits), key length (14), tag length (9), inline flag.
    pub const LENS: u64 = 0;
    pub const EXPIRY: u64 = 8;
    /// The clock's usage count.
    pub const USAGE: u64 = 16;
    pub const HASH: u64 = 24;
    /// Key then type tag, when together they fit in 32 bytes.
    pub const INLINE: u64 = 32;
    pub const INLINE_BYTES: u64 = 32;
}

/// Block header fields.
pub mod block {
    pub const META: u64 = 0;
    pub const VALUE_LEN: u64 = 8;
    pub const HASH: u64 = 16;
    pub const EXPIRY: u64 = 24;
    /// Zero (the clock's usage count lives in the index entry).
    pub const RESERVED: u64 = 32;
    pub const SIZE: u64 = 40;
}

pub const fn round_up(v: u64, to: u64) -> u64 {
    v.div_ceil(to) * to
}

/// The size of the region a segment asked for `memory` bytes gets: whole
/// slabs.
pub const fn region_size_for(memory: u64) -> u64 {
    round_up(memory, SLAB_SIZE)
}

/// The computed positions of every section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub region_size: u64,
    pub max_entries: u64,
    pub shard_count: u64,
    pub buckets_per_shard: u64,
    pub sketch_blocks: u64,
    pub slab_count: u64,
    pub readers: u64,
    pub pins: u64,
    pub pin_pages: u64,
    pub shards: u64,
    pub index: u64,
    pub sketch: u64,
    pub slab_meta: u64,
    pub bitmaps: u64,
    pub changes: u64,
    /// Slots of each shard's change log.
    pub change_slots: u64,
    pub trace: u64,
    pub trace_slots: u64,
    /// Each shard's queue ring (the eviction policy's FIFO order).
    pub queues: u64,
    pub queue_slots: u64,
    /// Each shard's ghost table (`window.rs`).
    pub ghosts: u64,
    pub ghost_slots: u64,
    pub arena: u64,
}

impl Layout {
    /// The default entry capacity for a region: one entry per 4 KiB,
    /// which suits values of a few KiB (embeddings). An index entry costs
    /// 144 bytes (two slots of 72), so that is 3.5% of the memory; smaller
    /// values want a larger `max_entries`.
    pub fn default_max_entries(region_size: u64) -> u64 {
        (region_size / (4 * KIB)).max(1024)
    }

    /// Lays out a region, or says why it cannot be laid out.
    pub fn compute(region_size: u64, max_entries: u64) -> Result<Layout, String> {
        if region_size < MIN_REGION {
            return Err(format!("a segment needs at least {} MiB", MIN_REGION / MIB));
        }
        if region_size > MAX_REGION {
            return Err("a segment can be at most 1 TiB".into());
        }
        if region_size % SLAB_SIZE != 0 {
            return Err("the region size must be a multiple of 2 MiB".into());
        }
        if max_entries < MIN_ENTRIES || max_entries > region_size / 256 {
            return Err(format!(
                "max entries must lie between {MIN_ENTRIES} and {} for this size",
                region_size / 256
            ));
        }
        let shard_count = (region_size / (32 * MIB))
            .next_power_of_two()
            .clamp(2, MAX_SHARDS);
        // Two candidate buckets of eight slots per key: keep the table at
        // most half full at capacity.
        let slots = 2 * max_entries;
        let buckets_per_shard = slots.div_ceil(shard_count * SLOTS_PER_BUCKET).max(2);
        let sketch_blocks = (max_entries / 4).next_power_of_two().max(64);
        let max_slabs = region_size / SLAB_SIZE;

        let readers = HEADER_SIZE;
        let pins = readers + READER_SLOTS * SLOT_SIZE;
        let pin_pages = (PINS_PER_ENTRY * max_entries)
            .div_ceil(PIN_ENTRIES)
            .clamp(MIN_PIN_PAGES, MAX_PIN_PAGES);
        let shards = pins + pin_pages * PIN_PAGE_SIZE;
        let index = shards + shard_count * SHARD_HEADER_SIZE;
        let sketch = index + shard_count * buckets_per_shard * BUCKET_SIZE;
        let slab_meta = sketch + sketch_blocks * SKETCH_BLOCK;
        let bitmaps = slab_meta + max_slabs * SLAB_META_SIZE;
        let changes = bitmaps + max_slabs * BITMAP_SIZE;
        let change_slots = (max_entries / shard_count)
            .next_power_of_two()
            .clamp(MIN_CHANGE_SLOTS, MAX_CHANGE_SLOTS);
        let trace = changes + shard_count * (CHANGE_HEAD + change_slots * 8);
        let trace_slots = (max_entries / 8)
            .next_power_of_two()
            .clamp(MIN_TRACE_SLOTS, MAX_TRACE_SLOTS);
        let queues = trace + TRACE_HEAD + trace_slots * TRACE_RECORD;
        // Room for every entry a shard may hold, plus slack for the stale
        // records of entries deleted since they were queued.
        let shard_cap = max_entries.div_ceil(shard_count);
        let queue_slots = (shard_cap + shard_cap / 4).next_power_of_two();
        let ghosts = queues + shard_count * queue_slots * QUEUE_RECORD;
        let ghost_slots = shard_cap.next_power_of_two();
        let arena = round_up(ghosts + shard_count * ghost_slots * 8, SLAB_SIZE);
        if arena >= region_size {
            return Err(format!(
                "{} MiB leaves no room for data after the index; ask for more memory or fewer entries",
                region_size / MIB
            ));
        }
        let slab_count = (region_size - arena) / SLAB_SIZE;
        Ok(Layout {
            region_size,
            max_entries,
            shard_count,
            buckets_per_shard,
            sketch_blocks,
            slab_count,
            readers,
            pins,
            pin_pages,
            shards,
            index,
            sketch,
            slab_meta,
            bitmaps,
            changes,
            change_slots,
            trace,
            trace_slots,
            queues,
            queue_slots,
            ghosts,
            ghost_slots,
            arena,
        })
    }

    /// A fingerprint of every size and offset rule above, so that two
    /// builds that would disagree about the layout refuse each other.
    pub fn layout_hash() -> u64 {
        let desc = format!(
            "v{LAYOUT_VERSION} hdr={HEADER_SIZE} slab={SLAB_SIZE} slots={READER_SLOTS}x{SLOT_SIZE} \
             pins={PINS_PER_ENTRY}xentries/{PIN_ENTRIES}:{MIN_PIN_PAGES}..{MAX_PIN_PAGES}x{PIN_PAGE_SIZE}/{PIN_PAGE_HEADER} shard={SHARD_HEADER_SIZE}/{LIMBO_OFFSET}/{LIMBO_ENTRY} \
             bucket={TAG_LINE}+{SLOTS_PER_BUCKET}x{ENTRY_SIZE}:{:?} sketch={SKETCH_BLOCK} slabmeta={SLAB_META_SIZE} \
             bitmap={BITMAP_SIZE} changes={CHANGE_HEAD}+entries/shards:{MIN_CHANGE_SLOTS}..{MAX_CHANGE_SLOTS}x8 trace={TRACE_HEAD}+entries/8:{MIN_TRACE_SLOTS}..{MAX_TRACE_SLOTS}x{TRACE_RECORD} queues=1.25xcap:{QUEUE_RECORD} ghosts=cap:8 block={BLOCK_HEADER} classes={:?} aligned={}x{:?} epoch={} locks={SLOT_LOCK_BASE}/{PIN_LOCK_BASE}",
            [entry::LENS, entry::EXPIRY, entry::USAGE, entry::HASH, entry::INLINE],
            crate::classes::all(),
            crate::classes::HEAD,
            crate::classes::BODIES,
            hdr::EPOCH,
        );
        xxhash_rust::xxh3::xxh3_64(desc.as_bytes())
    }

    pub fn slot_off(&self, idx: u64) -> u64 {
        self.readers + idx * SLOT_SIZE
    }
    pub fn pin_page_off(&self, page: u64) -> u64 {
        self.pins + page * PIN_PAGE_SIZE
    }
    /// How many entries one shard may hold: `max_entries` is a bound.
    pub fn shard_cap(&self) -> u64 {
        self.max_entries.div_ceil(self.shard_count)
    }
    /// The slot of `hash` in the shard's ghost table: bits the shard and
    /// the buckets do not use.
    pub fn ghost_off(&self, shard: u64, hash: u64) -> u64 {
        self.ghosts + (shard * self.ghost_slots + ((hash >> 20) & (self.ghost_slots - 1))) * 8
    }
    /// Record `i` (a monotonic index) of the shard's queue ring.
    pub fn queue_off(&self, shard: u64, i: u64) -> u64 {
        self.queues + (shard * self.queue_slots + (i & (self.queue_slots - 1))) * QUEUE_RECORD
    }
    pub fn change_ring_off(&self, shard: u64) -> u64 {
        self.changes + shard * (CHANGE_HEAD + self.change_slots * 8)
    }
    pub fn shard_off(&self, shard: u64) -> u64 {
        self.shards + shard * SHARD_HEADER_SIZE
    }
    pub fn bucket_off(&self, shard: u64, bucket: u64) -> u64 {
        self.index + (shard * self.buckets_per_shard + bucket) * BUCKET_SIZE
    }
    /// The entry of the slot word at `slot` (an offset in a tag line).
    /// Buckets start on 64-byte lines (the index does, and a bucket is
    /// nine lines), and a tag line is one line: the slot's line is its
    /// bucket's start, and no division is needed.
    #[inline(always)]
    pub fn entry_of(&self, slot: u64) -> u64 {
        const _: () = assert!(TAG_LINE == 64 && BUCKET_SIZE % 64 == 0);
        (slot & !63) + TAG_LINE + (slot & 63) / 8 * ENTRY_SIZE
    }
    /// Every index slot of a shard, as (bucket, slot offset).
    pub fn shard_slots(&self, shard: u64) -> impl Iterator<Item = (u64, u64)> {
        let l = *self;
        (0..l.buckets_per_shard).flat_map(move |b| {
            let line = l.bucket_off(shard, b);
            (0..SLOTS_PER_BUCKET).map(move |i| (b, line + i * 8))
        })
    }
    pub fn slab_meta_off(&self, slab: u64) -> u64 {
        self.slab_meta + slab * SLAB_META_SIZE
    }
    pub fn bitmap_off(&self, slab: u64) -> u64 {
        self.bitmaps + slab * BITMAP_SIZE
    }
    pub fn slab_start(&self, slab: u64) -> u64 {
        self.arena + slab * SLAB_SIZE
    }
    /// The slab holding arena offset `off`, if `off` is in the arena.
    pub fn slab_of(&self, off: u64) -> Option<u64> {
        if off < self.arena || off >= self.region_size {
            return None;
        }
        Some((off - self.arena) / SLAB_SIZE)
    }
    pub fn arena_bytes(&self) -> u64 {
        self.slab_count * SLAB_SIZE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_do_not_overlap_and_fit() {
        for mib in [8u64, 10, 64, 256, 1024, 4096] {
            let size = mib * MIB;
            let l = Layout::compute(size, Layout::default_max_entries(size)).unwrap();
            assert!(l.readers < l.pins && l.pins < l.shards && l.shards < l.index);
            assert!(l.index < l.sketch && l.sketch < l.slab_meta && l.slab_meta < l.bitmaps);
            assert!(l.bitmaps < l.arena && l.arena % SLAB_SIZE == 0);
            assert_eq!(l.index % 64, 0, "buckets start on lines");
            assert_eq!(l.arena + l.slab_count * SLAB_SIZE, size);
            assert!(l.slab_count >= 1);
        }
    }

    #[test]
    fn each_slot_has_its_own_entry_in_its_bucket() {
        let l = Layout::compute(64 * MIB, Layout::default_max_entries(64 * MIB)).unwrap();
        let mut seen = std::collections::HashSet::new();
        for shard in [0, l.shard_count - 1] {
            for (b, slot) in l.shard_slots(shard) {
                let bucket = l.bucket_off(shard, b);
                let i = (slot - bucket) / 8;
                assert_eq!(l.entry_of(slot), bucket + TAG_LINE + i * ENTRY_SIZE);
                assert!(seen.insert(l.entry_of(slot)));
            }
        }
    }

    #[test]
    fn rejects_bad_sizes() {
        assert!(Layout::compute(4 * MIB, 1024).is_err());
        assert!(Layout::compute(9 * MIB, 1024).is_err());
        assert!(Layout::compute(8 * MIB, 10).is_err());
    }
}
