use super::*;
use proptest::prelude::*;
use std::collections::{HashMap, HashSet, VecDeque};

/// A plain LRU or FIFO over unit weights: a deque, searched linearly.
fn model_hits(trace: &[u64], cap: usize, lru: bool) -> u64 {
    let mut q: VecDeque<u64> = VecDeque::new();
    let mut hits = 0;
    for &k in trace {
        if let Some(p) = q.iter().position(|&x| x == k) {
            hits += 1;
            if lru {
                q.remove(p);
                q.push_front(k);
            }
        } else {
            if q.len() == cap {
                q.pop_back();
            }
            q.push_front(k);
        }
    }
    hits
}

fn replay(kind: PolicyKind, trace: &[u64], cap: u64) -> u64 {
    let mut p = kind.build(cap, cap as usize);
    let mut ev = Vec::new();
    trace
        .iter()
        .map(|&k| {
            ev.clear();
            u64::from(p.access(k, 1, &mut ev))
        })
        .sum()
}

fn zipfish(seed: u64, n: usize, keys: u64) -> Vec<u64> {
    // A skewed trace without a dependency: the square of a uniform draw
    // favours small keys.
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let u = (x >> 11) as f64 / (1u64 << 53) as f64;
            (u * u * u * keys as f64) as u64
        })
        .collect()
}

proptest! {
    #[test]
    fn lru_and_fifo_match_a_plain_model(
        trace in proptest::collection::vec(0u64..40, 1..400),
        cap in 1u64..30,
    ) {
        prop_assert_eq!(replay(PolicyKind::Lru, &trace, cap), model_hits(&trace, cap as usize, true));
        prop_assert_eq!(replay(PolicyKind::Fifo, &trace, cap), model_hits(&trace, cap as usize, false));
    }

    /// Every policy keeps its weight within capacity, and what it says is
    /// resident is exactly what was admitted and not since evicted or
    /// removed. Hits come through handles too, some gone stale (their
    /// entry left, the node perhaps reused): those act as a lookup would.
    #[test]
    fn every_policy_keeps_its_books(
        ops in proptest::collection::vec((0u8..10, 0u64..60, 1u32..9), 1..600),
        cap in 1u64..80,
    ) {
        for kind in PolicyKind::ALL {
            let mut p = kind.build(cap, 8);
            let mut resident: HashMap<u64, u32> = HashMap::new();
            let mut handles: HashMap<u64, u32> = HashMap::new();
            let mut ev = Vec::new();
            for &(op, key, w) in &ops {
                ev.clear();
                match op {
                    0 => {
                        prop_assert_eq!(p.remove(key), resident.remove(&key).is_some());
                    }
                    _ => {
                        let hit = match handles.get(&key) {
                            Some(&h) if op < 5 => p.touch_handle(h, key),
                            _ => p.touch(key),
                        };
                        if !hit {
                            prop_assert!(!resident.contains_key(&key));
                            let admitted = p.insert(key, w, &mut ev);
                            if admitted {
                                resident.insert(key, w);
                                if let Some(h) = p.handle(key) {
                                    handles.insert(key, h);
                                }
                            }
                            for k in &ev {
                                if *k != key {
                                    prop_assert!(resident.remove(k).is_some(), "{kind}: evicted {k} was not resident");
                                } else {
                                    prop_assert!(!admitted || !p.contains(key));
                                    resident.remove(k);
                                }
                            }
                        } else {
                            prop_assert!(resident.contains_key(&key), "{kind}: hit on {key}");
                        }
                    }
                }
                prop_assert!(p.weight() <= p.capacity(), "{kind}: {} > {}", p.weight(), p.capacity());
                prop_assert_eq!(p.len(), resident.len(), "{}", kind);
                prop_assert_eq!(p.weight(), resident.values().map(|&w| u64::from(w)).sum::<u64>(), "{}", kind);
            }
        }
    }
}

#[test]
fn names_round_trip_and_unknown_names_are_refused() {
    for k in PolicyKind::ALL {
        assert_eq!(k.name().parse::<PolicyKind>(), Ok(k));
    }
    assert_eq!("W-TinyLFU".parse::<PolicyKind>(), Ok(PolicyKind::WTinyLfu));
    assert!("arc".parse::<PolicyKind>().is_err());
}

#[test]
fn oversized_items_are_refused_and_none_rejects_when_full() {
    for kind in PolicyKind::ALL {
        let mut p = kind.build(10, 4);
        let mut ev = Vec::new();
        assert!(!p.insert(1, 11, &mut ev), "{kind}");
        assert!(ev.is_empty());
    }
    let mut p = PolicyKind::NoEviction.build(2, 2);
    let mut ev = Vec::new();
    assert!(p.insert(1, 1, &mut ev) && p.insert(2, 1, &mut ev));
    assert!(!p.insert(3, 1, &mut ev));
    assert!(ev.is_empty() && p.contains(1) && p.contains(2));
}

/// S3-FIFO: a key seen once leaves through the small queue and is
/// remembered in the ghost, so its second request puts it straight into
/// main, where a burst of one-hit keys cannot push it out.
#[test]
fn s3fifo_keeps_ghosted_keys_in_main_through_a_scan() {
    let mut p = PolicyKind::S3Fifo.build(100, 100);
    let mut ev = Vec::new();
    p.access(7, 1, &mut ev);
    for k in 1000..1150 {
        p.access(k, 1, &mut ev);
    }
    assert!(!p.contains(7), "one hit and gone");
    p.access(7, 1, &mut ev); // from the ghost into main
    for k in 2000..2300 {
        p.access(k, 1, &mut ev);
    }
    assert!(
        p.contains(7),
        "a scan of one-hit keys passes through the small queue only"
    );
}

/// W-TinyLFU: a frequent key survives a scan that an LRU of the same
/// size loses it to.
#[test]
fn wtinylfu_keeps_frequent_keys_through_a_scan() {
    let mut w = PolicyKind::WTinyLfu.build(100, 100);
    let mut lru = PolicyKind::Lru.build(100, 100);
    let mut ev = Vec::new();
    for _ in 0..5 {
        for k in 0..50 {
            w.access(k, 1, &mut ev);
            lru.access(k, 1, &mut ev);
        }
    }
    for k in 10_000..10_500 {
        w.access(k, 1, &mut ev);
        lru.access(k, 1, &mut ev);
    }
    let kept = (0..50).filter(|&k| w.contains(k)).count();
    assert!(kept >= 45, "kept {kept}");
    assert_eq!((0..50).filter(|&k| lru.contains(k)).count(), 0);
}

/// The adaptive window: on a recency-only trace (each key requested twice,
/// a little apart) the window grows, so W-TinyLFU approaches LRU where a
/// 1% window would reject nearly every newcomer.
#[test]
fn wtinylfu_window_grows_on_recency_traffic() {
    let mut p = wtinylfu::WTinyLfu::new(1000, 1000);
    let mut fixed = wtinylfu::WTinyLfu::fixed(1000, 1000, 0.01);
    let mut lru = PolicyKind::Lru.build(1000, 1000);
    let mut ev = Vec::new();
    let (mut hits, mut fixed_hits, mut lru_hits) = (0u64, 0u64, 0u64);
    let mut background = zipfish(9, 400_000, 5_000_000).into_iter();
    for i in 0..200_000u64 {
        // Fresh keys seen again 150 requests later, mixed with a long
        // tail of cold background keys.
        for k in [1_000_000_000 + i, 1_000_000_000 + i.saturating_sub(50)] {
            hits += u64::from(p.access(k, 1, &mut ev));
            fixed_hits += u64::from(fixed.access(k, 1, &mut ev));
            lru_hits += u64::from(lru.access(k, 1, &mut ev));
        }
        let b = background.next().unwrap_or(0);
        p.access(b, 1, &mut ev);
        fixed.access(b, 1, &mut ev);
        lru.access(b, 1, &mut ev);
    }
    assert!(
        p.window_share() > 0.15,
        "window share {} adaptive {hits}, fixed {fixed_hits}, lru {lru_hits}",
        p.window_share()
    );
    assert!(
        hits > fixed_hits * 2,
        "adaptive {hits}, fixed {fixed_hits}, lru {lru_hits}"
    );
}

/// A loop over one key more than the cache holds: every key that leaves
/// comes back soon, from either side, and main's oldest key is always the
/// next one asked for. The window must stay small: one return must not
/// move it by more than a few entries, nor must growing it push main's
/// oldest into the window for a duel to drop, or the window ratchets up
/// towards LRU, which misses every request of a loop.
#[test]
fn wtinylfu_window_stays_small_on_a_loop() {
    let cap = 5_000u64;
    // Sized by a small guess, as L1 sizes its shards' policies for
    // weighted entries: the sketch is rebuilt as the cache fills.
    let mut p = wtinylfu::WTinyLfu::new(cap, 16);
    let mut ev = Vec::new();
    let mut hits = 0u64;
    let passes = 30;
    for pass in 0..passes {
        for k in 0..=cap {
            ev.clear();
            let hit = p.access(k, 1, &mut ev);
            if pass >= passes / 2 {
                hits += u64::from(hit);
            }
        }
    }
    let ratio = hits as f64 / ((passes / 2) as f64 * (cap + 1) as f64);
    assert!(
        ratio > 0.75,
        "hit ratio {ratio}, window {}",
        p.window_share()
    );
    assert!(p.window_share() < 0.1, "window {}", p.window_share());
}

#[test]
fn skewed_traffic_ranks_policies_as_expected() {
    let trace = zipfish(3, 200_000, 100_000);
    let cap = 1_000;
    let lru = replay(PolicyKind::Lru, &trace, cap);
    let w = replay(PolicyKind::WTinyLfu, &trace, cap);
    let s3 = replay(PolicyKind::S3Fifo, &trace, cap);
    let lfu = replay(PolicyKind::Lfu, &trace, cap);
    assert!(
        w > lru && s3 > lru && lfu > lru,
        "lru {lru} w {w} s3 {s3} lfu {lfu}"
    );
    let distinct: HashSet<_> = trace.iter().collect();
    assert!(distinct.len() > 10_000);
}

/// The same adaptation keeps the window small on frequency-heavy traffic,
/// where a large one would let one-hit keys push out the popular ones.
#[test]
fn wtinylfu_window_stays_small_on_skewed_traffic() {
    let mut p = wtinylfu::WTinyLfu::new(1000, 1000);
    let mut ev = Vec::new();
    for k in zipfish(5, 300_000, 200_000) {
        ev.clear();
        p.access(k, 1, &mut ev);
    }
    assert!(
        p.window_share() <= 0.15,
        "window share {}",
        p.window_share()
    );
}
