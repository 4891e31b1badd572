//! L1: an in-process cache, sharded, bounded by weight (bytes), with a
//! replacement policy per shard and a time to live per entry.
//!
//! Each shard is a mutex around a hash map of entries and a
//! [`Policy`](crate::policy::Policy); a key's shard is chosen by its hash,
//! so threads working on different keys rarely meet. The map is keyed by
//! the 64-bit hash and keeps the key's bytes to tell a collision from a
//! hit: a colliding put replaces the older key, which costs a miss, never
//! a wrong answer.
//!
//! [`L1`] is generic over its value (bytes for the tier, Python objects
//! for the memoiser); [`L1Tier`] is the byte-valued one behind the
//! [`Tier`](crate::Tier) trait.

use crate::policy::{Policy, PolicyKind};
use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

type Map<V> = HashMap<u64, Slot<V>, BuildHasherDefault<crate::policy::KeyHasher>>;

/// How an L1 is sized and which policy it runs.
#[derive(Clone, Debug)]
pub struct L1Config {
    /// The bound on the total weight (for [`L1Tier`], bytes of keys and
    /// values plus [`ENTRY_OVERHEAD`] per entry).
    pub capacity: u64,
    pub policy: PolicyKind,
    /// Shards: a power of two; 0 chooses four per core, fewer for a small
    /// cache (each gets at least 4,096 of weight), so a small cache is
    /// one shard and replays exactly.
    pub shards: usize,
}

impl L1Config {
    pub fn new(capacity: u64) -> Self {
        L1Config {
            capacity,
            policy: L1_DEFAULT_POLICY,
            shards: 0,
        }
    }

    pub fn policy(mut self, policy: PolicyKind) -> Self {
        self.policy = policy;
        self
    }

    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = shards;
        self
    }
}

/// L1's default policy, chosen by the hit-ratio suite (docs/sizing.md).
pub const L1_DEFAULT_POLICY: PolicyKind = PolicyKind::WTinyLfu;

/// The least weight a shard is given when the shard count is chosen by
/// capacity: with unit weights, 4,096 entries.
const MIN_SHARD_WEIGHT: u64 = 4096;

/// What an entry costs beyond its key and value: the map slot, the
/// policy's node and the allocations' headers, roughly.
pub const ENTRY_OVERHEAD: usize = 96;

/// A key as a slot keeps it: short keys (most of them) in the slot
/// itself, so that comparing one reads the map's own memory instead of
/// chasing a pointer to the heap.
enum KeyBuf {
    Inline { len: u8, bytes: [u8; INLINE_KEY] },
    Heap(Box<[u8]>),
}

/// Keys up to this long are kept inline.
const INLINE_KEY: usize = 31;

impl KeyBuf {
    fn new(key: &[u8]) -> Self {
        if key.len() <= INLINE_KEY {
            let mut bytes = [0; INLINE_KEY];
            bytes[..key.len()].copy_from_slice(key);
            KeyBuf::Inline {
                len: key.len() as u8,
                bytes,
            }
        } else {
            KeyBuf::Heap(key.into())
        }
    }

    fn is(&self, key: &[u8]) -> bool {
        match self {
            KeyBuf::Inline { len, bytes } => {
                usize::from(*len) == key.len() && same_short(&bytes[..key.len()], key)
            }
            KeyBuf::Heap(b) => &**b == key,
        }
    }
}

/// Equal slices of equal length up to 32 bytes, compared as two
/// overlapping words (or four) rather than through a `memcmp` call, which
/// costs more than the comparison at these lengths.
#[inline]
fn same_short(a: &[u8], b: &[u8]) -> bool {
    fn word(s: &[u8], at: usize) -> u64 {
        s.get(at..at + 8)
            .and_then(|w| w.try_into().ok())
            .map_or(0, u64::from_ne_bytes)
    }
    let n = a.len();
    match n {
        0..=7 => a == b,
        8..=16 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        _ => {
            word(a, 0) == word(b, 0)
                && word(a, 8) == word(b, 8)
                && word(a, n - 16) == word(b, n - 16)
                && word(a, n - 8) == word(b, n - 8)
        }
    }
}

struct Slot<V> {
    key: KeyBuf,
    value: V,
    weight: u32,
    /// The policy's handle on the entry, so a hit is not looked up twice.
    handle: u32,
    /// Milliseconds since the cache's start when it expires; 0: never.
    expires: u64,
}

struct Shard<V> {
    map: Map<V>,
    policy: Box<dyn Policy>,
    evicted: Vec<u64>,
    counts: L1Stats,
}

/// L1's counters (summed over shards when read).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct L1Stats {
    pub hits: u64,
    pub misses: u64,
    pub inserts: u64,
    /// Entries removed to make room.
    pub evictions: u64,
    /// Puts the policy refused (the newcomer was colder than its victim).
    pub rejections: u64,
    pub expirations: u64,
    pub entries: u64,
    /// The weight held, against `capacity`.
    pub weight: u64,
    pub capacity: u64,
}

/// An in-process cache of `V`s; see the module's documentation.
pub struct L1<V> {
    shards: Box<[Mutex<Shard<V>>]>,
    mask: u64,
    capacity: u64,
    policy: PolicyKind,
    start: Instant,
}

fn hash(key: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(key)
}

impl<V: Clone> L1<V> {
    pub fn new(cfg: &L1Config) -> Self {
        let shards = match cfg.shards {
            // Four per core, so threads rarely meet on a lock, but none
            // smaller than MIN_SHARD_WEIGHT: a small cache stays whole
            // and replays exactly.
            0 => {
                let cores = std::thread::available_parallelism().map_or(4, |n| n.get());
                let by_cores = (4 * cores).next_power_of_two().min(256) as u64;
                let by_size = (cfg.capacity / MIN_SHARD_WEIGHT).max(1);
                let n = by_cores.min(by_size);
                // The largest power of two not above n.
                (1u64 << (63 - n.leading_zeros())) as usize
            }
            n => n.next_power_of_two().min(1024),
        };
        let per_shard = cfg.capacity / shards as u64;
        // Entries expected per shard, for table sizes only: a guess of
        // 1 KiB an entry for byte weights, exact for unit weights.
        let entries = (per_shard as usize / 1024).clamp(16, 1 << 16);
        let shards = (0..shards)
            .map(|_| {
                Mutex::new(Shard {
                    map: Map::default(),
                    policy: cfg.policy.build(per_shard, entries),
                    evicted: Vec::new(),
                    counts: L1Stats::default(),
                })
            })
            .collect::<Vec<_>>()
            .into_boxed_slice();
        L1 {
            mask: shards.len() as u64 - 1,
            shards,
            capacity: cfg.capacity,
            policy: cfg.policy,
            start: Instant::now(),
        }
    }

    pub fn policy(&self) -> PolicyKind {
        self.policy
    }

    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    fn shard(&self, h: u64) -> MutexGuard<'_, Shard<V>> {
        // The top bits pick the shard; the map uses the hash whole.
        let s = &self.shards[((h >> 48) & self.mask) as usize];
        // A panic while holding a shard cannot leave it inconsistent in a
        // way that matters more than losing the cache, so carry on.
        s.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64 + 1
    }

    /// The value under `key`, counting a hit or a miss.
    pub fn get(&self, key: &[u8]) -> Option<V> {
        self.get_with_ttl(key).map(|(v, _)| v)
    }

    /// The value under `key` and the time it has left to live.
    pub fn get_with_ttl(&self, key: &[u8]) -> Option<(V, Option<Duration>)> {
        self.get_hashed(hash(key), key)
    }

    /// [`L1::get_with_ttl`] with the key's hash given: a cache in front
    /// of L0 keys its L1 by L0's hash, which L0's change log names.
    pub fn get_hashed(&self, h: u64, key: &[u8]) -> Option<(V, Option<Duration>)> {
        self.get_hashed_if(h, key, |_| true)
    }

    /// [`L1::get_hashed`], taking only a value `accept` approves: another
    /// is a miss, counted as one, and not an access the policy learns of.
    pub fn get_hashed_if(
        &self,
        h: u64,
        key: &[u8],
        accept: impl FnOnce(&V) -> bool,
    ) -> Option<(V, Option<Duration>)> {
        let mut guard = self.shard(h);
        let s = &mut *guard;
        let found = match s.map.get(&h) {
            Some(slot) if slot.key.is(key) && accept(&slot.value) => {
                if slot.expires != 0 {
                    let now = self.now_ms();
                    if slot.expires <= now {
                        Err(())
                    } else {
                        Ok((
                            (slot.value.clone(), slot.handle),
                            Some(Duration::from_millis(slot.expires - now)),
                        ))
                    }
                } else {
                    Ok(((slot.value.clone(), slot.handle), None))
                }
            }
            _ => {
                s.counts.misses += 1;
                return None;
            }
        };
        match found {
            Ok(((v, handle), ttl)) => {
                s.policy.touch_handle(handle, h);
                s.counts.hits += 1;
                Some((v, ttl))
            }
            Err(()) => {
                s.map.remove(&h);
                s.policy.remove(h);
                s.counts.expirations += 1;
                s.counts.misses += 1;
                None
            }
        }
    }

    /// Stores `value` under `key` with the given weight. Returns whether
    /// the policy admitted it; an entry heavier than a shard's capacity,
    /// or colder than what it would displace, is not stored (and an older
    /// value under the key is dropped either way).
    pub fn insert(&self, key: &[u8], value: V, weight: usize, ttl: Option<Duration>) -> bool {
        self.insert_hashed(hash(key), key, value, weight, ttl, || true)
    }

    /// [`L1::insert`] with the key's hash given, storing only if `valid`,
    /// called under the shard's lock, says the value is still current: a
    /// remover that runs after `valid` must take the same lock, so it
    /// cannot miss the entry.
    pub fn insert_hashed(
        &self,
        h: u64,
        key: &[u8],
        value: V,
        weight: usize,
        ttl: Option<Duration>,
        valid: impl FnOnce() -> bool,
    ) -> bool {
        let expires = match ttl {
            Some(t) => self.now_ms().saturating_add(t.as_millis().max(1) as u64),
            None => 0,
        };
        let mut guard = self.shard(h);
        let s = &mut *guard;
        if !valid() {
            return false;
        }
        let weight = u32::try_from(weight).unwrap_or(u32::MAX);
        if let Some(slot) = s.map.get_mut(&h) {
            if slot.key.is(key) && slot.weight == weight {
                // Same key, same weight: replace in place and count it as
                // an access, keeping what the policy learned of the key.
                slot.value = value;
                slot.expires = expires;
                s.policy.touch_handle(slot.handle, h);
                s.counts.inserts += 1;
                return true;
            }
            s.map.remove(&h);
            s.policy.remove(h);
        }
        s.evicted.clear();
        let admitted = s.policy.insert(h, weight, &mut s.evicted);
        let evicted = std::mem::take(&mut s.evicted);
        for &e in &evicted {
            if e != h {
                s.map.remove(&e);
                s.counts.evictions += 1;
            }
        }
        s.evicted = evicted;
        if admitted && s.policy.contains(h) {
            s.map.insert(
                h,
                Slot {
                    key: KeyBuf::new(key),
                    value,
                    weight,
                    handle: s.policy.handle(h).unwrap_or(u32::MAX),
                    expires,
                },
            );
            s.counts.inserts += 1;
            true
        } else {
            s.counts.rejections += 1;
            false
        }
    }

    /// Drops whatever entry has the hash `h`; whether there was one.
    pub fn remove_hashed(&self, h: u64) -> bool {
        let mut s = self.shard(h);
        if s.map.remove(&h).is_some() {
            s.policy.remove(h);
            true
        } else {
            false
        }
    }

    /// Drops `key`; whether it was there.
    pub fn remove(&self, key: &[u8]) -> bool {
        self.remove_key_hashed(hash(key), key)
    }

    /// Drops `key`, whose hash is `h`; whether it was there.
    pub fn remove_key_hashed(&self, h: u64, key: &[u8]) -> bool {
        let mut s = self.shard(h);
        match s.map.get(&h) {
            Some(slot) if slot.key.is(key) => {
                s.map.remove(&h);
                s.policy.remove(h);
                true
            }
            _ => false,
        }
    }

    /// Sets the key's time to live (None: forever); whether it is there.
    pub fn set_ttl(&self, key: &[u8], ttl: Option<Duration>) -> bool {
        let h = hash(key);
        let now = self.now_ms();
        let mut s = self.shard(h);
        match s.map.get_mut(&h) {
            Some(slot) if slot.key.is(key) && (slot.expires == 0 || slot.expires > now) => {
                slot.expires = ttl.map_or(0, |t| now.saturating_add(t.as_millis().max(1) as u64));
                true
            }
            _ => false,
        }
    }

    /// Drops every entry.
    pub fn clear(&self) {
        for shard in self.shards.iter() {
            let mut s = shard.lock().unwrap_or_else(|e| e.into_inner());
            let keys: Vec<u64> = s.map.keys().copied().collect();
            for k in keys {
                s.policy.remove(k);
            }
            s.map.clear();
        }
    }

    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).map.len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn stats(&self) -> L1Stats {
        let mut out = L1Stats {
            capacity: self.capacity,
            ..L1Stats::default()
        };
        for shard in self.shards.iter() {
            let s = shard.lock().unwrap_or_else(|e| e.into_inner());
            let c = s.counts;
            out.hits += c.hits;
            out.misses += c.misses;
            out.inserts += c.inserts;
            out.evictions += c.evictions;
            out.rejections += c.rejections;
            out.expirations += c.expirations;
            out.entries += s.map.len() as u64;
            out.weight += s.policy.weight();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_compare_equal_only_when_equal_at_every_length() {
        for n in 0..=40usize {
            let a: Vec<u8> = (0..n as u8).map(|i| i.wrapping_mul(37)).collect();
            let kept = KeyBuf::new(&a);
            assert!(kept.is(&a), "length {n}");
            assert!(!kept.is(&a[..n.saturating_sub(1)]) || n == 0);
            for at in 0..n {
                let mut b = a.clone();
                b[at] ^= 1;
                assert!(!kept.is(&b), "length {n}, byte {at}");
            }
        }
    }
}
