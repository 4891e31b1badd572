//! LFU with dynamic ageing (LFU-DA, Arlitt et al.): a key's priority is
//! its access count plus the cache's age, and the age rises to the
//! priority of each key evicted. A key that was popular long ago thus
//! loses to keys counted since, where plain LFU would keep it forever.

use super::list::KeyMap;
use super::{Policy, PolicyKind};
use std::collections::BTreeSet;

#[derive(Clone, Copy)]
struct Meta {
    priority: u64,
    seq: u64,
    count: u64,
    weight: u32,
}

pub(crate) struct Lfu {
    meta: KeyMap<Meta>,
    /// (priority, insertion or last-access sequence, key): the first is
    /// the victim; among equal priorities the least recently used.
    order: BTreeSet<(u64, u64, u64)>,
    age: u64,
    seq: u64,
    weight: u64,
    cap: u64,
}

impl Lfu {
    pub fn new(cap: u64, entries: usize) -> Self {
        Lfu {
            meta: KeyMap::with_capacity_and_hasher(entries, Default::default()),
            order: BTreeSet::new(),
            age: 0,
            seq: 0,
            weight: 0,
            cap,
        }
    }
}

impl Policy for Lfu {
    fn kind(&self) -> PolicyKind {
        PolicyKind::Lfu
    }
    fn capacity(&self) -> u64 {
        self.cap
    }
    fn weight(&self) -> u64 {
        self.weight
    }
    fn len(&self) -> usize {
        self.meta.len()
    }
    fn contains(&self, key: u64) -> bool {
        self.meta.contains_key(&key)
    }

    fn touch(&mut self, key: u64) -> bool {
        let Some(m) = self.meta.get_mut(&key) else {
            return false;
        };
        self.order.remove(&(m.priority, m.seq, key));
        self.seq += 1;
        m.count += 1;
        m.priority = self.age + m.count;
        m.seq = self.seq;
        self.order.insert((m.priority, m.seq, key));
        true
    }

    fn insert(&mut self, key: u64, weight: u32, evicted: &mut Vec<u64>) -> bool {
        let w = u64::from(weight);
        if w > self.cap || self.meta.contains_key(&key) {
            return false;
        }
        while self.weight + w > self.cap {
            let Some((priority, _, victim)) = self.order.pop_first() else {
                break;
            };
            if let Some(m) = self.meta.remove(&victim) {
                self.weight -= u64::from(m.weight);
            }
            self.age = priority;
            evicted.push(victim);
        }
        self.seq += 1;
        let m = Meta {
            priority: self.age + 1,
            seq: self.seq,
            count: 1,
            weight,
        };
        self.order.insert((m.priority, m.seq, key));
        self.meta.insert(key, m);
        self.weight += w;
        true
    }

    fn remove(&mut self, key: u64) -> bool {
        match self.meta.remove(&key) {
            Some(m) => {
                self.order.remove(&(m.priority, m.seq, key));
                self.weight -= u64::from(m.weight);
                true
            }
            None => false,
        }
    }
}
