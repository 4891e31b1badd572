//! The time source for TTLs: the coarse wall clock (read through the vDSO,
//! so the read path makes no system call), or a manual clock for tests.

use crate::mem::sys;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Milliseconds since the Unix epoch, from the system or from a test.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    manual: Option<Arc<AtomicU64>>,
}

impl Clock {
    pub fn system() -> Clock {
        Clock { manual: None }
    }

    /// A clock that stands still until moved with [`Clock::advance`].
    /// Every process sharing a segment should use the same kind of clock;
    /// a manual one is for single-process tests.
    pub fn manual(start_ms: u64) -> Clock {
        Clock {
            manual: Some(Arc::new(AtomicU64::new(start_ms))),
        }
    }

    #[inline(always)]
    pub fn now_ms(&self) -> u64 {
        match &self.manual {
            None => sys::coarse_now_ms(),
            Some(t) => t.load(Ordering::Relaxed),
        }
    }

    /// Moves a manual clock forward; no effect on the system clock.
    pub fn advance(&self, ms: u64) {
        if let Some(t) = &self.manual {
            t.fetch_add(ms, Ordering::Relaxed);
        }
    }
}
