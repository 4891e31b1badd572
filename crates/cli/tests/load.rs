//! `strata load` of a Parquet file into a feature table (feature
//! `parquet`), and what it says without that feature.

use std::process::Command;

struct Env(std::path::PathBuf);

impl Env {
    fn new() -> Env {
        let d =
            std::path::PathBuf::from(format!("/dev/shm/strata-load-test-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        Env(d)
    }
    fn run(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_strata"))
            .arg("--dir")
            .arg(&self.0)
            .args(args)
            .env_remove("STRATA_NAME")
            .output()
            .unwrap()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[cfg(not(feature = "parquet"))]
#[test]
fn without_the_feature_load_says_how_to_get_it() {
    let e = Env::new();
    assert!(e
        .run(&["init", "-n", "f", "--memory", "16MiB"])
        .status
        .success());
    let o = e.run(&[
        "load",
        "user",
        "x.parquet",
        "-n",
        "f",
        "--schema",
        "age:int32",
    ]);
    assert_eq!(o.status.code(), Some(3));
    assert!(text(&o).contains("--features parquet"), "{}", text(&o));
}

#[cfg(feature = "parquet")]
#[test]
fn a_parquet_file_fills_a_table_in_batches() {
    use arrow_array::{
        ArrayRef, FixedSizeListArray, Float32Array, Int64Array, RecordBatch, StringArray,
    };
    use std::sync::Arc;

    let e = Env::new();
    assert!(e
        .run(&[
            "init",
            "-n",
            "f",
            "--memory",
            "64MiB",
            "--max-entries",
            "65536"
        ])
        .status
        .success());
    let n = 5000usize;
    let ids: ArrayRef = Arc::new(StringArray::from(
        (0..n).map(|i| format!("u{i}")).collect::<Vec<_>>(),
    ));
    let age: ArrayRef = Arc::new(Int64Array::from((0..n as i64).collect::<Vec<_>>()));
    let emb_values = Float32Array::from((0..n * 3).map(|v| v as f32).collect::<Vec<_>>());
    let field = Arc::new(arrow_schema::Field::new(
        "item",
        arrow_schema::DataType::Float32,
        false,
    ));
    let emb: ArrayRef = Arc::new(FixedSizeListArray::new(
        field,
        3,
        Arc::new(emb_values),
        None,
    ));
    let batch = RecordBatch::try_from_iter([("user_id", ids), ("age", age), ("emb", emb)]).unwrap();
    let path = e.0.join("users.parquet");
    let file = std::fs::File::create(&path).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();

    let p = path.to_str().unwrap();
    let o = e.run(&[
        "load",
        "user",
        p,
        "-n",
        "f",
        "--schema",
        "age:int32,emb:float32[3]",
        "--id-column",
        "user_id",
        "--batch-size",
        "1000",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains(&format!("loaded {n} rows into user")),
        "{}",
        text(&o)
    );
    let seg =
        strata_shm::Segment::open("f", &strata_shm::SegmentOptions::default().dir(&e.0)).unwrap();
    let t = strata_features::FeatureTable::open(&seg, "user").unwrap();
    let r = t.get(b"u4321").unwrap().unwrap();
    assert_eq!(r.scalar::<i32>("age").unwrap(), 4321);
    assert_eq!(r.field::<f32>("emb").unwrap(), &[12963.0, 12964.0, 12965.0]);
    // A missing column is named, and nothing is written.
    let o = e.run(&["load", "other", p, "-n", "f", "--schema", "ltv:float64"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(
        text(&o).contains("no column [\"id\", \"ltv\"]"),
        "{}",
        text(&o)
    );
}
