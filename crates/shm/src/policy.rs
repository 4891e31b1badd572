//! L0's eviction policies, and the admission seam.
//!
//! `max_entries` bounds each shard; a new key that finds its shard full
//! makes room by the policy (`evict.rs`), from what each entry carries in
//! its policy word (a usage count readers raise, a small-queue flag, and
//! an insertion stamp), the shard's queue ring (`queue.rs`) and the shared
//! frequency sketch. When the arena, not the index, is short, the clock
//! picks the victim among the blocks of the size class, and for the
//! frequency policies [`Admission`] decides whether the newcomer may take
//! its place.
//!
//! The policy is fixed when a segment is created and stored in its
//! header, so every process evicts the same way.

use std::fmt;
use std::str::FromStr;

/// How L0 chooses what to evict when a key's index buckets are full.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Policy {
    /// Least recently used, as CLOCK approximates it: a hand walks the
    /// shard's entries, and the first whose usage count is zero goes;
    /// those it passes lose a point. Readers only raise a 2-bit count, so
    /// a hit writes nothing once a key is warm.
    Lru,
    /// First in, first out: the shard's oldest entry, whatever its hits.
    Fifo,
    /// Least frequently used by the shared sketch, of 16 entries under the
    /// hand; the sketch's counts halve periodically (ageing).
    Lfu,
    /// S3-FIFO: new keys enter a small queue (10% of entries) and move to
    /// main only if read there; keys the sketch has seen recently (the
    /// ghost) go straight to main. Main is CLOCK.
    S3Fifo,
    /// W-TinyLFU: new keys enter a window; a key leaving the full window
    /// displaces main's victim only if the sketch counts it more often,
    /// else it is evicted. The window's share adapts to the traffic: keys
    /// that come back soon after a duel let them go move it towards the
    /// side they left (as ARC adapts its target).
    #[default]
    WTinyLfu,
    /// Never evicts: a put that needs room is refused. With TTLs, this is
    /// expiry-only caching.
    NoEviction,
}

impl Policy {
    pub const ALL: [Policy; 6] = [
        Policy::Lru,
        Policy::Fifo,
        Policy::Lfu,
        Policy::S3Fifo,
        Policy::WTinyLfu,
        Policy::NoEviction,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Policy::Lru => "lru",
            Policy::Fifo => "fifo",
            Policy::Lfu => "lfu",
            Policy::S3Fifo => "s3fifo",
            Policy::WTinyLfu => "wtinylfu",
            Policy::NoEviction => "none",
        }
    }

    /// The code stored in the segment header (never 0, so that a zeroed
    /// header is recognisably unset).
    pub fn code(self) -> u64 {
        match self {
            Policy::Lru => 1,
            Policy::Fifo => 2,
            Policy::Lfu => 3,
            Policy::S3Fifo => 4,
            Policy::WTinyLfu => 5,
            Policy::NoEviction => 6,
        }
    }

    pub fn from_code(code: u64) -> Option<Policy> {
        Policy::ALL.into_iter().find(|p| p.code() == code)
    }

    /// Whether a newcomer must out-count the clock's victim when the
    /// arena is short (the [`Admission`] seam).
    pub(crate) fn admits_by_frequency(self) -> bool {
        matches!(self, Policy::Lfu | Policy::WTinyLfu)
    }

    /// Whether new keys enter a small queue (a window) first.
    pub(crate) fn has_small_queue(self) -> bool {
        matches!(self, Policy::S3Fifo | Policy::WTinyLfu)
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Policy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let want = s.trim().to_ascii_lowercase().replace(['-', '_'], "");
        Policy::ALL
            .into_iter()
            .find(|p| {
                p.name().replace('-', "") == want
                    || (want == "noeviction" && *p == Policy::NoEviction)
            })
            .ok_or_else(|| {
                format!(
                    "unknown eviction policy {s:?}; expected one of {}",
                    Policy::ALL.map(Policy::name).join(", ")
                )
            })
    }
}

/// Decides whether a new key may displace a resident one, when the arena
/// is short and the clock has picked the victim.
pub trait Admission: Send + Sync + 'static {
    fn admit(&self, candidate_frequency: u32, victim_frequency: u32) -> bool;
}

/// TinyLFU: the newcomer must be at least as frequent as the victim.
/// (Ties go to the newcomer, so a cache of equally cold keys still turns
/// over.)
#[derive(Clone, Copy, Debug, Default)]
pub struct TinyLfu;

impl Admission for TinyLfu {
    fn admit(&self, candidate: u32, victim: u32) -> bool {
        candidate >= victim
    }
}

/// Admits everything: pure clock eviction.
#[derive(Clone, Copy, Debug, Default)]
pub struct AlwaysAdmit;

impl Admission for AlwaysAdmit {
    fn admit(&self, _: u32, _: u32) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_codes_round_trip() {
        for p in Policy::ALL {
            assert_eq!(p.name().parse::<Policy>(), Ok(p));
            assert_eq!(Policy::from_code(p.code()), Some(p));
        }
        assert_eq!("W-TinyLFU".parse::<Policy>(), Ok(Policy::WTinyLfu));
        assert_eq!("noeviction".parse::<Policy>(), Ok(Policy::NoEviction));
        assert!("arc".parse::<Policy>().unwrap_err().contains("s3fifo"));
        assert_eq!(Policy::from_code(0), None);
    }
}
