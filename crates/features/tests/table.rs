//! Feature tables over a real segment: round trips of every dtype,
//! assemble against a plain oracle over random schemas, schema agreement
//! between processes, and no torn row under a writer in another process.

use proptest::prelude::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use strata_features::{DType, Error, FeatureTable, Field, Schema};
use strata_shm::{Segment, SegmentOptions};

struct Dir(std::path::PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let p = std::path::PathBuf::from(format!(
            "/dev/shm/strata-features-test-{tag}-{}",
            std::process::id()
        ));
        std::fs::create_dir_all(&p).unwrap();
        Dir(p)
    }
    fn opts(&self) -> SegmentOptions {
        SegmentOptions::default().memory(64 << 20).dir(&self.0)
    }
    fn seg(&self) -> Segment {
        Segment::open_or_create("ft", &self.opts()).unwrap()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn all_types() -> Schema {
    Schema::new(
        "every",
        1,
        vec![
            Field::new("b", DType::Bool, &[]),
            Field::new("i8", DType::I8, &[2]),
            Field::new("i16", DType::I16, &[]),
            Field::new("i32", DType::I32, &[]),
            Field::new("i64", DType::I64, &[]),
            Field::new("u8", DType::U8, &[]),
            Field::new("u16", DType::U16, &[]),
            Field::new("u32", DType::U32, &[]),
            Field::new("u64", DType::U64, &[]),
            Field::new("f16", DType::F16, &[]),
            Field::new("f32", DType::F32, &[2, 2]),
            Field::new("f64", DType::F64, &[]),
            Field::new("code", DType::Bytes(5), &[]),
        ],
    )
    .unwrap()
}

#[test]
fn every_dtype_round_trips_and_assembles() {
    let d = Dir::new("types");
    let t = FeatureTable::create(&d.seg(), all_types()).unwrap();
    let mut row = t.row();
    row.set("b", &[1u8])
        .unwrap()
        .set("i8", &[-3i8, 4])
        .unwrap()
        .set("i16", &[-300i16])
        .unwrap()
        .set("i32", &[70000i32])
        .unwrap()
        .set("i64", &[-(1i64 << 40)])
        .unwrap()
        .set("u8", &[200u8])
        .unwrap()
        .set("u16", &[60000u16])
        .unwrap()
        .set("u32", &[4_000_000_000u32])
        .unwrap()
        .set("u64", &[1u64 << 50])
        .unwrap()
        .set_bytes("f16", &0x3e00u16.to_le_bytes())
        .unwrap()
        .set("f32", &[0.5f32, -1.5, 2.25, 3.0])
        .unwrap()
        .set("f64", &[1e300f64])
        .unwrap()
        .set_bytes("code", b"ab\0\0\0")
        .unwrap();
    t.put_row(b"e1", &row.finish()).unwrap();
    let r = t.get(b"e1").unwrap().unwrap();
    assert_eq!(r.field::<i8>("i8").unwrap(), &[-3, 4]);
    assert_eq!(r.scalar::<i64>("i64").unwrap(), -(1 << 40));
    assert_eq!(r.field::<f32>("f32").unwrap(), &[0.5, -1.5, 2.25, 3.0]);
    assert_eq!(r.raw("code").unwrap(), b"ab\0\0\0");
    assert!(matches!(r.field::<f64>("f32"), Err(Error::BadValue { .. })));
    let plan = t.plan(None).unwrap();
    let mut x = vec![0f64; plan.width()];
    assert!(t.assemble(b"e1", &plan, &mut x).unwrap());
    assert_eq!(
        x,
        [
            1.0,
            -3.0,
            4.0,
            -300.0,
            70000.0,
            -((1u64 << 40) as f64),
            200.0,
            60000.0,
            4e9,
            (1u64 << 50) as f64,
            1.5,
            0.5,
            -1.5,
            2.25,
            3.0,
            1e300
        ]
    );
    // f32 output: 1e300 becomes infinity, as a cast does; documented.
    let mut y = vec![0f32; plan.width()];
    t.assemble(b"e1", &plan, &mut y).unwrap();
    assert!(y[15].is_infinite());
    // A subset, in the order asked.
    let sub = t.plan(Some(&["f64", "i32"])).unwrap();
    let mut z = vec![0f64; 2];
    t.assemble(b"e1", &sub, &mut z).unwrap();
    assert_eq!(z, [1e300, 70000.0]);
}

#[test]
fn bad_input_gets_typed_errors_and_writes_nothing() {
    let d = Dir::new("bad");
    let seg = d.seg();
    let t = FeatureTable::create(&seg, all_types()).unwrap();
    let mut row = t.row();
    assert!(matches!(
        row.set("nope", &[1i32]),
        Err(Error::UnknownField { .. })
    ));
    assert!(matches!(
        row.set("i32", &[1i64]),
        Err(Error::BadValue { .. })
    ));
    assert!(matches!(
        row.set("f32", &[1f32]),
        Err(Error::BadValue { .. })
    ));
    assert!(matches!(
        t.put_row(b"x", &[0u8; 3]),
        Err(Error::BadValue { .. })
    ));
    assert!(matches!(
        t.put_row(&vec![b'i'; 9000], &row.finish()),
        Err(Error::IdTooLong { .. })
    ));
    assert!(t.get(b"x").unwrap().is_none());
    assert!(matches!(
        t.plan(Some(&["code"])),
        Err(Error::BadValue { .. })
    ));
    let plan = t.plan(None).unwrap();
    assert!(matches!(
        t.assemble(b"x", &plan, &mut [0f32; 2]),
        Err(Error::BadOutput { .. })
    ));
    // Another definition under the same name is refused; the same one attaches.
    let other = Schema::new("every", 1, vec![Field::new("b", DType::Bool, &[])]).unwrap();
    assert!(matches!(
        FeatureTable::create(&seg, other),
        Err(Error::SchemaMismatch { .. })
    ));
    assert!(FeatureTable::create(&seg, all_types()).is_ok());
    assert!(matches!(
        FeatureTable::open(&seg, "none"),
        Err(Error::NoSuchTable(_))
    ));
    assert_eq!(
        FeatureTable::open(&seg, "every").unwrap().schema(),
        &all_types()
    );
}

#[test]
fn assemble_batch_fills_rows_and_marks_the_missing() {
    let d = Dir::new("batch");
    let s = Schema::new(
        "u",
        1,
        vec![
            Field::new("age", DType::I32, &[]),
            Field::new("clicks", DType::I64, &[]),
            Field::new("ltv", DType::F64, &[]),
            Field::new("score", DType::F32, &[]),
        ],
    )
    .unwrap();
    let t = FeatureTable::create(&d.seg(), s).unwrap();
    for i in 0..100i32 {
        let mut r = t.row();
        r.set("age", &[i])
            .unwrap()
            .set("clicks", &[i as i64 * 10])
            .unwrap();
        r.set("ltv", &[i as f64 / 2.0])
            .unwrap()
            .set("score", &[-(i as f32)])
            .unwrap();
        t.put_row(format!("{i}").as_bytes(), &r.finish()).unwrap();
    }
    let ids: Vec<String> = (95..105).map(|i| i.to_string()).collect();
    let plan = t.plan(None).unwrap();
    let mut x = vec![9f32; ids.len() * 4];
    let mut found = vec![false; ids.len()];
    assert_eq!(
        t.assemble_batch(&ids, &plan, &mut x, &mut found).unwrap(),
        5
    );
    assert_eq!(&x[..4], &[95.0, 950.0, 47.5, -95.0]);
    assert_eq!(
        &found[..],
        &[true, true, true, true, true, false, false, false, false, false]
    );
    assert!(x[20..].iter().all(|&v| v == 0.0));
}

fn dtype() -> impl Strategy<Value = DType> {
    prop_oneof![
        Just(DType::Bool),
        Just(DType::I8),
        Just(DType::I16),
        Just(DType::I32),
        Just(DType::I64),
        Just(DType::U16),
        Just(DType::U64),
        Just(DType::F32),
        Just(DType::F64),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]
    #[test]
    fn assemble_equals_a_plain_oracle(
        fields in proptest::collection::vec((dtype(), 1usize..4), 1..8),
        seed in any::<u64>(),
    ) {
        let d = Dir::new(&format!("prop{seed}"));
        let schema = Schema::new(
            "p",
            1,
            fields.iter().enumerate().map(|(i, (t, n))| Field::new(&format!("f{i}"), *t, &[*n])).collect(),
        ).unwrap();
        let t = FeatureTable::create(&d.seg(), schema).unwrap();
        let mut row = t.row();
        let mut want = Vec::new();
        let mut x = seed;
        for (i, (ty, n)) in fields.iter().enumerate() {
            let mut bytes = Vec::new();
            for _ in 0..*n {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let v = (x >> 40) as i64 % 100 - 50;
                let (b, f): (Vec<u8>, f64) = match ty {
                    DType::Bool => (vec![(v > 0) as u8], (v > 0) as u8 as f64),
                    DType::I8 => ((v as i8).to_le_bytes().to_vec(), v as f64),
                    DType::I16 => ((v as i16).to_le_bytes().to_vec(), v as f64),
                    DType::I32 => ((v as i32).to_le_bytes().to_vec(), v as f64),
                    DType::I64 => (v.to_le_bytes().to_vec(), v as f64),
                    DType::U16 => ((v.unsigned_abs() as u16).to_le_bytes().to_vec(), v.unsigned_abs() as f64),
                    DType::U64 => (v.unsigned_abs().to_le_bytes().to_vec(), v.unsigned_abs() as f64),
                    DType::F32 => ((v as f32 / 4.0).to_le_bytes().to_vec(), v as f64 / 4.0),
                    _ => ((v as f64 / 8.0).to_le_bytes().to_vec(), v as f64 / 8.0),
                };
                bytes.extend(b);
                want.push(f);
            }
            row.set_bytes(&format!("f{i}"), &bytes).unwrap();
        }
        t.put_row(b"e", &row.finish()).unwrap();
        let plan = t.plan(None).unwrap();
        let mut got = vec![0f64; plan.width()];
        prop_assert!(t.assemble(b"e", &plan, &mut got).unwrap());
        prop_assert_eq!(got, want);
    }
}

/// The child side of the torn-row test: flips one 200-field row between
/// all 1.0 and all 2.0 until told to stop.
#[test]
fn child_entry() {
    let Ok(dir) = std::env::var("FT_DIR") else {
        return;
    };
    let seg = Segment::open("ft", &SegmentOptions::default().dir(&dir)).unwrap();
    let t = FeatureTable::open(&seg, "wide").unwrap();
    let rows: Vec<Vec<u8>> = [1.0f32, 2.0]
        .iter()
        .map(|&v| {
            let mut r = t.row();
            for i in 0..199 {
                r.set(&format!("f{i}"), &[v]).unwrap();
            }
            r.set("emb", &[v; 128]).unwrap();
            r.finish()
        })
        .collect();
    let end = Instant::now() + Duration::from_secs(2);
    let mut i = 0;
    while Instant::now() < end {
        t.put_row(b"hot", &rows[i % 2]).unwrap();
        i += 1;
    }
}

#[test]
fn no_reader_sees_a_torn_row_while_another_process_writes() {
    let d = Dir::new("torn");
    let mut fields: Vec<Field> = (0..199)
        .map(|i| Field::new(&format!("f{i}"), DType::F32, &[]))
        .collect();
    fields.push(Field::new("emb", DType::F32, &[128]));
    let t = FeatureTable::create(&d.seg(), Schema::new("wide", 1, fields).unwrap()).unwrap();
    let mut first = t.row();
    first.set("emb", &[1.0f32; 128]).unwrap();
    for i in 0..199 {
        first.set(&format!("f{i}"), &[1.0f32]).unwrap();
    }
    t.put_row(b"hot", &first.finish()).unwrap();
    let mut writer = Command::new(std::env::current_exe().unwrap())
        .args(["child_entry", "--exact", "--nocapture", "--test-threads=1"])
        .env("FT_DIR", &d.0)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let plan = t.plan(None).unwrap();
    let mut x = vec![0f32; plan.width()];
    let (mut reads, mut torn, mut kinds) = (0u64, 0u64, [false; 2]);
    while writer.try_wait().unwrap().is_none() {
        assert!(t.assemble(b"hot", &plan, &mut x).unwrap());
        let v = x[0];
        if x.iter().any(|&y| y != v) {
            torn += 1;
        }
        kinds[(v == 2.0) as usize] = true;
        let r = t.get(b"hot").unwrap().unwrap();
        let e = r.field::<f32>("emb").unwrap();
        if e.iter().any(|&y| y != e[0]) || r.scalar::<f32>("f0").unwrap() != e[0] {
            torn += 1;
        }
        reads += 1;
    }
    assert!(writer.wait().unwrap().success());
    assert_eq!(torn, 0, "{torn} torn rows in {reads} reads");
    assert!(kinds[0] && kinds[1], "the reader never saw both versions");
}

#[test]
fn rows_carry_their_write_time_and_can_be_listed() {
    let d = Dir::new("written");
    let seg = d.seg();
    let t = FeatureTable::create(
        &seg,
        Schema::new("w", 1, vec![Field::new("x", DType::I64, &[])]).unwrap(),
    )
    .unwrap();
    let before = seg.now_ms();
    for i in 0..50i64 {
        let mut r = t.row();
        r.set("x", &[i]).unwrap();
        t.put_row(format!("{i}").as_bytes(), &r.finish()).unwrap();
    }
    let after = seg.now_ms();
    let rec = t.get(b"7").unwrap().unwrap();
    assert!((before..=after).contains(&rec.written_ms()));
    assert_eq!(rec.bytes().len(), t.layout().row_size);
    let mut rows: Vec<(Vec<u8>, Vec<u8>, u64)> = t.rows().collect();
    rows.sort();
    assert_eq!(rows.len(), 50);
    assert!(rows.iter().all(|(_, _, w)| (before..=after).contains(w)));
    let (id, row, _) = &rows[0];
    assert_eq!(id, b"0");
    assert_eq!(row, &0i64.to_le_bytes());
    // A copy keeps the time it is given.
    t.put_row_at(b"old", &5i64.to_le_bytes(), None, 1234)
        .unwrap();
    assert_eq!(t.get(b"old").unwrap().unwrap().written_ms(), 1234);
}
