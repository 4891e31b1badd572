//! The tiers of strata that sit behind L0, the shared-memory segment:
//! L1 (in-process, [`L1Tier`]) and L2 (Redis or Redis Cluster); L1.5
//! (SSD) next. The eviction policies are in [`policy`].
//! Each implements one small, synchronous [`Tier`] trait. L0 is not a
//! `Tier`: the tiered cache holds its segment directly, so that a hit
//! never goes through dynamic dispatch; it walks its tiers only after an
//! L0 miss.

mod breaker;
mod error;
mod l1;
mod l1_tier;
pub mod policy;
mod redis_tier;
mod stats;
mod tag_key;

pub use breaker::BreakerState;
pub use error::{Error, Result};
pub use l1::{L1Config, L1Stats, ENTRY_OVERHEAD, L1, L1_DEFAULT_POLICY};
pub use l1_tier::{L1Tier, L1Value};
pub use redis_tier::{RedisConfig, RedisTier, REDIS_MAX_VALUE};
pub use stats::{TierStats, TierStatsSnapshot};
pub use tag_key::tag_key;

use std::time::Duration;
use strata_shm::TypeTag;

/// A value found in a tier: its bytes, its type tag if it has one, and the
/// time it has left to live there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetched {
    pub value: Vec<u8>,
    pub tag: Option<TypeTag>,
    pub ttl: Option<Duration>,
}

/// One write to a tier.
#[derive(Clone, Copy, Debug)]
pub struct Put<'a> {
    pub key: &'a [u8],
    pub value: &'a [u8],
    pub tag: Option<&'a TypeTag>,
    pub ttl: Option<Duration>,
}

/// A cache tier behind L0. Calls block the calling thread; a tier that
/// talks to a server runs its I/O on a runtime of its own.
pub trait Tier: Send + Sync {
    /// A short name for messages and metrics ("redis", "l1", ...).
    fn name(&self) -> &str;

    /// Looks every key up, in as few round trips as the tier can: one
    /// answer per key, in order.
    fn get_many(&self, keys: &[&[u8]]) -> Result<Vec<Option<Fetched>>>;

    fn get(&self, key: &[u8]) -> Result<Option<Fetched>> {
        Ok(self.get_many(&[key])?.pop().flatten())
    }

    /// Stores every item, in as few round trips as the tier can.
    fn put_many(&self, items: &[Put<'_>]) -> Result<()>;

    fn put(&self, item: Put<'_>) -> Result<()> {
        self.put_many(&[item])
    }

    /// Removes the keys; returns how many existed.
    fn delete_many(&self, keys: &[&[u8]]) -> Result<u64>;

    /// Sets the keys' time to live (None: removes it, as PERSIST); returns
    /// how many of them exist.
    fn expire_many(&self, keys: &[&[u8]], ttl: Option<Duration>) -> Result<u64>;

    /// Adds 1 to the integer counter at `key` (0 if absent) and returns
    /// it: for versions that every machine must agree on.
    fn incr(&self, key: &[u8]) -> Result<i64>;

    /// Counters and latencies since the tier was made.
    fn stats(&self) -> TierStatsSnapshot;
}
