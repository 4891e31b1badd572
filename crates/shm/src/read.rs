//! The read path: pin an epoch, hash, read the tag line of the key's
//! bucket and the entry beside it, compare the key, hand out the bytes. No
//! system call, no lock, no copy.

use crate::block::{self, Header};
use crate::entry::{self, Fields};
use crate::error::Result;
use crate::hash::{slot_block, slot_tag, KeyHash};
use crate::layout::{slot, ENTRY_SIZE, SLOTS_PER_BUCKET, TAG_LINE};
use crate::local::{self, ThreadSlot};
use crate::mem::{Region, Words};
use crate::segment::{Inner, Segment};
use crate::tag::TypeTag;
use std::rc::Rc;
use std::sync::atomic::Ordering::{self, Acquire, Relaxed};
use std::sync::Arc;

/// `revalidate` raises the entry's usage count on one access in this
/// many: that path otherwise never loads the entry's line.
const REVALIDATE_TOUCH: u32 = 8;
/// Sketch increments a thread counts toward the halving period at once,
/// so readers rarely touch that one shared word.
const SKETCH_OPS_BATCH: u32 = 64;

impl Inner {
    #[inline(always)]
    pub(crate) fn enter(&self, ts: &ThreadSlot) {
        let d = ts.depth.get();
        if d == 0 {
            self.epochs.pin(&*self.region, ts.idx);
        }
        ts.depth.set(d + 1);
    }

    #[inline(always)]
    pub(crate) fn exit(&self, ts: &ThreadSlot) {
        let d = ts.depth.get() - 1;
        ts.depth.set(d);
        if d == 0 {
            self.epochs.unpin(&*self.region, ts.idx);
        }
    }

    /// Finds a live, unexpired entry, with the index slot and word it was
    /// found through, and counts the access. The caller is inside an epoch.
    /// `first` is the key's first bucket ([`Inner::first_bucket_off`]),
    /// which the caller worked out for its prefetch.
    #[inline(always)]
    pub(crate) fn lookup(
        &self,
        ts: &ThreadSlot,
        h: KeyHash,
        first: u64,
        key: &[u8],
    ) -> Option<Hit> {
        let found = self.probe(h, first, key);
        // By reference: a hit is 72 bytes, and every copy of it on the read
        // path showed in profiles.
        let touch = found.as_ref().map(|f| self.layout.entry_of(f.slot));
        self.count_access(ts, h, found.is_some(), touch);
        // Trace recording: one load and a branch while it is off.
        let ctl = self.region.load(crate::layout::hdr::TRACE_CTL, Relaxed);
        if ctl != 0 {
            let size = found.as_ref().map_or(0, |f| f.fields.value_len());
            crate::trace::record(&*self.region, &self.layout, ctl, h.0, size, found.is_some());
        }
        found
    }

    /// Starts loading the key's sketch counters: a random line of the
    /// sketch, which `count_access` then reads and perhaps raises. Issued
    /// with [`Inner::prefetch_key`], the two misses overlap.
    #[inline(always)]
    pub(crate) fn prefetch_sketch(&self, h: KeyHash) {
        self.region.prefetch(self.sketch.block_of(h.0));
    }

    /// The bookkeeping of one read: the sketch counts the access, the hit
    /// or miss counter, and the usage count in index entry `touch`.
    ///
    /// Every access counts in the sketch: sampling one in eight, as this
    /// did before, left the counts of resident keys (hits) far below
    /// those of newcomers (whose put counts too), and admission worked
    /// mostly against residents. A key at the top count is read and not
    /// written, so hot keys do not bounce the sketch between cores.
    #[inline(always)]
    fn count_access(&self, ts: &ThreadSlot, h: KeyHash, hit: bool, touch: Option<u64>) {
        let r = &*self.region;
        self.count_use(ts, h);
        if !hit {
            ts.last_miss.set(h.0);
        }
        let counter = self.slots.off(ts.idx) + if hit { slot::HITS } else { slot::MISSES };
        // Only this thread writes its slot's counters: no atomic RMW needed.
        r.store(counter, r.load(counter, Relaxed) + 1, Relaxed);
        if let Some(entry) = touch {
            entry::touch(r, entry);
        }
    }

    /// The sketch's half of an access's bookkeeping.
    #[inline(always)]
    fn count_use(&self, ts: &ThreadSlot, h: KeyHash) {
        let r = &*self.region;
        if self.sketch.bump(r, h.0) {
            let b = ts.bumps.get().wrapping_add(1);
            ts.bumps.set(b);
            if b % SKETCH_OPS_BATCH == 0 {
                self.sketch.count_ops(r, SKETCH_OPS_BATCH as u64);
            }
        }
    }

    /// A live, unexpired entry, with no bookkeeping.
    #[inline(always)]
    pub(crate) fn probe(&self, h: KeyHash, first: u64, key: &[u8]) -> Option<Hit> {
        let found = self.find(h, first, key);
        let exp = found.as_ref().map_or(0, |f| f.fields.expiry);
        if exp != 0 && exp <= self.opts.clock.now_ms() {
            return None;
        }
        found
    }

    /// Calls `f(slot, word)` for each slot of the key's two buckets whose
    /// word carries its tag, until `f` returns something: the candidates
    /// every walk of the index checks. `first` is the first bucket's line
    /// ([`Inner::first_bucket_off`]). A loop with a closure rather than an
    /// iterator chain, which cost a miss 60% more.
    #[inline(always)]
    fn find_tagged<R>(
        &self,
        h: KeyHash,
        first: u64,
        order: Ordering,
        mut f: impl FnMut(u64, u64) -> Option<R>,
    ) -> Option<R> {
        let r = &*self.region;
        let l = &self.layout;
        let tag = h.tag();
        for second in [false, true] {
            // The second bucket is worked out only if the first did not
            // have the key.
            let line = if second {
                l.bucket_off(h.shard(l), h.second_bucket(l, h.first_bucket(l)))
            } else {
                first
            };
            // The whole tag line at once: one bounds check, and loads of a
            // line already on its way cost next to nothing.
            let words: [u64; SLOTS_PER_BUCKET as usize] = r.load_n(line, order);
            for (s, &word) in (0..).zip(&words) {
                let slot = line + s * 8;
                if word != 0 && slot_tag(word) == tag {
                    if let Some(found) = f(slot, word) {
                        return Some(found);
                    }
                }
            }
        }
        None
    }

    /// The block an index word links, if it is a live block of this key.
    #[inline(always)]
    fn linked_header(&self, h: KeyHash, key: &[u8], word: u64) -> Option<Header> {
        let r = &*self.region;
        let l = &self.layout;
        let off = slot_block(word);
        if off < l.arena || off >= l.region_size {
            return None;
        }
        // The line after the header holds the end of a longer key, the
        // type tag or the first value bytes: every reader's next load,
        // whose address depends on the header. Start it now so the two
        // misses overlap instead of following each other.
        r.prefetch(off + 64);
        let hdr = Header::read(r, off)?;
        (hdr.hash == h.0 && hdr.live() && hdr.key(r) == key).then_some(hdr)
    }

    /// The key's entry, expired or not, for writers: they need the block
    /// header (its size, for accounting and retiring) anyway. At most two
    /// tag lines, then one header and the key bytes for each tag match.
    #[inline(always)]
    pub(crate) fn locate(&self, h: KeyHash, key: &[u8]) -> Option<Found> {
        self.find_tagged(h, self.first_bucket_off(h), Acquire, |slot, word| {
            let hdr = self.linked_header(h, key, word)?;
            Some(Found { slot, word, hdr })
        })
    }

    /// Starts loading what a single-key lookup reads first: the tag line
    /// of the key's first bucket and its first two entries, where most
    /// keys are (the first free slot of the bucket a lookup reads first).
    /// Issued before the epoch pin, so the miss overlaps the pin's fence,
    /// and the entries load beside the tag line instead of after it.
    #[inline(always)]
    pub(crate) fn prefetch_key(&self, first: u64) {
        self.prefetch_bucket_head(first, 2);
    }

    /// The key's entry, expired or not, for readers: the tag line, then the
    /// entry beside it, which holds the key and everything a view needs.
    /// The block is read only for a key and tag longer than 32 bytes, or
    /// when a writer is rewriting the entry at that moment.
    #[inline(always)]
    pub(crate) fn find(&self, h: KeyHash, first: u64, key: &[u8]) -> Option<Hit> {
        let r = &*self.region;
        let l = &self.layout;
        self.find_tagged(h, first, Acquire, |slot, word| {
            if let Some(fields) = entry::read(r, slot, l.entry_of(slot), word) {
                if let Some(k) = fields.key() {
                    let hit = Hit { slot, word, fields };
                    // A corrupt entry falls through to the block check.
                    if hit.end() <= l.region_size && hit.block() >= l.arena {
                        return (fields.hash == h.0 && k == key).then_some(hit);
                    }
                }
            }
            let hdr = self.linked_header(h, key, word)?;
            Some(Hit {
                slot,
                word,
                fields: Fields::of_block(r, &hdr),
            })
        })
    }
}

/// An index slot, the word it held when read, and the block it names.
#[derive(Clone, Copy)]
pub(crate) struct Found {
    pub slot: u64,
    pub word: u64,
    pub hdr: Header,
}

/// What a reader found: the slot and word it went through (the word names
/// the block) and what the entry says about the block. The block is
/// immutable while the reader's epoch or a pin holds it; the fields are a
/// consistent copy (taken from the block when the entry could not be
/// trusted). Every read copies a hit a few times on its way out, so it
/// holds nothing that the slot and word give by arithmetic.
#[derive(Clone, Copy)]
pub(crate) struct Hit {
    pub slot: u64,
    pub word: u64,
    pub fields: Fields,
}

impl Hit {
    #[inline(always)]
    fn block(&self) -> u64 {
        slot_block(self.word)
    }
    #[inline(always)]
    fn value_off(&self) -> u64 {
        let f = &self.fields;
        block::value_off(self.block(), f.key_len(), f.tag_len(), f.value_len())
    }
    fn end(&self) -> u64 {
        self.value_off().saturating_add(self.fields.value_len())
    }
    #[inline(always)]
    fn value<'r>(&self, r: &'r Region) -> &'r [u8] {
        r.bytes(self.value_off(), self.fields.value_len())
    }
    fn key<'r>(&self, r: &'r Region) -> &'r [u8] {
        r.bytes(block::key_off(self.block()), self.fields.key_len())
    }
    /// The type tag: the entry's copy, else the block's bytes.
    #[inline(always)]
    fn tag<'a>(&'a self, r: &'a Region) -> &'a [u8] {
        match self.fields.tag() {
            Some(t) => t,
            None => r.bytes(
                block::tag_off(self.block(), self.fields.key_len()),
                self.fields.tag_len(),
            ),
        }
    }
}

/// A borrowed value, valid while the guard lives. It holds this thread's
/// epoch pin, which holds back reclamation of the whole segment: keep it
/// short, and use [`Segment::get_view`] for anything long-lived.
pub struct Guard<'a> {
    seg: &'a Segment,
    ts: Rc<ThreadSlot>,
    hit: Hit,
}

impl Guard<'_> {
    #[inline]
    pub fn value(&self) -> &[u8] {
        self.hit.value(&self.seg.inner.region)
    }
    #[inline]
    pub fn key(&self) -> &[u8] {
        self.hit.key(&self.seg.inner.region)
    }
    /// The raw encoded type tag (empty if none).
    #[inline]
    pub fn raw_tag(&self) -> &[u8] {
        self.hit.tag(&self.seg.inner.region)
    }
    pub fn type_tag(&self) -> Option<TypeTag> {
        TypeTag::decode(self.raw_tag())
    }
    /// Expiry in Unix milliseconds, if the entry had a TTL when read.
    #[inline]
    pub fn expires_at_ms(&self) -> Option<u64> {
        (self.hit.fields.expiry != 0).then_some(self.hit.fields.expiry)
    }
    /// The version of the value read, as [`View::version`]. Unlike a
    /// view's, it may be reused once the guard is dropped; compare it only
    /// as a change detector (WATCH), not for a compare-and-set.
    #[inline]
    pub fn version(&self) -> u64 {
        self.hit.word
    }
}

impl std::ops::Deref for Guard<'_> {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        self.value()
    }
}

impl Drop for Guard<'_> {
    #[inline]
    fn drop(&mut self) {
        self.seg.inner.exit(&self.ts);
    }
}

/// A value that stays valid and unchanged for as long as this object
/// lives, whatever happens to its key: overwrite, delete, eviction. It is
/// `Send`, holds back only its own block, and is what NumPy arrays are
/// built on. A view taken before `fork` must not be used in the child.
pub struct View {
    inner: Arc<Inner>,
    /// The pin entry.
    entry: u64,
    fork_gen: u64,
    /// Where the value was found (slot, index word then, block) and its
    /// entry's fields: what `Segment::revalidate` checks.
    hit: Hit,
}

impl View {
    #[inline]
    pub fn value(&self) -> &[u8] {
        self.hit.value(&self.inner.region)
    }
    /// The raw encoded type tag (empty if none): the entry's copy taken at
    /// lookup, or the pinned block's bytes, which are immutable.
    #[inline]
    pub fn raw_tag(&self) -> &[u8] {
        self.hit.tag(&self.inner.region)
    }
    pub fn type_tag(&self) -> Option<TypeTag> {
        TypeTag::decode(self.raw_tag())
    }
    #[inline]
    pub fn expires_at_ms(&self) -> Option<u64> {
        (self.hit.fields.expiry != 0).then_some(self.hit.fields.expiry)
    }
    /// The version of the value this view shows: the index word it was
    /// found through. While the view lives, its block cannot be reused, so
    /// no other value of the key can carry this version: a compare-and-set
    /// with it (`PutIf::Version`) succeeds only if nothing was written since.
    pub fn version(&self) -> u64 {
        self.hit.word
    }

    /// The offset of the value's block in the segment.
    #[inline]
    pub fn block_offset(&self) -> u64 {
        self.hit.block()
    }
}

impl std::ops::Deref for View {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        self.value()
    }
}

impl Drop for View {
    fn drop(&mut self) {
        if self.fork_gen != crate::mem::sys::fork_generation() {
            // The pin entry belongs to the parent process.
            return;
        }
        self.inner.pin_pages.clear(&*self.inner.region, self.entry);
        self.inner.pins().give_back(self.entry, self.fork_gen);
    }
}

/// One entry of a batch read, borrowed for the duration of the callback.
#[derive(Clone, Copy)]
pub struct Entry<'a> {
    pub value: &'a [u8],
    /// The raw encoded type tag (empty if none).
    pub raw_tag: &'a [u8],
}

/// Pieces a value is copied in when its destination sits differently from
/// it within a cache line.
const SKEWED_PIECE: usize = 512;

impl Entry<'_> {
    /// Copies the value into `dst`, which must be as long (as with
    /// `copy_from_slice`). Values of 1 KiB and more sit on their own
    /// boundary in the segment, and one copy of the whole value is the
    /// fast way when `dst` starts where it does within a cache line, as a
    /// page-aligned buffer's rows do. Otherwise (a buffer 16 bytes into a
    /// page, which is where a process's first large allocation lands), the
    /// C library's copy of a whole 4 KiB value made `python_read.py`'s
    /// 1000-row gather into `out` 1.09-1.27x as long as into a fresh
    /// array, while copies of 512-byte pieces cost what aligned rows do.
    #[inline]
    pub fn copy_to(&self, dst: &mut [u8]) {
        let src = self.value;
        assert_eq!(
            dst.len(),
            src.len(),
            "copy_to needs a destination as long as the value"
        );
        let skew = (dst.as_ptr() as usize).wrapping_sub(src.as_ptr() as usize) % 64;
        if skew == 0 || src.len() <= SKEWED_PIECE {
            dst.copy_from_slice(src);
            return;
        }
        for (d, s) in dst.chunks_mut(SKEWED_PIECE).zip(src.chunks(SKEWED_PIECE)) {
            d.copy_from_slice(s);
        }
    }
}

/// Holds this thread's epoch pin for a scope, released even on unwind.
struct EpochScope<'a> {
    inner: &'a Inner,
    ts: &'a ThreadSlot,
}

impl<'a> EpochScope<'a> {
    fn enter(inner: &'a Inner, ts: &'a ThreadSlot) -> Self {
        inner.enter(ts);
        EpochScope { inner, ts }
    }
}

impl Drop for EpochScope<'_> {
    fn drop(&mut self) {
        self.inner.exit(self.ts);
    }
}

/// Keys a batch read looks up before it hands out their values.
const BATCH_CHUNK: usize = 256;
/// How many lookups ahead a batch read starts loading a key's bucket.
const BATCH_AHEAD: usize = 8;
/// How many entries of that bucket it loads with the tag line: the slots
/// most keys sit in, since a bucket fills from its first free slot. (A
/// single read, in `prefetch_key`, loads two.)
const BATCH_ENTRIES: u64 = 4;
/// How many values ahead of the one handed out it starts loading the next
/// value's first lines.
const BATCH_VALUE_AHEAD: usize = 2;

impl Inner {
    /// Where the key's first bucket, and its tag line, start: worked out
    /// once per read, for its prefetch and for its walk of the index.
    #[inline(always)]
    pub(crate) fn first_bucket_off(&self, h: KeyHash) -> u64 {
        let l = &self.layout;
        l.bucket_off(h.shard(l), h.first_bucket(l))
    }

    /// Starts loading the head of the key's first bucket: its tag line and
    /// its first `entries` entries (a batch read's four are 320 bytes that
    /// nearly always share a page). Not the second bucket: 95% of keys
    /// live in the first, and the second costs a miss of its own. Blind,
    /// where finding the matching slot's entry first would read the tag
    /// line twice: that scan cost a 1000-key gather more than the misses
    /// on keys in later slots do.
    #[inline(always)]
    fn prefetch_bucket_head(&self, first: u64, entries: u64) {
        self.region.prefetch(first);
        for e in 0..entries {
            self.region.prefetch(first + TAG_LINE + e * ENTRY_SIZE);
        }
    }

    /// Starts loading the first two lines of a hit's value, after which
    /// the hardware prefetcher streams the rest.
    fn prefetch_value(&self, hit: &Hit) {
        let off = hit.value_off();
        self.region.prefetch(off);
        self.region.prefetch(off + 64);
    }
}

impl Segment {
    /// Looks many keys up under one epoch pin, loading the index lines and
    /// blocks of later keys while earlier ones are read, so the memory
    /// latency of a batch overlaps. `each(i, entry)` is called for every
    /// key in order, with `None` for a miss; the borrow ends when it
    /// returns. Counts hits and misses like [`Segment::get`].
    pub fn get_batch<K: AsRef<[u8]>>(
        &self,
        keys: &[K],
        mut each: impl FnMut(usize, Option<Entry<'_>>),
    ) -> Result<()> {
        let inner = &*self.inner;
        let ts = local::thread_slot(inner)?;
        let r = &*inner.region;
        // Each key's hash and first bucket, worked out once for the
        // prefetch ahead of its lookup and for the lookup.
        let hashes: Vec<(KeyHash, u64)> = keys
            .iter()
            .map(|k| {
                let h = KeyHash::new(inner.seed, k.as_ref());
                (h, inner.first_bucket_off(h))
            })
            .collect();
        for &(_, first) in hashes.iter().take(BATCH_AHEAD) {
            inner.prefetch_bucket_head(first, BATCH_ENTRIES);
        }
        let _scope = EpochScope::enter(inner, &ts);
        // Two passes over each chunk of keys. The lookups first: small
        // reads whose misses overlap many at a time. Then the values, in
        // order, each one's first lines loading while the one before is
        // handed out, as a plain gather would. Interleaving the two made
        // every lookup's misses wait behind a value's stream. Chunks bound
        // the hits held between the passes.
        let mut found = Vec::with_capacity(keys.len().min(BATCH_CHUNK));
        for start in (0..keys.len()).step_by(BATCH_CHUNK) {
            let end = keys.len().min(start + BATCH_CHUNK);
            found.clear();
            for (i, key) in keys.iter().enumerate().take(end).skip(start) {
                if let Some(&(_, ahead)) = hashes.get(i + BATCH_AHEAD) {
                    inner.prefetch_bucket_head(ahead, BATCH_ENTRIES);
                }
                let (h, first) = hashes[i];
                found.push(inner.lookup(&ts, h, first, key.as_ref()));
            }
            for hit in found.iter().take(BATCH_VALUE_AHEAD).flatten() {
                inner.prefetch_value(hit);
            }
            for (j, f) in found.iter().enumerate() {
                if let Some(Some(next)) = found.get(j + BATCH_VALUE_AHEAD) {
                    inner.prefetch_value(next);
                }
                each(
                    start + j,
                    f.as_ref().map(|hit| Entry {
                        value: hit.value(r),
                        raw_tag: hit.tag(r),
                    }),
                );
            }
        }
        Ok(())
    }

    /// Whether `view` still shows its key's current value: the index slot
    /// it was found through holds the same word, and it has not expired.
    /// One index load, no lookup and no new pin; a true answer counts as a
    /// hit, like a `get` (a false one counts nothing: the caller looks the
    /// key up). The word is unique to the view's block while the view pins
    /// it, and an in-place expiry change alters it, so an equal word means
    /// the same entry (unless 16384 expiry changes happened in between).
    /// Always false for a view taken before a fork, or in another segment.
    #[inline]
    pub fn revalidate(&self, view: &View) -> Result<bool> {
        if !self.is_current(view) {
            return Ok(false);
        }
        let inner = &*self.inner;
        let ts = local::thread_slot(inner)?;
        let n = ts.sample.get().wrapping_add(1);
        ts.sample.set(n);
        let sampled = n % REVALIDATE_TOUCH == 0;
        inner.count_access(
            &ts,
            KeyHash(view.hit.fields.hash),
            true,
            sampled.then_some(inner.layout.entry_of(view.hit.slot)),
        );
        Ok(true)
    }

    /// `revalidate` without the bookkeeping: for sweeping remembered views.
    #[inline]
    pub fn is_current(&self, view: &View) -> bool {
        let inner = &*self.inner;
        Arc::ptr_eq(&self.inner, &view.inner)
            && view.fork_gen == crate::mem::sys::fork_generation()
            && inner.region.load(view.hit.slot, Acquire) == view.hit.word
            && (view.hit.fields.expiry == 0 || view.hit.fields.expiry > inner.opts.clock.now_ms())
    }

    /// The segment clock's current time, in Unix milliseconds: what
    /// expiries are compared against.
    pub fn now_ms(&self) -> u64 {
        self.inner.opts.clock.now_ms()
    }

    /// Looks a key up. The guard borrows the value in place.
    #[inline]
    pub fn get(&self, key: &[u8]) -> Result<Option<Guard<'_>>> {
        self.read(key, true)
    }

    /// Looks a key up like [`Segment::get`], but leaves no trace: no hit
    /// or miss is counted and the eviction policy does not see the access.
    /// For inspecting a value (its length, its type tag) before the real
    /// read.
    pub fn peek(&self, key: &[u8]) -> Result<Option<Guard<'_>>> {
        self.read(key, false)
    }

    /// Looks a key up like [`Segment::peek`], counting no hit or miss, but
    /// the eviction policy sees the access as it sees a [`Segment::get`]'s.
    /// For bookkeeping entries read on every call (a namespace's version):
    /// read by `peek`, such an entry looks cold to the policy and is among
    /// the first to go, while counted by `get` it would inflate the hits.
    pub fn get_uncounted(&self, key: &[u8]) -> Result<Option<Guard<'_>>> {
        let inner = &*self.inner;
        let ts = local::thread_slot(inner)?;
        let h = KeyHash::new(inner.seed, key);
        let first = inner.first_bucket_off(h);
        inner.enter(&ts);
        match inner.probe(h, first, key) {
            Some(hit) => {
                inner.count_use(&ts, h);
                entry::touch(&*inner.region, inner.layout.entry_of(hit.slot));
                Ok(Some(Guard { seg: self, ts, hit }))
            }
            None => {
                inner.exit(&ts);
                Ok(None)
            }
        }
    }

    #[inline(always)]
    fn read(&self, key: &[u8], counted: bool) -> Result<Option<Guard<'_>>> {
        let inner = &*self.inner;
        let timed = crate::latency::ReadLatency::start();
        let ts = local::thread_slot(inner)?;
        let h = KeyHash::new(inner.seed, key);
        let first = inner.first_bucket_off(h);
        inner.prefetch_key(first);
        if counted {
            inner.prefetch_sketch(h);
        }
        inner.enter(&ts);
        let found = if counted {
            inner.lookup(&ts, h, first, key)
        } else {
            inner.probe(h, first, key)
        };
        inner.read_latency.finish(timed);
        match found {
            Some(hit) => Ok(Some(Guard { seg: self, ts, hit })),
            None => {
                inner.exit(&ts);
                Ok(None)
            }
        }
    }

    /// This process's read latency in L0 (one lookup in 64 per thread is
    /// timed, from the call to the value found or missed).
    pub fn read_latency(&self) -> crate::latency::LatencySnapshot {
        self.inner.read_latency.snapshot()
    }

    /// Looks a key up and pins its block, for a view that may outlive the
    /// call and cross threads.
    pub fn get_view(&self, key: &[u8]) -> Result<Option<View>> {
        let inner = &*self.inner;
        let timed = crate::latency::ReadLatency::start();
        let ts = local::thread_slot(inner)?;
        let h = KeyHash::new(inner.seed, key);
        let first = inner.first_bucket_off(h);
        inner.prefetch_key(first);
        inner.prefetch_sketch(h);
        let (entry, fork_gen) = inner.pins().acquire(inner)?;
        inner.enter(&ts);
        let found = inner.lookup(&ts, h, first, key);
        let view = found.map(|hit| {
            inner.pin_pages.publish(&*inner.region, entry, hit.block());
            crate::failpoint::hit("holding_pin");
            View {
                inner: self.inner.clone(),
                entry,
                fork_gen,
                hit,
            }
        });
        inner.exit(&ts);
        if view.is_none() {
            inner.pins().give_back(entry, fork_gen);
        }
        inner.read_latency.finish(timed);
        Ok(view)
    }

    /// Whether a live, unexpired entry exists (not counted as a hit or miss).
    pub fn contains(&self, key: &[u8]) -> Result<bool> {
        let inner = &*self.inner;
        let ts = local::thread_slot(inner)?;
        let h = KeyHash::new(inner.seed, key);
        let first = inner.first_bucket_off(h);
        inner.prefetch_key(first);
        inner.enter(&ts);
        let found = inner.probe(h, first, key).is_some();
        inner.exit(&ts);
        Ok(found)
    }
}
