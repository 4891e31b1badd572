//! Slab reassignment: a segment full of one size keeps taking every other
//! size, by emptying a slab of another class, and stays consistent.

mod common;
use common::{make_value, verify_value, ShmDir, MIB};
use proptest::prelude::*;
use std::collections::HashMap;
use strata_shm::{Error, PutOptions, PutOutcome, Segment};

/// Puts `value`, again while admission turns it away (its sketch count
/// rises with every put, so a key that keeps coming wins). Panics on any error: with nothing pinned,
/// room can always be made.
fn put_admitted(seg: &Segment, key: &[u8], value: &[u8]) -> PutOutcome {
    let no = PutOptions::default();
    for _ in 0..16 {
        match seg.put(key, value, &no) {
            Ok(PutOutcome::Rejected) => continue,
            Ok(o) => return o,
            Err(e) => panic!("put of {} bytes failed: {e}", value.len()),
        }
    }
    PutOutcome::Rejected
}

fn fill_with(seg: &Segment, prefix: &str, len: usize, count: u64) {
    for i in 0..count {
        let key = format!("{prefix}{i}");
        seg.put(
            key.as_bytes(),
            &make_value(i, 1, len),
            &PutOptions::default(),
        )
        .unwrap();
    }
}

#[test]
fn a_segment_full_of_one_size_takes_every_other_size() {
    let dir = ShmDir::new("reassign-all");
    let seg = dir.create("s", 64 * MIB);
    // Well past capacity: every slab belongs to the 4 KiB class.
    fill_with(&seg, "row:", 4096, 20_000);
    let st = seg.stats().unwrap();
    assert!(st.evictions > 0, "{st:?}");
    let mut sizes: Vec<usize> = vec![8, 24, 64, 100, 200, 500, 1000, 1024, 2000, 3000];
    sizes.extend([5000, 8192, 10_000, 50_000, 100_000, 300_000, 700_000]);
    sizes.extend([1 << 20, (1 << 20) + 1, 3 << 20]);
    for (i, &len) in sizes.iter().enumerate() {
        let key = format!("new:{len}");
        let value = make_value(1000 + i as u64, 1, len);
        let outcome = put_admitted(&seg, key.as_bytes(), &value);
        assert_eq!(outcome, PutOutcome::Inserted, "a value of {len} bytes");
        let got = seg.get(key.as_bytes()).unwrap().expect("just stored");
        assert!(verify_value(&got, 1000 + i as u64), "{len} bytes");
    }
    let st = seg.stats().unwrap();
    assert!(st.slab_reassigns > 0, "{st:?}");
    seg.maintain().unwrap();
    let rep = seg.check().unwrap();
    assert!(rep.is_clean(), "{:?}", rep.violations);
}

#[test]
fn sizes_that_shift_phase_by_phase_keep_being_stored() {
    let dir = ShmDir::new("reassign-phases");
    let seg = dir.create("s", 32 * MIB);
    let phases = [4096usize, 64, 100_000, 1000, 2 << 20, 300, 4096];
    for (p, &len) in phases.iter().enumerate() {
        // About twice the arena in each phase.
        let count = (64 * MIB / len as u64).clamp(16, 40_000);
        let mut inserted = 0;
        for i in 0..count {
            let key = format!("p{p}:{i}");
            let k = (p as u64) << 32 | i;
            match seg.put(
                key.as_bytes(),
                &make_value(k, 1, len),
                &PutOptions::default(),
            ) {
                Ok(PutOutcome::Inserted) => inserted += 1,
                Ok(_) => {}
                Err(e) => panic!("phase {p} ({len} bytes), put {i}: {e}"),
            }
        }
        // Admission may turn newcomers away (the segment's random seed
        // decides which collide in the sketch), but a key that keeps
        // coming back wins: its count rises with every put.
        eprintln!("phase {p} ({len} bytes): {inserted} of {count} stored");
        let key = format!("p{p}:again");
        let k = (p as u64) << 32 | count;
        let value = make_value(k, 1, len);
        let stored = (0..16).any(|_| {
            seg.put(key.as_bytes(), &value, &PutOptions::default())
                .unwrap()
                != PutOutcome::Rejected
        });
        assert!(
            stored,
            "phase {p} ({len} bytes): a repeated key never got in"
        );
        assert!(verify_value(&seg.get(key.as_bytes()).unwrap().unwrap(), k));
    }
    seg.maintain().unwrap();
    let rep = seg.check().unwrap();
    assert!(rep.is_clean(), "{:?}", rep.violations);
}

#[test]
fn a_slab_holding_a_viewed_block_is_left_alone() {
    let dir = ShmDir::new("reassign-pinned");
    let seg = dir.create("s", 16 * MIB);
    fill_with(&seg, "row:", 4096, 8_000);
    // A view of every entry: every slab holds a pinned block, so none
    // can be emptied for a new size, and the put says the segment is full.
    let keys: Vec<Vec<u8>> = seg.keys().collect();
    let views: Vec<_> = keys
        .iter()
        .filter_map(|k| seg.get_view(k).unwrap())
        .collect();
    let before = seg.stats().unwrap();
    let res = seg.put(b"small", &[7u8; 100], &PutOptions::default());
    assert!(matches!(res, Err(Error::Full(_))), "{res:?}");
    assert_eq!(seg.stats().unwrap().evictions, before.evictions);
    // Whatever happened, every view still shows its value.
    for v in &views {
        let k = u64::from_le_bytes(v[..8].try_into().unwrap());
        assert!(verify_value(v, k));
    }
    drop(views);
    assert_eq!(
        put_admitted(&seg, b"small", &[7u8; 100]),
        PutOutcome::Inserted
    );
    seg.maintain().unwrap();
    let rep = seg.check().unwrap();
    assert!(rep.is_clean(), "{:?}", rep.violations);
}

#[test]
fn evicted_entries_of_an_emptied_slab_reach_the_evict_hook() {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    let dir = ShmDir::new("reassign-hook");
    let seen = Arc::new(AtomicU64::new(0));
    let s2 = seen.clone();
    let opts = dir.opts(16 * MIB).on_evict(Arc::new(move |_e| {
        s2.fetch_add(1, Ordering::Relaxed);
    }));
    let seg = Segment::create("s", &opts).unwrap();
    fill_with(&seg, "row:", 4096, 5_000);
    let before = seen.load(Ordering::Relaxed);
    let st = seg.stats().unwrap();
    assert_eq!(put_admitted(&seg, b"tiny", b"x"), PutOutcome::Inserted);
    let st2 = seg.stats().unwrap();
    assert_eq!(
        seen.load(Ordering::Relaxed) - before,
        st2.evictions - st.evictions,
        "every eviction of the emptied slab went through the hook"
    );
    assert!(st2.slab_reassigns > st.slab_reassigns);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Mixed sizes in the smallest segment: a put is stored or refused by
    /// admission, never fails for room; a get returns the last value put
    /// or nothing (an eviction), never another one.
    #[test]
    fn mixed_sizes_in_a_small_segment_behave_like_a_lossy_map(
        ops in proptest::collection::vec(
            (0u64..48, prop_oneof![
                0usize..200, 200usize..5000, Just(1024), Just(4096),
                5000usize..100_000, Just(700_000), Just(1_500_000)
            ], any::<bool>()),
            1..150)
    ) {
        let dir = ShmDir::new("reassign-model");
        let seg = dir.create("m", 8 * MIB);
        let mut model: HashMap<u64, u64> = HashMap::new();
        for (n, (k, len, read)) in ops.into_iter().enumerate() {
            let key = format!("k{k}");
            if read {
                if let Some(g) = seg.get(key.as_bytes()).unwrap() {
                    let version = u64::from_le_bytes(g[8..16].try_into().unwrap());
                    prop_assert_eq!(Some(&version), model.get(&k));
                    prop_assert!(verify_value(&g, k));
                }
                continue;
            }
            let version = n as u64 + 1;
            match seg.put(key.as_bytes(), &make_value(k, version, len), &PutOptions::default()) {
                Ok(PutOutcome::Rejected) => {}
                Ok(_) => { model.insert(k, version); }
                Err(Error::ValueTooLarge { .. }) => {}
                Err(e) => prop_assert!(false, "put of {} bytes: {}", len, e),
            }
        }
        seg.maintain().unwrap();
        let rep = seg.check().unwrap();
        prop_assert!(rep.is_clean(), "{:?}", rep.violations);
    }
}
