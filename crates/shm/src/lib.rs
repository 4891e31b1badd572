//! L0 of strata: one shared-memory segment that every process on a machine
//! maps and reads directly. A read is an epoch pin, a hash, a bucket's tag
//! line and the key's entry beside it, where the key is compared: no
//! system call, no lock, no copy.
//!
//! Writers serialise per shard. Values are immutable once sealed; an
//! update writes a new block and swaps one index word, and the old block
//! is freed only when no reader or view can still see it. A process killed
//! at any instant costs nothing lasting: its reader slots, pins and locks
//! are recovered by the kernel-held byte locks that mark them alive.
//!
//! `docs/design/l0-segment.md` specifies the layout byte by byte.
//!
//! ```no_run
//! use strata_shm::{Segment, SegmentOptions, PutOptions};
//! let seg = Segment::open_or_create("demo", &SegmentOptions::default().memory(64 << 20))?;
//! seg.put(b"user:1", b"embedding bytes", &PutOptions::default())?;
//! if let Some(v) = seg.get(b"user:1")? {
//!     assert_eq!(&*v, b"embedding bytes");
//! }
//! # Ok::<(), strata_shm::Error>(())
//! ```

mod alloc;
mod block;
mod changes;
mod check;
pub mod classes;
mod clock;
pub mod entry;
pub mod epoch;
mod error;
mod evict;
mod failpoint;
mod glob;
mod hash;
pub mod huge;
mod janitor;
mod keys;
mod latency;
pub mod layout;
pub mod liveness;
mod local;
pub mod lock;
mod maintain;
pub mod mem;
mod options;
pub mod pins;
mod pins_local;
pub mod policy;
mod queue;
mod read;
mod rebalance;
mod reclaim;
mod repair;
mod segment;
mod size;
pub mod sketch;
pub mod slots;
mod stats;
mod tag;
mod trace;
mod window;
mod write;

pub use block::MAX_KEY;
pub use check::CheckReport;
pub use clock::Clock;
pub use error::{Error, Result};
pub use glob::glob_match;
pub use janitor::PERIOD as JANITOR_PERIOD;
pub use keys::Keys;
pub use latency::LatencySnapshot;
pub use maintain::MaintainReport;
pub use trace::{sample_bucket, TraceRecord, SAMPLE_BUCKETS};

/// How many forks this process image descends through: a value that
/// changes in a forked child, for per-process state that must not cross a
/// fork (views, remembered lookups).
pub fn fork_generation() -> u64 {
    mem::sys::fork_generation()
}
pub use options::{
    check_ttl, default_dir, ttl_from_secs, EvictHook, EvictReason, Evicted, ProgressHook, PutIf,
    PutOptions, PutOutcome, SegmentOptions, MAX_TTL,
};
pub use policy::Policy;
pub use read::{Entry, Guard, View};
pub use segment::{segment_path, validate_name, Segment};
pub use size::{format_size, parse_size};
pub use stats::Stats;
pub use tag::{split_tag, TypeTag, MAX_NDIM};
