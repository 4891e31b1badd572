//! The node arena and intrusive doubly linked lists every policy keeps its
//! queues in: nodes are indices into one `Vec`, so a move between queues
//! is a few index writes and no allocation.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

pub(crate) const NIL: u32 = u32::MAX;
/// The `queue` of a freed node: no policy's queue has this number.
const FREED: u8 = u8::MAX;

/// Keys reaching a policy are often small integers (trace ids), whose
/// high bits are all zero; a multiply spreads them over the hash table's
/// tag bits. Hashes of strings pass through it unharmed.
#[derive(Default)]
pub struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, k: u64) {
        let h = k.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = h ^ (h >> 29);
    }
}

pub(crate) type KeyMap<V> = HashMap<u64, V, BuildHasherDefault<KeyHasher>>;

#[derive(Clone, Copy, Debug)]
pub(crate) struct Node {
    pub key: u64,
    pub weight: u32,
    /// Which of the policy's queues holds the node.
    pub queue: u8,
    /// A small access count, for the policies that keep one.
    pub freq: u8,
    prev: u32,
    next: u32,
}

/// `touch`, `handle` and `touch_handle` of a [`Policy`](super::Policy)
/// whose nodes live in an [`Arena`] named `a`, in terms of its
/// `touch_node(i, key)`: the lookups every such policy shares.
macro_rules! arena_touch {
    () => {
        fn touch(&mut self, key: u64) -> bool {
            match self.a.get(key) {
                Some(i) => {
                    self.touch_node(i, key);
                    true
                }
                None => false,
            }
        }

        fn handle(&self, key: u64) -> Option<u32> {
            self.a.get(key)
        }

        fn touch_handle(&mut self, handle: u32, key: u64) -> bool {
            if self.a.live(handle, key) {
                self.touch_node(handle, key);
                true
            } else {
                self.touch(key)
            }
        }
    };
}
pub(crate) use arena_touch;

/// Nodes by index, with the key → index map.
#[derive(Default)]
pub(crate) struct Arena {
    nodes: Vec<Node>,
    free: Vec<u32>,
    pub index: KeyMap<u32>,
}

impl Arena {
    pub fn with_capacity(n: usize) -> Self {
        Arena {
            nodes: Vec::with_capacity(n),
            free: Vec::new(),
            index: KeyMap::with_capacity_and_hasher(n, Default::default()),
        }
    }

    pub fn get(&self, key: u64) -> Option<u32> {
        self.index.get(&key).copied()
    }

    /// Whether node `i` is in use, for `key`: a handle the caller kept
    /// may have been freed, or reused for another key.
    #[inline]
    pub fn live(&self, i: u32, key: u64) -> bool {
        self.nodes
            .get(i as usize)
            .is_some_and(|n| n.key == key && n.queue != FREED)
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// A new node for `key`, not yet in any list.
    pub fn alloc(&mut self, key: u64, weight: u32, queue: u8) -> u32 {
        let node = Node {
            key,
            weight,
            queue,
            freq: 0,
            prev: NIL,
            next: NIL,
        };
        let i = match self.free.pop() {
            Some(i) => {
                self.nodes[i as usize] = node;
                i
            }
            None => {
                self.nodes.push(node);
                (self.nodes.len() - 1) as u32
            }
        };
        self.index.insert(key, i);
        i
    }

    /// Frees a node already unlinked from its list.
    pub fn release(&mut self, i: u32) -> Node {
        let n = self.nodes[i as usize];
        self.index.remove(&n.key);
        self.nodes[i as usize].queue = FREED;
        self.free.push(i);
        n
    }

    #[inline]
    pub fn node(&self, i: u32) -> &Node {
        &self.nodes[i as usize]
    }

    #[inline]
    pub fn node_mut(&mut self, i: u32) -> &mut Node {
        &mut self.nodes[i as usize]
    }
}

/// A queue: `head` is the newest end, `tail` the oldest.
#[derive(Clone, Copy, Debug)]
pub(crate) struct List {
    pub head: u32,
    pub tail: u32,
    pub len: usize,
    pub weight: u64,
}

impl Default for List {
    fn default() -> Self {
        List {
            head: NIL,
            tail: NIL,
            len: 0,
            weight: 0,
        }
    }
}

impl List {
    pub fn push_head(&mut self, a: &mut Arena, i: u32) {
        let old = self.head;
        {
            let n = a.node_mut(i);
            n.prev = NIL;
            n.next = old;
        }
        if old != NIL {
            a.node_mut(old).prev = i;
        } else {
            self.tail = i;
        }
        self.head = i;
        self.len += 1;
        self.weight += u64::from(a.node(i).weight);
    }

    pub fn unlink(&mut self, a: &mut Arena, i: u32) {
        let Node {
            prev, next, weight, ..
        } = *a.node(i);
        if prev != NIL {
            a.node_mut(prev).next = next;
        } else {
            self.head = next;
        }
        if next != NIL {
            a.node_mut(next).prev = prev;
        } else {
            self.tail = prev;
        }
        self.len -= 1;
        self.weight -= u64::from(weight);
    }

    /// Moves a node of this list to its head.
    pub fn move_to_head(&mut self, a: &mut Arena, i: u32) {
        if self.head != i {
            self.unlink(a, i);
            self.push_head(a, i);
        }
    }

    /// Unlinks and returns the oldest node.
    pub fn pop_tail(&mut self, a: &mut Arena) -> Option<u32> {
        let t = self.tail;
        if t == NIL {
            return None;
        }
        self.unlink(a, t);
        Some(t)
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}
