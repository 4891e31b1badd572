//! The cache's L1: values this process had to let go of from L0 (evicted
//! by its writes, or refused by L0's admission), kept in its own memory.
//!
//! L1 is keyed by L0's hash of each key, so that L0's change log (a ring
//! per shard of the hashes of keys written or deleted, by any process)
//! names L1's entries directly. Before each L1 lookup this process reads
//! the log of the key's shard from where it last stopped and drops what
//! changed; a log that lapped it drops the whole of L1. A copy is stored
//! only if its key has not changed since the moment it was taken from L0
//! (or since the put that L0 refused), checked under L1's shard lock,
//! which a later drop also takes: no stale copy survives a change.

use std::sync::atomic::{
    AtomicU64,
    Ordering::{Acquire, Relaxed, Release},
};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use strata_shm::{EvictReason, Evicted, Segment, TypeTag};
use strata_tiers::{L1Config, L1Stats, L1Tier, L1Value};

pub(crate) struct LocalTier {
    tier: L1Tier,
    seg: Segment,
    /// Per L0 shard: the log position drained so far, stored before the
    /// drops (inserts check against it) ...
    claimed: Box<[AtomicU64]>,
    /// ... and stored after them (lookups skip the log when it matches).
    done: Box<[AtomicU64]>,
    sync: Mutex<Vec<u64>>,
    pub demotions: AtomicU64,
    pub promotions: AtomicU64,
    pub dropped: AtomicU64,
    pub lapped: AtomicU64,
    /// Decoded objects kept (see `objects.rs`).
    pub objects: AtomicU64,
}

impl LocalTier {
    pub fn new(seg: &Segment, cfg: &L1Config) -> crate::Result<Arc<Self>> {
        let shards = seg.layout().shard_count;
        let heads: Vec<u64> = (0..shards).map(|s| seg.change_head(s)).collect();
        Ok(Arc::new(LocalTier {
            tier: L1Tier::new(cfg)?,
            seg: seg.clone(),
            claimed: heads.iter().map(|&h| AtomicU64::new(h)).collect(),
            done: heads.iter().map(|&h| AtomicU64::new(h)).collect(),
            sync: Mutex::new(Vec::new()),
            demotions: AtomicU64::new(0),
            promotions: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            lapped: AtomicU64::new(0),
            objects: AtomicU64::new(0),
        }))
    }

    /// Drops what other writers changed in `shard` since the last look.
    pub fn sync(&self, shard: u64) {
        let s = shard as usize;
        let head = self.seg.change_head(shard);
        if self.done[s].load(Acquire) == head {
            return;
        }
        let mut buf = self.sync.lock().unwrap_or_else(|e| e.into_inner());
        let from = self.claimed[s].load(Acquire);
        buf.clear();
        match self.seg.changes_since(shard, from, &mut buf) {
            Ok(to) => {
                self.claimed[s].store(to, Release);
                for &h in buf.iter() {
                    if self.tier.inner().remove_hashed(h) {
                        self.dropped.fetch_add(1, Relaxed);
                    }
                }
                self.done[s].store(to, Release);
            }
            Err(to) => {
                // More changes than the log keeps: any entry of this
                // shard may be stale, and L1 does not know its entries'
                // shards, so all go.
                self.claimed[s].store(to, Release);
                self.tier.clear();
                self.lapped.fetch_add(1, Relaxed);
                self.done[s].store(to, Release);
            }
        }
    }

    /// Catches up with the log of the key's shard after this process
    /// wrote it, so that its own writes do not lap it.
    pub fn after_write(&self, key: &[u8]) {
        let h = self.seg.key_hash(key);
        self.sync(self.seg.change_position(h).0);
    }

    /// Whether `hash` changed in `shard` at or after position `at`.
    fn changed_since(&self, hash: u64, shard: u64, at: u64) -> bool {
        let claimed = self.claimed[shard as usize].load(Acquire);
        if claimed <= at {
            // Whatever comes later is still to be drained, after us.
            return false;
        }
        let mut buf = Vec::new();
        match self.seg.changes_since(shard, at, &mut buf) {
            Ok(_) => buf.contains(&hash),
            Err(_) => true,
        }
    }

    /// The value of `key` if L1 has it and it is current, bytes or object
    /// as `objects` asks; an entry of the other kind is a miss.
    pub fn get(&self, key: &[u8], objects: bool) -> Option<(L1Value, Option<Duration>)> {
        let h = self.seg.key_hash(key);
        let (shard, _) = self.seg.change_position(h);
        self.sync(shard);
        self.tier
            .inner()
            .get_hashed_if(h, key, |v| v.is_object() == objects)
    }

    /// Keeps a value this process just offered L0 in a put that L0
    /// refused (or an object decoded from a value it just wrote), charged
    /// `w`: `before` is the key's log position from before the put.
    /// The put logged the key once; the copy is kept only if nobody else
    /// logged it since `before`. The log is first read past that put, so
    /// that its entry does not drop the copy afterwards.
    pub fn keep_refused(
        &self,
        hash: u64,
        before: (u64, u64),
        key: &[u8],
        (value, w): (L1Value, usize),
        ttl: Option<Duration>,
    ) -> bool {
        let (shard, at) = before;
        self.sync(shard);
        self.tier
            .inner()
            .insert_hashed(hash, key, value, w, ttl, || {
                let mut buf = Vec::new();
                match self.seg.changes_since(shard, at, &mut buf) {
                    Ok(_) => buf.iter().filter(|&&h| h == hash).count() <= 1,
                    Err(_) => false,
                }
            })
    }

    /// Keeps a copy taken from L0 (or an object decoded from one) when
    /// the key's shard log stood at `position`, charged `w`.
    pub fn keep(
        &self,
        hash: u64,
        position: (u64, u64),
        key: &[u8],
        (value, w): (L1Value, usize),
        ttl: Option<Duration>,
    ) -> bool {
        let (shard, at) = position;
        self.tier
            .inner()
            .insert_hashed(hash, key, value, w, ttl, || {
                !self.changed_since(hash, shard, at)
            })
    }

    /// The evict hook's half: an entry L0 pushed out for room goes to L1
    /// with what is left of its TTL.
    pub fn demote(&self, e: &Evicted<'_>, now_ms: u64) {
        if e.reason != EvictReason::Capacity {
            return;
        }
        let ttl = match e.expires_at_ms {
            Some(at) if at <= now_ms => return,
            Some(at) => Some(Duration::from_millis(at - now_ms)),
            None => None,
        };
        let value = L1Value::from_bytes(Arc::from(e.value), e.tag.clone());
        let w = L1Tier::weight_of(e.key, e.value);
        if self.keep(e.hash, e.change_position, e.key, (value, w), ttl) {
            self.demotions.fetch_add(1, Relaxed);
        }
    }

    pub fn stats(&self) -> L1Stats {
        self.tier.l1_stats()
    }
}

/// A value L1 hands out: copied, since L1's memory is this process's.
pub(crate) fn owned(v: L1Value) -> (Vec<u8>, Option<TypeTag>) {
    (v.bytes.to_vec(), v.tag)
}
