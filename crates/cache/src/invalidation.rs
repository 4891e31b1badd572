//! Invalidation across machines, through Redis pub/sub.
//!
//! Within a machine nothing is needed: L0 is shared, so a write or a
//! delete is seen by every process at once. Across machines, every write
//! through strata (set, delete, `invalidate`, a namespace bump) publishes a
//! message on the cache's channel (`strata:inval:<name>` unless set), in
//! the same round trip as the write when it is write-through. Each
//! machine has one subscriber: the thread of one process, elected through
//! a lease in L0 (`\0role:inval:` + channel, naming the owner's slot
//! token), and taken over by another process when its owner dies. It
//! drops the keys it is told of from L0; messages a machine sent itself
//! (its L0's instance id) are ignored.
//!
//! A subscriber that loses its connection reconnects; what was published
//! meanwhile is lost to it (counted as a gap). Entries' TTLs bound how
//! stale that leaves them; namespace versions are re-read from Redis
//! within `NS_VERSION_TTL` whatever happens.

use crate::error::Result;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use strata_shm::{PutIf, PutOptions, Segment};
use strata_tiers::RedisTier;

/// How often a process that is not the subscriber checks the lease.
const LEASE_CHECK: Duration = Duration::from_millis(250);

const FORMAT: u8 = 1;
pub(crate) const OP_KEY: u8 = b'K';
pub(crate) const OP_NAMESPACE: u8 = b'N';
/// Several keys in one message: each as a 4-byte little-endian length and
/// its bytes (write-back sends a batch's keys so).
pub(crate) const OP_KEYS: u8 = b'M';

pub(crate) struct Invalidation {
    pub channel: Vec<u8>,
    machine: u64,
    seg: Segment,
    redis: Arc<RedisTier>,
    stop: AtomicBool,
    /// 1 + the fork generation whose process runs the subscriber thread.
    started: AtomicU64,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    pub sent: AtomicU64,
    pub received: AtomicU64,
    pub gaps: AtomicU64,
    /// Whether this process's thread is the machine's subscriber now.
    pub subscribed: AtomicBool,
}

/// A message: format, sender's machine, operation, then the key (or the
/// namespace's name).
pub(crate) fn message(machine: u64, op: u8, payload: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(10 + payload.len());
    m.push(FORMAT);
    m.extend_from_slice(&machine.to_le_bytes());
    m.push(op);
    m.extend_from_slice(payload);
    m
}

fn parse(m: &[u8]) -> Option<(u64, u8, &[u8])> {
    if m.first() != Some(&FORMAT) {
        return None;
    }
    let machine = u64::from_le_bytes(m.get(1..9)?.try_into().ok()?);
    Some((machine, *m.get(9)?, &m[10..]))
}

impl Invalidation {
    pub fn new(seg: Segment, redis: Arc<RedisTier>, channel: Vec<u8>) -> Arc<Self> {
        Arc::new(Invalidation {
            channel,
            machine: seg.instance_id(),
            seg,
            redis,
            stop: AtomicBool::new(false),
            started: AtomicU64::new(0),
            thread: Mutex::new(None),
            sent: AtomicU64::new(0),
            received: AtomicU64::new(0),
            gaps: AtomicU64::new(0),
            subscribed: AtomicBool::new(false),
        })
    }

    pub fn message(&self, op: u8, payload: &[u8]) -> Vec<u8> {
        message(self.machine, op, payload)
    }

    /// One message naming all of `keys`.
    pub fn keys_message(&self, keys: &[&[u8]]) -> Vec<u8> {
        let mut payload = Vec::with_capacity(keys.iter().map(|k| k.len() + 4).sum());
        for k in keys {
            payload.extend_from_slice(&(k.len() as u32).to_le_bytes());
            payload.extend_from_slice(k);
        }
        self.message(OP_KEYS, &payload)
    }

    /// Stores `puts` and tells the other machines of `keys`, in one round
    /// trip per node.
    pub fn put_and_publish_keys(
        &self,
        puts: &[strata_tiers::Put<'_>],
        keys: &[&[u8]],
    ) -> strata_tiers::Result<()> {
        let msg = self.keys_message(keys);
        self.redis.put_and_publish(puts, &self.channel, &[msg])?;
        self.sent.fetch_add(1, Relaxed);
        Ok(())
    }

    /// Tells the other machines that these keys changed.
    pub fn publish(&self, op: u8, payloads: &[&[u8]]) -> Result<()> {
        let msgs: Vec<Vec<u8>> = payloads.iter().map(|p| self.message(op, p)).collect();
        self.redis.publish(&self.channel, &msgs)?;
        self.sent.fetch_add(msgs.len() as u64, Relaxed);
        Ok(())
    }

    /// Starts this process's candidate subscriber thread, unless it runs
    /// (a forked child starts its own).
    pub fn ensure_started(self: &Arc<Self>) {
        let want = strata_shm::fork_generation() + 1;
        let cur = self.started.load(Relaxed);
        if cur == want
            || self
                .started
                .compare_exchange(cur, want, Relaxed, Relaxed)
                .is_err()
        {
            return;
        }
        let me = Arc::downgrade(self);
        match std::thread::Builder::new()
            .name("strata-invalidation".into())
            .spawn(move || subscriber(me))
        {
            Ok(h) => *self.thread.lock().unwrap_or_else(|e| e.into_inner()) = Some(h),
            Err(_) => self.started.store(0, Relaxed),
        }
    }

    pub fn shutdown(&self) {
        self.stop.store(true, Relaxed);
        let handle = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(h) = handle {
            if self.started.load(Relaxed) == strata_shm::fork_generation() + 1 {
                let _ = h.join();
            }
        }
    }

    fn lease_key(&self) -> Vec<u8> {
        [b"\0role:inval:".as_slice(), &self.channel].concat()
    }

    /// Takes the subscriber's lease if it is free or its owner is dead.
    /// True if the calling thread holds it.
    fn hold_lease(&self) -> Result<bool> {
        let seg = &self.seg;
        let me = seg.owner_token()?.to_le_bytes();
        let key = self.lease_key();
        match seg.peek(&key)?.map(|g| g.to_vec()) {
            None => Ok(seg
                .put_if(&key, &me, &PutOptions::default(), PutIf::Absent)?
                .is_some()),
            Some(held) if held == me => Ok(true),
            Some(held) => {
                let owner = held
                    .get(..8)
                    .and_then(|b| <[u8; 8]>::try_from(b).ok())
                    .map(u64::from_le_bytes)
                    .unwrap_or(0);
                if seg.is_owner_alive(owner)? {
                    return Ok(false);
                }
                let took = seg.update(&key, &PutOptions::default(), |cur| {
                    (cur == Some(&held[..])).then(|| me.to_vec())
                })?;
                Ok(took.is_some())
            }
        }
    }

    fn release_lease(&self) {
        let key = self.lease_key();
        if let (Ok(me), Ok(Some(held))) = (self.seg.owner_token(), self.seg.peek(&key)) {
            if held[..] == me.to_le_bytes() {
                drop(held);
                let _ = self.seg.delete(&key);
            }
        }
    }

    fn apply(&self, m: &[u8]) {
        let Some((machine, op, payload)) = parse(m) else {
            return;
        };
        if machine == self.machine {
            return;
        }
        self.received.fetch_add(1, Relaxed);
        let _ = match op {
            OP_KEY => self.seg.delete(payload),
            OP_KEYS => {
                let mut rest = payload;
                while let Some(len) = rest.get(..4).and_then(|b| <[u8; 4]>::try_from(b).ok()) {
                    let len = u32::from_le_bytes(len) as usize;
                    let Some(key) = rest.get(4..4 + len) else {
                        break;
                    };
                    let _ = self.seg.delete(key);
                    rest = &rest[4 + len..];
                }
                Ok(true)
            }
            OP_NAMESPACE => self.seg.delete(&crate::namespace::local_key_of(payload)),
            _ => Ok(false),
        };
    }
}

fn subscriber(me: std::sync::Weak<Invalidation>) {
    loop {
        let Some(inv) = me.upgrade() else { return };
        if inv.stop.load(Relaxed) {
            inv.release_lease();
            return;
        }
        if !inv.hold_lease().unwrap_or(false) {
            drop(inv);
            std::thread::sleep(LEASE_CHECK);
            continue;
        }
        let redis = inv.redis.clone();
        let channel = inv.channel.clone();
        let handler = inv.clone();
        let result = redis.subscribe(&channel, &inv.stop, &inv.subscribed, &mut |m| {
            handler.apply(m)
        });
        inv.subscribed.store(false, Relaxed);
        match result {
            Ok(()) => {
                inv.release_lease();
                return;
            }
            Err(_) => {
                inv.gaps.fetch_add(1, Relaxed);
                drop(inv);
                std::thread::sleep(LEASE_CHECK);
            }
        }
    }
}
