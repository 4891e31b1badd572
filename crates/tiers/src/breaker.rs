//! The circuit breaker in front of a remote tier: after `threshold`
//! failures in a row, requests fail at once for `cool_down`; then one
//! probe goes through, and its success closes the circuit again. So a
//! dead or hung Redis costs a request the breaker's check, not a timeout.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Where the breaker stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    /// Requests go through.
    Closed,
    /// Requests fail fast until the cool-down ends.
    Open,
    /// One probe is out; the others fail fast until it answers.
    HalfOpen,
}

#[derive(Debug)]
struct Inner {
    failures: u32,
    opened_at: Option<Instant>,
    probing: bool,
    last_error: String,
}

#[derive(Debug)]
pub(crate) struct Breaker {
    threshold: u32,
    cool_down: Duration,
    inner: Mutex<Inner>,
}

/// Why a request may not go out: the last error and the time left.
pub(crate) struct Refused {
    pub reason: String,
    pub retry_in: Duration,
}

impl Breaker {
    pub fn new(threshold: u32, cool_down: Duration) -> Self {
        Breaker {
            threshold: threshold.max(1),
            cool_down,
            inner: Mutex::new(Inner {
                failures: 0,
                opened_at: None,
                probing: false,
                last_error: String::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a request may go out now.
    pub fn admit(&self) -> Result<(), Refused> {
        let mut s = self.lock();
        let Some(at) = s.opened_at else {
            return Ok(());
        };
        let waited = at.elapsed();
        if waited >= self.cool_down && !s.probing {
            s.probing = true;
            return Ok(());
        }
        Err(Refused {
            reason: s.last_error.clone(),
            retry_in: self.cool_down.saturating_sub(waited),
        })
    }

    pub fn success(&self) {
        let mut s = self.lock();
        s.failures = 0;
        s.opened_at = None;
        s.probing = false;
    }

    pub fn failure(&self, error: &str) {
        let mut s = self.lock();
        s.failures = s.failures.saturating_add(1);
        s.last_error = error.to_string();
        if s.probing || s.failures >= self.threshold {
            s.opened_at = Some(Instant::now());
        }
        s.probing = false;
    }

    pub fn state(&self) -> BreakerState {
        let s = self.lock();
        match (s.opened_at, s.probing) {
            (None, _) => BreakerState::Closed,
            (Some(_), true) => BreakerState::HalfOpen,
            (Some(at), false) if at.elapsed() >= self.cool_down => BreakerState::HalfOpen,
            (Some(_), false) => BreakerState::Open,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_the_threshold_and_probes_after_the_cool_down() {
        let b = Breaker::new(3, Duration::from_millis(30));
        for _ in 0..2 {
            assert!(b.admit().is_ok());
            b.failure("down");
        }
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.admit().is_ok());
        b.failure("down");
        assert_eq!(b.state(), BreakerState::Open);
        let refused = b.admit().err().unwrap();
        assert_eq!(refused.reason, "down");
        std::thread::sleep(Duration::from_millis(40));
        assert!(b.admit().is_ok(), "one probe");
        assert!(b.admit().is_err(), "only one");
        b.failure("still down");
        assert_eq!(b.state(), BreakerState::Open);
        std::thread::sleep(Duration::from_millis(40));
        assert!(b.admit().is_ok());
        b.success();
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.admit().is_ok());
    }
}
