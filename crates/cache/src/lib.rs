//! strata's tiered cache: the shared-memory segment (L0) that every
//! process on a machine reads in place, in front of Redis or Redis Cluster
//! (L2), which holds the full keyspace for every machine.
//!
//! - A read tries L0; a miss reads Redis once and promotes what it found
//!   into L0 (admission permitting) with the TTL Redis reports. A batch
//!   sends one pipelined request per Redis node for all of its misses.
//! - A write follows the cache's [`WritePolicy`]: write-through (Redis,
//!   then L0), write-back (L0, then Redis in the background, in batches),
//!   or cache-only.
//! - Redis down or slow never takes L0 down: hits are served as before,
//!   misses fail fast with [`Error::Upstream`] once the circuit breaker has
//!   opened, and the connection comes back on its own.
//!
//! ```no_run
//! use strata::{Cache, WritePolicy};
//! let cache = Cache::builder("emb")
//!     .memory(256 << 20)
//!     .redis("redis://127.0.0.1:6379/0")
//!     .write_policy(WritePolicy::Through)
//!     .build()?;
//! cache.put(b"emb:42", b"bytes", &strata::PutOptions::default())?;
//! if let Some(v) = cache.get(b"emb:42")? {
//!     assert_eq!(v.bytes(), b"bytes");
//! }
//! # Ok::<(), strata::Error>(())
//! ```

mod builder;
mod cache;
mod compute;
mod error;
mod invalidation;
mod l1;
#[cfg(feature = "metrics")]
mod metrics;
mod namespace;
mod objects;
mod policy;
mod value;
mod warm;
mod write_back;

pub use builder::CacheBuilder;
pub use cache::{flush_all, Cache, CacheStats};
pub use compute::{refresh_early, ComputeOptions, Computed};
pub use error::{Error, Result};
pub use namespace::{Namespace, NS_VERSION_TTL};
pub use objects::ObjectTicket;
pub use policy::WritePolicy;
pub use strata_shm::{PutOptions, PutOutcome, Segment, SegmentOptions, TypeTag};
pub use strata_tiers::policy::PolicyKind;
pub use strata_tiers::{Error as UpstreamError, L1Config, L1Stats, RedisConfig, TierStatsSnapshot};
pub use value::Value;
pub use warm::{WarmProgress, WarmReport};
pub use write_back::WriteBackConfig;
