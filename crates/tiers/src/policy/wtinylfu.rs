//! W-TinyLFU (Einziger et al.) with an adaptive window, after Caffeine.
//!
//! Newcomers enter an LRU window. A key pushed out of the window must be
//! more frequent, by the frequency sketch, than main's victim to take its
//! place; main is a segmented LRU (probation, then protected after a
//! hit). The window's share of the capacity is tuned by hill climbing:
//! every sample period the hit ratio is compared with the last one, and
//! the window keeps moving in the direction that raised it, by a step that
//! shrinks while the ratio settles and restarts when it jumps. Recency-
//! heavy traffic grows the window towards LRU; frequency-heavy traffic
//! shrinks it towards pure TinyLFU.

use super::list::{Arena, List, NIL};
use super::sketch::Sketch;
use super::{Policy, PolicyKind};

const WINDOW: u8 = 0;
const PROBATION: u8 = 1;
const PROTECTED: u8 = 2;

/// The window's starting share, and the protected segment's share of main.
const WINDOW_START: f64 = 0.01;
const PROTECTED_SHARE: f64 = 0.8;
/// Hill climbing: the step as a share of the capacity, its decay per
/// sample while the hit ratio settles, and the change in hit ratio that
/// restarts it at full size.
const STEP: f64 = 0.0625;
const STEP_DECAY: f64 = 0.98;
const RESTART: f64 = 0.05;

pub(crate) struct WTinyLfu {
    a: Arena,
    window: List,
    probation: List,
    protected: List,
    cap: u64,
    window_cap: u64,
    sketch: Sketch,
    adaptive: bool,
    /// Whether the cache has filled once: climbing starts then.
    warm: bool,
    hits: u64,
    samples: u64,
    last_ratio: f64,
    step: f64,
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
            warm: false,
            hits: 0,
            samples: 0,
            last_ratio: 0.0,
            step: STEP * cap as f64,
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
        match self.a.node(i).queue {
            WINDOW => self.window.unlink(&mut self.a, i),
            PROBATION => self.probation.unlink(&mut self.a, i),
            _ => self.protected.unlink(&mut self.a, i),
        }
        evicted.push(self.a.release(i).key);
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
                evicted.push(self.a.release(c).key);
            }
            self.warm = true;
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
            self.warm = true;
        }
    }

    fn climb(&mut self, hit: bool) {
        if !self.adaptive || !self.warm {
            return;
        }
        self.samples += 1;
        self.hits += u64::from(hit);
        let period = 10 * (self.a.len() as u64).max(64);
        if self.samples < period {
            return;
        }
        let ratio = self.hits as f64 / self.samples as f64;
        let change = ratio - self.last_ratio;
        let amount = if change >= 0.0 { self.step } else { -self.step };
        self.step = if change.abs() >= RESTART {
            STEP * self.cap as f64 * amount.signum()
        } else {
            STEP_DECAY * amount
        };
        self.last_ratio = ratio;
        self.hits = 0;
        self.samples = 0;
        let target = (self.window_cap as f64 + amount).clamp(0.0, self.cap as f64) as u64;
        self.resize_window(target);
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
        self.climb(true);
        true
    }

    fn insert(&mut self, key: u64, weight: u32, evicted: &mut Vec<u64>) -> bool {
        self.sketch.increment(key);
        self.climb(false);
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
