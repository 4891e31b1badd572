//! A per-process memo of recent `get_numpy` results: the pinned value, its
//! descriptor and dimensions, by key. A repeated read revalidates the entry
//! with one index load (`Segment::revalidate`) and builds a fresh array on
//! the same pinned value, skipping the lookup, the new pin and the read
//! of the index entry. Each call still returns a new ndarray object, so one caller
//! reshaping its array in place cannot affect another.
//!
//! Remembered values stay pinned. An entry whose key has changed pins an
//! old block until it is looked up again, swept or pushed out, so the memo
//! is small: a few entries per shard, and at most a sixteenth of the
//! segment's data in bytes. It forgets in FIFO order, with a second chance
//! for entries read since they were last passed over.
//!
//! It remembers only keys read twice lately. A doorkeeper (as in TinyLFU)
//! of one bit per hashed key notes the first read; the second read of a
//! noted key is remembered. The bits are cleared after as many first reads
//! as the memo holds entries, times `DOORKEEPER_PERIOD`. Under a long-tailed
//! load most reads are of keys read once in a long while, and without the
//! doorkeeper each of them evicts an entry that a hot key will miss.

use crate::arrays::PinnedValue;
use crate::dtypes::Dims;
use numpy::PyArrayDescr;
use pyo3::prelude::*;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use strata_shm::fork_generation;
use xxhash_rust::xxh3::Xxh3DefaultBuilder;

/// Entries an insert may pass over (clearing their read bit) before it
/// evicts the oldest regardless.
const MAX_SECOND_CHANCES: usize = 4;
/// Doorkeeper bits per memo entry: few enough to stay in cache, enough
/// that unrelated keys rarely share a bit.
const DOORKEEPER_BITS_PER_ENTRY: usize = 64;
/// First reads noted, per memo entry, before the doorkeeper forgets them.
const DOORKEEPER_PERIOD: usize = 8;

/// What the memo keeps for one key.
pub struct Remembered {
    pub owner: Py<PinnedValue>,
    pub descr: Py<PyArrayDescr>,
    pub dims: Dims,
}

struct Entry {
    value: Remembered,
    referenced: bool,
}

struct State {
    fork_gen: u64,
    bytes: usize,
    map: HashMap<Box<[u8]>, Entry, Xxh3DefaultBuilder>,
    order: VecDeque<Box<[u8]>>,
    /// One bit per hashed key read once lately.
    doorkeeper: Vec<u64>,
    /// First reads noted since the doorkeeper was last cleared.
    noted: usize,
}

/// What the memo says of a key: see [`Memo::recall`]. Returned once per
/// read and matched at once; boxing the large variant would allocate on
/// every hit.
#[allow(clippy::large_enum_variant)]
pub enum Recall<'py> {
    /// The remembered pinned value, descriptor and dimensions.
    Found(Bound<'py, PinnedValue>, Bound<'py, PyArrayDescr>, Dims),
    /// Nothing remembered; `admit` if the key was read lately, so that
    /// this read's result is worth remembering.
    Missed { admit: bool },
}

impl State {
    /// The doorkeeper: true if `key` was read lately, else notes this
    /// first read, clearing every note after `capacity` times
    /// `DOORKEEPER_PERIOD` of them.
    fn admit(&mut self, key: &[u8], capacity: usize) -> bool {
        let bits = self.doorkeeper.len() as u64 * 64;
        if bits == 0 {
            return false;
        }
        let bit = xxhash_rust::xxh3::xxh3_64(key) % bits;
        let (word, mask) = ((bit / 64) as usize, 1u64 << (bit % 64));
        if self.doorkeeper[word] & mask != 0 {
            return true;
        }
        self.noted += 1;
        if self.noted > capacity * DOORKEEPER_PERIOD {
            self.noted = 0;
            self.doorkeeper.fill(0);
        }
        self.doorkeeper[word] |= mask;
        false
    }

    /// A forked child must not use its parent's pins: start afresh.
    fn check_fork(&mut self, dropped: &mut Vec<Remembered>) {
        let gen = fork_generation();
        if gen != self.fork_gen {
            self.fork_gen = gen;
            self.order.clear();
            self.bytes = 0;
            dropped.extend(self.map.drain().map(|(_, e)| e.value));
        }
    }
}

pub struct Memo {
    capacity: usize,
    max_bytes: usize,
    state: Mutex<State>,
}

impl Memo {
    /// A memo of at most `capacity` entries and `max_bytes` of values.
    pub fn new(capacity: usize, max_bytes: usize) -> Self {
        Memo {
            capacity,
            max_bytes,
            state: Mutex::new(State {
                fork_gen: fork_generation(),
                bytes: 0,
                map: HashMap::default(),
                order: VecDeque::new(),
                doorkeeper: vec![0; (capacity * DOORKEEPER_BITS_PER_ENTRY).div_ceil(64)],
                noted: 0,
            }),
        }
    }

    pub fn enabled(&self) -> bool {
        self.capacity > 0
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The remembered result for `key`, not yet revalidated; or, when
    /// there is none, whether this read's result should be remembered
    /// (the doorkeeper's answer). One lock either way. Entries the memo
    /// lets go of are returned in `dropped`, for the caller to drop after
    /// the lock is released (dropping runs deallocators).
    pub fn recall<'py>(
        &self,
        py: Python<'py>,
        key: &[u8],
        dropped: &mut Vec<Remembered>,
    ) -> Recall<'py> {
        let mut st = self.state();
        st.check_fork(dropped);
        if let Some(e) = st.map.get_mut(key) {
            e.referenced = true;
            let v = &e.value;
            return Recall::Found(v.owner.bind(py).clone(), v.descr.bind(py).clone(), v.dims);
        }
        Recall::Missed {
            admit: st.admit(key, self.capacity),
        }
    }

    /// Forgets `key` (its entry went stale).
    pub fn forget(&self, key: &[u8]) -> Option<Remembered> {
        let mut st = self.state();
        let e = st.map.remove(key)?;
        st.bytes -= e.value.owner.get().view().len();
        st.order.retain(|k| &**k != key);
        Some(e.value)
    }

    /// Remembers `value` for `key`, letting go of the oldest entries not
    /// read since they were last passed over when the memo is full. A value
    /// larger than the byte budget is not remembered.
    pub fn remember(&self, key: &[u8], value: Remembered, dropped: &mut Vec<Remembered>) {
        let len = value.owner.get().view().len();
        if len > self.max_bytes {
            dropped.push(value);
            return;
        }
        let mut st = self.state();
        st.check_fork(dropped);
        st.bytes += len;
        let entry = Entry {
            value,
            referenced: false,
        };
        if let Some(old) = st.map.insert(key.into(), entry) {
            st.bytes -= old.value.owner.get().view().len();
            dropped.push(old.value);
        } else {
            st.order.push_back(key.into());
        }
        // Second chances are bounded, so an insert costs O(1) even when
        // every entry has been read lately.
        let mut chances = MAX_SECOND_CHANCES;
        while st.map.len() > self.capacity || st.bytes > self.max_bytes {
            let Some(k) = st.order.pop_front() else {
                break;
            };
            let second_chance = match st.map.get_mut(&k) {
                Some(e) if e.referenced && &*k != key && chances > 0 => {
                    chances -= 1;
                    e.referenced = false;
                    true
                }
                _ => false,
            };
            if second_chance {
                st.order.push_back(k);
            } else if let Some(e) = st.map.remove(&k) {
                st.bytes -= e.value.owner.get().view().len();
                dropped.push(e.value);
            }
        }
    }

    /// Forgets the entries `current` rejects (their keys changed), so the
    /// blocks they pinned can be reclaimed.
    pub fn sweep(&self, current: impl Fn(&PinnedValue) -> bool) -> Vec<Remembered> {
        let mut dropped = Vec::new();
        let mut st = self.state();
        st.check_fork(&mut dropped);
        let stale: Vec<Box<[u8]>> = st
            .map
            .iter()
            .filter(|(_, e)| !current(e.value.owner.get()))
            .map(|(k, _)| k.clone())
            .collect();
        for k in &stale {
            if let Some(e) = st.map.remove(k) {
                st.bytes -= e.value.owner.get().view().len();
                dropped.push(e.value);
            }
        }
        let State { map, order, .. } = &mut *st;
        order.retain(|k| map.contains_key(k));
        dropped
    }

    /// Forgets everything (on close).
    pub fn clear(&self) -> Vec<Remembered> {
        let mut st = self.state();
        st.order.clear();
        st.bytes = 0;
        st.map.drain().map(|(_, e)| e.value).collect()
    }
}
