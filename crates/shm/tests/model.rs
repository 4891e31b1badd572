//! Random sequences of operations against a plain HashMap model, with a
//! manual clock for TTLs. After every sequence the fsck must be clean.

mod common;
use common::{ShmDir, MIB};
use proptest::prelude::*;
use std::collections::HashMap;
use std::time::Duration;
use strata_shm::{Clock, PutIf, PutOptions, Segment};

#[derive(Clone, Debug)]
enum Op {
    Put {
        key: u8,
        len: usize,
        fill: u8,
        ttl: Option<u64>,
    },
    Get(u8),
    Delete(u8),
    Expire(u8, u64),
    Persist(u8),
    Tick(u64),
    Maintain,
    PutIfAbsent(u8, u8),
    PutIfPresent(u8, u8),
    Incr(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..24, prop_oneof![0usize..100, 100usize..5000, Just(1024), Just(4096), 7168usize..8193, Just(1 << 20), Just((1 << 20) + 100)], any::<u8>(), proptest::option::of(1u64..40))
            .prop_map(|(key, len, fill, ttl)| Op::Put { key, len, fill, ttl }),
        4 => (0u8..24).prop_map(Op::Get),
        1 => (0u8..24).prop_map(Op::Delete),
        1 => (0u8..24, 1u64..40).prop_map(|(k, t)| Op::Expire(k, t)),
        1 => (0u8..24).prop_map(Op::Persist),
        2 => (0u64..30).prop_map(Op::Tick),
        1 => Just(Op::Maintain),
        1 => (0u8..24, any::<u8>()).prop_map(|(k, f)| Op::PutIfAbsent(k, f)),
        1 => (0u8..24, any::<u8>()).prop_map(|(k, f)| Op::PutIfPresent(k, f)),
        1 => (0u8..24).prop_map(Op::Incr),
    ]
}

struct Model {
    now: u64,
    map: HashMap<u8, (Vec<u8>, Option<u64>)>,
}

impl Model {
    fn live(&self, k: u8) -> Option<&(Vec<u8>, Option<u64>)> {
        self.map
            .get(&k)
            .filter(|(_, exp)| exp.is_none_or(|e| e > self.now))
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn behaves_like_a_hashmap(ops in proptest::collection::vec(op(), 1..120)) {
        let dir = ShmDir::new("model");
        let clock = Clock::manual(1_000_000);
        let seg = Segment::create("m", &dir.opts(64 * MIB).clock(clock.clone())).unwrap();
        let mut m = Model { now: 1_000_000, map: HashMap::new() };
        for op in ops {
            let key = |k: u8| model_key(k);
            match op {
                Op::Put { key: k, len, fill, ttl } => {
                    let v = vec![fill; len];
                    let mut o = PutOptions::default();
                    if let Some(t) = ttl { o = o.ttl(Duration::from_millis(t)); }
                    seg.put(&key(k), &v, &o).unwrap();
                    m.map.insert(k, (v, ttl.map(|t| m.now + t)));
                }
                Op::Get(k) => {
                    let got = seg.get(&key(k)).unwrap().map(|g| g.to_vec());
                    prop_assert_eq!(got.as_ref(), m.live(k).map(|(v, _)| v));
                }
                Op::Delete(k) => {
                    let existed = seg.delete(&key(k)).unwrap();
                    prop_assert_eq!(existed, m.live(k).is_some());
                    m.map.remove(&k);
                }
                Op::Expire(k, t) => {
                    let ok = seg.expire(&key(k), Duration::from_millis(t)).unwrap();
                    prop_assert_eq!(ok, m.live(k).is_some());
                    if ok { m.map.get_mut(&k).unwrap().1 = Some(m.now + t); } else { m.map.remove(&k); }
                }
                Op::Persist(k) => {
                    let ok = seg.persist(&key(k)).unwrap();
                    prop_assert_eq!(ok, m.live(k).is_some());
                    if ok { m.map.get_mut(&k).unwrap().1 = None; } else { m.map.remove(&k); }
                }
                Op::Tick(ms) => { clock.advance(ms); m.now += ms; }
                Op::Maintain => { seg.maintain().unwrap(); }
                Op::PutIfAbsent(k, fill) | Op::PutIfPresent(k, fill) => {
                    let absent = matches!(op, Op::PutIfAbsent(..));
                    let cond = if absent { PutIf::Absent } else { PutIf::Present };
                    // A compare-and-set with the current version acts as
                    // PutIf::Present does.
                    let view = if absent { None } else { seg.get_view(&key(k)).unwrap() };
                    let cond = match &view {
                        Some(v) => PutIf::Version(v.version()),
                        None => cond,
                    };
                    let v = vec![fill; 10];
                    let done = seg.put_if(&key(k), &v, &PutOptions::default(), cond).unwrap();
                    let holds = m.live(k).is_none() == absent;
                    prop_assert_eq!(done.is_some(), holds);
                    if holds { m.map.insert(k, (v, None)); }
                }
                Op::Incr(k) => {
                    // A counter as INCR keeps it: 8 little-endian bytes.
                    let before = m.live(k).map(|(v, _)| v.clone());
                    let next = |cur: Option<&[u8]>| {
                        let n = cur.and_then(|c| <[u8; 8]>::try_from(c).ok()).map(u64::from_le_bytes).unwrap_or(0);
                        Some((n + 1).to_le_bytes().to_vec())
                    };
                    let want = next(before.as_deref()).unwrap();
                    seg.update(&key(k), &PutOptions::default(), next).unwrap();
                    m.map.insert(k, (want, None));
                }
            }
        }
        let mut keys: Vec<Vec<u8>> = seg.keys().collect();
        keys.sort();
        let mut want: Vec<Vec<u8>> = m.map.keys().filter(|&&k| m.live(k).is_some()).map(|&k| model_key(k)).collect();
        want.sort();
        prop_assert_eq!(keys, want);
        seg.maintain().unwrap();
        let rep = seg.check().unwrap();
        prop_assert!(rep.is_clean(), "{:?}", rep.violations);
    }
}

/// Every third key is too long to sit inline in its index entry (over 32
/// bytes), so reads also take the path through the block.
fn model_key(k: u8) -> Vec<u8> {
    if k % 3 == 0 {
        format!("key-{k}-with-a-suffix-past-the-inline-limit").into_bytes()
    } else {
        format!("key-{k}").into_bytes()
    }
}
