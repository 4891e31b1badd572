use std::time::Duration;

/// What can go wrong in a tier, by kind a caller can match on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration was refused before anything was sent (a malformed
    /// URL, an unknown option).
    #[error("invalid {tier} configuration: {reason}")]
    InvalidConfig { tier: &'static str, reason: String },

    /// The server answered with an error, or the connection failed.
    #[error("{tier} failed: {reason}")]
    Upstream { tier: &'static str, reason: String },

    /// No answer within the request timeout.
    #[error("{tier} did not answer within {after:?}")]
    Timeout { tier: &'static str, after: Duration },

    /// Recent requests failed, so this one was not sent: the circuit
    /// breaker lets a probe through after a cool-down.
    #[error("{tier} is failing ({reason}); not retried for {retry_in:?}")]
    CircuitOpen {
        tier: &'static str,
        reason: String,
        retry_in: Duration,
    },

    /// The tier cannot do this at all (L1 keeps no shared counters).
    #[error("{tier} does not support {operation}")]
    Unsupported {
        tier: &'static str,
        operation: &'static str,
    },

    /// A value larger than the tier stores (Redis: 512 MB).
    #[error("a value of {len} bytes is larger than {tier} stores (at most {max})")]
    ValueTooLarge {
        tier: &'static str,
        len: usize,
        max: usize,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
