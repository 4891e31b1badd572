//! How to create or attach a segment, and how to write to it.

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::policy::{Admission, Policy, TinyLfu};
use crate::tag::TypeTag;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Why an entry left the segment without being deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EvictReason {
    /// Pushed out to make room.
    Capacity,
    /// Its TTL passed.
    Expired,
}

/// An entry on its way out, offered to the `on_evict` hook while it is
/// still readable: the tiered cache demotes it into L1 from here.
pub struct Evicted<'a> {
    pub key: &'a [u8],
    pub value: &'a [u8],
    pub tag: Option<TypeTag>,
    pub reason: EvictReason,
    /// When it would have expired (Unix ms, the segment's clock); None
    /// if never.
    pub expires_at_ms: Option<u64>,
    /// The position of the key's shard in the change log at this moment
    /// (see [`crate::Segment::change_position`]): a copy kept elsewhere is
    /// stale once the key's hash appears at or after it.
    pub change_position: (u64, u64),
    /// The key's hash, as the change log records it.
    pub hash: u64,
}

/// Called with the shard's writer lock held: keep it short, and do not
/// write to the same segment from inside it.
pub type EvictHook = Arc<dyn Fn(&Evicted<'_>) + Send + Sync>;

/// Called while a segment is created, with how many of its bytes have
/// been through the building of huge pages so far and its size, and last
/// with the two equal: building them can take seconds when memory is
/// fragmented (see [`SegmentOptions::huge_pages`]).
pub type ProgressHook = Arc<dyn Fn(u64, u64) + Send + Sync>;

/// Options for [`crate::Segment::create`], [`crate::Segment::open`] and
/// [`crate::Segment::open_or_create`].
#[derive(Clone)]
pub struct SegmentOptions {
    /// Total size of the segment (creation only), rounded up to 2 MiB.
    pub memory: u64,
    /// Index capacity (creation only); by default one entry per 4 KiB.
    pub max_entries: Option<u64>,
    /// Where segment files live; `$STRATA_SHM_DIR` or `/dev/shm`.
    pub dir: PathBuf,
    pub clock: Clock,
    /// Eviction policy (creation only; W-TinyLFU by default). Every
    /// process evicts by the creator's, whatever it asks for
    /// ([`crate::Segment::kept_settings`] says so).
    pub policy: Option<Policy>,
    /// Whether a newcomer may displace the clock's victim, when the arena
    /// rather than the index is short.
    pub admission: Arc<dyn Admission>,
    pub on_evict: Option<EvictHook>,
    /// How long an attacher waits for a segment that is not ready while
    /// no live creator holds it (one that died mid-creation, or one from
    /// an older build). A live creator is waited for however long it takes.
    pub ready_timeout: Duration,
    /// Whether creation backs the segment with 2 MiB pages where the
    /// kernel can (Linux 6.1 and later, on any tmpfs); on by default.
    /// Reads over a segment much larger than the CPU caches are much
    /// faster on them. Where the kernel cannot, the segment has 4 KiB pages
    /// and works the same.
    pub huge_pages: bool,
    /// Reports the progress of creation, for a progress bar.
    pub on_progress: Option<ProgressHook>,
    /// Whether this handle takes part in housekeeping: a background
    /// thread, started on first use, that competes for the segment's
    /// janitor lease and, while it holds it, reaps dead processes' slots
    /// and views, sweeps expired entries and reclaims (see
    /// [`crate::Segment::maintain`]). On by default; short-lived tools
    /// turn it off.
    pub janitor: bool,
    /// Attach to a segment file that another user owns, or that others
    /// may write. Off by default: such a file could have been planted to
    /// feed this process data, or to read what it writes. Turn it on only
    /// for deliberate sharing between users, where the file's group and
    /// mode then govern who may read and write it.
    pub trust_foreign: bool,
}

impl std::fmt::Debug for SegmentOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentOptions")
            .field("memory", &self.memory)
            .field("max_entries", &self.max_entries)
            .field("dir", &self.dir)
            .field("huge_pages", &self.huge_pages)
            .field("janitor", &self.janitor)
            .field("trust_foreign", &self.trust_foreign)
            .finish_non_exhaustive()
    }
}

/// The default directory for segment files.
pub fn default_dir() -> PathBuf {
    std::env::var_os("STRATA_SHM_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/dev/shm"))
}

impl Default for SegmentOptions {
    fn default() -> Self {
        SegmentOptions {
            memory: 1 << 30,
            max_entries: None,
            dir: default_dir(),
            clock: Clock::system(),
            policy: None,
            admission: Arc::new(TinyLfu),
            on_evict: None,
            ready_timeout: Duration::from_secs(5),
            huge_pages: true,
            on_progress: None,
            janitor: true,
            trust_foreign: false,
        }
    }
}

impl SegmentOptions {
    pub fn memory(mut self, bytes: u64) -> Self {
        self.memory = bytes;
        self
    }
    pub fn max_entries(mut self, n: u64) -> Self {
        self.max_entries = Some(n);
        self
    }
    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = dir.into();
        self
    }
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = Some(policy);
        self
    }
    pub fn admission(mut self, policy: Arc<dyn Admission>) -> Self {
        self.admission = policy;
        self
    }
    pub fn on_evict(mut self, hook: EvictHook) -> Self {
        self.on_evict = Some(hook);
        self
    }
    pub fn huge_pages(mut self, on: bool) -> Self {
        self.huge_pages = on;
        self
    }
    pub fn janitor(mut self, on: bool) -> Self {
        self.janitor = on;
        self
    }
    pub fn trust_foreign(mut self, on: bool) -> Self {
        self.trust_foreign = on;
        self
    }
    pub fn on_progress(mut self, hook: ProgressHook) -> Self {
        self.on_progress = Some(hook);
        self
    }
}

/// The longest time to live a segment stores: an expiry is a Unix time
/// in milliseconds in 64 bits, and this leaves room to add it to any
/// clock reading for the next 290 million years. Longer TTLs are refused,
/// never cut short.
pub const MAX_TTL: Duration = Duration::from_millis(u64::MAX / 2);

/// Refuses a TTL that is zero or longer than [`MAX_TTL`].
pub fn check_ttl(ttl: Duration) -> Result<()> {
    if ttl.is_zero() {
        return Err(Error::InvalidConfig("a TTL must be positive".into()));
    }
    if ttl > MAX_TTL {
        return Err(Error::InvalidConfig(format!(
            "a TTL of {} seconds is too long (at most {} seconds, about 290 million years)",
            ttl.as_secs(),
            MAX_TTL.as_secs()
        )));
    }
    Ok(())
}

/// A time to live given in seconds by a user: positive, finite, and at
/// most [`MAX_TTL`].
pub fn ttl_from_secs(secs: f64) -> Result<Duration> {
    if !(secs.is_finite() && secs > 0.0) {
        return Err(Error::InvalidConfig(format!(
            "a TTL must be a positive number of seconds, not {secs}"
        )));
    }
    if secs > MAX_TTL.as_secs_f64() {
        // Huge inputs in exponent form: 1e300 has 301 digits.
        let shown = if secs < 1e15 {
            secs.to_string()
        } else {
            format!("{secs:e}")
        };
        return Err(Error::InvalidConfig(format!(
            "a TTL of {shown} seconds is too long (at most {} seconds, about 290 million years)",
            MAX_TTL.as_secs()
        )));
    }
    let ttl = Duration::from_secs_f64(secs);
    check_ttl(ttl)?;
    Ok(ttl)
}

/// The condition of a conditional write ([`crate::Segment::put_if`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PutIf {
    /// Only if the key is absent (or expired).
    Absent,
    /// Only if the key is present.
    Present,
    /// Only if the key still holds the value of this version
    /// ([`crate::View::version`]; hold the view until the write, so that
    /// its version cannot come back): a compare-and-set.
    Version(u64),
}

/// Per-write options.
#[derive(Clone, Debug, Default)]
pub struct PutOptions {
    /// Time to live; None keeps the entry until it is evicted or deleted.
    pub ttl: Option<Duration>,
    pub tag: Option<TypeTag>,
    /// When the key exists, keep its expiry instead of `ttl` (as SET
    /// KEEPTTL, INCR and APPEND do); a new key gets `ttl`.
    pub keep_ttl: bool,
}

impl PutOptions {
    pub fn keep_ttl(mut self) -> Self {
        self.keep_ttl = true;
        self
    }
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }
    pub fn tag(mut self, tag: TypeTag) -> Self {
        self.tag = Some(tag);
        self
    }
}

/// What a put did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PutOutcome {
    Inserted,
    Updated,
    /// Space was short and the admission policy preferred what was there.
    Rejected,
}
