//! Single-process behaviour of a segment: round trips, updates, deletes,
//! TTLs, type tags, sizes, iteration, stats and fsck.

mod common;
use common::{make_value, verify_value, ShmDir, MIB};
use std::time::Duration;
use strata_shm::{Clock, Error, Policy, PutOptions, PutOutcome, Segment, TypeTag};

#[test]
fn put_get_update_delete() {
    let dir = ShmDir::new("basic");
    let seg = dir.create("s", 16 * MIB);
    let no = PutOptions::default();
    assert_eq!(seg.put(b"a", b"one", &no).unwrap(), PutOutcome::Inserted);
    assert_eq!(&*seg.get(b"a").unwrap().unwrap(), b"one");
    assert_eq!(seg.put(b"a", b"two!", &no).unwrap(), PutOutcome::Updated);
    assert_eq!(&*seg.get(b"a").unwrap().unwrap(), b"two!");
    assert!(seg.get(b"b").unwrap().is_none());
    assert!(seg.contains(b"a").unwrap());
    // Peeks and contains count nothing.
    assert_eq!(&*seg.peek(b"a").unwrap().unwrap(), b"two!");
    assert!(seg.peek(b"b").unwrap().is_none());
    assert_eq!(seg.len(), 1);
    assert!(seg.delete(b"a").unwrap());
    assert!(!seg.delete(b"a").unwrap());
    assert!(seg.get(b"a").unwrap().is_none());
    assert_eq!(seg.len(), 0);
    let st = seg.stats().unwrap();
    assert_eq!((st.inserts, st.updates, st.deletes), (1, 1, 1));
    assert_eq!(st.hits, 2);
    assert_eq!(st.misses, 2);
    seg.maintain().unwrap();
    let rep = seg.check().unwrap();
    assert!(rep.is_clean(), "{:?}", rep.violations);
    let st = seg.stats().unwrap();
    assert_eq!(st.limbo_bytes, 0);
    assert_eq!(st.free_bytes, st.capacity_bytes);
}

#[test]
fn empty_and_many_sizes() {
    let dir = ShmDir::new("sizes");
    let seg = dir.create("s", 256 * MIB);
    let no = PutOptions::default();
    let sizes = [
        0usize,
        1,
        7,
        63,
        64,
        65,
        4096,
        100_000,
        1 << 20,
        (1 << 20) + 1,
        5 << 20,
        64 << 20,
    ];
    for (i, &n) in sizes.iter().enumerate() {
        let v: Vec<u8> = (0..n).map(|j| (j * 31 + i) as u8).collect();
        let k = format!("k{i}");
        seg.put(k.as_bytes(), &v, &no).unwrap();
        let got = seg.get(k.as_bytes()).unwrap().unwrap();
        assert_eq!(got.len(), n);
        assert!(*got == v[..], "size {n}");
    }
    for (i, &n) in sizes.iter().enumerate() {
        let k = format!("k{i}");
        assert_eq!(seg.get(k.as_bytes()).unwrap().unwrap().len(), n);
    }
    let mut keys: Vec<_> = seg.keys().collect();
    keys.sort();
    assert_eq!(keys.len(), sizes.len());
    for (i, _) in sizes.iter().enumerate() {
        seg.delete(format!("k{i}").as_bytes()).unwrap();
    }
    seg.maintain().unwrap();
    let rep = seg.check().unwrap();
    assert!(rep.is_clean(), "{:?}", rep.violations);
    let st = seg.stats().unwrap();
    assert_eq!(st.free_bytes, st.capacity_bytes, "{st:?}");
}

#[test]
fn type_tags_round_trip() {
    let dir = ShmDir::new("tags");
    let seg = dir.create("s", 16 * MIB);
    let tag = TypeTag::new("<f4", vec![2, 3]);
    // Key and tag together within the index entry's 32 inline bytes, and
    // past them (the tag is then read from the block).
    for key in [&b"arr"[..], &b"an-array-whose-key-is-long"[..]] {
        seg.put(key, &[0u8; 24], &PutOptions::default().tag(tag.clone()))
            .unwrap();
        let g = seg.get(key).unwrap().unwrap();
        assert_eq!(g.type_tag(), Some(tag.clone()));
        assert_eq!(g.key(), key);
        drop(g);
        let v = seg.get_view(key).unwrap().unwrap();
        assert_eq!(v.type_tag(), Some(tag.clone()));
        assert_eq!(v.len(), 24);
        let mut n = 0;
        seg.get_batch(&[key], |_, e| {
            assert_eq!(
                e.map(|e| e.raw_tag.len()),
                Some(tag.encode().unwrap().len())
            );
            n += 1;
        })
        .unwrap();
        assert_eq!(n, 1);
    }
    assert!(seg.check().unwrap().is_clean());
}

#[test]
fn a_batch_read_hands_out_every_key_in_order_across_chunks() {
    let dir = ShmDir::new("batch");
    let seg = dir.create("s", 64 * MIB);
    // Every third key is absent; the batch is longer than one chunk of
    // lookups and repeats keys.
    let keys: Vec<Vec<u8>> = (0..1000u64)
        .map(|i| format!("k{}", (i * 7) % 900).into_bytes())
        .collect();
    for i in (0..900u64).filter(|i| i % 3 != 0) {
        seg.put(
            format!("k{i}").as_bytes(),
            &make_value(i, 1, 100 + i as usize),
            &PutOptions::default(),
        )
        .unwrap();
    }
    let hits_before = seg.stats().unwrap().hits;
    let mut seen = Vec::new();
    seg.get_batch(&keys, |i, e| {
        let k = (i as u64 * 7) % 900;
        match e {
            Some(e) => {
                assert!(k % 3 != 0, "key {k} was never written");
                assert!(
                    verify_value(e.value, k),
                    "row {i} holds another key's value"
                );
                assert_eq!(e.value.len(), 100 + k as usize);
            }
            None => assert_eq!(k % 3, 0, "key {k} was written"),
        }
        seen.push(i);
    })
    .unwrap();
    assert_eq!(seen, (0..1000).collect::<Vec<_>>());
    let hits = (0..1000u64).filter(|i| (i * 7) % 900 % 3 != 0).count() as u64;
    assert_eq!(seg.stats().unwrap().hits - hits_before, hits);
}

#[test]
fn ttl_expiry_with_a_manual_clock() {
    let dir = ShmDir::new("ttl");
    let clock = Clock::manual(1_000_000);
    let seg = Segment::create("s", &dir.opts(16 * MIB).clock(clock.clone())).unwrap();
    let ttl = PutOptions::default().ttl(Duration::from_secs(10));
    seg.put(b"t", b"v", &ttl).unwrap();
    assert_eq!(
        seg.get(b"t").unwrap().unwrap().expires_at_ms(),
        Some(1_010_000)
    );
    clock.advance(9_999);
    assert!(seg.get(b"t").unwrap().is_some());
    clock.advance(1);
    assert!(
        seg.get(b"t").unwrap().is_none(),
        "expired entries are never returned"
    );
    assert!(!seg.contains(b"t").unwrap());
    // persist and expire
    seg.put(b"p", b"v", &ttl).unwrap();
    assert!(seg.persist(b"p").unwrap());
    clock.advance(100_000);
    assert!(seg.get(b"p").unwrap().is_some());
    assert!(seg.expire(b"p", Duration::from_millis(5)).unwrap());
    clock.advance(5);
    assert!(seg.get(b"p").unwrap().is_none());
    // The sweep is incremental: a few passes cover every index slot.
    let expired: u64 = (0..8).map(|_| seg.maintain().unwrap().expired).sum();
    assert_eq!(expired, 2);
    assert_eq!(seg.len(), 0);
    assert_eq!(seg.stats().unwrap().expirations, 2);
    assert!(seg.check().unwrap().is_clean());
}

#[test]
fn a_ttl_longer_than_a_segment_stores_is_refused_never_cut_short() {
    let dir = ShmDir::new("ttl-far");
    let clock = Clock::manual(1_000_000);
    let seg = Segment::create("s", &dir.opts(16 * MIB).clock(clock.clone())).unwrap();
    seg.put(b"far", b"v", &PutOptions::default()).unwrap();
    // 10^17 s is 10^20 ms, past u64: it used to be clamped in silence.
    for ttl in [Duration::from_secs(100_000_000_000_000_000), Duration::MAX] {
        let e = seg
            .put(b"far", b"w", &PutOptions::default().ttl(ttl))
            .unwrap_err();
        assert!(matches!(e, Error::InvalidConfig(_)), "{e}");
        assert!(e.to_string().contains("too long"), "{e}");
        assert!(matches!(
            seg.expire(b"far", ttl),
            Err(Error::InvalidConfig(_))
        ));
    }
    assert_eq!(&*seg.get(b"far").unwrap().unwrap(), b"v", "nothing changed");
    // The longest TTL there is lands where it says.
    seg.put(
        b"far",
        b"v",
        &PutOptions::default().ttl(strata_shm::MAX_TTL),
    )
    .unwrap();
    let want = 1_000_000 + strata_shm::MAX_TTL.as_millis() as u64;
    assert_eq!(
        seg.get(b"far").unwrap().unwrap().expires_at_ms(),
        Some(want)
    );
    clock.advance(1 << 40);
    assert!(seg.get(b"far").unwrap().is_some());
    assert!(seg.check().unwrap().is_clean());
    // Users give seconds: the message says the limit in seconds.
    for secs in [1e17, 1e300, 18446744073709551615.0] {
        let e = strata_shm::ttl_from_secs(secs).unwrap_err().to_string();
        assert!(
            e.contains("too long (at most 9223372036854775 seconds"),
            "{e}"
        );
    }
}

#[test]
fn bad_input_gives_typed_errors() {
    let dir = ShmDir::new("bad");
    let seg = dir.create("s", 16 * MIB);
    let no = PutOptions::default();
    let big_key = vec![b'k'; strata_shm::MAX_KEY + 1];
    assert!(matches!(
        seg.put(&big_key, b"v", &no),
        Err(Error::KeyTooLarge { .. })
    ));
    let huge = vec![0u8; 64 << 20];
    assert!(matches!(
        seg.put(b"k", &huge, &no),
        Err(Error::ValueTooLarge { .. })
    ));
    assert!(matches!(
        seg.put(b"k", b"v", &PutOptions::default().ttl(Duration::ZERO)),
        Err(Error::InvalidConfig(_))
    ));
    for name in ["", ".hidden", "a/b", "sp ace", &"x".repeat(201)] {
        assert!(matches!(
            Segment::create(name, &dir.opts(16 * MIB)),
            Err(Error::InvalidName { .. })
        ));
    }
    assert!(matches!(
        Segment::open("missing", &dir.opts(16 * MIB)),
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        Segment::create("s", &dir.opts(16 * MIB)),
        Err(Error::AlreadyExists { .. })
    ));
    assert!(matches!(
        Segment::create("tiny", &dir.opts(1 << 20)),
        Err(Error::InvalidConfig(_))
    ));
}

#[test]
fn a_full_segment_evicts_by_clock_and_stays_consistent() {
    let dir = ShmDir::new("full");
    let seg = dir.create("s", 16 * MIB);
    let no = PutOptions::default();
    let v = vec![7u8; 4000];
    let mut inserted = 0;
    for i in 0..20_000u32 {
        match seg.put(format!("key{i}").as_bytes(), &v, &no).unwrap() {
            PutOutcome::Inserted => inserted += 1,
            PutOutcome::Rejected => {}
            PutOutcome::Updated => unreachable!(),
        }
    }
    let st = seg.stats().unwrap();
    assert!(st.evictions > 0, "{st:?}");
    assert!(inserted > 2000);
    assert!(st.entries < 20_000);
    seg.maintain().unwrap();
    let rep = seg.check().unwrap();
    assert!(rep.is_clean(), "{:?}", rep.violations);
}

#[test]
fn nothing_evictable_is_a_typed_error() {
    let dir = ShmDir::new("noevict");
    let seg = dir.create("s", 8 * MIB);
    // Fill the arena with one large value, then ask for a class that has no slab.
    let cap = seg.stats().unwrap().capacity_bytes;
    let big = vec![1u8; (cap - 4096) as usize / 2];
    seg.put(b"big", &big, &PutOptions::default()).unwrap();
    let r = seg.put(b"big2", &big, &PutOptions::default());
    assert!(
        matches!(r, Ok(PutOutcome::Inserted) | Err(Error::Full(_))),
        "{r:?}"
    );
}

#[test]
fn segments_are_listed_and_dropped() {
    let dir = ShmDir::new("list");
    dir.create("one", 8 * MIB);
    dir.create("two", 8 * MIB);
    assert_eq!(Segment::list(&dir.path).unwrap(), vec!["one", "two"]);
    assert!(Segment::unlink("one", &dir.path).unwrap());
    assert!(!Segment::unlink("one", &dir.path).unwrap());
    assert_eq!(Segment::list(&dir.path).unwrap(), vec!["two"]);
}

#[test]
fn a_segment_says_which_asked_for_settings_it_keeps() {
    let dir = ShmDir::new("kept");
    let seg = dir.create("s", 16 * MIB);
    let n = seg.layout().max_entries;
    assert_eq!(seg.kept_settings(None, None, None), None);
    assert_eq!(
        seg.kept_settings(Some(16 * MIB), Some(n), Some(Policy::WTinyLfu)),
        None
    );
    // Sizes round up to whole 2 MiB slabs, as at creation.
    assert_eq!(seg.kept_settings(Some(15 * MIB + 1), None, None), None);
    assert_eq!(
        seg.kept_settings(Some(32 * MIB), Some(n + 1), Some(Policy::Lru))
            .as_deref(),
        Some(&*format!(
            "its size, 16.0 MiB (not 32.0 MiB) and room for {n} entries (not {}) \
             and its eviction policy, wtinylfu (not lru)",
            n + 1
        ))
    );
}

#[test]
fn max_entries_bounds_the_index() {
    // Each shard holds at most its share of max_entries, and a key finds a
    // free slot in its two buckets nearly always below that (the index
    // has two slots per entry). At 100% the shards' uneven shares of the
    // keys cost a few evictions; past it, evictions keep the bound.
    let dir = ShmDir::new("capacity");
    let m = 16_384u64;
    for (fill, min_kept) in [(0.7, 1.0), (1.0, 0.98), (1.5, 0.98 / 1.5)] {
        let seg = Segment::create("s", &dir.opts(64 * MIB).max_entries(m)).unwrap();
        assert_eq!(seg.layout().max_entries, m);
        let n = (m as f64 * fill) as u64;
        for i in 0..n {
            seg.put(format!("k{i}").as_bytes(), b"v", &PutOptions::default())
                .unwrap();
        }
        let kept = seg.len() as f64 / n as f64;
        assert!(kept >= min_kept, "{fill}: kept {kept}");
        assert!(seg.len() <= m, "{fill}: {} entries", seg.len());
        assert!(seg.check().unwrap().is_clean());
        drop(seg);
        Segment::unlink("s", &dir.path).unwrap();
    }
}

#[test]
fn index_entries_are_checked_and_rebuilt_by_repair() {
    use std::os::unix::fs::FileExt;
    use strata_shm::layout::{shard, BUCKET_SIZE, SLOTS_PER_BUCKET};
    let dir = ShmDir::new("entries");
    let seg = dir.create("s", 16 * MIB);
    seg.put(b"k", b"value", &PutOptions::default()).unwrap();
    let l = *seg.layout();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(seg.path())
        .unwrap();
    let read = |off: u64| {
        let mut b = [0u8; 8];
        file.read_exact_at(&mut b, off).unwrap();
        u64::from_le_bytes(b)
    };
    let write = |off: u64, v: u64| file.write_all_at(&v.to_le_bytes(), off).unwrap();
    // The one linked slot word in the whole index.
    let buckets = l.shard_count * l.buckets_per_shard;
    let slot = (0..buckets)
        .flat_map(|b| (0..SLOTS_PER_BUCKET).map(move |i| l.index + b * BUCKET_SIZE + 8 * i))
        .find(|&s| read(s) != 0)
        .unwrap();
    let word = read(slot);
    let entry = l.entry_of(slot);
    let busy = strata_shm::entry::BUSY;

    // A word left BUSY, as by a writer killed while filling the entry:
    // readers go to the block, and check() reports it.
    write(slot, word | busy);
    assert_eq!(&*seg.get(b"k").unwrap().unwrap(), b"value");
    let rep = seg.check().unwrap();
    assert!(
        rep.violations.iter().any(|v| v.contains("left busy")),
        "{:?}",
        rep.violations
    );
    // Fields that disagree with the block are reported too.
    let lens = read(entry);
    write(entry, lens + 1);
    let rep = seg.check().unwrap();
    assert!(
        rep.violations.iter().any(|v| v.contains("does not match")),
        "{:?}",
        rep.violations
    );

    // The shard's lock held by a dead writer: the next locker repairs the
    // shard, which rebuilds the entry under a new version of the word.
    let sh = (slot - l.index) / BUCKET_SIZE / l.buckets_per_shard;
    write(l.shard_off(sh) + shard::LOCK, (7 << 16) | 4000);
    assert_eq!(seg.maintain().unwrap().recovered_shards, 1);
    let rep = seg.check().unwrap();
    assert!(rep.is_clean(), "{:?}", rep.violations);
    let now = read(slot);
    assert!(now != word && now & busy == 0, "{word:#x} -> {now:#x}");
    assert_eq!(read(entry), lens);
    assert_eq!(&*seg.get(b"k").unwrap().unwrap(), b"value");
}

#[test]
fn rows_of_common_sizes_sit_on_their_own_boundaries() {
    let dir = ShmDir::new("aligned");
    let seg = dir.create("s", 64 * MIB);
    let tagged = |n: usize| PutOptions::default().tag(TypeTag::new("<f4", vec![n as u64 / 4]));
    // (value bytes, the boundary its bytes start on)
    let rows = [
        (1024usize, 1024usize),
        (2048, 2048),
        (4096, 4096),
        (3840, 4096),
        (8192, 4096),
    ];
    for (i, &(n, align)) in rows.iter().enumerate() {
        for j in 0..3 {
            let k = format!("emb:{i}:{j}");
            let v = make_value(i as u64, j, n);
            seg.put(k.as_bytes(), &v, &tagged(n)).unwrap();
            let got = seg.get(k.as_bytes()).unwrap().unwrap();
            assert!(*got == v[..], "{n} bytes");
            assert_eq!(
                got.value().as_ptr() as usize % align,
                0,
                "{n} bytes start on {align}"
            );
            assert_eq!(got.type_tag().unwrap().shape, vec![n as u64 / 4]);
            assert_eq!(seg.get_view(k.as_bytes()).unwrap().unwrap().value(), &v[..]);
        }
    }
    // A key too long for an aligned head takes a plain block, and works.
    let long = vec![b'k'; 100];
    let v = make_value(9, 9, 4096);
    seg.put(&long, &v, &tagged(4096)).unwrap();
    assert!(*seg.get(&long).unwrap().unwrap() == v[..]);
    let rep = seg.check().unwrap();
    assert!(rep.is_clean(), "{:?}", rep.violations);
}

#[test]
fn four_kib_rows_fill_the_arena_with_little_waste() {
    // An aligned 4 KiB row takes its 4 KiB and a 128-byte head; a plain
    // block would take 4800 bytes.
    let dir = ShmDir::new("dense");
    let seg = dir.create("s", 64 * MIB);
    let no = PutOptions::default();
    let cap = seg.stats().unwrap().capacity_bytes;
    let mut i = 0u64;
    while seg.stats().unwrap().evictions == 0 && i < cap / 4096 {
        seg.put(format!("emb:{i}").as_bytes(), &make_value(i, 0, 4096), &no)
            .unwrap();
        i += 1;
    }
    let held = seg.len();
    assert!(
        held * 4224 > cap * 9 / 10,
        "{held} rows of 4 KiB in {cap} bytes before the first eviction"
    );
    let rep = seg.check().unwrap();
    assert!(rep.is_clean(), "{:?}", rep.violations);
}

#[test]
fn batch_entries_copy_out_whole_at_any_offset() {
    let dir = ShmDir::new("copyto");
    let seg = dir.create("s", 64 * MIB);
    let no = PutOptions::default();
    for (k, n) in [(0u64, 4096usize), (1, 3000), (2, 100), (3, 8192)] {
        seg.put(format!("c{k}").as_bytes(), &make_value(k, 1, n), &no)
            .unwrap();
    }
    let mut buf = vec![0u8; 8192 + 4096 + 256];
    let base = buf.as_ptr().align_offset(4096);
    for off in [0usize, 8, 16, 64, 200] {
        for (k, n) in [(0u64, 4096usize), (1, 3000), (2, 100), (3, 8192)] {
            let dst = &mut buf[base + off..base + off + n];
            dst.fill(0);
            seg.get_batch(&[format!("c{k}")], |_, e| e.unwrap().copy_to(dst))
                .unwrap();
            assert!(*dst == make_value(k, 1, n)[..], "{n} bytes at offset {off}");
        }
    }
}

#[test]
fn compare_and_set_on_a_views_version_succeeds_only_if_nothing_was_written_since() {
    use strata_shm::PutIf;
    let dir = ShmDir::new("cas");
    let seg = dir.create("s", 16 * MIB);
    let no = PutOptions::default();
    seg.put(b"k", b"v1", &no).unwrap();
    let v1 = seg.get_view(b"k").unwrap().unwrap();
    assert!(seg
        .put_if(b"k", b"v2", &no, PutIf::Version(v1.version()))
        .unwrap()
        .is_some());
    // v1's version is gone: a second set with it fails, and changes nothing.
    assert!(seg
        .put_if(b"k", b"v3", &no, PutIf::Version(v1.version()))
        .unwrap()
        .is_none());
    assert_eq!(&*seg.get(b"k").unwrap().unwrap(), b"v2");
    // An expiry change is a new version too.
    let v2 = seg.get_view(b"k").unwrap().unwrap();
    seg.expire(b"k", Duration::from_secs(60)).unwrap();
    assert!(seg
        .put_if(b"k", b"v4", &no, PutIf::Version(v2.version()))
        .unwrap()
        .is_none());
    // An absent key has no version to match.
    assert!(seg
        .put_if(b"gone", b"x", &no, PutIf::Version(v2.version()))
        .unwrap()
        .is_none());
}
