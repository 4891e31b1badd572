//! L0's eviction policies, on a real segment bounded by `max_entries`:
//! what each keeps, and that the choice is the creator's.

mod common;
use common::*;
use strata_shm::{Policy, PutOptions, PutOutcome, Segment};

const CAP: u64 = 1024;

fn segment(dir: &ShmDir, policy: Policy) -> Segment {
    Segment::create(
        "s",
        &dir.opts(16 * MIB)
            .max_entries(CAP)
            .janitor(false)
            .policy(policy),
    )
    .unwrap()
}

fn key(i: u64) -> Vec<u8> {
    format!("key-{i}").into_bytes()
}

fn put(seg: &Segment, i: u64) -> PutOutcome {
    seg.put(&key(i), b"v", &PutOptions::default()).unwrap()
}

/// A get, then a put on a miss: how a cache is used.
fn access(seg: &Segment, i: u64) -> bool {
    let hit = seg.get(&key(i)).unwrap().is_some();
    if !hit {
        put(seg, i);
    }
    hit
}

/// A seeded xorshift stream.
fn xorshift(mut x: u64) -> impl FnMut() -> u64 {
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

fn present(seg: &Segment, keys: std::ops::Range<u64>) -> usize {
    keys.filter(|&i| seg.contains(&key(i)).unwrap()).count()
}

#[test]
fn every_policy_holds_at_most_max_entries_and_keeps_its_books() {
    for policy in Policy::ALL {
        let dir = ShmDir::new("policy-books");
        let seg = segment(&dir, policy);
        let mut next = xorshift(88172645463325252);
        for _ in 0..20_000 {
            let x = next();
            let i = x % 4000;
            match x % 10 {
                0 => {
                    seg.delete(&key(i)).unwrap();
                }
                _ => {
                    access(&seg, i);
                }
            }
        }
        assert!(seg.len() <= CAP, "{policy}: {}", seg.len());
        let rep = seg.check().unwrap();
        assert!(rep.is_clean(), "{policy}: {:?}", rep.violations);
        if policy != Policy::NoEviction {
            assert!(seg.stats().unwrap().evictions > 0, "{policy}");
        }
    }
}

#[test]
fn fifo_evicts_in_insertion_order_whatever_the_hits() {
    let dir = ShmDir::new("policy-fifo");
    let seg = segment(&dir, Policy::Fifo);
    // Three quarters full: no shard is at its share yet.
    for i in 0..CAP * 3 / 4 {
        put(&seg, i);
    }
    // Reads do not save the oldest keys from FIFO.
    for _ in 0..5 {
        for i in 0..100 {
            assert!(seg.get(&key(i)).unwrap().is_some());
        }
    }
    // Twice the capacity in new keys: every shard gets more than it
    // holds, however unevenly they fall.
    for i in 10_000..10_000 + 2 * CAP {
        put(&seg, i);
    }
    // Each shard evicted its own oldest: every old key went, and the
    // newest stayed.
    assert_eq!(present(&seg, 0..CAP * 3 / 4), 0);
    assert_eq!(present(&seg, 10_000 + 2 * CAP - 200..10_000 + 2 * CAP), 200);
}

#[test]
fn lru_keeps_what_is_read_and_fifo_does_not() {
    for (policy, hot_kept) in [(Policy::Lru, true), (Policy::Fifo, false)] {
        let dir = ShmDir::new("policy-lru");
        let seg = segment(&dir, policy);
        for i in 0..CAP * 3 / 4 {
            put(&seg, i);
        }
        // Keys 0..100 stay in use while 2000 new ones pass through.
        for n in 0..2000 {
            put(&seg, 10_000 + n);
            if n % 4 == 0 {
                for i in 0..100 {
                    seg.get(&key(i)).unwrap();
                }
            }
        }
        let kept = present(&seg, 0..100);
        if hot_kept {
            assert_eq!(kept, 100, "{policy}");
        } else {
            assert_eq!(kept, 0, "{policy}");
        }
    }
}

/// A working set of 500 keys, each read several times, then a scan of
/// 5000 keys read once each: how many of the 500 are left.
fn working_set_after_a_scan(policy: Policy) -> usize {
    let dir = ShmDir::new("policy-scan");
    let seg = segment(&dir, policy);
    for _ in 0..8 {
        for i in 0..500 {
            access(&seg, i);
        }
    }
    for i in 100_000..105_000 {
        access(&seg, i);
    }
    present(&seg, 0..500)
}

#[test]
fn wtinylfu_and_s3fifo_keep_frequent_keys_through_a_scan() {
    for policy in [Policy::WTinyLfu, Policy::S3Fifo, Policy::Lfu] {
        let kept = working_set_after_a_scan(policy);
        assert!(kept >= 450, "{policy}: kept {kept} of 500");
    }
    // LRU (CLOCK, whose usage counts give a few keys another sweep)
    // loses nearly all of them to the scan.
    let kept = working_set_after_a_scan(Policy::Lru);
    assert!(kept < 50, "lru: kept {kept} of 500");
}

#[test]
fn no_eviction_refuses_new_keys_when_full_and_keeps_the_old() {
    let dir = ShmDir::new("policy-none");
    let seg = segment(&dir, Policy::NoEviction);
    let mut inserted = 0;
    for i in 0..CAP + 500 {
        if put(&seg, i) == PutOutcome::Inserted {
            inserted += 1;
        }
    }
    assert_eq!(seg.len(), inserted);
    assert!((CAP * 9 / 10..=CAP).contains(&inserted), "{inserted}");
    let st = seg.stats().unwrap();
    assert_eq!(st.evictions, 0);
    assert_eq!(st.rejections, CAP + 500 - inserted);
    // Updates of present keys still go through; deletes make room.
    let old = (0..CAP).find(|&i| seg.contains(&key(i)).unwrap()).unwrap();
    assert_eq!(
        seg.put(&key(old), b"w", &PutOptions::default()).unwrap(),
        PutOutcome::Updated
    );
    for i in 0..CAP / 2 {
        seg.delete(&key(i)).unwrap();
    }
    assert_eq!(put(&seg, 999_999), PutOutcome::Inserted);
}

#[test]
fn the_policy_is_the_creators() {
    let dir = ShmDir::new("policy-fixed");
    let seg = segment(&dir, Policy::S3Fifo);
    assert_eq!(seg.policy(), Policy::S3Fifo);
    // Another handle, asking for another policy, evicts by the creator's
    // and is told so.
    let other = Segment::open("s", &dir.opts(16 * MIB).policy(Policy::Lru)).unwrap();
    assert_eq!(other.policy(), Policy::S3Fifo);
    assert_eq!(
        other
            .kept_settings(None, None, Some(Policy::Lru))
            .as_deref(),
        Some("its eviction policy, s3fifo (not lru)")
    );
    // Unnamed, it takes whatever the segment has.
    let plain = Segment::open("s", &dir.opts(16 * MIB)).unwrap();
    assert_eq!(plain.policy(), Policy::S3Fifo);
    // The default is W-TinyLFU.
    let dir2 = ShmDir::new("policy-default");
    assert_eq!(dir2.create("d", 16 * MIB).policy(), Policy::WTinyLfu);
}

/// The window follows the traffic: keys that come back soon after the
/// window let them go grow it; keys main let go for newcomers that come
/// back soon shrink it again.
#[test]
fn the_window_grows_on_recency_and_shrinks_on_frequency() {
    let dir = ShmDir::new("policy-window");
    let seg = segment(&dir, Policy::WTinyLfu);
    let start = seg.window_share();
    // Each new key is read again 300 keys later (well within the cache,
    // but past a 1% window), then never.
    for n in 0..100_000u64 {
        access(&seg, n);
        if n >= 300 {
            access(&seg, n - 300);
        }
    }
    let grown = seg.window_share();
    assert!(grown > start + 0.2, "{start} -> {grown}");
    // Now skewed traffic over 50,000 keys (key x³/2500² for x uniform
    // below 50,000): the most frequent keys belong in main.
    let mut next = xorshift(88172645463325252);
    for _ in 0..300_000 {
        let u = next() % 50_000;
        access(&seg, 10_000_000 + u * u / 2500 * u / 1_000_000);
    }
    let shrunk = seg.window_share();
    assert!(shrunk < grown - 0.2, "{grown} -> {shrunk}");
    assert!((0.0..1.0).contains(&shrunk));
}

/// Queue records that name slots they should not (another shard's, the
/// header, the middle of an entry) are skipped, not trusted: eviction
/// carries on and the books stay clean.
#[test]
fn bad_queue_records_are_skipped() {
    use std::os::unix::fs::FileExt;
    let dir = ShmDir::new("policy-bad-queue");
    let seg = segment(&dir, Policy::Fifo);
    for i in 0..CAP * 2 {
        put(&seg, i);
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(seg.path())
        .unwrap();
    let word = |off: u64| {
        let mut b = [0u8; 8];
        file.read_exact_at(&mut b, off).unwrap();
        u64::from_le_bytes(b)
    };
    // Header words 448 and 456: the rings' offset and records per ring;
    // 136 and 72: the index's offset and buckets per shard.
    let (queues, per_ring) = (word(448), word(456));
    let (index, buckets) = (word(136), word(72));
    let shard1_slot = index + buckets * 576;
    let bad = [8, index + 64 + 8, shard1_slot, shard1_slot + 8, index + 3];
    for i in 0..per_ring {
        let off = queues + i * 16;
        file.write_all_at(&bad[(i % 5) as usize].to_le_bytes(), off)
            .unwrap();
    }
    for i in CAP * 2..CAP * 4 {
        put(&seg, i);
    }
    assert!(seg.stats().unwrap().entries <= CAP);
    let report = seg.check().unwrap();
    assert!(report.is_clean(), "{report:?}");
}
