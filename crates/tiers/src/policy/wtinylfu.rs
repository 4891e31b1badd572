//! W-TinyLFU (Einziger et al.) with an adaptive window.
//!
//! Newcomers enter an LRU window. A key pushed out of the window must be
//! more frequent, by the frequency sketch, than main's victim to take its
//! place; main is a segmented LRU (probation, then protected after a
//! hit).
//!
//! The window's share of the capacity is chosen by simulation, in the
//! manner of Caffeine's "mini-sim": a spatial sample of the keys (a fixed
//! share, by hash) is replayed through small shadow caches, each with a
//! fixed window share from pure TinyLFU to pure LRU; every period the
//! cache takes the share of the shadow that hit most lately. Recency-
//! heavy traffic thus moves the window towards LRU and frequency-heavy
//! traffic towards TinyLFU, and since every shadow sees the same phases
//! of the traffic, a shift in the hit ratio from one phase to the next
//! does not mislead it. (Hill climbing on the sampled hit ratio and ARC-
//! style ghost lists were tried first: the one wandered on traces whose
//! hit ratio swings by phase, 3 points below LRU on cache2k orm-busy; the
//! other grew the window on Zipf traffic, 8 points below LRU at 1%.)

use super::list::{Arena, List, NIL};
use super::sketch::Sketch;
use super::{Policy, PolicyKind};

const WINDOW: u8 = 0;
const PROBATION: u8 = 1;
const PROTECTED: u8 = 2;

/// The window's starting share, and the protected segment's share of main.
const WINDOW_START: f64 = 0.01;
const PROTECTED_SHARE: f64 = 0.8;
/// The window shares the shadows try.
const SHARES: [f64; 8] = [0.0, 0.01, 0.05, 0.15, 0.3, 0.5, 0.75, 1.0];
/// The shadows aim at this many entries each: enough to behave like the
/// cache, few enough to be cheap.
const SHADOW_ENTRIES: f64 = 512.0;
/// The most and least of the keys sampled.
const MAX_SAMPLE: f64 = 1.0;
const MIN_SAMPLE: f64 = 1.0 / 64.0;

pub(crate) struct WTinyLfu {
    a: Arena,
    window: List,
    probation: List,
    protected: List,
    cap: u64,
    window_cap: u64,
    sketch: Sketch,
    /// Whether the window adapts; its shadows are built when the cache
    /// first fills, when it knows how many entries it holds.
    adaptive: bool,
    sim: Option<Box<MiniSim>>,
}

/// The shadows, with their recent hits.
struct MiniSim {
    shadows: Vec<WTinyLfu>,
    /// Hits of each shadow, halved every period so recent ones count most.
    score: Vec<f64>,
    hits: Vec<u64>,
    /// Keys whose sample bucket (of 2^16) is below this are replayed.
    threshold: u64,
    accesses: u64,
    period: u64,
    evicted: Vec<u64>,
}

impl MiniSim {
    fn new(cap: u64, entries: usize) -> Self {
        let rate = (SHADOW_ENTRIES / entries.max(1) as f64).clamp(MIN_SAMPLE, MAX_SAMPLE);
        let shadow_cap = ((cap as f64 * rate).round() as u64).max(1);
        let shadow_entries = ((entries as f64 * rate) as usize).max(16);
        MiniSim {
            shadows: SHARES
                .iter()
                .map(|&s| WTinyLfu::fixed(shadow_cap, shadow_entries, s))
                .collect(),
            score: vec![0.0; SHARES.len()],
            hits: vec![0; SHARES.len()],
            threshold: (rate * 65536.0).round() as u64,
            accesses: 0,
            period: (10 * shadow_entries as u64).max(4096),
            evicted: Vec::new(),
        }
    }

    /// Replays one access if the key is in the sample; when a period
    /// ends, the share of the best shadow.
    fn access(&mut self, key: u64, weight: u32) -> Option<f64> {
        let h = key.wrapping_mul(0xD6E8_FEB8_6659_FD93);
        if (h >> 48) >= self.threshold {
            return None;
        }
        for (i, s) in self.shadows.iter_mut().enumerate() {
            self.evicted.clear();
            self.hits[i] += u64::from(s.access(key, weight, &mut self.evicted));
        }
        self.accesses += 1;
        if self.accesses < self.period {
            return None;
        }
        self.accesses = 0;
        for (score, hits) in self.score.iter_mut().zip(self.hits.iter_mut()) {
            *score = *score / 2.0 + *hits as f64;
            *hits = 0;
        }
        // Ties go to the smaller window (earlier in SHARES).
        let best =
            (0..SHARES.len()).fold(0, |b, i| if self.score[i] > self.score[b] { i } else { b });
        Some(SHARES[best])
    }
}

impl WTinyLfu {
    /// An adaptive W-TinyLFU.
    pub fn new(cap: u64, entries: usize) -> Self {
        let mut w = WTinyLfu::fixed(cap, entries, WINDOW_START);
        w.adaptive = true;
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
            window_cap: ((cap as f64 * share).round() as u64).min(cap),
            sketch: Sketch::new(entries),
            adaptive: false,
            sim: None,
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
        }
        if self.adaptive && self.sim.is_none() && !evicted.is_empty() {
            self.sim = Some(Box::new(MiniSim::new(self.cap, self.a.len())));
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

    fn simulate(&mut self, key: u64, weight: u32) {
        let share = match self.sim.as_mut() {
            Some(sim) => sim.access(key, weight),
            None => None,
        };
        if let Some(share) = share {
            let target = ((self.cap as f64 * share).round() as u64).min(self.cap);
            self.resize_window(target);
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
            self.unlink(v);
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
        let w = self.a.node(i).weight;
        self.simulate(key, w);
        true
    }

    fn insert(&mut self, key: u64, weight: u32, evicted: &mut Vec<u64>) -> bool {
        self.sketch.increment(key);
        self.simulate(key, weight);
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
                self.unlink(i);
                self.a.release(i);
                true
            }
            None => false,
        }
    }
}
