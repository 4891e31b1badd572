//! W-TinyLFU (Einziger et al.) with an adaptive window.
//!
//! Newcomers enter an LRU window. A key pushed out of the window must be
//! more frequent, by the frequency sketch, than main's victim to take its
//! place; main is a segmented LRU (probation, then protected after a
//! hit).
//!
//! The window's share of the capacity moves by ghosts, as L0's does
//! (`window.rs`): a key a duel let go that comes back soon moves the
//! share one entry's weight towards the side it left. (A mini-simulation
//! of sampled keys through shadow caches at fixed shares came first: it
//! left the suite's shifting hot set at 1% 6.7 points below ARC, where
//! ghosts leave it 4.8 below. Hill climbing on the sampled hit ratio
//! wandered on traces whose hit ratio swings by phase.)

use super::list::{arena_touch, Arena, List, NIL};
use super::sketch::Sketch;
use super::window::GhostWindow;
use super::{Policy, PolicyKind};

const WINDOW: u8 = 0;
const PROBATION: u8 = 1;
const PROTECTED: u8 = 2;

/// The window's starting share, and the protected segment's share of main.
const WINDOW_START: f64 = 0.01;
const PROTECTED_SHARE: f64 = 0.8;
/// The window never takes more than this share of the capacity.
const MAX_WINDOW: f64 = 1000.0 / 1024.0;

pub(crate) struct WTinyLfu {
    a: Arena,
    window: List,
    probation: List,
    protected: List,
    cap: u64,
    sketch: Sketch,
    /// The window's target weight, moved in fractions of an entry; its
    /// whole part is the window's capacity (`window_cap`).
    window_target: f64,
    /// The ghosts that move the window, if it adapts.
    ghosts: Option<GhostWindow>,
}

impl WTinyLfu {
    /// An adaptive W-TinyLFU.
    pub fn new(cap: u64, entries: usize) -> Self {
        let mut w = WTinyLfu::fixed(cap, entries, WINDOW_START);
        w.ghosts = Some(GhostWindow::new(entries));
        w
    }

    /// A W-TinyLFU whose window keeps `share` of the capacity.
    pub fn fixed(cap: u64, entries: usize, share: f64) -> Self {
        WTinyLfu {
            a: Arena::with_capacity(entries),
            window: List::default(),
            probation: List::default(),
            protected: List::default(),
            cap,
            sketch: Sketch::new(entries),
            window_target: (cap as f64 * share).round(),
            ghosts: None,
        }
    }

    /// The window's current share of the capacity, for tests and stats.
    #[cfg(test)]
    pub fn window_share(&self) -> f64 {
        self.window_cap() as f64 / self.cap.max(1) as f64
    }

    fn total(&self) -> u64 {
        self.window.weight + self.probation.weight + self.protected.weight
    }

    fn protected_cap(&self) -> u64 {
        ((self.cap - self.window_cap()) as f64 * PROTECTED_SHARE) as u64
    }

    /// The sketch and the ghost table are sized by the entries held: a
    /// weighted cache learns how many it holds as it fills.
    fn grow_tables(&mut self) {
        if self.a.len() > self.sketch.width() && self.sketch.width() < (1 << 26) {
            self.sketch = Sketch::new(self.a.len() * 2);
        }
        if let Some(g) = self.ghosts.as_mut() {
            if self.a.len() > g.slots() && g.slots() < (1 << 26) {
                g.grow(self.a.len() * 2);
            }
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

    fn unlink(&mut self, i: u32) {
        match self.a.node(i).queue {
            WINDOW => self.window.unlink(&mut self.a, i),
            PROBATION => self.probation.unlink(&mut self.a, i),
            _ => self.protected.unlink(&mut self.a, i),
        }
    }

    fn evict_node(&mut self, i: u32, evicted: &mut Vec<u64>) {
        self.unlink(i);
        evicted.push(self.a.release(i).key);
    }

    /// Moves the window's overflow into main, each candidate against
    /// main's victim while the cache is over capacity.
    fn evict(&mut self, evicted: &mut Vec<u64>) {
        while self.window.weight > self.window_cap() {
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
                    self.note_ghost(self.a.node(v).key, false);
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
                self.note_ghost(key, true);
                evicted.push(key);
            }
        }
        // Over capacity with the window within its share: main is over
        // its own, as after the window grew. Main's victims go without a
        // duel, but as ghosts: had main kept its share, they would have
        // stayed, and their returns pull the window back.
        while self.total() > self.cap {
            match self.main_victim() {
                NIL => match self.window.tail {
                    NIL => break,
                    t => self.evict_node(t, evicted),
                },
                v => {
                    self.note_ghost(self.a.node(v).key, false);
                    self.evict_node(v, evicted);
                }
            }
        }
    }

    fn note_ghost(&mut self, key: u64, from_window: bool) {
        let entries = self.a.len();
        if let Some(g) = self.ghosts.as_mut() {
            g.note(key, from_window, entries);
        }
    }

    /// A new key of `weight`: if a duel let it go lately, the window moves
    /// towards the side it left.
    fn check_ghost(&mut self, key: u64, weight: u32) {
        let entries = self.a.len();
        let Some(ret) = self.ghosts.as_mut().and_then(|g| g.check(key, entries)) else {
            return;
        };
        let step = f64::from(weight) * ret.weight;
        // At least one entry's weight: an empty window lets no one go,
        // and could then never grow again.
        let least = (self.total() as f64 / entries.max(1) as f64).max(1.0);
        let most = self.cap as f64 * MAX_WINDOW;
        let before = self.window_cap();
        self.window_target = if ret.from_window {
            (self.window_target + step).min(most)
        } else {
            (self.window_target - step).max(least)
        };
        if self.window_cap() != before {
            self.resize_window();
        }
    }

    /// A hit on node `i`, which holds `key`.
    fn touch_node(&mut self, i: u32, key: u64) {
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
    }

    /// The window's capacity in weight.
    fn window_cap(&self) -> u64 {
        (self.window_target as u64).min(self.cap)
    }

    fn resize_window(&mut self) {
        // A smaller window hands its oldest keys to probation. A larger
        // one takes nothing from main: main's victims go without a duel
        // as newcomers fill the window (`evict`). Moved into the window,
        // main's oldest would be the next duel's losers, noted as window
        // ghosts: on a loop, where main's oldest key is the next one
        // asked for, their quick returns would grow the window further.
        while self.window.weight > self.window_cap() {
            let Some(t) = self.window.pop_tail(&mut self.a) else {
                break;
            };
            self.a.node_mut(t).queue = PROBATION;
            self.probation.push_head(&mut self.a, t);
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

    arena_touch!();

    fn insert(&mut self, key: u64, weight: u32, evicted: &mut Vec<u64>) -> bool {
        self.sketch.increment(key);
        let w = u64::from(weight);
        if w > self.cap || self.a.get(key).is_some() {
            return false;
        }
        self.check_ghost(key, weight);
        let i = self.a.alloc(key, weight, WINDOW);
        self.window.push_head(&mut self.a, i);
        self.grow_tables();
        let before = evicted.len();
        self.evict(evicted);
        // The newcomer itself may have lost admission.
        !evicted[before..].contains(&key)
    }

    fn remove(&mut self, key: u64) -> bool {
        match self.a.get(key) {
            Some(i) => {
                self.unlink(i);
                self.a.release(i);
                true
            }
            None => false,
        }
    }
}
