/// What can go wrong in the tiered cache, by kind a caller can match on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// L0, the shared-memory segment (full, bad input, corrupt, ...).
    #[error(transparent)]
    Segment(#[from] strata_shm::Error),

    /// A tier behind L0 (Redis) failed, timed out, or is cut off by its
    /// circuit breaker. L0 keeps serving what it holds.
    #[error(transparent)]
    Upstream(#[from] strata_tiers::Error),

    /// A bad option or argument.
    #[error("invalid option: {0}")]
    InvalidConfig(String),

    /// Write-back could not hand its queue to Redis in time (`flush`,
    /// `close`): the writes stay queued and are retried.
    #[error("{pending} writes are still queued for Redis after {waited:?}: {reason}")]
    NotFlushed {
        pending: usize,
        waited: std::time::Duration,
        reason: String,
    },

    /// The computation of `get_or_compute` failed (here, or in the
    /// process that held the lease); nothing was cached.
    #[error("computing the value failed: {0}")]
    ComputeFailed(String),

    /// The cache was closed.
    #[error("the cache is closed")]
    Closed,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
