//! `get_or_compute`: cache-aside with stampede protection.
//!
//! - **Inside a process**, concurrent misses on one key share one flight:
//!   the first caller computes, the others wait for its result (or its
//!   error).
//! - **Across processes**, the computing caller holds a lease in L0, the
//!   key `\0lease:` + key, taken with put-if-absent. Its value names the
//!   owner (a reader-slot token, whose kernel byte lock says whether the
//!   owner lives). Other processes poll with backoff until the value
//!   appears, the lease is released, or its owner is found dead; a dead
//!   owner's lease is taken over under the shard lock. A lease also
//!   expires on its own (`lease_ttl`), so no wait is unbounded.
//! - **Early refresh** (XFetch, Vattani et al., VLDB 2015): an entry
//!   remembers how long computing it took (`\0xf:` + key, delta in ms).
//!   A read at time t recomputes early when
//!   `t - delta * beta * ln(U) >= expiry` for U uniform in (0, 1], so a
//!   popular key is refreshed by one reader shortly before it expires,
//!   and nobody waits for it. `beta = 0` turns it off.

use crate::cache::Cache;
use crate::error::{Error, Result};
use crate::value::Value;
use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use strata_shm::{PutIf, PutOptions, TypeTag};

/// How `get_or_compute` behaves.
#[derive(Clone, Debug)]
pub struct ComputeOptions {
    /// The computed value's TTL (else the cache's default TTL).
    pub ttl: Option<Duration>,
    /// XFetch's beta: 1.0 is the paper's default; larger refreshes
    /// earlier; 0 never refreshes early.
    pub beta: f64,
    /// How long a lease lasts if its holder neither finishes nor dies.
    pub lease_ttl: Duration,
}

impl Default for ComputeOptions {
    fn default() -> Self {
        ComputeOptions {
            ttl: None,
            beta: 1.0,
            lease_ttl: Duration::from_secs(30),
        }
    }
}

/// What a computation produced: the bytes and, for an array, its type tag.
pub type Computed = (Vec<u8>, Option<TypeTag>);

/// A lease in L0 on one key's computation: the would-be owner's token, the
/// lease's key, and its TTL.
struct Lease {
    token: u64,
    key: Vec<u8>,
    opts: PutOptions,
}

/// The outcome of one in-process flight, shared with its waiters.
type Outcome = std::result::Result<Arc<Computed>, String>;

#[derive(Default)]
pub(crate) struct Flight {
    done: Mutex<Option<Outcome>>,
    ready: Condvar,
}

/// The flights under way in this process, by key.
#[derive(Default)]
pub(crate) struct Flights(Mutex<HashMap<Vec<u8>, Arc<Flight>>>);

const RUNNING: u8 = 0;
const FAILED: u8 = 1;

fn lease_key(key: &[u8]) -> Vec<u8> {
    [b"\0lease:".as_slice(), key].concat()
}

fn delta_key(key: &[u8]) -> Vec<u8> {
    [b"\0xf:".as_slice(), key].concat()
}

/// A lease's value: the owner's token, its state, and for a failed
/// computation the error's message.
fn lease_value(token: u64, state: u8, message: &str) -> Vec<u8> {
    let mut v = token.to_le_bytes().to_vec();
    v.push(state);
    v.extend_from_slice(message.as_bytes());
    v
}

fn parse_lease(v: &[u8]) -> Option<(u64, u8, String)> {
    let token = u64::from_le_bytes(v.get(..8)?.try_into().ok()?);
    Some((
        token,
        *v.get(8)?,
        String::from_utf8_lossy(&v[9..]).into_owned(),
    ))
}

thread_local! {
    static RNG: Cell<u64> = Cell::new({
        // Seeded from std's per-thread random hasher keys.
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(std::process::id() as u64);
        h.finish() | 1
    });
}

/// A uniform number in (0, 1].
fn uniform() -> f64 {
    RNG.with(|r| {
        let mut x = r.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        r.set(x);
        ((x >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    })
}

/// XFetch's test: whether a read at `now_ms` of an entry expiring at
/// `expiry_ms`, whose computation took `delta_ms`, refreshes it early.
pub fn refresh_early(now_ms: u64, expiry_ms: u64, delta_ms: u64, beta: f64) -> bool {
    if beta <= 0.0 || delta_ms == 0 {
        return false;
    }
    let ahead = delta_ms as f64 * beta * -uniform().ln();
    now_ms as f64 + ahead >= expiry_ms as f64
}

impl Cache {
    /// The value of `key`; on a miss in every tier, `compute()` runs once
    /// (in this process and across the machine's processes), its result is
    /// stored with `opts.ttl` and returned. An error from `compute` reaches
    /// every caller waiting for that computation, and nothing is cached.
    pub fn get_or_compute<F>(&self, key: &[u8], opts: &ComputeOptions, compute: F) -> Result<Value>
    where
        F: FnOnce() -> std::result::Result<Computed, String>,
    {
        let seg = self.segment();
        if let Some(v) = seg.get_view(key)? {
            if self.wants_refresh(key, &v, opts)? {
                if let Some(fresh) = self.refresh(key, opts, compute)? {
                    return Ok(fresh);
                }
            }
            return Ok(Value::Shared(v));
        }
        if let Some(v) = self.fetch(key)? {
            return Ok(v);
        }
        self.single_flight(key, opts, compute)
    }

    /// Whether this read should refresh `key` early (XFetch).
    fn wants_refresh(
        &self,
        key: &[u8],
        v: &strata_shm::View,
        opts: &ComputeOptions,
    ) -> Result<bool> {
        let Some(expiry) = v.expires_at_ms() else {
            return Ok(false);
        };
        if opts.beta <= 0.0 {
            return Ok(false);
        }
        let delta = match self.segment().peek(&delta_key(key))? {
            Some(d) => d
                .get(..8)
                .map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default())),
            None => None,
        };
        Ok(delta.is_some_and(|d| refresh_early(self.segment().now_ms(), expiry, d, opts.beta)))
    }

    /// An early refresh: only the reader that takes the lease recomputes;
    /// everyone else keeps reading the current value. None if another
    /// process is refreshing it already.
    fn refresh<F>(&self, key: &[u8], opts: &ComputeOptions, compute: F) -> Result<Option<Value>>
    where
        F: FnOnce() -> std::result::Result<Computed, String>,
    {
        let lease = self.lease_for(key, opts)?;
        if !self.take_lease(&lease, false)? {
            return Ok(None);
        }
        self.counters.early_refreshes.fetch_add(1, Relaxed);
        self.run_with_lease(key, &lease.key, lease.token, opts, compute)
            .map(Some)
    }

    /// A miss: one flight per key in this process, one lease per key on
    /// the machine.
    fn single_flight<F>(&self, key: &[u8], opts: &ComputeOptions, compute: F) -> Result<Value>
    where
        F: FnOnce() -> std::result::Result<Computed, String>,
    {
        let (flight, leader) = {
            let mut map = self.flights.0.lock().unwrap_or_else(|e| e.into_inner());
            match map.get(key) {
                Some(f) => (f.clone(), false),
                None => {
                    let f = Arc::new(Flight::default());
                    map.insert(key.to_vec(), f.clone());
                    (f, true)
                }
            }
        };
        if !leader {
            self.counters.coalesced.fetch_add(1, Relaxed);
            let mut done = flight.done.lock().unwrap_or_else(|e| e.into_inner());
            while done.is_none() {
                done = flight.ready.wait(done).unwrap_or_else(|e| e.into_inner());
            }
            return match done.as_ref() {
                Some(Ok(c)) => Ok(self.hand_out(key, c)),
                Some(Err(m)) => Err(Error::ComputeFailed(m.clone())),
                None => Err(Error::ComputeFailed("the computation was abandoned".into())),
            };
        }
        let result = self.lead(key, opts, compute);
        let outcome: Outcome = match &result {
            Ok((_, c)) => Ok(c.clone()),
            Err(Error::ComputeFailed(m)) => Err(m.clone()),
            Err(e) => Err(e.to_string()),
        };
        *flight.done.lock().unwrap_or_else(|e| e.into_inner()) = Some(outcome);
        flight.ready.notify_all();
        self.flights
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
        result.map(|(v, _)| v)
    }

    /// A value for the flight's waiters: L0's copy if it is there, else
    /// the computed bytes.
    fn hand_out(&self, key: &[u8], c: &Computed) -> Value {
        match self.segment().get_view(key) {
            Ok(Some(v)) => Value::Shared(v),
            _ => Value::Owned {
                bytes: c.0.clone(),
                tag: c.1.clone(),
            },
        }
    }

    /// The leader of a flight: takes the machine-wide lease, or waits for
    /// whoever holds it.
    fn lead<F>(
        &self,
        key: &[u8],
        opts: &ComputeOptions,
        compute: F,
    ) -> Result<(Value, Arc<Computed>)>
    where
        F: FnOnce() -> std::result::Result<Computed, String>,
    {
        let seg = self.segment();
        let lease = self.lease_for(key, opts)?;
        let deadline = Instant::now() + opts.lease_ttl + Duration::from_secs(1);
        let mut pause = Duration::from_micros(200);
        let mut waited = false;
        loop {
            let took = self.take_lease(&lease, true)?;
            if took || Instant::now() >= deadline {
                // Someone may have finished between our miss and the lease.
                if let Some(v) = seg.get_view(key)? {
                    if took {
                        seg.delete(&lease.key)?;
                    }
                    let c = Arc::new((v.to_vec(), v.type_tag()));
                    return Ok((Value::Shared(v), c));
                }
                let v = self.run_with_lease(key, &lease.key, lease.token, opts, compute)?;
                let c = Arc::new(match &v {
                    Value::Shared(view) => (view.to_vec(), view.type_tag()),
                    Value::Owned { bytes, tag } => (bytes.clone(), tag.clone()),
                });
                return Ok((v, c));
            }
            if !waited {
                waited = true;
                self.counters.coalesced.fetch_add(1, Relaxed);
            }
            // Another process computes: wait for its value, its failure,
            // or its death.
            if let Some(v) = seg.get_view(key)? {
                let c = Arc::new((v.to_vec(), v.type_tag()));
                return Ok((Value::Shared(v), c));
            }
            if let Some(g) = seg.peek(&lease.key)? {
                if let Some((_, FAILED, message)) = parse_lease(&g) {
                    return Err(Error::ComputeFailed(message));
                }
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }

    /// The calling thread's lease on `key`'s computation.
    fn lease_for(&self, key: &[u8], opts: &ComputeOptions) -> Result<Lease> {
        Ok(Lease {
            token: self.segment().owner_token()?,
            key: lease_key(key),
            opts: PutOptions::default().ttl(opts.lease_ttl),
        })
    }

    /// Takes the lease if it is free, or with `take_dead` if its owner is
    /// dead. True if the calling thread holds it now.
    fn take_lease(&self, lease: &Lease, take_dead: bool) -> Result<bool> {
        let mine = lease_value(lease.token, RUNNING, "");
        let seg = self.segment();
        Ok(seg
            .put_if(&lease.key, &mine, &lease.opts, PutIf::Absent)?
            .is_some()
            || (take_dead && self.take_over_dead(&lease.key, &mine, &lease.opts)?))
    }

    /// Takes over a lease whose owner is dead (under the shard lock, so
    /// two takers cannot both win).
    fn take_over_dead(&self, lease: &[u8], mine: &[u8], lo: &PutOptions) -> Result<bool> {
        let seg = self.segment();
        let Some(held) = seg.peek(lease)?.map(|g| g.to_vec()) else {
            return Ok(false);
        };
        let Some((owner, state, _)) = parse_lease(&held) else {
            return Ok(false);
        };
        if state != RUNNING || seg.is_owner_alive(owner)? {
            return Ok(false);
        }
        let took = seg.update(lease, lo, |cur| {
            (cur == Some(&held[..])).then(|| mine.to_vec())
        })?;
        Ok(took.is_some())
    }

    /// Computes under a held lease, stores the value and the time it took,
    /// and releases the lease (or marks it failed, for the waiters).
    fn run_with_lease<F>(
        &self,
        key: &[u8],
        lease: &[u8],
        token: u64,
        opts: &ComputeOptions,
        compute: F,
    ) -> Result<Value>
    where
        F: FnOnce() -> std::result::Result<Computed, String>,
    {
        let seg = self.segment();
        let started = seg.now_ms();
        self.counters.computes.fetch_add(1, Relaxed);
        let computed = compute();
        let delta = seg.now_ms().saturating_sub(started).max(1);
        let (bytes, tag) = match computed {
            Ok(c) => c,
            Err(message) => {
                // Waiting processes see the failure for a moment; later
                // callers try again.
                let failed = lease_value(token, FAILED, &message);
                let _ = seg.put(
                    lease,
                    &failed,
                    &PutOptions::default().ttl(Duration::from_secs(2)),
                );
                return Err(Error::ComputeFailed(message));
            }
        };
        let mut po = PutOptions::default();
        if let Some(ttl) = opts.ttl {
            po = po.ttl(ttl);
        }
        if let Some(t) = &tag {
            po = po.tag(t.clone());
        }
        let stored = self.put(key, &bytes, &po);
        let release = seg.delete(lease);
        stored?;
        release?;
        // How long computing took, for XFetch; it lives as long as the value.
        let mut dpo = PutOptions::default();
        if let Some(ttl) = po.ttl.or(self.default_ttl()) {
            dpo = dpo.ttl(ttl);
        }
        let _ = seg.put(&delta_key(key), &delta.to_le_bytes(), &dpo);
        Ok(match seg.get_view(key)? {
            Some(v) => Value::Shared(v),
            None => Value::Owned { bytes, tag },
        })
    }
}
