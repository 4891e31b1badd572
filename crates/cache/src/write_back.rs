//! Write-back: writes land in L0 at once and reach Redis from a bounded
//! queue in this process, flushed by a background thread in pipelined
//! batches. Repeated writes to one key are coalesced (only the newest is
//! sent). A full queue makes writers wait, up to a bound, then fail: it
//! never drops a write silently. `flush()` and `close()` drain it.
//!
//! The queue is per process, not in L0: a value waiting for Redis is
//! already in L0 for every process to read, and what the queue adds is
//! only the order to send it, which a process can keep more cheaply than
//! shared memory can. What a `kill -9` loses is that process's unsent
//! queue (at most `max_pending` writes, or `max_delay` worth of them when
//! Redis keeps up); L0 still holds those values until they are evicted.

use crate::error::{Error, Result};
use crate::invalidation::Invalidation;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};
use strata_shm::TypeTag;
use strata_tiers::{Put, Tier};

/// How the write-back queue behaves.
#[derive(Clone, Debug)]
pub struct WriteBackConfig {
    /// Writes (distinct keys) the queue holds before writers wait.
    pub max_pending: usize,
    /// Writes sent in one pipelined batch.
    pub batch: usize,
    /// How long a write may wait for a batch to fill.
    pub max_delay: Duration,
    /// How long a writer waits for room in a full queue before failing.
    pub max_block: Duration,
}

impl Default for WriteBackConfig {
    fn default() -> Self {
        WriteBackConfig {
            max_pending: 100_000,
            batch: 512,
            max_delay: Duration::from_millis(2),
            max_block: Duration::from_secs(5),
        }
    }
}

enum Op {
    Put {
        value: Vec<u8>,
        tag: Option<TypeTag>,
        ttl: Option<Duration>,
    },
    Delete,
}

#[derive(Default)]
struct State {
    ops: HashMap<Vec<u8>, Op>,
    order: VecDeque<Vec<u8>>,
    in_flight: usize,
    closing: bool,
    flushing: bool,
    since: Option<Instant>,
    last_error: Option<String>,
}

pub(crate) struct WriteBack {
    cfg: WriteBackConfig,
    tier: Arc<dyn Tier>,
    /// Tells other machines of each batch's keys once it is in Redis.
    inval: Option<Arc<Invalidation>>,
    state: Mutex<State>,
    changed: Condvar,
    pub flushed: AtomicU64,
    pub errors: AtomicU64,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// Every live queue of this process, for `flush_all` at exit.
static QUEUES: Mutex<Vec<Weak<WriteBack>>> = Mutex::new(Vec::new());

/// Drains every write-back queue of this process (what an exit hook
/// calls). Returns the writes that could not be sent in `timeout`.
pub fn flush_all(timeout: Duration) -> usize {
    let queues: Vec<Arc<WriteBack>> = QUEUES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter_map(Weak::upgrade)
        .collect();
    queues
        .iter()
        .map(|q| match q.flush(timeout) {
            Ok(()) => 0,
            Err(Error::NotFlushed { pending, .. }) => pending,
            Err(_) => 0,
        })
        .sum()
}

impl WriteBack {
    pub fn start(
        tier: Arc<dyn Tier>,
        cfg: WriteBackConfig,
        inval: Option<Arc<Invalidation>>,
    ) -> Result<Arc<Self>> {
        if cfg.max_pending == 0 || cfg.batch == 0 {
            return Err(Error::InvalidConfig(
                "write-back max_pending and batch must be at least 1".into(),
            ));
        }
        let wb = Arc::new(WriteBack {
            cfg,
            tier,
            inval,
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            flushed: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            thread: Mutex::new(None),
        });
        let weak = Arc::downgrade(&wb);
        let handle = std::thread::Builder::new()
            .name("strata-write-back".into())
            .spawn(move || flusher(weak))
            .map_err(|e| {
                Error::InvalidConfig(format!("cannot start the write-back thread: {e}"))
            })?;
        *wb.thread.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle);
        QUEUES
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Arc::downgrade(&wb));
        Ok(wb)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn pending(&self) -> usize {
        let s = self.lock();
        s.ops.len() + s.in_flight
    }

    /// How long the oldest queued write has waited.
    pub fn lag(&self) -> Duration {
        self.lock().since.map(|t| t.elapsed()).unwrap_or_default()
    }

    pub fn put(
        &self,
        key: &[u8],
        value: &[u8],
        tag: Option<TypeTag>,
        ttl: Option<Duration>,
    ) -> Result<()> {
        self.enqueue(
            key,
            Op::Put {
                value: value.to_vec(),
                tag,
                ttl,
            },
        )
    }

    pub fn delete(&self, key: &[u8]) -> Result<()> {
        self.enqueue(key, Op::Delete)
    }

    fn enqueue(&self, key: &[u8], op: Op) -> Result<()> {
        let mut s = self.lock();
        if s.closing {
            return Err(Error::Closed);
        }
        if let Some(slot) = s.ops.get_mut(key) {
            *slot = op;
            return Ok(());
        }
        let deadline = Instant::now() + self.cfg.max_block;
        while s.ops.len() >= self.cfg.max_pending {
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::NotFlushed {
                    pending: s.ops.len(),
                    waited: self.cfg.max_block,
                    reason: format!(
                        "the write-back queue is full ({} writes){}",
                        self.cfg.max_pending,
                        s.last_error
                            .as_ref()
                            .map(|e| format!("; Redis: {e}"))
                            .unwrap_or_default()
                    ),
                });
            }
            s = self
                .changed
                .wait_timeout(s, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        s.ops.insert(key.to_vec(), op);
        s.order.push_back(key.to_vec());
        s.since.get_or_insert_with(Instant::now);
        self.changed.notify_all();
        Ok(())
    }

    /// Waits until everything queued so far has reached Redis.
    pub fn flush(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let mut s = self.lock();
        s.flushing = true;
        self.changed.notify_all();
        while !s.ops.is_empty() || s.in_flight > 0 {
            let now = Instant::now();
            if now >= deadline {
                s.flushing = false;
                return Err(Error::NotFlushed {
                    pending: s.ops.len() + s.in_flight,
                    waited: timeout,
                    reason: s
                        .last_error
                        .clone()
                        .unwrap_or_else(|| "Redis is slow".into()),
                });
            }
            s = self
                .changed
                .wait_timeout(s, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        s.flushing = false;
        Ok(())
    }

    /// Drains the queue, then stops the flusher.
    pub fn close(&self, timeout: Duration) -> Result<()> {
        let drained = self.flush(timeout);
        self.lock().closing = true;
        self.changed.notify_all();
        if drained.is_ok() {
            if let Some(h) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
                let _ = h.join();
            }
        }
        drained
    }

    /// Takes the next batch, waiting for one to fill or for `max_delay`.
    /// None once closing with nothing left.
    fn next_batch(&self) -> Option<Vec<(Vec<u8>, Op)>> {
        let mut s = self.lock();
        loop {
            if s.closing && s.ops.is_empty() {
                return None;
            }
            if s.ops.is_empty() {
                s = self.changed.wait(s).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            let waited = s.since.map(|t| t.elapsed()).unwrap_or_default();
            let full = s.ops.len() >= self.cfg.batch;
            if !(full || s.closing || s.flushing || waited >= self.cfg.max_delay) {
                let left = self.cfg.max_delay - waited;
                s = self
                    .changed
                    .wait_timeout(s, left)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
                continue;
            }
            let mut batch = Vec::with_capacity(self.cfg.batch.min(s.ops.len()));
            while batch.len() < self.cfg.batch {
                let Some(key) = s.order.pop_front() else {
                    break;
                };
                if let Some(op) = s.ops.remove(&key) {
                    batch.push((key, op));
                }
            }
            s.in_flight = batch.len();
            s.since = (!s.ops.is_empty()).then(Instant::now);
            return Some(batch);
        }
    }

    fn send(&self, batch: &[(Vec<u8>, Op)]) -> strata_tiers::Result<()> {
        let puts: Vec<Put<'_>> = batch
            .iter()
            .filter_map(|(key, op)| match op {
                Op::Put { value, tag, ttl } => Some(Put {
                    key,
                    value,
                    tag: tag.as_ref(),
                    ttl: *ttl,
                }),
                Op::Delete => None,
            })
            .collect();
        let deletes: Vec<&[u8]> = batch
            .iter()
            .filter(|(_, op)| matches!(op, Op::Delete))
            .map(|(k, _)| k.as_slice())
            .collect();
        // Deletes first: once other machines hear of a key, Redis must not
        // hold its old value for them to fetch again.
        self.tier.delete_many(&deletes)?;
        match &self.inval {
            Some(inv) => {
                // The batch and one message naming its keys, in one round
                // trip per node.
                let keys: Vec<&[u8]> = batch.iter().map(|(k, _)| k.as_slice()).collect();
                inv.put_and_publish_keys(&puts, &keys)
            }
            None => self.tier.put_many(&puts),
        }
    }

    /// Puts a failed batch back, ahead of what came since, except keys
    /// written again meanwhile (their newer write wins).
    fn requeue(&self, batch: Vec<(Vec<u8>, Op)>, error: String) {
        let mut s = self.lock();
        for (key, op) in batch.into_iter().rev() {
            if !s.ops.contains_key(&key) {
                s.order.push_front(key.clone());
                s.ops.insert(key, op);
            }
        }
        s.in_flight = 0;
        s.since.get_or_insert_with(Instant::now);
        s.last_error = Some(error);
        self.changed.notify_all();
    }
}

fn flusher(me: Weak<WriteBack>) {
    loop {
        let Some(wb) = me.upgrade() else { return };
        let Some(batch) = wb.next_batch() else { return };
        match wb.send(&batch) {
            Ok(()) => {
                wb.flushed.fetch_add(batch.len() as u64, Relaxed);
                let mut s = wb.lock();
                s.in_flight = 0;
                s.last_error = None;
                wb.changed.notify_all();
            }
            Err(e) => {
                wb.errors.fetch_add(1, Relaxed);
                wb.requeue(batch, e.to_string());
                drop(wb);
                // Redis is down or slow: retry without spinning (the
                // breaker makes the retries cheap).
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}
