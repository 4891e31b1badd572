//! A ghost queue: the keys of recently evicted entries, without values,
//! oldest forgotten first. A request for a ghost tells a policy that a
//! little more room on the side the key left would have made it a hit.

use super::list::KeyMap;
use std::collections::VecDeque;

#[derive(Default)]
pub(crate) struct Ghost {
    /// Keys with the sequence number of their entry, oldest first; a key
    /// re-entered leaves a stale pair behind, skipped by sequence.
    queue: VecDeque<(u64, u64)>,
    index: KeyMap<u64>,
    seq: u64,
}

impl Ghost {
    /// Remembers `key`, forgetting the oldest beyond `limit` keys.
    pub fn add(&mut self, key: u64, limit: usize) {
        self.seq += 1;
        self.queue.push_back((key, self.seq));
        self.index.insert(key, self.seq);
        let limit = limit.max(1);
        while self.index.len() > limit {
            match self.queue.pop_front() {
                Some((k, s)) => {
                    if self.index.get(&k) == Some(&s) {
                        self.index.remove(&k);
                    }
                }
                None => break,
            }
        }
        if self.queue.len() > 2 * limit + 64 {
            let index = &self.index;
            self.queue.retain(|(k, s)| index.get(k) == Some(s));
        }
    }

    /// Forgets `key`; whether it was remembered.
    pub fn take(&mut self, key: u64) -> bool {
        self.index.remove(&key).is_some()
    }
}
