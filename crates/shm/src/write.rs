//! The write path: lock the shard, allocate, copy, seal, fill the index
//! entry and publish its word (the commit point), retire what it
//! replaced, unlock.

use crate::alloc::Block;
use crate::block::{self, Header};
use crate::classes;
use crate::entry::{self, Fields};
use crate::error::{Error, Result};
use crate::failpoint;
use crate::hash::{next_version, slot_word, KeyHash};
use crate::layout::{self, shard, SLOTS_PER_BUCKET};
use crate::local::{self, ThreadSlot};
use crate::lock::Acquired;
use crate::mem::Words;
use crate::options::{check_ttl, EvictReason, Evicted, PutIf, PutOptions, PutOutcome};
use crate::policy::Policy;
use crate::read::Found;
use crate::rebalance::Reassigned;
use crate::reclaim::{Backoff, RECLAIM_BATCH};
use crate::segment::{Inner, Segment};
use crate::tag::TypeTag;
use std::borrow::Cow;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::time::Duration;

/// Holds a shard's writer lock; releases it on drop.
pub(crate) struct ShardGuard<'a> {
    inner: &'a Inner,
    token: u64,
    shard: u64,
}

impl<'a> ShardGuard<'a> {
    /// A guard for a lock that `token` has just taken.
    pub(crate) fn new(inner: &'a Inner, token: u64, shard: u64) -> Self {
        ShardGuard {
            inner,
            token,
            shard,
        }
    }
}

impl Drop for ShardGuard<'_> {
    fn drop(&mut self) {
        self.inner
            .shard_lock(self.shard)
            .unlock(&*self.inner.region, self.token);
    }
}

/// Where a put lands.
enum Target {
    /// An empty slot.
    Free(u64),
    /// The key's own entry, replaced atomically at the commit point.
    Update(Found),
    /// Another key's entry (or this key's expired one), unlinked just
    /// before the commit point.
    Displace(Found, Removal),
}

/// Slab reassignments one allocation may make (another writer can take
/// a freed slab first).
const MAX_REASSIGNS: u32 = 4;

/// Evictions allowed ahead of reclamation before a writer waits instead.
const EVICT_AHEAD: u32 = 8;

/// Expiry in Unix ms for a TTL starting at `now` (at least 1 ms ahead).
/// TTLs are checked against `MAX_TTL` first; saturating keeps a clock
/// gone mad from wrapping an expiry to a near one.
fn expiry_at(now: u64, ttl: Duration) -> u64 {
    let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
    now.saturating_add(ms.max(1))
}

/// Why an entry is being removed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Removal {
    Deleted,
    Evicted,
    Expired,
}

impl Removal {
    /// An entry removed to make room: expired if it was, else evicted.
    pub(crate) fn for_victim(expired: bool) -> Self {
        if expired {
            Removal::Expired
        } else {
            Removal::Evicted
        }
    }
}

impl Inner {
    pub(crate) fn lock_shard<'a>(&'a self, ts: &ThreadSlot, shard: u64) -> ShardGuard<'a> {
        let r = &*self.region;
        let live = ts.live();
        let lock = self.shard_lock(shard);
        let got = lock.lock(r, ts.token, |t| self.slots.is_alive(r, &live, t, ts.idx));
        let guard = ShardGuard::new(self, ts.token, shard);
        if let Acquired::FromDead(_) = got {
            self.repair_shard(shard);
        }
        guard
    }

    fn counter(&self, shard: u64, field: u64, delta: i64) {
        self.region
            .fetch_add(self.layout.shard_off(shard) + field, delta as u64, Relaxed);
    }

    pub(crate) fn is_expired(&self, hdr: &Header, now: u64) -> bool {
        let exp = hdr.expiry(&self.region);
        exp != 0 && exp <= now
    }

    /// Unlinks and retires an entry, offering it to the evict hook first.
    /// Caller holds the shard lock and has made limbo room.
    pub(crate) fn remove_entry(&self, ts: &ThreadSlot, shard: u64, f: &Found, why: Removal) {
        let r = &*self.region;
        if let (Some(hook), Removal::Evicted | Removal::Expired) = (&self.opts.on_evict, why) {
            hook(&Evicted {
                key: f.hdr.key(r),
                value: f.hdr.value(r),
                tag: TypeTag::decode(f.hdr.tag(r)),
                reason: if why == Removal::Expired {
                    EvictReason::Expired
                } else {
                    EvictReason::Capacity
                },
                expires_at_ms: Some(f.hdr.expiry(r)).filter(|&e| e != 0),
                change_position: (shard, crate::changes::head(r, &self.layout, shard)),
                hash: f.hdr.hash,
            });
        }
        let small = self.is_small(f.slot);
        if r.compare_exchange(f.slot, f.word, 0).is_err() {
            return;
        }
        if small {
            self.add_small(shard, -1);
        }
        self.retire(ts, shard, f.hdr.off, f.hdr.size);
        self.counter(shard, shard::ENTRIES, -1);
        self.counter(shard, shard::BYTES, -(f.hdr.size as i64));
        match why {
            Removal::Deleted => self.counter(shard, shard::DELETES, 1),
            Removal::Evicted => self.counter(shard, shard::EVICTIONS, 1),
            Removal::Expired => self.counter(shard, shard::EXPIRATIONS, 1),
        }
    }

    /// A block of `class` ([`classes::choose`]), for `need` bytes if it is
    /// a run of slabs, evicting by clock when space is short. `candidate`
    /// is the newcomer's frequency when it must win admission against the
    /// first victim; None for updates. Ok(None): not admitted.
    fn allocate(
        &self,
        ts: &ThreadSlot,
        shard: u64,
        class: u64,
        need: u64,
        mut candidate: Option<u32>,
    ) -> Result<Option<Block>> {
        let mut backoff = Backoff::default();
        // Evicted blocks not yet reclaimed: past a few, wait for readers
        // rather than evict more entries for space that is on its way.
        let mut pending = 0u32;
        let mut reassigns = 0u32;
        loop {
            let got = if class == classes::LARGE {
                self.take_run(shard, need)
            } else {
                self.take_block(shard, class)
            };
            if let Some(b) = got {
                return Ok(Some(b));
            }
            // Space is short: reap dead readers and dead processes' views
            // before evicting live entries.
            if self.reclaim(ts, shard, true) > 0 {
                pending = 0;
                continue;
            }
            let victim = if pending < EVICT_AHEAD {
                self.ensure_limbo_room(ts, shard, 1)?;
                self.clock_victim(shard, class)
            } else {
                None
            };
            if victim.is_some()
                && class != classes::LARGE
                && self.rebalance_into(ts, shard, class)?
            {
                continue;
            }
            match victim {
                Some((slot, hdr)) => {
                    let r = &*self.region;
                    let expired = self.is_expired(&hdr, self.opts.clock.now_ms());
                    if !expired && self.policy == Policy::NoEviction {
                        return Ok(None);
                    }
                    if let Some(c) = candidate.take() {
                        let victim = self.sketch.estimate(r, hdr.hash);
                        if !expired && !self.opts.admission.admit(c, victim) {
                            return Ok(None);
                        }
                    }
                    let f = Found {
                        slot,
                        word: r.load(slot, Acquire),
                        hdr,
                    };
                    self.remove_entry(ts, shard, &f, Removal::for_victim(expired));
                    pending += 1;
                }
                // Nothing of this class to evict here: empty a slab (or a
                // window of slabs) of another class and take it over.
                None if pending == 0 && self.policy == Policy::NoEviction => return Ok(None),
                None if pending == 0 && reassigns < MAX_REASSIGNS => {
                    reassigns += 1;
                    let slabs = if class == classes::LARGE {
                        need.div_ceil(layout::SLAB_SIZE)
                    } else {
                        1
                    };
                    match self.reassign(ts, shard, class, slabs, candidate.take(), None)? {
                        Reassigned::Freed => {}
                        Reassigned::NotAdmitted => return Ok(None),
                        Reassigned::Nothing => reassigns = MAX_REASSIGNS,
                    }
                }
                None if pending == 0 && self.limbo_len(shard) == 0 => {
                    return Err(Error::Full(if class == classes::LARGE {
                        format!(
                            "no run of {} free slabs for a {} block, and nothing in this shard to evict",
                            need.div_ceil(layout::SLAB_SIZE),
                            crate::size::format_size(need)
                        )
                    } else {
                        format!(
                            "no free {} block and no free slab; this shard holds nothing of that size to evict",
                            crate::size::format_size(classes::size(class))
                        )
                    }));
                }
                None => {
                    if !backoff.wait() {
                        return Err(Error::Full(
                            "space freed by eviction is still held by readers or views; retry"
                                .into(),
                        ));
                    }
                }
            }
        }
    }

    /// Where a put of this key lands, and whether a new entry enters the
    /// policy's small queue; None if the eviction policy refuses it a
    /// place. `freq` is the key's sketch count.
    fn target(&self, h: KeyHash, key: &[u8], now: u64, freq: u32) -> Option<(Target, bool)> {
        let small = self.new_is_small(freq);
        if let Some(f) = self.locate(h, key) {
            return Some(if self.is_expired(&f.hdr, now) {
                (Target::Displace(f, Removal::Expired), small)
            } else {
                (Target::Update(f), small)
            });
        }
        let r = &*self.region;
        let l = &self.layout;
        let shard = h.shard(l);
        if let Some(slot) = self.free_slot(h) {
            return Some((Target::Free(slot), small));
        }
        // Both buckets are full: an expired entry goes first, else one of
        // the 16 is displaced.
        let mut cands = Vec::with_capacity(2 * SLOTS_PER_BUCKET as usize);
        for b in h.buckets(l) {
            let line = l.bucket_off(shard, b);
            for slot in (0..SLOTS_PER_BUCKET).map(|i| line + i * 8) {
                let word = r.load(slot, Acquire);
                let Some(hdr) = self.block_of(word) else {
                    // A word naming no valid block (only after corruption).
                    return Some((Target::Free(slot), small));
                };
                let f = Found { slot, word, hdr };
                if self.is_expired(&hdr, now) {
                    return Some((Target::Displace(f, Removal::Expired), small));
                }
                cands.push(f);
            }
        }
        self.pair_victim(cands)
            .map(|f| (Target::Displace(f, Removal::Evicted), small))
    }

    /// An empty slot for a new key, if either bucket has one. The first
    /// bucket until it is three-quarters full, so that most hits read one
    /// index line; then the emptier of the two, so that a key is lost to a
    /// full pair only near 120% of `max_entries` rather than from about
    /// 70% (`bench/index_overflow.py`).
    fn free_slot(&self, h: KeyHash) -> Option<u64> {
        let r = &*self.region;
        let l = &self.layout;
        let shard = h.shard(l);
        // The first empty slot of bucket `b`, and how many are taken.
        let scan = |b: u64| {
            let line = l.bucket_off(shard, b);
            let mut free = None;
            let mut used = 0;
            for i in 0..SLOTS_PER_BUCKET {
                if r.load(line + i * 8, Acquire) == 0 {
                    free = free.or(Some(line + i * 8));
                } else {
                    used += 1;
                }
            }
            (free, used)
        };
        let [b1, b2] = h.buckets(l);
        let (free1, used1) = scan(b1);
        if free1.is_some() && used1 < SLOTS_PER_BUCKET * 3 / 4 {
            return free1;
        }
        let (free2, used2) = scan(b2);
        match (free1, free2) {
            (Some(s1), Some(s2)) => Some(if used1 <= used2 { s1 } else { s2 }),
            (s1, s2) => s1.or(s2),
        }
    }

    fn write_block(
        &self,
        b: &Block,
        h: KeyHash,
        key: &[u8],
        tag: &[u8],
        value: &[u8],
        expiry: u64,
    ) {
        let r = &*self.region;
        let f = |field| b.off + field;
        use crate::layout::block as bf;
        r.store(
            f(bf::META),
            block::meta(block::WRITING, b.class, key.len() as u64, tag.len() as u64),
            Relaxed,
        );
        r.store(f(bf::VALUE_LEN), value.len() as u64, Relaxed);
        r.store(f(bf::HASH), h.0, Relaxed);
        r.store(f(bf::EXPIRY), expiry, Relaxed);
        r.store(f(bf::RESERVED), 0, Relaxed);
        r.store(f(bf::SIZE), b.size, Relaxed);
        r.write_bytes(block::key_off(b.off), key);
        r.write_bytes(block::tag_off(b.off, key.len() as u64), tag);
        failpoint::hit("mid_copy");
        let vstart = block::value_off(
            b.off,
            key.len() as u64,
            tag.len() as u64,
            value.len() as u64,
        );
        r.write_bytes(vstart, value);
        // Sealing is a Release store: everything above is visible to any
        // reader that sees the index word published after it.
        block::set_state(r, b.off, block::SEALED);
    }
}

impl Segment {
    /// Stores `value` under `key`, replacing any previous value. Readers
    /// see the old value or the new one, never a mix.
    pub fn put(&self, key: &[u8], value: &[u8], opts: &PutOptions) -> Result<PutOutcome> {
        let written = self.write_with(key, opts, |_| Some(Cow::Borrowed(value)))?;
        Ok(written.unwrap_or(PutOutcome::Rejected))
    }

    /// Stores `value` only if the key is absent (`PutIf::Absent`, as SET NX
    /// or a lease), present (`PutIf::Present`, as SET XX), or still at a
    /// version (`PutIf::Version`, a compare-and-set); an expired key is
    /// absent. Ok(None) when the condition did not hold. The check and
    /// the write happen under the key's shard lock: no other writer, in
    /// any process, comes between them.
    pub fn put_if(
        &self,
        key: &[u8],
        value: &[u8],
        opts: &PutOptions,
        cond: PutIf,
    ) -> Result<Option<PutOutcome>> {
        self.write_with(key, opts, |current| {
            let holds = match cond {
                PutIf::Absent => current.is_none(),
                PutIf::Present => current.is_some(),
                PutIf::Version(v) => current.is_some_and(|(_, word)| word == v),
            };
            holds.then_some(Cow::Borrowed(value))
        })
    }

    /// Reads the key's current value (None if absent or expired) and
    /// writes what `f` returns from it, under the key's shard lock, so that
    /// no other writer in any process comes between the read and the
    /// write: for counters (INCR) and leases. `f` returning None writes
    /// nothing (Ok(None)). `f` runs with a shard lock held: it must be
    /// short and must not touch the segment.
    pub fn update(
        &self,
        key: &[u8],
        opts: &PutOptions,
        f: impl FnOnce(Option<&[u8]>) -> Option<Vec<u8>>,
    ) -> Result<Option<PutOutcome>> {
        self.write_with(key, opts, |current| {
            f(current.map(|(v, _)| v)).map(Cow::Owned)
        })
    }

    /// The one write path: under the shard lock, `decide` sees the key's
    /// current value and its version (index word), and returns the value
    /// to store, or None to store nothing.
    fn write_with<'v>(
        &self,
        key: &[u8],
        opts: &PutOptions,
        decide: impl FnOnce(Option<(&[u8], u64)>) -> Option<Cow<'v, [u8]>>,
    ) -> Result<Option<PutOutcome>> {
        if key.len() > block::MAX_KEY {
            return Err(Error::KeyTooLarge {
                len: key.len(),
                max: block::MAX_KEY,
            });
        }
        let tag = match &opts.tag {
            Some(t) => t.encode().map_err(|_| Error::TagTooLarge {
                len: t.dtype.len() + t.shape.len() * 8,
                max: crate::tag::MAX_TAG_BYTES,
            })?,
            None => Vec::new(),
        };
        let inner = &*self.inner;
        let fixed = block::needed(key.len() as u64, tag.len() as u64, 0);
        if let Some(ttl) = opts.ttl {
            check_ttl(ttl)?;
        }
        let ts = local::thread_slot(inner)?;
        let r = &*inner.region;
        let h = KeyHash::new(inner.seed, key);
        let shard = h.shard(&inner.layout);
        // A put right after this thread's counted miss of the key is the
        // same access (get, miss, fetch, put): count it once.
        if ts.last_miss.get() == h.0 {
            ts.last_miss.set(0);
        } else {
            inner.sketch.increment(r, h.0);
        }

        let _guard = inner.lock_shard(&ts, shard);
        // Every write attempt, even one refused below, tells other
        // processes' copies (their L1s) that the key's value moved on.
        crate::changes::append(r, &inner.layout, shard, h.0);
        failpoint::hit("holding_lock");
        inner.ensure_limbo_room(&ts, shard, 2)?;
        let now = inner.opts.clock.now_ms();
        let expiry = opts.ttl.map(|t| expiry_at(now, t)).unwrap_or(0);

        let freq = inner.sketch.estimate(r, h.0);
        let rejected = |inner: &Inner| {
            inner.counter(shard, shard::REJECTIONS, 1);
            Ok(Some(PutOutcome::Rejected))
        };
        let Some((target, small)) = inner.target(h, key, now, freq) else {
            return rejected(inner);
        };
        let current = match &target {
            Target::Update(f) => Some((f.hdr.value(r), f.word)),
            _ => None,
        };
        let Some(value) = decide(current) else {
            return Ok(None);
        };
        let expiry = match &target {
            Target::Update(f) if opts.keep_ttl => f.hdr.expiry(r),
            _ => expiry,
        };
        let value: &[u8] = &value;
        let need = fixed + value.len() as u64;
        if need > inner.max_block {
            return Err(Error::ValueTooLarge {
                len: value.len() as u64,
                max: inner.max_block - fixed,
            });
        }
        // A new key takes a place of the shard's `max_entries` share: if
        // they are all taken, the policy evicts one or refuses the key.
        let small = match target {
            Target::Free(_) => match inner.make_room(&ts, shard, h.0, freq)? {
                Some(small) => small,
                None => return rejected(inner),
            },
            _ => small,
        };
        // A new key must also beat the clock's first victim if space is short.
        // (Frequency policies only: LRU, FIFO and S3-FIFO let the clock's
        // choice stand.)
        let candidate = (!matches!(target, Target::Update(_))
            && inner.policy.admits_by_frequency())
        .then_some(freq);
        let class = classes::choose(key.len() as u64, tag.len() as u64, value.len() as u64);
        let Some(b) = inner.allocate(&ts, shard, class, need, candidate)? else {
            return rejected(inner);
        };
        failpoint::hit("after_alloc");
        inner.write_block(&b, h, key, &tag, value, expiry);

        // Eviction inside `allocate` may already have unlinked the entry
        // this put displaces; under the shard lock nothing else can.
        let linked = |f: &Found| r.load(f.slot, Acquire) == f.word;
        let (slot, replaced) = match target {
            Target::Free(slot) => (slot, None),
            Target::Update(f) => (f.slot, linked(&f).then_some(f)),
            Target::Displace(f, why) => {
                if linked(&f) {
                    // Offered to the evict hook while still linked.
                    inner.remove_entry(&ts, shard, &f, why);
                }
                (f.slot, None)
            }
        };
        // The commit point: the entry's fields, then the word.
        let fields = Fields::new(h.0, key, &tag, value.len() as u64, expiry);
        let entry = inner.layout.entry_of(slot);
        // An update keeps the entry's place in the policy's queues.
        let meta = match &replaced {
            Some(_) => entry::meta(r, entry),
            None => inner.new_meta(shard, small),
        };
        entry::link(r, slot, entry, slot_word(b.off, h.tag()), &fields, meta);
        if replaced.is_none() && inner.queues(small) {
            inner.enqueue(shard, slot, meta);
            inner.trim_window(shard);
        }
        failpoint::hit("after_publish");
        let outcome = match replaced {
            Some(f) => {
                inner.retire(&ts, shard, f.hdr.off, f.hdr.size);
                inner.counter(shard, shard::BYTES, b.size as i64 - f.hdr.size as i64);
                inner.counter(shard, shard::UPDATES, 1);
                PutOutcome::Updated
            }
            None => {
                inner.counter(shard, shard::ENTRIES, 1);
                inner.counter(shard, shard::BYTES, b.size as i64);
                inner.counter(shard, shard::INSERTS, 1);
                PutOutcome::Inserted
            }
        };
        if inner.limbo_len(shard) >= RECLAIM_BATCH {
            inner.reclaim(&ts, shard, false);
        }
        Ok(Some(outcome))
    }

    /// Removes a key. Ok(false) if it was absent (or already expired).
    pub fn delete(&self, key: &[u8]) -> Result<bool> {
        self.with_entry(key, |inner, ts, shard, f, expired| {
            let why = if expired {
                Removal::Expired
            } else {
                Removal::Deleted
            };
            inner.remove_entry(ts, shard, f, why);
            Ok(!expired)
        })
    }

    /// Sets a key's time to live. Ok(false) if the key is absent.
    pub fn expire(&self, key: &[u8], ttl: Duration) -> Result<bool> {
        if ttl.is_zero() {
            return self.delete(key);
        }
        check_ttl(ttl)?;
        self.set_expiry(key, expiry_at(self.inner.opts.clock.now_ms(), ttl))
    }

    /// Removes a key's time to live. Ok(false) if the key is absent.
    pub fn persist(&self, key: &[u8]) -> Result<bool> {
        self.set_expiry(key, 0)
    }

    fn set_expiry(&self, key: &[u8], at: u64) -> Result<bool> {
        self.with_entry(key, |inner, ts, shard, f, expired| {
            if expired {
                inner.remove_entry(ts, shard, f, Removal::Expired);
                return Ok(false);
            }
            let r = &*inner.region;
            r.store(f.hdr.off + crate::layout::block::EXPIRY, at, Release);
            // The entry's copy changes under a new version of the word, so
            // readers that remembered the word (revalidated views) see the
            // change; the link itself stays the same.
            entry::begin(r, f.slot);
            entry::write_expiry(r, inner.layout.entry_of(f.slot), at);
            failpoint::hit("mid_entry");
            entry::publish(r, f.slot, next_version(f.word));
            Ok(true)
        })
    }

    /// Runs `f` on the key's entry under its shard lock. Ok(false) if absent.
    fn with_entry(
        &self,
        key: &[u8],
        f: impl FnOnce(&Inner, &ThreadSlot, u64, &Found, bool) -> Result<bool>,
    ) -> Result<bool> {
        if key.len() > block::MAX_KEY {
            return Ok(false);
        }
        let inner = &*self.inner;
        let ts = local::thread_slot(inner)?;
        let h = KeyHash::new(inner.seed, key);
        let shard = h.shard(&inner.layout);
        let _guard = inner.lock_shard(&ts, shard);
        crate::changes::append(&*inner.region, &inner.layout, shard, h.0);
        inner.ensure_limbo_room(&ts, shard, 1)?;
        match inner.locate(h, key) {
            None => Ok(false),
            Some(found) => {
                let expired = inner.is_expired(&found.hdr, inner.opts.clock.now_ms());
                f(inner, &ts, shard, &found, expired)
            }
        }
    }
}
