//! Eviction policies for the in-process tiers and for replaying traces.
//!
//! A policy tracks keys (as 64-bit hashes) and their weights, never the
//! values: the tier that owns it stores those, and a simulator needs none.
//! Each is single-threaded; a concurrent tier shards and locks around it.

mod ghost;
mod lfu;
mod list;
mod queue;
mod s3fifo;
mod sketch;
mod window;
mod wtinylfu;

pub(crate) use list::KeyHasher;
use std::fmt;
use std::str::FromStr;

/// A replacement policy over keys with weights, bounded by total weight.
pub trait Policy: Send {
    fn kind(&self) -> PolicyKind;
    /// The bound on the total weight.
    fn capacity(&self) -> u64;
    /// The total weight resident.
    fn weight(&self) -> u64;
    /// The number of keys resident.
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn contains(&self, key: u64) -> bool;
    /// Records a hit on `key`; false (and nothing recorded) if it is not
    /// resident.
    fn touch(&mut self, key: u64) -> bool;
    /// A handle on `key`'s entry, if the policy has one: a caller that
    /// keeps it beside its own copy of the key can then touch the entry
    /// without the policy looking the key up again.
    fn handle(&self, _key: u64) -> Option<u32> {
        None
    }
    /// [`Policy::touch`] through a handle taken for `key`; a handle gone
    /// stale (the entry left) falls back to the lookup.
    fn touch_handle(&mut self, _handle: u32, key: u64) -> bool {
        self.touch(key)
    }
    /// Offers a key that is not resident. Returns whether it was admitted;
    /// the keys evicted to make room are appended to `evicted` (a
    /// newcomer that lost admission is among them).
    fn insert(&mut self, key: u64, weight: u32, evicted: &mut Vec<u64>) -> bool;
    /// Forgets `key`; whether it was resident.
    fn remove(&mut self, key: u64) -> bool;
    /// One request in a replay: a hit (true), or a miss that offers the
    /// key for admission.
    fn access(&mut self, key: u64, weight: u32, evicted: &mut Vec<u64>) -> bool {
        if self.touch(key) {
            true
        } else {
            self.insert(key, weight, evicted);
            false
        }
    }
}

/// The policies on offer, by the names configuration and the CLI use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PolicyKind {
    Lru,
    Fifo,
    /// LFU with dynamic ageing.
    Lfu,
    S3Fifo,
    /// W-TinyLFU with a window moved by ghosts: a key let go lately that
    /// comes back moves the window towards the side it left.
    WTinyLfu,
    /// Admits until full, then rejects: for data only TTLs remove.
    NoEviction,
}

impl PolicyKind {
    pub const ALL: [PolicyKind; 6] = [
        PolicyKind::Lru,
        PolicyKind::Fifo,
        PolicyKind::Lfu,
        PolicyKind::S3Fifo,
        PolicyKind::WTinyLfu,
        PolicyKind::NoEviction,
    ];

    pub fn name(self) -> &'static str {
        match self {
            PolicyKind::Lru => "lru",
            PolicyKind::Fifo => "fifo",
            PolicyKind::Lfu => "lfu",
            PolicyKind::S3Fifo => "s3fifo",
            PolicyKind::WTinyLfu => "wtinylfu",
            PolicyKind::NoEviction => "none",
        }
    }

    /// A policy bounded by `capacity` in weight, expecting about `entries`
    /// resident keys (a hint for its tables; it grows past it).
    pub fn build(self, capacity: u64, entries: usize) -> Box<dyn Policy> {
        let entries = entries.min(1 << 24);
        match self {
            PolicyKind::Lru | PolicyKind::Fifo | PolicyKind::NoEviction => {
                Box::new(queue::Queue::new(self, capacity, entries))
            }
            PolicyKind::Lfu => Box::new(lfu::Lfu::new(capacity, entries)),
            PolicyKind::S3Fifo => Box::new(s3fifo::S3Fifo::new(capacity, entries)),
            PolicyKind::WTinyLfu => Box::new(wtinylfu::WTinyLfu::new(capacity, entries)),
        }
    }
}

impl fmt::Display for PolicyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A policy name that is not one of [`PolicyKind::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown policy {0:?} (expected one of lru, fifo, lfu, s3fifo, wtinylfu, none)")]
pub struct UnknownPolicy(pub String);

impl FromStr for PolicyKind {
    type Err = UnknownPolicy;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        PolicyKind::ALL
            .into_iter()
            .find(|k| k.name() == lower || (lower == "w-tinylfu" && *k == PolicyKind::WTinyLfu))
            .ok_or_else(|| UnknownPolicy(s.to_string()))
    }
}

#[cfg(test)]
mod tests;
