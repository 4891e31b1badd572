//! S3-FIFO (Yang et al., SOSP 2023): a small FIFO queue (10% of the
//! capacity) that newcomers enter, a main FIFO with 2-bit access counts
//! reinserted on eviction (a clock), and a ghost queue of keys recently
//! evicted from the small queue. A key leaving the small queue goes to
//! main if it was hit while there; a key found in the ghost enters main
//! directly. One-hit wonders thus leave quickly without disturbing main.

use super::ghost::Ghost;
use super::list::{arena_touch, Arena, List};
use super::{Policy, PolicyKind};

const SMALL: u8 = 0;
const MAIN: u8 = 1;

pub(crate) struct S3Fifo {
    a: Arena,
    small: List,
    main: List,
    cap: u64,
    small_cap: u64,
    /// Keys evicted from the small queue, about as many as the cache
    /// holds.
    ghost: Ghost,
}

impl S3Fifo {
    pub fn new(cap: u64, entries: usize) -> Self {
        S3Fifo {
            a: Arena::with_capacity(entries),
            small: List::default(),
            main: List::default(),
            cap,
            small_cap: (cap / 10).max(1),
            ghost: Ghost::default(),
        }
    }

    fn evict_one(&mut self, evicted: &mut Vec<u64>) -> bool {
        loop {
            if self.small.weight >= self.small_cap || self.main.is_empty() {
                let Some(t) = self.small.pop_tail(&mut self.a) else {
                    return false;
                };
                if self.a.node(t).freq > 0 {
                    let n = self.a.node_mut(t);
                    n.freq = 0;
                    n.queue = MAIN;
                    self.main.push_head(&mut self.a, t);
                    continue;
                }
                let key = self.a.release(t).key;
                let limit = self.main.len.max(self.a.len());
                self.ghost.add(key, limit);
                evicted.push(key);
                return true;
            }
            let Some(t) = self.main.pop_tail(&mut self.a) else {
                return false;
            };
            if self.a.node(t).freq > 0 {
                self.a.node_mut(t).freq -= 1;
                self.main.push_head(&mut self.a, t);
                continue;
            }
            evicted.push(self.a.release(t).key);
            return true;
        }
    }

    fn touch_node(&mut self, i: u32, _key: u64) {
        let n = self.a.node_mut(i);
        n.freq = (n.freq + 1).min(3);
    }
}

impl Policy for S3Fifo {
    fn kind(&self) -> PolicyKind {
        PolicyKind::S3Fifo
    }
    fn capacity(&self) -> u64 {
        self.cap
    }
    fn weight(&self) -> u64 {
        self.small.weight + self.main.weight
    }
    fn len(&self) -> usize {
        self.a.len()
    }
    fn contains(&self, key: u64) -> bool {
        self.a.get(key).is_some()
    }

    arena_touch!();

    fn insert(&mut self, key: u64, weight: u32, evicted: &mut Vec<u64>) -> bool {
        let w = u64::from(weight);
        if w > self.cap || self.a.get(key).is_some() {
            return false;
        }
        while self.weight() + w > self.cap {
            if !self.evict_one(evicted) {
                break;
            }
        }
        if self.ghost.take(key) {
            let i = self.a.alloc(key, weight, MAIN);
            self.main.push_head(&mut self.a, i);
        } else {
            let i = self.a.alloc(key, weight, SMALL);
            self.small.push_head(&mut self.a, i);
        }
        true
    }

    fn remove(&mut self, key: u64) -> bool {
        match self.a.get(key) {
            Some(i) => {
                if self.a.node(i).queue == SMALL {
                    self.small.unlink(&mut self.a, i);
                } else {
                    self.main.unlink(&mut self.a, i);
                }
                self.a.release(i);
                true
            }
            None => false,
        }
    }
}
