//! Model checks of the concurrent protocols with loom, running the real
//! protocol code (epochs, slots, pins, the shard lock, publication, index
//! entries) over a
//! loom-backed implementation of the memory trait.

use loom::sync::atomic::{fence, AtomicU64};
use loom::sync::Arc;
use loom::thread;
use std::sync::atomic::Ordering::{self, Acquire, Relaxed, Release};
use std::time::Duration;
use strata_shm::entry::{self, Fields};
use strata_shm::epoch::Epochs;
use strata_shm::liveness::Liveness;
use strata_shm::lock::{Acquired, ShardLock};
use strata_shm::mem::Words;
use strata_shm::pins::PinPages;
use strata_shm::slots::Slots;

#[derive(Clone)]
struct LoomWords(Arc<Vec<AtomicU64>>);

impl LoomWords {
    fn new(words: usize) -> Self {
        LoomWords(Arc::new((0..words).map(|_| AtomicU64::new(0)).collect()))
    }
    fn w(&self, off: u64) -> &AtomicU64 {
        &self.0[(off / 8) as usize]
    }
}

impl Words for LoomWords {
    fn load(&self, off: u64, o: Ordering) -> u64 {
        self.w(off).load(o)
    }
    fn store(&self, off: u64, v: u64, o: Ordering) {
        self.w(off).store(v, o)
    }
    fn compare_exchange(&self, off: u64, c: u64, n: u64) -> Result<u64, u64> {
        self.w(off)
            .compare_exchange(c, n, Ordering::SeqCst, Ordering::SeqCst)
    }
    fn fetch_add(&self, off: u64, v: u64, o: Ordering) -> u64 {
        self.w(off).fetch_add(v, o)
    }
    fn fence(&self, o: Ordering) {
        fence(o)
    }
    fn spin(&self) {
        thread::yield_now()
    }
    fn wait(&self, _off: u64, _e: u32, _t: Duration) {
        thread::yield_now()
    }
    fn wake_all(&self, _off: u64) {}
}

/// Kernel byte locks, modelled: each byte holds its owner's id (0 = free).
#[derive(Clone)]
struct LoomLocks {
    table: Arc<Vec<AtomicU64>>,
    me: u64,
}

impl LoomLocks {
    fn table(bytes: usize) -> Arc<Vec<AtomicU64>> {
        Arc::new((0..bytes).map(|_| AtomicU64::new(0)).collect())
    }
    fn idx(byte: u64) -> usize {
        (byte & 0xFF) as usize
    }
}

impl Liveness for LoomLocks {
    fn try_lock(&self, byte: u64) -> bool {
        let l = &self.table[Self::idx(byte)];
        match l.compare_exchange(0, self.me, Ordering::SeqCst, Ordering::SeqCst) {
            Ok(_) => true,
            Err(cur) => cur == self.me,
        }
    }
    fn unlock(&self, byte: u64) {
        let _ = self.table[Self::idx(byte)].compare_exchange(
            self.me,
            0,
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
    }
    fn held_by_other(&self, byte: u64) -> bool {
        let v = self.table[Self::idx(byte)].load(Ordering::SeqCst);
        v != 0 && v != self.me
    }
}

// A small shared layout: global epoch, two slots' epoch words, the slot
// high-water mark, an index word, a "freed" flag per block, a pin entry.
const GLOBAL: u64 = 0;
const SLOT0: u64 = 8;
const HIGH: u64 = 24;
const INDEX: u64 = 32;
const FREED: u64 = 40; // + 8 * block
const PIN: u64 = 64;

fn epochs() -> Epochs {
    Epochs {
        global: GLOBAL,
        first_slot_epoch: SLOT0,
        slot_stride: 8,
        high_water: HIGH,
    }
}

/// The writer of the reclamation tests: publish block 2 over block 1,
/// retire block 1, advance, and free it if the epoch rule (and `unpinned`)
/// allows.
fn replace_and_reclaim(w: &LoomWords, e: Epochs, unpinned: impl Fn(&LoomWords) -> bool) {
    w.store(INDEX, 2, Release);
    let retired = e.retire_epoch(w, 1);
    for _ in 0..3 {
        let _ = e.try_advance(w);
    }
    if e.is_safe(e.current(w), retired) && unpinned(w) {
        w.store(FREED + 8, 1, Release);
    }
}

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b.check(f);
}

/// Pin vs retire vs advance: a block a pinned reader found is never freed
/// before it unpins.
#[test]
fn pin_retire_advance() {
    model(|| {
        let w = LoomWords::new(16);
        w.store(HIGH, 2, Relaxed);
        w.store(INDEX, 1, Relaxed);
        let e = epochs();
        let r = w.clone();
        let reader = thread::spawn(move || {
            e.pin(&r, 0);
            let block = r.load(INDEX, Acquire);
            assert_eq!(r.load(FREED + 8 * block, Acquire), 0, "read a freed block");
            e.unpin(&r, 0);
        });
        replace_and_reclaim(&w, e, |_| true);
        reader.join().unwrap();
    });
}

/// Pin publish vs the reclaim scan: a block named by a pin entry published
/// inside the epoch is never freed, even after the reader unpins.
#[test]
fn pin_publish_vs_reclaim_scan() {
    model(|| {
        let w = LoomWords::new(16);
        w.store(HIGH, 2, Relaxed);
        w.store(INDEX, 1, Relaxed);
        let e = epochs();
        let pins = PinPages {
            first: PIN - 16,
            count: 0,
            high_water: HIGH,
            generation: HIGH,
        };
        let r = w.clone();
        let reader = thread::spawn(move || {
            e.pin(&r, 0);
            let block = r.load(INDEX, Acquire);
            pins.publish(&r, PIN, block);
            e.unpin(&r, 0);
            assert_eq!(
                r.load(FREED + 8 * block, Acquire),
                0,
                "a pinned block was freed"
            );
            pins.clear(&r, PIN);
        });
        replace_and_reclaim(&w, e, |w| w.load(PIN, Ordering::SeqCst) != 1);
        reader.join().unwrap();
    });
}

fn slots() -> Slots {
    Slots {
        first: 0,
        stride: 64,
        count: 1,
        generation: 64,
        high_water: 72,
        folded_hits: 80,
        folded_misses: 88,
    }
}

/// Claim vs reap: a slot claimed while a reaper looks at its dead previous
/// owner keeps its new owner.
#[test]
fn claim_vs_reap() {
    model(|| {
        let w = LoomWords::new(16);
        let locks = LoomLocks::table(4);
        let s = slots();
        // A process claimed slot 0 and died: its kernel lock is gone.
        let dead = LoomLocks {
            table: locks.clone(),
            me: 1,
        };
        let (_, _) = s.claim(&w, &dead, 10).unwrap();
        dead.unlock(strata_shm::layout::SLOT_LOCK_BASE);
        let (w2, l2) = (w.clone(), locks.clone());
        let claimer = thread::spawn(move || s.claim(&w2, &LoomLocks { table: l2, me: 2 }, 20));
        let reaper = LoomLocks {
            table: locks,
            me: 3,
        };
        s.reap(&w, &reaper, 0, u64::MAX);
        if let Some((idx, token)) = claimer.join().unwrap() {
            assert_eq!(idx, 0);
            assert_eq!(
                w.load(s.off(0), Acquire),
                token,
                "the reaper clobbered a live claim"
            );
        }
    });
}

/// Lock takeover vs a late unlock: the old owner's unlock never releases
/// the lock of whoever took it over.
#[test]
fn lock_takeover_vs_late_unlock() {
    model(|| {
        let w = LoomWords::new(8);
        let lock = ShardLock {
            word: 0,
            seq: 8,
            waiters: 16,
            spins: 1,
        };
        let (old, new) = ((1 << 16) | 1, (2 << 16) | 2);
        assert_eq!(lock.lock(&w, old, |_| true), Acquired::Clean);
        let w2 = w.clone();
        // The old owner is judged dead (its slot was reaped) but still runs.
        let late = thread::spawn(move || lock.unlock(&w2, old));
        let got = lock.lock(&w, new, |t| t != old);
        let _ = late.join().unwrap();
        assert!(matches!(got, Acquired::Clean | Acquired::FromDead(_)));
        assert_eq!(
            lock.holder(&w),
            new,
            "a late unlock released the new owner's lock"
        );
    });
}

/// Slab reassignment across shards: two writers, each holding its own
/// shard's lock, try each other's at once. Neither waits (so they cannot
/// deadlock), and a shard is never entered by both: what one writes under
/// a lock, the other reads back unchanged under the same lock.
#[test]
fn cross_shard_try_lock_never_waits_nor_shares() {
    model(|| {
        let w = LoomWords::new(16);
        let lock = |base: u64| ShardLock {
            word: base,
            seq: base + 8,
            waiters: base + 16,
            spins: 1,
        };
        let (a, b) = (lock(0), lock(32));
        // A word of data per shard, written only under its lock.
        let (data_a, data_b) = (64, 72);
        let writer = |w: LoomWords, own: ShardLock, other: ShardLock, mine: u64, theirs: u64| {
            let token = own.word + 1;
            assert_eq!(own.lock(&w, token, |_| true), Acquired::Clean);
            w.store(mine, token, Relaxed);
            if let Some(got) = other.try_lock(&w, token, |_| true) {
                assert_eq!(got, Acquired::Clean);
                w.store(theirs, token, Relaxed);
                assert_eq!(w.load(theirs, Relaxed), token);
                assert!(other.unlock(&w, token));
            }
            // Nobody entered this shard while it was held.
            assert_eq!(w.load(mine, Relaxed), token);
            assert!(own.unlock(&w, token));
        };
        let w2 = w.clone();
        let t = thread::spawn(move || writer(w2, b, a, data_b, data_a));
        writer(w.clone(), a, b, data_a, data_b);
        t.join().unwrap();
        assert_eq!(a.holder(&w), 0);
        assert_eq!(b.holder(&w), 0);
    });
}

/// Put vs get on one index slot: a reader that sees the published word
/// sees the sealed block and all of its bytes.
#[test]
fn put_vs_get_on_one_slot() {
    model(|| {
        let w = LoomWords::new(8);
        let (state, data0, data1) = (8, 16, 24);
        let r = w.clone();
        let reader = thread::spawn(move || {
            let word = r.load(INDEX, Acquire);
            if word != 0 {
                assert_eq!(r.load(state, Acquire), 2, "published before sealed");
                assert_eq!(
                    (r.load(data0, Relaxed), r.load(data1, Relaxed)),
                    (7, 9),
                    "torn"
                );
            }
        });
        w.store(data0, 7, Relaxed);
        w.store(data1, 9, Relaxed);
        w.store(state, 2, Release); // sealed
        w.store(INDEX, 1, Release); // the commit point
        reader.join().unwrap();
    });
}

// An index slot word at 0 and its entry at 64 (see `strata_shm::entry`).
const ENTRY_SLOT: u64 = 0;
const ENTRY: u64 = 64;
const WORD_A: u64 = 1 | (7 << 48);
const WORD_B: u64 = 2 | (7 << 48);

fn fields_a() -> Fields {
    Fields::new(0xA, b"key-a", b"tag-a", 10, 0)
}
fn fields_b() -> Fields {
    Fields::new(0xB, b"b", b"", 20, 5)
}

/// A reader of the slot: whatever it trusts matches the word it read.
/// An empty slot (word 0) is skipped, as lookups do.
fn read_entry(w: &LoomWords) {
    let word = w.load(ENTRY_SLOT, Acquire);
    if word == 0 {
        return;
    }
    if let Some(f) = entry::read(w, ENTRY_SLOT, ENTRY, word) {
        let want = match word {
            WORD_A => fields_a(),
            WORD_B => fields_b(),
            other => panic!("trusted an entry under word {other:#x}"),
        };
        assert_eq!(f, want, "a torn entry was trusted");
    }
}

/// Relink vs read of one entry: a reader trusts an entry only whole, and
/// only with the word it belongs to, while a writer relinks the slot in
/// place (an update) or after clearing it (an eviction then a new key).
#[test]
fn relink_vs_read_of_one_entry() {
    for clear_first in [false, true] {
        model(move || {
            let w = LoomWords::new(16);
            entry::link(&w, ENTRY_SLOT, ENTRY, WORD_A, &fields_a(), 0);
            let r = w.clone();
            let reader = thread::spawn(move || read_entry(&r));
            if clear_first {
                assert!(w.compare_exchange(ENTRY_SLOT, WORD_A, 0).is_ok());
            }
            entry::link(&w, ENTRY_SLOT, ENTRY, WORD_B, &fields_b(), 0);
            reader.join().unwrap();
        });
    }
}

/// An expiry change vs a read: the new expiry comes only with the new
/// version of the word.
#[test]
fn expiry_change_vs_read_of_one_entry() {
    model(|| {
        let w = LoomWords::new(16);
        entry::link(&w, ENTRY_SLOT, ENTRY, WORD_A, &fields_a(), 0);
        let next = entry::next_version(WORD_A);
        let r = w.clone();
        let reader = thread::spawn(move || {
            let word = r.load(ENTRY_SLOT, Acquire);
            if let Some(f) = entry::read(&r, ENTRY_SLOT, ENTRY, word) {
                let want = if word == WORD_A { 0 } else { 99 };
                assert_eq!(f.expiry, want, "expiry and word disagree");
            }
        });
        entry::begin(&w, ENTRY_SLOT);
        entry::write_expiry(&w, ENTRY, 99);
        entry::publish(&w, ENTRY_SLOT, next);
        reader.join().unwrap();
    });
}
