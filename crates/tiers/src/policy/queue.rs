//! LRU and FIFO: one queue, which a hit reorders (LRU) or leaves alone
//! (FIFO). Also `none`: FIFO order, but a full cache rejects newcomers
//! instead of evicting, for data that only TTLs should remove.

use super::list::{arena_touch, Arena, List};
use super::{Policy, PolicyKind};

pub(crate) struct Queue {
    kind: PolicyKind,
    a: Arena,
    q: List,
    cap: u64,
}

impl Queue {
    pub fn new(kind: PolicyKind, cap: u64, entries: usize) -> Self {
        Queue {
            kind,
            a: Arena::with_capacity(entries),
            q: List::default(),
            cap,
        }
    }

    fn touch_node(&mut self, i: u32, _key: u64) {
        if self.kind == PolicyKind::Lru {
            self.q.move_to_head(&mut self.a, i);
        }
    }
}

impl Policy for Queue {
    fn kind(&self) -> PolicyKind {
        self.kind
    }
    fn capacity(&self) -> u64 {
        self.cap
    }
    fn weight(&self) -> u64 {
        self.q.weight
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
        if self.kind == PolicyKind::NoEviction && self.q.weight + w > self.cap {
            return false;
        }
        while self.q.weight + w > self.cap {
            let Some(t) = self.q.pop_tail(&mut self.a) else {
                break;
            };
            evicted.push(self.a.release(t).key);
        }
        let i = self.a.alloc(key, weight, 0);
        self.q.push_head(&mut self.a, i);
        true
    }

    fn remove(&mut self, key: u64) -> bool {
        match self.a.get(key) {
            Some(i) => {
                self.q.unlink(&mut self.a, i);
                self.a.release(i);
                true
            }
            None => false,
        }
    }
}
