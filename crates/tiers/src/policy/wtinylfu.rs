//! W-TinyLFU (Einziger et al.) with an adaptive window, after Caffeine.
//!
//! Newcomers enter an LRU window. A key pushed out of the window must be
//! more frequent, by the frequency sketch, than main's victim to take its
//! place; main is a segmented LRU (probation, then protected after a
//! hit). The window's share of the capacity adapts as ARC's does between
//! its two lists: two ghost queues remember the keys lately pushed out of
//! the window (refused by main) and out of main. A miss on a window ghost
//! says a larger window would have hit, and grows it; a miss on a main
//! ghost shrinks it; each by one entry's weight, times the ratio of the
//! other ghost's size to this one's. Recency-heavy traffic grows the
//! window towards LRU; frequency-heavy traffic shrinks it towards pure
//! TinyLFU. (Hill climbing on the sampled hit ratio, as Caffeine does,
//! was tried first: on traces whose hit ratio swings from phase to phase
//! it wandered, 3 points below LRU on cache2k orm-busy.)

use super::ghost::Ghost;
use super::list::{Arena, List, NIL};
use super::sketch::Sketch;
use super::{Policy, PolicyKind};

const WINDOW: u8 = 0;
const PROBATION: u8 = 1;
const PROTECTED: u8 = 2;

/// The window's starting share, and the protected segment's share of main.
const WINDOW_START: f64 = 0.01;
const PROTECTED_SHARE: f64 = 0.8;

pub(crate) struct WTinyLfu {
    a: Arena,
    window: List,
    probation: List,
    protected: List,
    cap: u64,
    window_cap: u64,
    sketch: Sketch,
    adaptive: bool,
    /// Keys lately pushed out of the window (refused by main), and out
    /// of main.
    window_ghost: Ghost,
    main_ghost: Ghost,
}

impl WTinyLfu {
    pub fn new(cap: u64, entries: usize, adaptive: bool) -> Self {
        WTinyLfu {
            a: Arena::with_capacity(entries),
            window: List::default(),
            probation: List::default(),
            protected: List::default(),
            cap,
            window_cap: ((cap as f64 * WINDOW_START) as u64).max(1).min(cap),
            sketch: Sketch::new(entries),
            adaptive,
            window_ghost: Ghost::default(),
            main_ghost: Ghost::default(),
        }
    }

    /// The window's current share of the capacity, for tests and stats.
    #[cfg(test)]
    pub fn window_share(&self) -> f64 {
        self.window_cap as f64 / self.cap.max(1) as f64
    }

    fn total(&self) -> u64 {
        self.window.weight + self.probation.weight + self.protected.weight
    }

    fn protected_cap(&self) -> u64 {
        ((self.cap - self.window_cap) as f64 * PROTECTED_SHARE) as u64
    }

    fn grow_sketch(&mut self) {
        // A weighted cache learns how many entries it holds as it fills.
        if self.a.len() > self.sketch.width() && self.sketch.width() < (1 << 26) {
            self.sketch = Sketch::new(self.a.len() * 2);
        }
    }

    fn demote_protected(&mut self) {
        let cap = self.protected_cap();
        while self.protected.weight > cap {
            let Some(t) = self.protected.pop_tail(&mut self.a) else {
                break;
            };
            self.a.node_mut(t).queue = PROBATION;
            self.probation.push_head(&mut self.a, t);
        }
    }

    /// Main's victim: probation's oldest, else protected's.
    fn main_victim(&self) -> u32 {
        if self.probation.tail != NIL {
            self.probation.tail
        } else {
            self.protected.tail
        }
    }

    fn evict_node(&mut self, i: u32, evicted: &mut Vec<u64>) {
        let from_window = match self.a.node(i).queue {
            WINDOW => {
                self.window.unlink(&mut self.a, i);
                true
            }
            PROBATION => {
                self.probation.unlink(&mut self.a, i);
                false
            }
            _ => {
                self.protected.unlink(&mut self.a, i);
                false
            }
        };
        let key = self.a.release(i).key;
        self.remember(key, from_window);
        evicted.push(key);
    }

    /// Puts an evicted key in the ghost of the side it left.
    fn remember(&mut self, key: u64, from_window: bool) {
        if !self.adaptive {
            return;
        }
        let limit = self.a.len().max(16);
        if from_window {
            self.window_ghost.add(key, limit);
        } else {
            self.main_ghost.add(key, limit);
        }
    }

    /// A miss on a ghost moves the boundary towards the side that would
    /// have kept the key.
    fn adapt(&mut self, key: u64, weight: u32) {
        if !self.adaptive {
            return;
        }
        let (w, m) = (self.window_ghost.len().max(1), self.main_ghost.len().max(1));
        let unit = u64::from(weight).max(1);
        let target = if self.window_ghost.take(key) {
            let delta = unit * (m / w).max(1) as u64;
            (self.window_cap + delta).min(self.cap)
        } else if self.main_ghost.take(key) {
            let delta = unit * (w / m).max(1) as u64;
            self.window_cap.saturating_sub(delta)
        } else {
            return;
        };
        self.resize_window(target);
    }

    /// Moves the window's overflow into main, each candidate against
    /// main's victim while the cache is over capacity.
    fn evict(&mut self, evicted: &mut Vec<u64>) {
        while self.window.weight > self.window_cap {
            let Some(c) = self.window.pop_tail(&mut self.a) else {
                break;
            };
            self.a.node_mut(c).queue = PROBATION;
            let cw = u64::from(self.a.node(c).weight);
            let cf = self.sketch.frequency(self.a.node(c).key);
            let mut admitted = true;
            while self.total() + cw > self.cap {
                let v = self.main_victim();
                if v == NIL {
                    break;
                }
                if cf > self.sketch.frequency(self.a.node(v).key) {
                    self.evict_node(v, evicted);
                } else {
                    admitted = false;
                    break;
                }
            }
            if admitted {
                self.probation.push_head(&mut self.a, c);
            } else {
                let key = self.a.release(c).key;
                self.remember(key, true);
                evicted.push(key);
            }
        }
        while self.total() > self.cap {
            let v = match self.main_victim() {
                NIL => self.window.tail,
                v => v,
            };
            if v == NIL {
                break;
            }
            self.evict_node(v, evicted);
        }
    }

    fn resize_window(&mut self, target: u64) {
        self.window_cap = target;
        // A smaller window hands its oldest keys to probation; a larger
        // one takes main's oldest, so the total stays within capacity.
        while self.window.weight > self.window_cap {
            let Some(t) = self.window.pop_tail(&mut self.a) else {
                break;
            };
            self.a.node_mut(t).queue = PROBATION;
            self.probation.push_head(&mut self.a, t);
        }
        let main_cap = self.cap - self.window_cap;
        while self.probation.weight + self.protected.weight > main_cap {
            let v = self.main_victim();
            if v == NIL {
                break;
            }
            if self.a.node(v).queue == PROBATION {
                self.probation.unlink(&mut self.a, v);
            } else {
                self.protected.unlink(&mut self.a, v);
            }
            self.a.node_mut(v).queue = WINDOW;
            self.window.push_head(&mut self.a, v);
        }
        self.demote_protected();
    }
}

impl Policy for WTinyLfu {
    fn kind(&self) -> PolicyKind {
        PolicyKind::WTinyLfu
    }
    fn capacity(&self) -> u64 {
        self.cap
    }
    fn weight(&self) -> u64 {
        self.total()
    }
    fn len(&self) -> usize {
        self.a.len()
    }
    fn contains(&self, key: u64) -> bool {
        self.a.get(key).is_some()
    }

    fn touch(&mut self, key: u64) -> bool {
        let Some(i) = self.a.get(key) else {
            return false;
        };
        self.sketch.increment(key);
        match self.a.node(i).queue {
            WINDOW => self.window.move_to_head(&mut self.a, i),
            PROBATION => {
                self.probation.unlink(&mut self.a, i);
                self.a.node_mut(i).queue = PROTECTED;
                self.protected.push_head(&mut self.a, i);
                self.demote_protected();
            }
            _ => self.protected.move_to_head(&mut self.a, i),
        }
        true
    }

    fn insert(&mut self, key: u64, weight: u32, evicted: &mut Vec<u64>) -> bool {
        self.sketch.increment(key);
        self.adapt(key, weight);
        let w = u64::from(weight);
        if w > self.cap || self.a.get(key).is_some() {
            return false;
        }
        let i = self.a.alloc(key, weight, WINDOW);
        self.window.push_head(&mut self.a, i);
        self.grow_sketch();
        let before = evicted.len();
        self.evict(evicted);
        // The newcomer itself may have lost admission.
        !evicted[before..].contains(&key)
    }

    fn remove(&mut self, key: u64) -> bool {
        match self.a.get(key) {
            Some(i) => {
                match self.a.node(i).queue {
                    WINDOW => self.window.unlink(&mut self.a, i),
                    PROBATION => self.probation.unlink(&mut self.a, i),
                    _ => self.protected.unlink(&mut self.a, i),
                }
                self.a.release(i);
                true
            }
            None => false,
        }
    }
}
