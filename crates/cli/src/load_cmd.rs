//! `strata load`: fills a feature table from a Parquet file, in record
//! batches (never the whole file), with a progress line on a terminal.
//! Parquet support is the `parquet` cargo feature, off by default: arrow
//! and parquet are large to build.

use anyhow::{bail, Context, Result};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use strata_features::{DType, FeatureTable, Field, Schema};

#[derive(clap::Args)]
pub struct LoadArgs {
    /// The feature table to fill.
    pub table: String,
    /// A Parquet file with an id column and a column per field.
    pub file: PathBuf,
    /// The table's fields, if it does not exist yet: `name:dtype[shape]`,
    /// comma-separated, e.g. `age:int32,ltv:float64,emb:float32[128]`.
    #[arg(long)]
    pub schema: Option<String>,
    /// The schema's version, with --schema.
    #[arg(long, default_value_t = 1)]
    pub version: u32,
    /// The column holding entity ids (strings or integers).
    #[arg(long, default_value = "id")]
    pub id_column: String,
    /// Rows per record batch read.
    #[arg(long, default_value_t = 65_536)]
    pub batch_size: usize,
    #[command(flatten)]
    pub name: crate::NameArg,
}

/// `age:int32,emb:float32[128]` as fields.
pub fn parse_schema(spec: &str) -> Result<Vec<Field>> {
    spec.split(',')
        .map(|f| {
            let (name, ty) = f
                .trim()
                .split_once(':')
                .with_context(|| format!("field {f:?}: expected name:dtype"))?;
            let (ty, shape) = match ty.split_once('[') {
                Some((t, dims)) => {
                    let dims = dims
                        .strip_suffix(']')
                        .with_context(|| format!("field {name:?}: unclosed shape"))?;
                    let shape = dims
                        .split(['x', ';'])
                        .map(|d| d.trim().parse::<usize>())
                        .collect::<Result<Vec<_>, _>>()
                        .with_context(|| format!("field {name:?}: bad shape {dims:?}"))?;
                    (t, shape)
                }
                None => (ty, vec![]),
            };
            Ok(Field::new(name.trim(), DType::parse(ty)?, &shape))
        })
        .collect()
}

pub fn run(ctx: &crate::commands::Ctx, a: &LoadArgs) -> Result<ExitCode> {
    let seg = ctx.open(&a.name.name)?;
    let table = match &a.schema {
        Some(spec) => {
            FeatureTable::create(&seg, Schema::new(&a.table, a.version, parse_schema(spec)?)?)?
        }
        None => FeatureTable::open(&seg, &a.table)
            .with_context(|| "give --schema to create the table".to_string())?,
    };
    let ext = a.file.extension().and_then(|e| e.to_str()).unwrap_or("");
    if ext != "parquet" {
        bail!(
            "{}: `strata load` reads Parquet files; load .npz and .npy from Python with table.load_file",
            a.file.display()
        );
    }
    let started = std::time::Instant::now();
    let rows = parquet_load(&table, a)?;
    crate::progress::show(false, "");
    let secs = started.elapsed().as_secs_f64();
    writeln!(
        std::io::stdout(),
        "loaded {rows} rows into {} in {secs:.2} s ({:.0} rows/s)",
        a.table,
        rows as f64 / secs.max(1e-9)
    )?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(not(feature = "parquet"))]
fn parquet_load(_t: &FeatureTable, _a: &LoadArgs) -> Result<u64> {
    bail!(
        "this strata was built without Parquet support: rebuild with `cargo install --path crates/cli --features parquet`, or load from Python with table.load_file"
    )
}

#[cfg(feature = "parquet")]
fn parquet_load(table: &FeatureTable, a: &LoadArgs) -> Result<u64> {
    use arrow_array::RecordBatch;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    let file = std::fs::File::open(&a.file)
        .with_context(|| format!("cannot open {}", a.file.display()))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .with_context(|| format!("{} is not a Parquet file", a.file.display()))?;
    let total = builder.metadata().file_metadata().num_rows().max(0) as u64;
    let have: Vec<String> = builder
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let schema = table.schema().clone();
    let missing: Vec<&str> = std::iter::once(a.id_column.as_str())
        .chain(schema.fields.iter().map(|f| f.name.as_str()))
        .filter(|c| !have.iter().any(|h| h == c))
        .collect();
    if !missing.is_empty() {
        bail!(
            "{}: no column {missing:?}; it has {have:?}",
            a.file.display()
        );
    }
    let reader = builder.with_batch_size(a.batch_size.max(1)).build()?;
    let mut done = 0u64;
    for batch in reader {
        let batch: RecordBatch = batch?;
        let ids = batch
            .column_by_name(&a.id_column)
            .context("the id column vanished")?;
        let ids = id_strings(ids.as_ref())?;
        let cols: Vec<_> = schema
            .fields
            .iter()
            .map(|f| {
                batch
                    .column_by_name(&f.name)
                    .cloned()
                    .context("a column vanished")
            })
            .collect::<Result<_>>()?;
        for (i, id) in ids.iter().enumerate() {
            let mut row = table.row();
            for (f, col) in schema.fields.iter().zip(&cols) {
                let bytes = field_bytes(col.as_ref(), f, i)
                    .with_context(|| format!("row {}: field {:?}", done + i as u64, f.name))?;
                row.set_bytes(&f.name, &bytes)?;
            }
            table
                .put_row(id.as_bytes(), &row.finish())
                .with_context(|| format!("row {}", done + i as u64))?;
        }
        done += ids.len() as u64;
        crate::progress::show(false, &format!("loading {}: {done}/{total} rows", a.table));
    }
    Ok(done)
}

#[cfg(feature = "parquet")]
fn id_strings(col: &dyn arrow_array::Array) -> Result<Vec<String>> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Int32Type, Int64Type, UInt32Type, UInt64Type};
    use arrow_schema::DataType as A;
    Ok(match col.data_type() {
        A::Utf8 => col
            .as_string::<i32>()
            .iter()
            .map(|s| s.unwrap_or("").to_string())
            .collect(),
        A::LargeUtf8 => col
            .as_string::<i64>()
            .iter()
            .map(|s| s.unwrap_or("").to_string())
            .collect(),
        A::Int64 => col
            .as_primitive::<Int64Type>()
            .values()
            .iter()
            .map(|v| v.to_string())
            .collect(),
        A::Int32 => col
            .as_primitive::<Int32Type>()
            .values()
            .iter()
            .map(|v| v.to_string())
            .collect(),
        A::UInt64 => col
            .as_primitive::<UInt64Type>()
            .values()
            .iter()
            .map(|v| v.to_string())
            .collect(),
        A::UInt32 => col
            .as_primitive::<UInt32Type>()
            .values()
            .iter()
            .map(|v| v.to_string())
            .collect(),
        other => bail!("the id column has type {other}: use strings or integers"),
    })
}

/// Row `i` of `col` as the little-endian bytes of field `f`: a scalar
/// column, or a fixed-size list (nested for more dimensions) for a shaped
/// field. Values convert to the field's dtype as NumPy's `astype` would.
#[cfg(feature = "parquet")]
fn field_bytes(col: &dyn arrow_array::Array, f: &Field, i: usize) -> Result<Vec<u8>> {
    use arrow_array::cast::AsArray;
    use arrow_schema::DataType as A;
    let mut values: &dyn arrow_array::Array = col;
    let (mut start, mut len) = (i, 1usize);
    while let A::FixedSizeList(_, n) = values.data_type() {
        let l = values.as_fixed_size_list();
        let n = *n as usize;
        start *= n;
        len *= n;
        values = l.values().as_ref();
    }
    if len != f.count() {
        bail!(
            "{len} values, the field's shape {:?} takes {}",
            f.shape,
            f.count()
        );
    }
    let mut out = Vec::with_capacity(f.bytes());
    for j in start..start + len {
        let v = scalar(values, j)?;
        push(&mut out, f.dtype, v)?;
    }
    Ok(out)
}

#[cfg(feature = "parquet")]
enum Num {
    I(i128),
    F(f64),
}

#[cfg(feature = "parquet")]
fn scalar(a: &dyn arrow_array::Array, j: usize) -> Result<Num> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::*;
    use arrow_schema::DataType as A;
    if a.is_null(j) {
        bail!("a null value (the table has no nulls)");
    }
    Ok(match a.data_type() {
        A::Boolean => Num::I(a.as_boolean().value(j) as i128),
        A::Int8 => Num::I(a.as_primitive::<Int8Type>().value(j) as i128),
        A::Int16 => Num::I(a.as_primitive::<Int16Type>().value(j) as i128),
        A::Int32 => Num::I(a.as_primitive::<Int32Type>().value(j) as i128),
        A::Int64 => Num::I(a.as_primitive::<Int64Type>().value(j) as i128),
        A::UInt8 => Num::I(a.as_primitive::<UInt8Type>().value(j) as i128),
        A::UInt16 => Num::I(a.as_primitive::<UInt16Type>().value(j) as i128),
        A::UInt32 => Num::I(a.as_primitive::<UInt32Type>().value(j) as i128),
        A::UInt64 => Num::I(a.as_primitive::<UInt64Type>().value(j) as i128),
        A::Float32 => Num::F(a.as_primitive::<Float32Type>().value(j) as f64),
        A::Float64 => Num::F(a.as_primitive::<Float64Type>().value(j)),
        other => bail!("column type {other} is not supported"),
    })
}

#[cfg(feature = "parquet")]
fn push(out: &mut Vec<u8>, d: DType, v: Num) -> Result<()> {
    let int = |v: &Num| match v {
        Num::I(x) => Ok(*x),
        Num::F(x) if x.fract() == 0.0 => Ok(*x as i128),
        Num::F(x) => bail!("{x} is not an integer"),
    };
    let real = |v: &Num| match v {
        Num::I(x) => *x as f64,
        Num::F(x) => *x,
    };
    macro_rules! fits {
        ($t:ty) => {{
            let x = int(&v)?;
            let y =
                <$t>::try_from(x).map_err(|_| anyhow::anyhow!("{x} does not fit {}", d.numpy()))?;
            out.extend_from_slice(&y.to_le_bytes());
        }};
    }
    match d {
        DType::Bool => out.push((int(&v)? != 0) as u8),
        DType::I8 => fits!(i8),
        DType::I16 => fits!(i16),
        DType::I32 => fits!(i32),
        DType::I64 => fits!(i64),
        DType::U8 => fits!(u8),
        DType::U16 => fits!(u16),
        DType::U32 => fits!(u32),
        DType::U64 => fits!(u64),
        DType::F32 => out.extend_from_slice(&(real(&v) as f32).to_le_bytes()),
        DType::F64 => out.extend_from_slice(&real(&v).to_le_bytes()),
        DType::F16 | DType::Bytes(_) => bail!("loading {} fields is not supported", d.numpy()),
    }
    Ok(())
}
