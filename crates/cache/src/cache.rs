//! The read and write paths across the tiers. An L0 hit is a plain
//! segment read; everything else happens only on a miss.

use crate::builder::CacheBuilder;
use crate::error::{Error, Result};
use crate::invalidation::{Invalidation, OP_KEY};
use crate::l1::LocalTier;
use crate::policy::WritePolicy;
use crate::value::Value;
use crate::write_back::WriteBack;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use strata_shm::{PutOptions, PutOutcome, Segment};
use strata_tiers::{Fetched, Put, RedisTier, Tier, TierStatsSnapshot};

/// How long `close()` and dropping a cache wait for write-back to drain.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// A tiered cache: L0 (shared memory) in front of Redis (L2).
pub struct Cache {
    seg: Segment,
    l2: Option<Arc<dyn Tier>>,
    policy: WritePolicy,
    default_ttl: Option<Duration>,
    write_back: Option<Arc<WriteBack>>,
    promotions: AtomicU64,
    closed: AtomicBool,
    pub(crate) flights: crate::compute::Flights,
    pub(crate) counters: Counters,
    redis: Option<Arc<RedisTier>>,
    inval: Option<Arc<Invalidation>>,
    pub(crate) l1: Option<Arc<LocalTier>>,
}

/// Counters of the serving patterns.
#[derive(Default)]
pub(crate) struct Counters {
    /// Computations run by `get_or_compute` in this process.
    pub computes: AtomicU64,
    /// Callers that waited for another's computation instead of running
    /// their own (in this process or another).
    pub coalesced: AtomicU64,
    /// Early refreshes (XFetch) started by this process.
    pub early_refreshes: AtomicU64,
}

/// The figures of every tier.
#[derive(Clone, Debug)]
pub struct CacheStats {
    pub l0: strata_shm::Stats,
    /// This process's L0 read latency (one read in 64 per thread timed).
    pub l0_latency: strata_shm::LatencySnapshot,
    /// L1, when configured: this process's own tier.
    pub l1: Option<strata_tiers::L1Stats>,
    /// Entries L0 evicted through this process's writes that went to L1;
    /// L1 hits promoted into L0; L1 entries dropped because some process
    /// changed their key; and times L0's change log lapped this process,
    /// dropping all of L1.
    pub l1_demotions: u64,
    pub l1_promotions: u64,
    pub l1_invalidated: u64,
    pub l1_lapped: u64,
    /// Decoded objects this process kept in L1 (`Cache::keep_object`).
    pub l1_objects: u64,
    pub l2: Option<TierStatsSnapshot>,
    /// Values fetched from L2 and stored in L0.
    pub promotions: u64,
    /// Writes queued for Redis and not yet sent (write-back).
    pub write_back_pending: u64,
    /// How long the oldest of them has waited, in milliseconds.
    pub write_back_lag_ms: u64,
    pub write_back_flushed: u64,
    /// Batches that failed and were queued again.
    pub write_back_errors: u64,
    /// `get_or_compute`: computations run, callers that waited for another's
    /// instead, and early refreshes (XFetch), in this process.
    pub computes: u64,
    pub coalesced_waits: u64,
    pub early_refreshes: u64,
    /// Invalidations this process published, and (as the machine's
    /// subscriber) received from other machines; reconnections of the
    /// subscriber, across which messages may have been missed.
    pub invalidations_sent: u64,
    pub invalidations_received: u64,
    pub invalidation_gaps: u64,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("name", &self.seg.name())
            .field("policy", &self.policy)
            .field("l2", &self.l2.as_ref().map(|t| t.name().to_string()))
            .finish()
    }
}

impl Cache {
    pub fn builder(name: &str) -> CacheBuilder {
        CacheBuilder::new(name)
    }

    pub(crate) fn from_parts(
        seg: Segment,
        redis: Option<Arc<RedisTier>>,
        inval: Option<Arc<Invalidation>>,
        policy: WritePolicy,
        default_ttl: Option<Duration>,
        write_back: Option<Arc<WriteBack>>,
        l1: Option<Arc<LocalTier>>,
    ) -> Self {
        if let Some(i) = &inval {
            i.ensure_started();
        }
        let l2 = redis.clone().map(|r| r as Arc<dyn Tier>);
        Cache {
            redis,
            inval,
            l1,
            seg,
            l2,
            policy,
            default_ttl,
            write_back,
            promotions: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            flights: Default::default(),
            counters: Counters::default(),
        }
    }

    /// L0, for reads in place (`get`, `get_view`, `get_batch`): a hit
    /// there is all a read needs, and costs what a bare segment read does.
    pub fn segment(&self) -> &Segment {
        &self.seg
    }

    pub fn write_policy(&self) -> WritePolicy {
        self.policy
    }

    /// The TTL of writes that give none.
    pub fn default_ttl(&self) -> Option<Duration> {
        self.default_ttl
    }

    pub fn has_l2(&self) -> bool {
        self.l2.is_some()
    }

    pub(crate) fn l2(&self) -> Option<&Arc<dyn Tier>> {
        self.l2.as_ref()
    }

    pub(crate) fn redis_tier(&self) -> Option<&Arc<RedisTier>> {
        self.redis.as_ref()
    }

    /// Cross-machine invalidation, when Redis is configured. Starting the
    /// subscriber here too covers a process forked after the cache was made.
    pub(crate) fn invalidation(&self) -> Option<&Arc<Invalidation>> {
        let i = self.inval.as_ref()?;
        i.ensure_started();
        Some(i)
    }

    fn check_open(&self) -> Result<()> {
        if self.closed.load(Relaxed) {
            return Err(Error::Closed);
        }
        Ok(())
    }

    /// The value of `key`: from L0 (a pinned view, no copy), else from
    /// Redis, promoted into L0.
    pub fn get(&self, key: &[u8]) -> Result<Option<Value>> {
        if let Some(v) = self.seg.get_view(key)? {
            return Ok(Some(Value::Shared(v)));
        }
        self.fetch(key)
    }

    /// The L2 half of a read, for a caller that already missed L0.
    pub fn fetch(&self, key: &[u8]) -> Result<Option<Value>> {
        Ok(self.fetch_many(&[key])?.pop().flatten())
    }

    /// Values of `keys`, which the caller found missing in L0: one
    /// pipelined request per Redis node for all of them, each found value
    /// promoted into L0. Without L2, all None.
    pub fn fetch_many(&self, keys: &[&[u8]]) -> Result<Vec<Option<Value>>> {
        self.fetch_many_as(keys, true)
    }

    /// As [`Cache::fetch_many`], for a caller that copies the values out
    /// (a batch gather): they are promoted into L0 all the same, but handed
    /// out as the fetched bytes, which saves a lookup and a pin per key.
    pub fn fetch_many_copied(&self, keys: &[&[u8]]) -> Result<Vec<Option<Value>>> {
        self.fetch_many_as(keys, false)
    }

    /// Whether anything stands behind L0 (L1 or Redis), so that an L0
    /// miss is worth a [`Cache::fetch`].
    pub fn has_tiers(&self) -> bool {
        self.l1.is_some() || self.l2.is_some()
    }

    pub fn has_l1(&self) -> bool {
        self.l1.is_some()
    }

    fn fetch_many_as(&self, keys: &[&[u8]], views: bool) -> Result<Vec<Option<Value>>> {
        self.check_open()?;
        let mut out: Vec<Option<Value>> = keys.iter().map(|_| None).collect();
        // L1 first: this process's copies, each checked against L0's
        // change log.
        let missing: Vec<usize> = match &self.l1 {
            Some(l1) => (0..keys.len())
                .filter(|&i| match l1.get(keys[i], false) {
                    Some((v, ttl)) => {
                        out[i] = Some(self.promote_from_l1(l1, keys[i], v, ttl, views));
                        false
                    }
                    None => true,
                })
                .collect(),
            None => (0..keys.len()).collect(),
        };
        let Some(l2) = &self.l2 else {
            return Ok(out);
        };
        if missing.is_empty() {
            return Ok(out);
        }
        let _ = self.invalidation();
        let ask: Vec<&[u8]> = missing.iter().map(|&i| keys[i]).collect();
        let fetched = l2.get_many(&ask)?;
        for (&i, f) in missing.iter().zip(fetched) {
            out[i] = f.map(|f| self.promote(keys[i], f, views));
        }
        Ok(out)
    }

    /// An L1 hit goes back into L0 if L0's admission (its shared
    /// frequency sketch against the victim) takes it; L1's copy is then
    /// dropped by the change log. Handed out as a view when admitted.
    fn promote_from_l1(
        &self,
        l1: &LocalTier,
        key: &[u8],
        v: strata_tiers::L1Value,
        ttl: Option<Duration>,
        view: bool,
    ) -> Value {
        let mut opts = PutOptions::default();
        if let Some(ttl) = ttl {
            opts = opts.ttl(ttl);
        }
        if let Some(tag) = &v.tag {
            opts = opts.tag(tag.clone());
        }
        let h = self.seg.key_hash(key);
        let before = self.seg.change_position(h);
        let outcome = self.seg.put(key, &v.bytes, &opts);
        let stored = matches!(outcome, Ok(PutOutcome::Inserted | PutOutcome::Updated));
        if matches!(outcome, Ok(PutOutcome::Rejected)) {
            // The attempt logged the key, which would drop L1's copy: keep
            // it unless someone else changed the key meanwhile.
            let w = strata_tiers::L1Tier::weight_of(key, &v.bytes);
            l1.keep_refused(h, before, key, (v.clone(), w), ttl);
        }
        if stored {
            l1.promotions.fetch_add(1, Relaxed);
            if view {
                if let Ok(Some(got)) = self.seg.get_view(key) {
                    return Value::Shared(got);
                }
            }
        }
        let (bytes, tag) = crate::l1::owned(v);
        Value::Owned { bytes, tag }
    }

    /// After this process wrote `key` in L0: L1 reads the change log up
    /// to the write, so that its own writes do not lap it.
    fn synced(&self, key: &[u8]) {
        if let Some(l1) = &self.l1 {
            l1.after_write(key);
        }
    }

    /// A put into L0; what L0's admission refuses goes to L1, if there is
    /// one.
    fn l0_put(&self, key: &[u8], value: &[u8], opts: &PutOptions) -> Result<PutOutcome> {
        // Without L1 a put is a plain L0 put: no hash or log position.
        let Some(l1) = &self.l1 else {
            return Ok(self.seg.put(key, value, opts)?);
        };
        let h = self.seg.key_hash(key);
        let before = self.seg.change_position(h);
        let outcome = self.seg.put(key, value, opts)?;
        if outcome == PutOutcome::Rejected {
            let v = strata_tiers::L1Value::from_bytes(Arc::from(value), opts.tag.clone());
            let w = strata_tiers::L1Tier::weight_of(key, value);
            // Reads the log past this put itself.
            l1.keep_refused(h, before, key, (v, w), opts.ttl);
        } else {
            l1.sync(before.0);
        }
        Ok(outcome)
    }

    /// Stores a value fetched from L2 in L0 with the TTL L2 reported, and
    /// hands it out from L0 if it was admitted and `view` is asked for.
    fn promote(&self, key: &[u8], f: Fetched, view: bool) -> Value {
        let mut opts = PutOptions::default();
        if let Some(ttl) = f.ttl {
            opts = opts.ttl(ttl);
        }
        if let Some(tag) = &f.tag {
            opts = opts.tag(tag.clone());
        }
        let stored = matches!(
            self.l0_put(key, &f.value, &opts),
            Ok(PutOutcome::Inserted | PutOutcome::Updated)
        );
        if stored {
            self.promotions.fetch_add(1, Relaxed);
            if view {
                if let Ok(Some(v)) = self.seg.get_view(key) {
                    return Value::Shared(v);
                }
            }
        }
        Value::Owned {
            bytes: f.value,
            tag: f.tag,
        }
    }

    fn effective(&self, opts: &PutOptions) -> PutOptions {
        let mut o = opts.clone();
        if o.ttl.is_none() {
            o.ttl = self.default_ttl;
        }
        o
    }

    /// Stores `value` under `key` by the cache's write policy. With
    /// write-through, a Redis error is returned and L0 is left without the
    /// key (Redis may or may not have taken the write, so L0 must not
    /// answer for it).
    pub fn put(&self, key: &[u8], value: &[u8], opts: &PutOptions) -> Result<PutOutcome> {
        self.check_open()?;
        let opts = self.effective(opts);
        match (self.policy, &self.l2) {
            (WritePolicy::Through, Some(l2)) => {
                let put = Put {
                    key,
                    value,
                    tag: opts.tag.as_ref(),
                    ttl: opts.ttl,
                };
                // The write and the other machines' invalidation, in one
                // round trip.
                let sent = match (self.invalidation(), &self.redis) {
                    (Some(inv), Some(redis)) => {
                        let m = inv.message(OP_KEY, key);
                        let r = redis.put_and_publish(&[put], &inv.channel, &[m]);
                        if r.is_ok() {
                            inv.sent.fetch_add(1, Relaxed);
                        }
                        r
                    }
                    _ => l2.put(put),
                };
                if let Err(e) = sent {
                    self.seg.delete(key)?;
                    return Err(e.into());
                }
                self.l0_put(key, value, &opts)
            }
            (WritePolicy::Back, Some(_)) => {
                let outcome = self.l0_put(key, value, &opts)?;
                if let Some(wb) = &self.write_back {
                    wb.put(key, value, opts.tag.clone(), opts.ttl)?;
                }
                Ok(outcome)
            }
            _ => self.l0_put(key, value, &opts),
        }
    }

    /// Removes `key` everywhere: L0 and, unless the cache only reads
    /// Redis, Redis. True if L0 or Redis had it.
    pub fn delete(&self, key: &[u8]) -> Result<bool> {
        self.check_open()?;
        let local = self.seg.delete(key)?;
        self.synced(key);
        let remote = match (self.policy, &self.l2) {
            (WritePolicy::Through, Some(l2)) => {
                let existed = l2.delete_many(&[key])? > 0;
                if let Some(inv) = self.invalidation() {
                    inv.publish(OP_KEY, &[key])?;
                }
                existed
            }
            (WritePolicy::Back, Some(_)) => {
                if let Some(wb) = &self.write_back {
                    wb.delete(key)?;
                }
                false
            }
            _ => false,
        };
        Ok(local || remote)
    }

    /// Sets `key`'s time to live (None removes it), in L0 and, unless the
    /// cache only reads Redis, in Redis, where other machines then fetch
    /// it with its new expiry. True if L0 or Redis had the key.
    pub fn expire(&self, key: &[u8], ttl: Option<Duration>) -> Result<bool> {
        self.check_open()?;
        if let Some(t) = ttl {
            strata_shm::check_ttl(t)?;
        }
        let local = match ttl {
            Some(t) => self.seg.expire(key, t)?,
            None => self.seg.persist(key)?,
        };
        let remote = match (self.policy, &self.l2) {
            (WritePolicy::Through | WritePolicy::Back, Some(l2)) => {
                // Write-back: what is queued carries the TTL it was set
                // with; this changes what Redis holds now.
                let found = l2.expire_many(&[key], ttl)? > 0;
                if let Some(inv) = self.invalidation() {
                    inv.publish(OP_KEY, &[key])?;
                }
                found
            }
            _ => false,
        };
        Ok(local || remote)
    }

    /// Drops `key` from this machine's local tiers and, through Redis
    /// pub/sub, from every other machine's, leaving Redis itself alone: the
    /// next read anywhere fetches it again.
    pub fn invalidate(&self, key: &[u8]) -> Result<bool> {
        let here = self.seg.delete(key)?;
        self.synced(key);
        if let Some(inv) = self.invalidation() {
            inv.publish(OP_KEY, &[key])?;
        }
        Ok(here)
    }

    /// Whether this process runs the machine's invalidation subscriber now
    /// (one process per machine does, elected through a lease in L0).
    pub fn is_invalidation_subscriber(&self) -> bool {
        self.inval
            .as_ref()
            .is_some_and(|i| i.subscribed.load(Relaxed))
    }

    /// Waits until every write-back write queued so far is in Redis.
    pub fn flush(&self) -> Result<()> {
        self.flush_within(CLOSE_TIMEOUT)
    }

    pub fn flush_within(&self, timeout: Duration) -> Result<()> {
        match &self.write_back {
            Some(wb) => wb.flush(timeout),
            None => Ok(()),
        }
    }

    /// Drains write-back, then refuses further calls. L0 stays for the
    /// other processes.
    pub fn close(&self) -> Result<()> {
        if self.closed.swap(true, Relaxed) {
            return Ok(());
        }
        let drained = match &self.write_back {
            Some(wb) => wb.close(CLOSE_TIMEOUT),
            None => Ok(()),
        };
        if let Some(inv) = &self.inval {
            inv.shutdown();
        }
        drained
    }

    pub fn stats(&self) -> Result<CacheStats> {
        let (pending, lag, flushed, errors) = match &self.write_back {
            Some(wb) => (
                wb.pending() as u64,
                wb.lag().as_millis() as u64,
                wb.flushed.load(Relaxed),
                wb.errors.load(Relaxed),
            ),
            None => (0, 0, 0, 0),
        };
        Ok(CacheStats {
            l0: self.seg.stats()?,
            l0_latency: self.seg.read_latency(),
            l1: self.l1.as_ref().map(|t| t.stats()),
            l1_demotions: self.l1.as_ref().map_or(0, |t| t.demotions.load(Relaxed)),
            l1_promotions: self.l1.as_ref().map_or(0, |t| t.promotions.load(Relaxed)),
            l1_invalidated: self.l1.as_ref().map_or(0, |t| t.dropped.load(Relaxed)),
            l1_lapped: self.l1.as_ref().map_or(0, |t| t.lapped.load(Relaxed)),
            l1_objects: self.l1.as_ref().map_or(0, |t| t.objects.load(Relaxed)),
            l2: self.l2.as_ref().map(|t| t.stats()),
            promotions: self.promotions.load(Relaxed),
            write_back_pending: pending,
            write_back_lag_ms: lag,
            write_back_flushed: flushed,
            write_back_errors: errors,
            computes: self.counters.computes.load(Relaxed),
            coalesced_waits: self.counters.coalesced.load(Relaxed),
            early_refreshes: self.counters.early_refreshes.load(Relaxed),
            invalidations_sent: self.inval.as_ref().map_or(0, |i| i.sent.load(Relaxed)),
            invalidations_received: self.inval.as_ref().map_or(0, |i| i.received.load(Relaxed)),
            invalidation_gaps: self.inval.as_ref().map_or(0, |i| i.gaps.load(Relaxed)),
        })
    }
}

impl Drop for Cache {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

/// Drains every write-back queue of this process: for an exit hook.
/// Returns the writes still unsent after `timeout`.
pub fn flush_all(timeout: Duration) -> usize {
    crate::write_back::flush_all(timeout)
}
