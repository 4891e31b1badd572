//! A pinned view keeps its bytes through overwrite, delete and eviction,
//! holds back only its own block, and releases it when dropped.

mod common;
use common::{ShmDir, MIB};
use strata_shm::{PutOptions, PutOutcome};

#[test]
fn a_view_outlives_overwrite_delete_and_eviction() {
    let dir = ShmDir::new("views");
    let seg = dir.create("s", 16 * MIB);
    let no = PutOptions::default();
    let original = vec![0x11u8; 100_000];
    seg.put(b"k", &original, &no).unwrap();
    let view = seg.get_view(b"k").unwrap().unwrap();
    let range = seg.mapping();
    assert!(
        range.contains(&(view.as_ptr() as usize)),
        "the view points into the mapping"
    );

    seg.put(b"k", &vec![0x22u8; 100_000], &no).unwrap();
    seg.maintain().unwrap();
    assert_eq!(&view[..], &original[..], "survives an overwrite");
    seg.delete(b"k").unwrap();
    seg.maintain().unwrap();
    assert_eq!(&view[..], &original[..], "survives a delete");

    // Evict everything by filling the segment many times over.
    let filler = vec![0x33u8; 100_000];
    let mut evicting = 0;
    for i in 0..2000 {
        if seg.put(format!("f{i}").as_bytes(), &filler, &no).unwrap() == PutOutcome::Inserted {
            evicting += 1;
        }
        seg.maintain().unwrap();
    }
    assert!(seg.stats().unwrap().evictions > 0 && evicting > 0);
    assert_eq!(
        &view[..],
        &original[..],
        "survives evictions and reuse of the arena"
    );

    // Only the view's own block is held back.
    let st = seg.stats().unwrap();
    assert!(st.pinned_bytes > 0 && st.pinned_bytes < 200_000, "{st:?}");
    assert!(st.limbo_bytes <= st.pinned_bytes, "{st:?}");

    // A view crosses threads.
    let handle = std::thread::spawn(move || {
        assert_eq!(view[0], 0x11);
        drop(view);
    });
    handle.join().unwrap();
    seg.maintain().unwrap();
    let st = seg.stats().unwrap();
    assert_eq!(st.pinned_bytes, 0, "{st:?}");
    assert_eq!(st.limbo_bytes, 0, "{st:?}");
    let rep = seg.check().unwrap();
    assert!(rep.is_clean(), "{:?}", rep.violations);
}

#[test]
fn many_views_of_one_key_and_views_across_handles() {
    let dir = ShmDir::new("views2");
    let seg = dir.create("s", 16 * MIB);
    let other = strata_shm::Segment::open("s", &dir.opts(0)).unwrap();
    let no = PutOptions::default();
    let mut views = Vec::new();
    for v in 0..800u32 {
        seg.put(b"k", &v.to_le_bytes(), &no).unwrap();
        views.push((v, other.get_view(b"k").unwrap().unwrap()));
    }
    for (v, view) in &views {
        assert_eq!(&view[..], &v.to_le_bytes());
    }
    // Past a shard's limbo capacity of replaced-but-viewed versions, a
    // write says so instead of blocking or freeing a viewed block.
    let mut refused = None;
    for v in 800..2000u32 {
        match seg.put(b"k", &v.to_le_bytes(), &no) {
            Ok(_) => views.push((v, other.get_view(b"k").unwrap().unwrap())),
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    assert!(
        matches!(refused, Some(strata_shm::Error::Full(_))),
        "{refused:?}"
    );
    for (v, view) in &views {
        assert_eq!(&view[..], &v.to_le_bytes());
    }
    drop(views);
    seg.put(b"k", b"after", &no).unwrap();
    seg.maintain().unwrap();
    let st = seg.stats().unwrap();
    assert_eq!((st.pinned_bytes, st.limbo_bytes), (0, 0), "{st:?}");
    assert!(seg.check().unwrap().is_clean());
}

#[test]
fn revalidate_follows_overwrite_expiry_changes_and_delete() {
    let dir = ShmDir::new("revalidate");
    let seg = dir.create("s", 16 * MIB);
    let no = PutOptions::default();
    // A key that fits inline in its index entry, and one that does not.
    let long = [b'k'; 40];
    for key in [&b"k"[..], &long[..]] {
        seg.put(key, b"v1", &no).unwrap();
        let fresh = |seg: &strata_shm::Segment| seg.get_view(key).unwrap().unwrap();

        let v = fresh(&seg);
        assert_eq!(v.expires_at_ms(), None);
        let hits = seg.stats().unwrap().hits;
        assert!(seg.revalidate(&v).unwrap());
        assert_eq!(
            seg.stats().unwrap().hits,
            hits + 1,
            "a current view counts as a hit"
        );

        seg.put(key, b"v2", &no).unwrap();
        assert!(!seg.revalidate(&v).unwrap(), "an overwrite makes it stale");

        let v = fresh(&seg);
        assert!(seg.expire(key, std::time::Duration::from_secs(60)).unwrap());
        assert!(
            !seg.revalidate(&v).unwrap(),
            "an expiry change makes it stale"
        );
        let v = fresh(&seg);
        assert!(v.expires_at_ms().is_some(), "a fresh view sees the expiry");
        assert!(seg.persist(key).unwrap());
        assert!(!seg.is_current(&v), "so does persist");

        let v = fresh(&seg);
        assert_eq!(v.expires_at_ms(), None);
        assert!(seg.is_current(&v));
        seg.delete(key).unwrap();
        assert!(!seg.is_current(&v), "a delete makes it stale");
        assert_eq!(&v[..], b"v2", "and the view keeps its bytes");
        assert!(seg.check().unwrap().is_clean());
    }
}
