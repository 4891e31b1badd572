//! The byte-valued L1 behind the [`Tier`] trait, as the tiered cache
//! holds it: values shared by `Arc`, so a hit copies only for callers
//! that want their own bytes.

use crate::error::{Error, Result};
use crate::l1::{L1Config, L1Stats, ENTRY_OVERHEAD, L1};
use crate::stats::TierStatsSnapshot;
use crate::{Fetched, Put, Tier};
use std::any::Any;
use std::sync::Arc;
use std::time::Duration;
use strata_shm::TypeTag;

const TIER: &str = "l1";

/// A value in L1: its bytes and type tag, or a decoded object that the
/// process keeps in place of the bytes (say, a Python object behind
/// `@strata.cached`, kept unpickled). Readers of bytes take an object
/// entry for a miss; readers of objects take a byte entry for one.
#[derive(Clone)]
pub struct L1Value {
    pub bytes: Arc<[u8]>,
    pub tag: Option<TypeTag>,
    pub object: Option<Arc<dyn Any + Send + Sync>>,
}

impl L1Value {
    /// A byte value.
    pub fn from_bytes(bytes: Arc<[u8]>, tag: Option<TypeTag>) -> Self {
        L1Value {
            bytes,
            tag,
            object: None,
        }
    }

    /// A decoded object, with no bytes.
    pub fn from_object(object: Arc<dyn Any + Send + Sync>) -> Self {
        L1Value {
            bytes: Arc::from(&[][..]),
            tag: None,
            object: Some(object),
        }
    }

    pub fn is_object(&self) -> bool {
        self.object.is_some()
    }
}

impl std::fmt::Debug for L1Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("L1Value")
            .field("bytes", &self.bytes.len())
            .field("tag", &self.tag)
            .field("object", &self.object.is_some())
            .finish()
    }
}

pub struct L1Tier {
    cache: L1<L1Value>,
}

impl L1Tier {
    pub fn new(cfg: &L1Config) -> Result<Self> {
        if cfg.capacity == 0 {
            return Err(Error::InvalidConfig {
                tier: TIER,
                reason: "capacity must be more than 0 bytes".into(),
            });
        }
        Ok(L1Tier {
            cache: L1::new(cfg),
        })
    }

    /// The weight an entry is charged: its bytes and the bookkeeping.
    pub fn weight_of(key: &[u8], value: &[u8]) -> usize {
        key.len() + value.len() + ENTRY_OVERHEAD
    }

    /// The shared value, without copying it.
    pub fn get_shared(&self, key: &[u8]) -> Option<(L1Value, Option<Duration>)> {
        self.cache.get_with_ttl(key)
    }

    /// Stores a value; whether the policy admitted it.
    pub fn insert(&self, key: &[u8], value: L1Value, ttl: Option<Duration>) -> bool {
        let w = Self::weight_of(key, &value.bytes);
        self.cache.insert(key, value, w, ttl)
    }

    pub fn remove(&self, key: &[u8]) -> bool {
        self.cache.remove(key)
    }

    pub fn clear(&self) {
        self.cache.clear()
    }

    pub fn l1_stats(&self) -> L1Stats {
        self.cache.stats()
    }

    pub fn inner(&self) -> &L1<L1Value> {
        &self.cache
    }
}

impl Tier for L1Tier {
    fn name(&self) -> &str {
        TIER
    }

    fn get_many(&self, keys: &[&[u8]]) -> Result<Vec<Option<Fetched>>> {
        Ok(keys
            .iter()
            .map(|k| {
                self.cache
                    .get_with_ttl(k)
                    .filter(|(v, _)| !v.is_object())
                    .map(|(v, ttl)| Fetched {
                        value: v.bytes.to_vec(),
                        tag: v.tag,
                        ttl,
                    })
            })
            .collect())
    }

    fn put_many(&self, items: &[Put<'_>]) -> Result<()> {
        for p in items {
            let v = L1Value::from_bytes(Arc::from(p.value), p.tag.cloned());
            self.insert(p.key, v, p.ttl);
        }
        Ok(())
    }

    fn delete_many(&self, keys: &[&[u8]]) -> Result<u64> {
        Ok(keys.iter().filter(|k| self.cache.remove(k)).count() as u64)
    }

    fn expire_many(&self, keys: &[&[u8]], ttl: Option<Duration>) -> Result<u64> {
        Ok(keys.iter().filter(|k| self.cache.set_ttl(k, ttl)).count() as u64)
    }

    fn incr(&self, _key: &[u8]) -> Result<i64> {
        // Counters that every machine agrees on cannot live in one
        // process's memory.
        Err(Error::Unsupported {
            tier: TIER,
            operation: "INCR",
        })
    }

    fn stats(&self) -> TierStatsSnapshot {
        let s = self.cache.stats();
        TierStatsSnapshot {
            hits: s.hits,
            misses: s.misses,
            errors: 0,
            requests: s.hits + s.misses,
            latency_p50_us: 0,
            latency_p99_us: 0,
            breaker: "closed",
        }
    }
}
