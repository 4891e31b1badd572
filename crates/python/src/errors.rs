//! The exception hierarchy, and the one mapping from segment errors to it.
//! Callers catch `StrataError` for anything the cache reports, or one of
//! its subclasses for a kind they can act on. Bad arguments raise the
//! built-in `ValueError` and `TypeError`, as Python code expects.

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyValueError};
use pyo3::prelude::*;
use strata_shm::Error;

create_exception!(
    strata,
    StrataError,
    PyException,
    "Base class of every error the cache reports."
);
create_exception!(
    strata,
    SegmentNotFoundError,
    StrataError,
    "The named cache does not exist and `create=False` was given."
);
create_exception!(
    strata,
    SegmentFullError,
    StrataError,
    "The cache is full and nothing in it can be evicted (pinned or in use)."
);
create_exception!(
    strata,
    ValueTooLargeError,
    StrataError,
    "The value is larger than the biggest block the cache can hold."
);
create_exception!(
    strata,
    KeyTooLargeError,
    StrataError,
    "The key is longer than the limit (8 KiB)."
);
create_exception!(
    strata,
    ShmTooSmallError,
    StrataError,
    "The shared-memory file system has less room than the cache needs; the message names the fix."
);
create_exception!(
    strata,
    IncompatibleSegmentError,
    StrataError,
    "The segment was made by an incompatible version of strata."
);
create_exception!(
    strata,
    CorruptSegmentError,
    StrataError,
    "The segment is corrupt, truncated or was never finished by its creator."
);

create_exception!(
    strata,
    UpstreamError,
    StrataError,
    "Redis (L2) failed, timed out, or is cut off by the circuit breaker after recent failures; what L0 holds is still served."
);
create_exception!(
    strata,
    ComputeError,
    StrataError,
    "get_or_compute's function failed in another thread or process that was computing the same key; nothing was cached."
);
create_exception!(
    strata,
    ForeignSegmentError,
    StrataError,
    "The segment file belongs to another user, or others may write it; pass trust_foreign=True only to share a cache between users on purpose."
);

/// Converts a segment error into the exception a caller can catch.
pub fn to_py(e: Error) -> PyErr {
    let msg = e.to_string();
    match e {
        Error::NotFound { .. } => SegmentNotFoundError::new_err(msg),
        Error::Full(_) => SegmentFullError::new_err(msg),
        Error::ValueTooLarge { .. } => ValueTooLargeError::new_err(msg),
        Error::KeyTooLarge { .. } => KeyTooLargeError::new_err(msg),
        Error::ShmTooSmall { .. } => ShmTooSmallError::new_err(msg),
        Error::Incompatible { .. } => IncompatibleSegmentError::new_err(msg),
        Error::Corrupt { .. } | Error::NotReady { .. } => CorruptSegmentError::new_err(msg),
        Error::Foreign { .. } => ForeignSegmentError::new_err(msg),
        Error::InvalidName { .. }
        | Error::InvalidSize { .. }
        | Error::InvalidConfig(_)
        | Error::TagTooLarge { .. } => PyValueError::new_err(msg),
        Error::AlreadyExists { .. } | Error::TooManyReaders(_) | Error::Io { .. } => {
            StrataError::new_err(msg)
        }
    }
}

/// Converts a tiered-cache error into the exception a caller can catch.
pub fn cache_to_py(e: strata::Error) -> PyErr {
    match e {
        strata::Error::Segment(e) => to_py(e),
        strata::Error::Upstream(strata::UpstreamError::ValueTooLarge { .. }) => {
            ValueTooLargeError::new_err(e.to_string())
        }
        strata::Error::Upstream(strata::UpstreamError::InvalidConfig { .. })
        | strata::Error::InvalidConfig(_) => PyValueError::new_err(e.to_string()),
        strata::Error::Upstream(_) | strata::Error::NotFlushed { .. } => {
            UpstreamError::new_err(e.to_string())
        }
        strata::Error::Closed => StrataError::new_err(e.to_string()),
        strata::Error::ComputeFailed(_) => ComputeError::new_err(e.to_string()),
    }
}

/// Adds the exception classes to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("StrataError", py.get_type::<StrataError>())?;
    m.add(
        "SegmentNotFoundError",
        py.get_type::<SegmentNotFoundError>(),
    )?;
    m.add("SegmentFullError", py.get_type::<SegmentFullError>())?;
    m.add("ValueTooLargeError", py.get_type::<ValueTooLargeError>())?;
    m.add("KeyTooLargeError", py.get_type::<KeyTooLargeError>())?;
    m.add("ShmTooSmallError", py.get_type::<ShmTooSmallError>())?;
    m.add(
        "IncompatibleSegmentError",
        py.get_type::<IncompatibleSegmentError>(),
    )?;
    m.add("CorruptSegmentError", py.get_type::<CorruptSegmentError>())?;
    m.add("ForeignSegmentError", py.get_type::<ForeignSegmentError>())?;
    m.add("UpstreamError", py.get_type::<UpstreamError>())?;
    m.add("ComputeError", py.get_type::<ComputeError>())?;
    Ok(())
}
