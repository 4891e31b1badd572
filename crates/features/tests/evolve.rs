//! Schema evolution: values carried over and widened, fields added and
//! dropped, lossy changes refused unless allowed, and readers in another
//! process that see the old schema or the new one, never a mix.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use strata_features::{is_widening, DType, Error, FeatureTable, Field, Schema};
use strata_shm::{Segment, SegmentOptions};

fn dir(tag: &str) -> std::path::PathBuf {
    let p = std::path::PathBuf::from(format!(
        "/dev/shm/strata-evolve-test-{tag}-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&p).unwrap();
    p
}

fn v1() -> Schema {
    Schema::new(
        "t",
        1,
        vec![
            Field::new("a", DType::I32, &[]),
            Field::new("b", DType::F32, &[]),
            Field::new("c", DType::I16, &[2]),
        ],
    )
    .unwrap()
}

fn v2() -> Schema {
    Schema::new(
        "t",
        2,
        vec![
            Field::new("a", DType::I32, &[]),
            Field::new("c", DType::I64, &[2]),
            Field::new("d", DType::F64, &[]),
        ],
    )
    .unwrap()
}

const ROWS: i32 = 2000;

fn fill_v1(t: &FeatureTable) {
    for i in 0..ROWS {
        let mut r = t.row();
        r.set("a", &[i]).unwrap();
        r.set("b", &[i as f32 / 2.0]).unwrap();
        r.set("c", &[i as i16, -(i as i16)]).unwrap();
        t.put_row(i.to_string().as_bytes(), &r.finish()).unwrap();
    }
}

/// Checks one entity's row against whichever version the handle has;
/// false if the row mixes versions or is wrong.
fn consistent(t: &FeatureTable, i: i32) -> Option<bool> {
    let r = t.get(i.to_string().as_bytes()).unwrap()?;
    Some(match t.schema().version {
        1 => {
            r.scalar::<i32>("a").unwrap() == i
                && r.scalar::<f32>("b").unwrap() == i as f32 / 2.0
                && r.field::<i16>("c").unwrap() == [i as i16, -(i as i16)]
        }
        _ => {
            r.scalar::<i32>("a").unwrap() == i
                && r.field::<i64>("c").unwrap() == [i as i64, -(i as i64)]
                && r.scalar::<f64>("d").unwrap() == 7.5
        }
    })
}

#[test]
fn evolve_carries_widens_adds_and_drops() {
    let d = dir("basic");
    let seg =
        Segment::open_or_create("e", &SegmentOptions::default().memory(32 << 20).dir(&d)).unwrap();
    let t = FeatureTable::create(&seg, v1()).unwrap();
    fill_v1(&t);
    let keys_before = seg.stats().unwrap().entries;
    let staged = FeatureTable::create(&seg, v1()).unwrap();
    let mut fill = {
        let probe = Schema::new("t", 2, v2().fields).unwrap();
        vec![0u8; probe.layout().unwrap().row_size]
    };
    // d is at offset 24 in v2 (a @0, c @8..24).
    fill[24..32].copy_from_slice(&7.5f64.to_le_bytes());
    let (t2, report) = staged.evolve(v2(), Some(&fill), false).unwrap();
    assert_eq!((report.rows, report.removed), (ROWS as u64, ROWS as u64));
    assert_eq!(seg.stats().unwrap().entries, keys_before);
    assert!(!t.is_current().unwrap());
    assert!(t2.is_current().unwrap());
    for i in [0, 1, 777, ROWS - 1] {
        assert_eq!(consistent(&t2, i), Some(true));
    }
    // The old handle misses now, and a reopened one reads the new rows.
    assert!(t.get(b"5").unwrap().is_none());
    assert_eq!(
        consistent(&FeatureTable::open(&seg, "t").unwrap(), 5),
        Some(true)
    );
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn lossy_and_impossible_changes_are_refused() {
    let d = dir("refuse");
    let seg =
        Segment::open_or_create("e", &SegmentOptions::default().memory(16 << 20).dir(&d)).unwrap();
    let t = FeatureTable::create(&seg, v1()).unwrap();
    fill_v1(&t);
    let narrow = Schema::new("t", 2, vec![Field::new("a", DType::I16, &[])]).unwrap();
    assert!(matches!(
        t.evolve(narrow.clone(), None, false),
        Err(Error::BadValue { .. })
    ));
    let reshape = Schema::new("t", 2, vec![Field::new("c", DType::I16, &[3])]).unwrap();
    assert!(matches!(
        t.evolve(reshape, None, true),
        Err(Error::BadValue { .. })
    ));
    assert!(matches!(
        t.evolve(v1(), None, false),
        Err(Error::InvalidSchema(_))
    ));
    // Nothing changed: the table is as it was.
    assert!(t.is_current().unwrap());
    assert_eq!(consistent(&t, 9), Some(true));
    // Allowed, a narrowing saturates.
    let (t2, _) = t.evolve(narrow, None, true).unwrap();
    assert_eq!(
        t2.get(b"1999")
            .unwrap()
            .unwrap()
            .scalar::<i16>("a")
            .unwrap(),
        1999
    );
    assert!(is_widening(DType::I32, DType::F64));
    assert!(!is_widening(DType::I64, DType::F64));
    assert!(is_widening(DType::U32, DType::I64));
    assert!(!is_widening(DType::I32, DType::U64));
    std::fs::remove_dir_all(&d).ok();
}

/// The reader side of the cross-process test: reads rows for two seconds,
/// reopening the table when a read misses because it moved on, and
/// exits non-zero on any row that is not wholly one version's.
#[test]
fn child_entry() {
    let Ok(d) = std::env::var("EVOLVE_DIR") else {
        return;
    };
    let seg = Segment::open("e", &SegmentOptions::default().dir(&d)).unwrap();
    let mut t = FeatureTable::open(&seg, "t").unwrap();
    let mut versions = std::collections::BTreeSet::new();
    let end = Instant::now() + Duration::from_secs(3);
    let mut i = 0;
    while Instant::now() < end {
        i = (i + 1) % ROWS;
        match consistent(&t, i) {
            Some(true) => {
                versions.insert(t.schema().version);
            }
            Some(false) => panic!("a mixed row for {i} under v{}", t.schema().version),
            None => {
                if !t.is_current().unwrap() {
                    t = FeatureTable::open(&seg, "t").unwrap();
                } else {
                    panic!("row {i} missing from the current version");
                }
            }
        }
    }
    println!("versions seen: {versions:?}");
}

#[test]
fn readers_in_another_process_see_one_version_or_the_other() {
    let d = dir("cross");
    let seg =
        Segment::open_or_create("e", &SegmentOptions::default().memory(32 << 20).dir(&d)).unwrap();
    let t = FeatureTable::create(&seg, v1()).unwrap();
    fill_v1(&t);
    let readers: Vec<_> = (0..2)
        .map(|_| {
            Command::new(std::env::current_exe().unwrap())
                .args(["child_entry", "--exact", "--nocapture", "--test-threads=1"])
                .env("EVOLVE_DIR", &d)
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let layout = v2().layout().unwrap();
    let mut fill = vec![0u8; layout.row_size];
    let off = layout.slots[2].offset;
    fill[off..off + 8].copy_from_slice(&7.5f64.to_le_bytes());
    t.evolve(v2(), Some(&fill), false).unwrap();
    for r in readers {
        let out = r.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "a reader failed: {text}");
        assert!(text.contains("versions seen: {1, 2}"), "{text}");
    }
    std::fs::remove_dir_all(&d).ok();
}
