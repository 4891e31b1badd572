//! The change log: every write and delete, by any handle, lands in its
//! key's shard log in order; a reader that falls behind by more than the
//! log holds is told so.

mod common;
use common::{ShmDir, MIB};
use strata_shm::{PutOptions, Segment, SegmentOptions};

#[test]
fn writes_and_deletes_are_logged_in_order_and_laps_are_reported() {
    let dir = ShmDir::new("changes");
    let seg = dir.create("c", 16 * MIB);
    let other = Segment::open("c", &SegmentOptions::default().dir(&dir.path)).unwrap();
    let no = PutOptions::default();
    let h = seg.key_hash(b"k");
    assert_eq!(
        h,
        other.key_hash(b"k"),
        "one hash per segment, whoever asks"
    );
    let (shard, start) = seg.change_position(h);
    other.put(b"k", b"1", &no).unwrap();
    other.put(b"k", b"2", &no).unwrap();
    other.delete(b"k").unwrap();
    // A delete of an absent key is logged too: whoever holds a copy
    // must drop it.
    other.delete(b"k").unwrap();
    let mut got = Vec::new();
    let to = seg.changes_since(shard, start, &mut got).unwrap();
    assert_eq!(got, vec![h; 4]);
    assert_eq!(to, start + 4);
    assert_eq!(seg.change_head(shard), to);
    // Other keys of the shard show up by their own hashes.
    let mut keys = Vec::new();
    for i in 0..10_000u32 {
        let k = format!("x{i}");
        if seg.change_position(seg.key_hash(k.as_bytes())).0 == shard {
            keys.push(k);
        }
        if keys.len() == 3 {
            break;
        }
    }
    for k in &keys {
        other.put(k.as_bytes(), b"v", &no).unwrap();
    }
    got.clear();
    seg.changes_since(shard, to, &mut got).unwrap();
    let want: Vec<u64> = keys.iter().map(|k| seg.key_hash(k.as_bytes())).collect();
    assert_eq!(got, want);
    // Far more writes than the log holds: a reader at `start` has lapped.
    for i in 0..200_000u32 {
        other.put(format!("y{i}").as_bytes(), b"v", &no).unwrap();
    }
    let behind =
        (0..seg.layout().shard_count).any(|s| seg.changes_since(s, 0, &mut Vec::new()).is_err());
    assert!(behind);
    assert!(seg.changes_since(shard, start, &mut Vec::new()).is_err());
}
