//! L1: a model test (it never answers with a value other than the last
//! one stored), TTLs, the Tier trait, and threads hammering it.

use proptest::prelude::*;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use strata_tiers::policy::PolicyKind;
use strata_tiers::{L1Config, L1Tier, L1Value, Put, Tier, L1};

proptest! {
    #[test]
    fn answers_only_the_last_value_stored(
        ops in proptest::collection::vec((0u8..8, 0u8..40, 0u32..1000, 1usize..40), 1..500),
        cap in 10u64..400,
        shards in 0usize..3,
        policy in 0usize..6,
    ) {
        let kind = PolicyKind::ALL[policy];
        let l1: L1<u32> = L1::new(&L1Config::new(cap).policy(kind).shards(1 << shards));
        let mut last: HashMap<u8, u32> = HashMap::new();
        for (op, key, val, weight) in ops {
            let k = [key];
            match op {
                0 => {
                    l1.remove(&k);
                    last.remove(&key);
                }
                1..=3 => {
                    l1.insert(&k, val, weight, None);
                    last.insert(key, val);
                }
                _ => {
                    if let Some(v) = l1.get(&k) {
                        prop_assert_eq!(Some(&v), last.get(&key), "{} key {}", kind, key);
                    }
                }
            }
            let s = l1.stats();
            prop_assert!(s.weight <= s.capacity, "{}: {} > {}", kind, s.weight, s.capacity);
            prop_assert_eq!(s.entries as usize, l1.len());
        }
    }
}

#[test]
fn a_value_that_fits_is_found_until_evicted() {
    let l1: L1<Vec<u8>> = L1::new(&L1Config::new(1 << 20));
    assert!(l1.insert(b"a", b"one".to_vec(), 100, None));
    assert_eq!(l1.get(b"a").as_deref(), Some(&b"one"[..]));
    assert!(l1.insert(b"a", b"two".to_vec(), 100, None));
    assert_eq!(l1.get(b"a").as_deref(), Some(&b"two"[..]));
    assert!(l1.remove(b"a"));
    assert_eq!(l1.get(b"a"), None);
    // Heavier than the whole cache: refused, and an older value dropped.
    assert!(l1.insert(b"b", b"x".to_vec(), 10, None));
    assert!(!l1.insert(b"b", b"y".to_vec(), 2 << 20, None));
    assert_eq!(l1.get(b"b"), None);
    let s = l1.stats();
    assert!(s.hits == 2 && s.misses == 2 && s.rejections == 1, "{s:?}");
}

#[test]
fn entries_expire() {
    let l1: L1<u8> = L1::new(&L1Config::new(1 << 20));
    l1.insert(b"short", 1, 10, Some(Duration::from_millis(30)));
    l1.insert(b"long", 2, 10, Some(Duration::from_secs(60)));
    l1.insert(b"forever", 3, 10, None);
    let (_, ttl) = l1.get_with_ttl(b"long").expect("present");
    assert!(ttl.is_some_and(|t| t > Duration::from_secs(50)));
    assert!(l1.set_ttl(b"forever", Some(Duration::from_millis(30))));
    std::thread::sleep(Duration::from_millis(60));
    assert_eq!(l1.get(b"short"), None);
    assert_eq!(l1.get(b"forever"), None);
    assert_eq!(l1.get(b"long"), Some(2));
    assert!(!l1.set_ttl(b"short", None));
    assert_eq!(l1.stats().expirations, 2);
}

#[test]
fn the_tier_trait_round_trips_values_tags_and_ttls() {
    let t = L1Tier::new(&L1Config::new(1 << 20)).expect("l1");
    assert!(L1Tier::new(&L1Config::new(0)).is_err());
    t.put_many(&[
        Put {
            key: b"k1",
            value: b"v1",
            tag: None,
            ttl: None,
        },
        Put {
            key: b"k2",
            value: b"v2",
            tag: None,
            ttl: Some(Duration::from_secs(100)),
        },
    ])
    .expect("put");
    let got = t.get_many(&[b"k1", b"k2", b"k3"]).expect("get");
    assert_eq!(got[0].as_ref().map(|f| &f.value[..]), Some(&b"v1"[..]));
    assert!(got[1].as_ref().is_some_and(|f| f.ttl.is_some()));
    assert!(got[2].is_none());
    assert_eq!(
        t.expire_many(&[b"k1", b"k3"], Some(Duration::from_secs(5)))
            .expect("expire"),
        1
    );
    assert_eq!(t.delete_many(&[b"k1", b"k3"]).expect("delete"), 1);
    assert!(matches!(
        t.incr(b"n"),
        Err(strata_tiers::Error::Unsupported { .. })
    ));
    let s = t.stats();
    assert_eq!((s.hits, s.misses), (2, 1));
    t.insert(
        b"shared",
        L1Value::from_bytes(Arc::from(&b"zero-copy"[..]), None),
        None,
    );
    let (v, _) = t.get_shared(b"shared").expect("present");
    assert_eq!(&v.bytes[..], b"zero-copy");
}

/// Threads reading and writing overlapping keys: every value found is
/// one some thread stored under that key, and the books balance.
#[test]
fn threads_never_see_a_value_under_the_wrong_key() {
    for kind in [PolicyKind::WTinyLfu, PolicyKind::S3Fifo, PolicyKind::Lru] {
        let l1: Arc<L1<(u64, u64)>> =
            Arc::new(L1::new(&L1Config::new(64 << 10).policy(kind).shards(4)));
        let handles: Vec<_> = (0..4u64)
            .map(|t| {
                let l1 = l1.clone();
                std::thread::spawn(move || {
                    let mut x = t + 1;
                    for i in 0..50_000u64 {
                        x = x
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        let k = (x >> 33) % 2000;
                        let key = k.to_le_bytes();
                        if i % 3 == 0 {
                            l1.insert(&key, (k, t), 64, None);
                        } else if let Some((got, _)) = l1.get(&key) {
                            assert_eq!(got, k);
                        }
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().expect("thread");
        }
        let s = l1.stats();
        assert!(s.weight <= s.capacity && s.entries > 0, "{kind}: {s:?}");
        assert_eq!(s.hits + s.misses, 4 * 50_000 - 4 * 16_667);
    }
}
