//! Named crash points for the chaos tests. With the `failpoints` feature, a
//! process whose `STRATA_FAILPOINT` names a point kills itself with SIGKILL
//! when it reaches it (after `STRATA_FAILPOINT_SKIP` passes, default 0).
//! Without the feature they compile to nothing.

#[cfg(feature = "failpoints")]
pub fn hit(name: &str) {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    static CONF: OnceLock<Option<(String, u64)>> = OnceLock::new();
    static PASSES: AtomicU64 = AtomicU64::new(0);
    let conf = CONF.get_or_init(|| {
        let point = std::env::var("STRATA_FAILPOINT").ok()?;
        let skip = std::env::var("STRATA_FAILPOINT_SKIP")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        Some((point, skip))
    });
    if let Some((point, skip)) = conf {
        if point == name && PASSES.fetch_add(1, Ordering::Relaxed) >= *skip {
            crate::mem::sys::kill_self();
        }
    }
}

#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn hit(_name: &str) {}
