//! L1, the per-process tier: L0's evictions demote into it, its hits come
//! back (into L0 when admitted), and a write or delete by another process
//! drops its copy through L0's change log, even when the log laps it.

mod common;

use common::{spawn_role, ShmDir};
use std::time::Duration;
use strata::{Cache, SegmentOptions};

const VALUE: usize = 4096;

/// A small L0 (8 MiB, so a few thousand 4 KiB values) and, with `l1`, an
/// L1 that holds them all.
fn cache(dir: &str, l1: bool) -> Cache {
    let b = Cache::builder("l1").segment_options(
        SegmentOptions::default()
            .memory(8 << 20)
            .dir(dir)
            .huge_pages(false),
    );
    if l1 {
        b.l1(256 << 20).build().unwrap()
    } else {
        b.build().unwrap()
    }
}

fn value(i: u64, generation: u8) -> Vec<u8> {
    let mut v = vec![generation; VALUE];
    v[..8].copy_from_slice(&i.to_le_bytes());
    v
}

fn key(i: u64) -> Vec<u8> {
    format!("k{i}").into_bytes()
}

fn read(c: &Cache, i: u64) -> Option<Vec<u8>> {
    c.get(&key(i)).unwrap().map(|v| v.bytes().to_vec())
}

#[test]
fn child_entry() {
    let Ok(role) = std::env::var("STRATA_TEST_ROLE") else {
        return;
    };
    let dir = std::env::var("SEG_DIR").unwrap();
    let c = cache(&dir, false);
    let n: u64 = std::env::var("N").unwrap().parse().unwrap();
    match role.as_str() {
        // Rewrites keys 0..n with generation 2, and deletes key n.
        "rewrite" => {
            for i in 0..n {
                c.put(&key(i), &value(i, 2), &Default::default()).unwrap();
            }
            c.delete(&key(n)).unwrap();
        }
        // Writes n other keys: more changes than the log keeps.
        "flood" => {
            for i in 0..n {
                c.put(format!("other{i}").as_bytes(), b"x", &Default::default())
                    .unwrap();
            }
        }
        _ => unreachable!(),
    }
}

fn fill(c: &Cache, n: u64) {
    for i in 0..n {
        c.put(&key(i), &value(i, 1), &Default::default()).unwrap();
    }
}

#[test]
fn evictions_demote_into_l1_and_come_back() {
    let dir = ShmDir::new("l1-demote");
    let c = cache(dir.path.to_str().unwrap(), true);
    fill(&c, 6000);
    let s = c.stats().unwrap();
    assert!(s.l0.evictions > 0 && s.l1_demotions > 0, "{s:?}");
    // Every key is somewhere: L0, or L1 after L0 let it go.
    for i in 0..6000 {
        assert_eq!(read(&c, i), Some(value(i, 1)), "key {i}");
    }
    let s = c.stats().unwrap();
    let l1 = s.l1.unwrap();
    assert!(l1.hits > 0 && l1.weight <= l1.capacity, "{l1:?}");
    // A cache without L1 on the same segment has lost the early keys.
    let plain = cache(dir.path.to_str().unwrap(), false);
    assert!((0..6000).any(|i| read(&plain, i).is_none()));
}

#[test]
fn another_process_s_writes_and_deletes_drop_l1_copies() {
    let dir = ShmDir::new("l1-inval");
    let path = dir.path.to_str().unwrap();
    let c = cache(path, true);
    fill(&c, 6000);
    let in_l1: Vec<u64> = (0..6000)
        .filter(|&i| !c.segment().contains(&key(i)).unwrap())
        .collect();
    assert!(in_l1.len() > 100);
    // Another process rewrites the first 200 keys (and deletes key 200),
    // which pushes some of its new values out of L0 again.
    let mut child = spawn_role("rewrite", &dir, &[("N", "200".into())]);
    assert!(child.wait().unwrap().success());
    for i in 0..200 {
        let got = read(&c, i);
        assert!(
            got.is_none() || got == Some(value(i, 2)),
            "key {i}: a stale copy"
        );
    }
    assert_eq!(read(&c, 200), None, "deleted by the other process");
    assert!(c.stats().unwrap().l1_invalidated > 0);
    // Keys nobody touched are still served from L1.
    let untouched = in_l1.iter().find(|&&i| i > 200).copied().unwrap();
    assert_eq!(read(&c, untouched), Some(value(untouched, 1)));
}

#[test]
fn a_lapped_change_log_drops_all_of_l1() {
    let dir = ShmDir::new("l1-lap");
    let path = dir.path.to_str().unwrap();
    let c = cache(path, true);
    fill(&c, 6000);
    let in_l1: Vec<u64> = (0..6000)
        .filter(|&i| !c.segment().contains(&key(i)).unwrap())
        .collect();
    // Far more writes than the shards' logs keep.
    let mut child = spawn_role("flood", &dir, &[("N", "200000".into())]);
    assert!(child.wait().unwrap().success());
    let i = in_l1[0];
    let got = read(&c, i);
    assert!(got.is_none() || got == Some(value(i, 1)));
    let s = c.stats().unwrap();
    assert!(s.l1_lapped > 0, "{s:?}");
}

#[test]
fn l1_respects_ttls_of_demoted_entries() {
    let dir = ShmDir::new("l1-ttl");
    let c = cache(dir.path.to_str().unwrap(), true);
    let short = strata::PutOptions::default().ttl(Duration::from_millis(300));
    for i in 0..6000 {
        c.put(&key(i), &value(i, 1), &short).unwrap();
    }
    assert!(c.stats().unwrap().l1_demotions > 0);
    std::thread::sleep(Duration::from_millis(400));
    for i in 0..6000 {
        assert_eq!(read(&c, i), None, "key {i} outlived its TTL");
    }
}

/// An L1 hit that L0's admission refuses stays in L1: the refused put
/// logs the key, and that entry must not drop the copy it came from.
#[test]
fn an_l1_hit_that_l0_refuses_stays_in_l1() {
    let dir = ShmDir::new("l1-refused");
    let c = cache(dir.path.to_str().unwrap(), true);
    fill(&c, 6000);
    let (resident, demoted): (Vec<u64>, Vec<u64>) =
        (0..6000).partition(|&i| c.segment().contains(&key(i)).unwrap());
    // Make what L0 holds hot, so that cold keys lose admission.
    for _ in 0..20 {
        for &i in &resident {
            read(&c, i);
        }
    }
    let refused = c.stats().unwrap().l0.rejections;
    for round in 0..3 {
        for &i in &demoted {
            assert_eq!(read(&c, i), Some(value(i, 1)), "key {i}, round {round}");
        }
    }
    assert!(
        c.stats().unwrap().l0.rejections > refused,
        "L0 refused nothing"
    );
}

/// What a process decodes from a value, kept in its L1 in place of the
/// bytes.
#[derive(Debug, PartialEq)]
struct Decoded(u64, u8);

fn decode(v: &[u8]) -> Decoded {
    Decoded(u64::from_le_bytes(v[..8].try_into().unwrap()), v[8])
}

/// Reads `i` as a decoding caller does: the kept object, else the bytes
/// (ticket first), decoded and kept.
fn read_decoded(c: &Cache, i: u64) -> Option<std::sync::Arc<Decoded>> {
    if let Some(d) = c.get_object::<Decoded>(&key(i)) {
        return Some(d);
    }
    let ticket = c.object_ticket(&key(i)).expect("L1 is on");
    let d = std::sync::Arc::new(decode(&read(c, i)?));
    c.keep_object(ticket, &key(i), d.clone(), VALUE, None);
    Some(d)
}

#[test]
fn decoded_objects_stay_in_l1_until_their_key_changes() {
    let dir = ShmDir::new("l1-objects");
    let c = cache(dir.path.to_str().unwrap(), true);
    fill(&c, 300);
    let first: Vec<_> = (0..210).map(|i| read_decoded(&c, i).unwrap()).collect();
    // The same objects come back, not new decodings.
    for i in 0..210 {
        let again = c.get_object::<Decoded>(&key(i)).expect("kept");
        assert!(std::sync::Arc::ptr_eq(&again, &first[i as usize]));
    }
    assert_eq!(c.stats().unwrap().l1_objects, 210);
    // A byte reader does not take an object for a value, nor an object
    // reader another type.
    assert_eq!(read(&c, 5), Some(value(5, 1)));
    assert!(c.get_object::<String>(&key(5)).is_none());
    // Another process rewrites keys 0..200 and deletes key 200.
    let mut child = spawn_role("rewrite", &dir, &[("N", "200".into())]);
    assert!(child.wait().unwrap().success());
    for i in 0..200 {
        assert!(c.get_object::<Decoded>(&key(i)).is_none(), "key {i}: stale");
        assert_eq!(*read_decoded(&c, i).unwrap(), Decoded(i, 2));
    }
    assert!(c.get_object::<Decoded>(&key(200)).is_none(), "deleted");
    // Untouched keys keep their objects.
    let kept = c.get_object::<Decoded>(&key(205)).expect("untouched");
    assert!(std::sync::Arc::ptr_eq(&kept, &first[205]));
}

#[test]
fn an_object_decoded_from_a_replaced_value_is_not_kept() {
    let dir = ShmDir::new("l1-objects-race");
    let c = cache(dir.path.to_str().unwrap(), true);
    fill(&c, 10);
    let ticket = c.object_ticket(&key(3)).unwrap();
    let old = decode(&read(&c, 3).unwrap());
    // Someone writes the key between the read and the keep.
    c.put(&key(3), &value(3, 9), &Default::default()).unwrap();
    assert!(!c.keep_object(ticket, &key(3), std::sync::Arc::new(old), VALUE, None));
    assert!(c.get_object::<Decoded>(&key(3)).is_none());
}

#[test]
fn decoded_objects_expire_with_their_value() {
    let dir = ShmDir::new("l1-objects-ttl");
    let c = cache(dir.path.to_str().unwrap(), true);
    let short = strata::PutOptions::default().ttl(Duration::from_millis(300));
    c.put(&key(1), &value(1, 1), &short).unwrap();
    let d = read_decoded(&c, 1).unwrap();
    assert_eq!(*d, Decoded(1, 1));
    assert!(c.get_object::<Decoded>(&key(1)).is_some());
    std::thread::sleep(Duration::from_millis(400));
    assert!(
        c.get_object::<Decoded>(&key(1)).is_none(),
        "outlived its TTL"
    );
    // Without L1 there is nothing to keep.
    let plain = cache(dir.path.to_str().unwrap(), false);
    assert!(plain.object_ticket(&key(1)).is_none());
    assert!(plain.get_object::<Decoded>(&key(1)).is_none());
}

/// An L1 entry of the other kind (bytes for an object reader) is a miss,
/// and counted as one: it is not a hit the policy learns of.
#[test]
fn an_entry_of_the_other_kind_counts_as_a_miss() {
    let dir = ShmDir::new("l1-kinds");
    let c = cache(dir.path.to_str().unwrap(), true);
    fill(&c, 6000);
    // Key 0 left L0 early and was demoted into L1 as bytes.
    let before = c.stats().unwrap().l1.unwrap();
    assert!(c.get_object::<Decoded>(&key(0)).is_none());
    let after = c.stats().unwrap().l1.unwrap();
    assert_eq!(
        after.hits, before.hits,
        "an object read took bytes for a hit"
    );
    assert_eq!(after.misses, before.misses + 1);
    // The bytes are still there for a byte reader: a hit.
    assert_eq!(read(&c, 0), Some(value(0, 1)));
    assert_eq!(c.stats().unwrap().l1.unwrap().hits, after.hits + 1);
}
