//! Feature tables from Python: the Rust table behind `strata.FeatureTable`
//! (python/strata/_features.py builds the NumPy side on it). Records are
//! read through `Cache.get_numpy` with the table's structured dtype;
//! assemble runs here, into the caller's array, with no Python loop.

use crate::arrays::CallerBuffer;
use crate::cache::Cache;
use crate::errors::{to_py, StrataError};
use crate::keys::{key_bytes, KeyBatch};
use numpy::{
    PyArray1, PyArray2, PyArrayDescrMethods, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods,
};
use pyo3::buffer::PyBuffer;
use pyo3::exceptions::{PyKeyError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::sync::Arc;
use std::time::Duration;
use strata_features::{DType, Error, FeatureTable as Table, Field, Plan, Schema};

pyo3::create_exception!(
    strata,
    SchemaMismatchError,
    StrataError,
    "A feature table of this name exists with another schema."
);

fn features_to_py(e: Error) -> PyErr {
    let msg = e.to_string();
    match e {
        Error::Segment(s) => to_py(s),
        Error::SchemaMismatch { .. } => SchemaMismatchError::new_err(msg),
        Error::NoSuchTable(_) => PyKeyError::new_err(msg),
        _ => PyValueError::new_err(msg),
    }
}

fn ttl_of(ttl: Option<f64>) -> PyResult<Option<Duration>> {
    ttl.map(|s| strata_shm::ttl_from_secs(s).map_err(to_py))
        .transpose()
}

/// A field as Python sees it: name, NumPy type string, shape, offset.
type FieldInfo = (String, String, Vec<usize>, usize);

/// A compiled choice of fields, kept by the Python side per `fields=`.
#[pyclass(frozen, module = "strata")]
pub struct FeaturePlan {
    plan: Arc<Plan>,
}

#[pymethods]
impl FeaturePlan {
    #[getter]
    fn width(&self) -> usize {
        self.plan.width()
    }
}

#[pyclass(frozen, module = "strata", name = "_FeatureTable")]
pub struct FeatureTable {
    table: Table,
}

impl FeatureTable {
    fn wrap(table: Table, ttl: Option<f64>, default: Option<Vec<u8>>) -> PyResult<Self> {
        Ok(FeatureTable {
            table: table
                .with_ttl(ttl_of(ttl)?)
                .with_default(default)
                .map_err(features_to_py)?,
        })
    }
}

#[pymethods]
impl FeatureTable {
    /// Creates the table, or attaches if it exists with the same schema.
    #[staticmethod]
    #[pyo3(signature = (cache, name, version, fields, ttl=None, default=None))]
    fn create(
        cache: &Cache,
        name: &str,
        version: u32,
        fields: Vec<(String, String, Vec<usize>)>,
        ttl: Option<f64>,
        default: Option<Vec<u8>>,
    ) -> PyResult<Self> {
        let schema = schema_of(name, version, &fields)?;
        let table = Table::create(cache.seg()?, schema).map_err(features_to_py)?;
        Self::wrap(table, ttl, default)
    }

    /// Attaches to a table that some process created.
    #[staticmethod]
    #[pyo3(signature = (cache, name, ttl=None, default=None))]
    fn open(
        cache: &Cache,
        name: &str,
        ttl: Option<f64>,
        default: Option<Vec<u8>>,
    ) -> PyResult<Self> {
        let table = Table::open(cache.seg()?, name).map_err(features_to_py)?;
        Self::wrap(table, ttl, default)
    }

    /// (fields as `fields()` gives them, row size) of a schema, without
    /// creating a table: for building an evolve's fill row.
    #[staticmethod]
    fn layout_of(
        name: &str,
        version: u32,
        fields: Vec<(String, String, Vec<usize>)>,
    ) -> PyResult<(Vec<FieldInfo>, usize)> {
        let l = schema_of(name, version, &fields)?
            .layout()
            .map_err(features_to_py)?;
        let f = l
            .schema
            .fields
            .iter()
            .zip(&l.slots)
            .map(|(f, s)| (f.name.clone(), f.dtype.numpy(), f.shape.clone(), s.offset))
            .collect();
        Ok((f, l.row_size))
    }

    /// Whether this handle's version is still the table's current one.
    fn is_current(&self) -> PyResult<bool> {
        self.table.is_current().map_err(features_to_py)
    }

    /// Builds the next version from the current rows, flips to it and
    /// removes the old rows; returns the new table and what was done.
    #[pyo3(signature = (version, fields, fill=None, allow_lossy=false))]
    fn evolve(
        &self,
        py: Python<'_>,
        version: u32,
        fields: Vec<(String, String, Vec<usize>)>,
        fill: Option<Vec<u8>>,
        allow_lossy: bool,
    ) -> PyResult<(FeatureTable, u64, u64)> {
        let next = schema_of(&self.table.schema().name, version, &fields)?;
        let t = &self.table;
        let (table, report) = py
            .detach(|| t.evolve(next, fill.as_deref(), allow_lossy))
            .map_err(features_to_py)?;
        Ok((FeatureTable { table }, report.rows, report.removed))
    }

    #[getter]
    fn name(&self) -> String {
        self.table.schema().name.clone()
    }

    #[getter]
    fn version(&self) -> u32 {
        self.table.schema().version
    }

    #[getter]
    fn row_size(&self) -> usize {
        self.table.layout().row_size
    }

    #[getter]
    fn prefix<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.table.row_prefix())
    }

    /// (name, NumPy type string, shape, offset) of every field.
    fn fields(&self) -> Vec<FieldInfo> {
        let l = self.table.layout();
        l.schema
            .fields
            .iter()
            .zip(&l.slots)
            .map(|(f, s)| (f.name.clone(), f.dtype.numpy(), f.shape.clone(), s.offset))
            .collect()
    }

    fn key<'py>(&self, py: Python<'py>, id: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
        let k = self.table.key(key_bytes(id)?).map_err(features_to_py)?;
        Ok(PyBytes::new(py, &k))
    }

    /// Publishes one packed row (any buffer of `row_size` bytes).
    #[pyo3(signature = (id, row, ttl=None))]
    fn put_row(
        &self,
        id: &Bound<'_, PyAny>,
        row: &Bound<'_, PyAny>,
        ttl: Option<f64>,
    ) -> PyResult<()> {
        let buf = PyBuffer::<u8>::get(row)?;
        let bytes = buf.to_vec(row.py())?;
        let ttl = match ttl {
            Some(_) => ttl_of(ttl)?,
            None => None,
        };
        let r = match ttl {
            Some(t) => self.table.put_row_ttl(key_bytes(id)?, &bytes, Some(t)),
            None => self.table.put_row(key_bytes(id)?, &bytes),
        };
        r.map(|_| ()).map_err(features_to_py)
    }

    /// Publishes rows[i] under ids[i], in order; a failure names its
    /// index, and the rows before it stay written.
    fn put_rows(&self, ids: &Bound<'_, PyAny>, rows: &Bound<'_, PyArray2<u8>>) -> PyResult<usize> {
        let keys = KeyBatch::from_py(ids, None)?;
        let rows = rows.readonly();
        let shape = rows.shape();
        if shape[0] != keys.len() || shape[1] != self.table.layout().row_size {
            return Err(PyValueError::new_err(format!(
                "rows of shape {:?} for {} ids of {} bytes each",
                shape,
                keys.len(),
                self.table.layout().row_size
            )));
        }
        let data = rows
            .as_slice()
            .map_err(|_| PyValueError::new_err("rows must be C-contiguous"))?;
        let size = shape[1];
        for (i, id) in keys.slices().iter().enumerate() {
            self.table
                .put_row(id, &data[i * size..(i + 1) * size])
                .map_err(|e| PyValueError::new_err(format!("row {i}: {e}")))?;
        }
        Ok(keys.len())
    }

    /// Every current row: (ids, rows as an n x row_size uint8 array,
    /// write times in Unix ms).
    #[allow(clippy::type_complexity)]
    fn export_rows<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<(
        Vec<Bound<'py, PyBytes>>,
        Bound<'py, PyArray2<u8>>,
        Bound<'py, PyArray1<u64>>,
    )> {
        let t = &self.table;
        let rows: Vec<(Vec<u8>, Vec<u8>, u64)> = py.detach(|| t.rows().collect());
        let size = t.layout().row_size;
        let mut flat = Vec::with_capacity(rows.len() * size);
        let mut ids = Vec::with_capacity(rows.len());
        let mut written = Vec::with_capacity(rows.len());
        for (id, row, w) in &rows {
            ids.push(PyBytes::new(py, id));
            flat.extend_from_slice(row);
            written.push(*w);
        }
        let arr = PyArray1::from_vec(py, flat).reshape([rows.len(), size])?;
        Ok((ids, arr, PyArray1::from_vec(py, written)))
    }

    fn delete(&self, id: &Bound<'_, PyAny>) -> PyResult<bool> {
        self.table.delete(key_bytes(id)?).map_err(features_to_py)
    }

    /// Compiles `fields` (all numeric fields if None) for assemble.
    #[pyo3(signature = (fields=None))]
    fn plan(&self, fields: Option<Vec<String>>) -> PyResult<FeaturePlan> {
        let names: Option<Vec<&str>> = fields
            .as_ref()
            .map(|f| f.iter().map(String::as_str).collect());
        let plan = self.table.plan(names.as_deref()).map_err(features_to_py)?;
        Ok(FeaturePlan {
            plan: Arc::new(plan),
        })
    }

    /// Writes the entity's fields into `out` (a contiguous float32 or
    /// float64 array of the plan's width). False if the entity is absent.
    fn assemble_into(
        &self,
        id: &Bound<'_, PyAny>,
        plan: &FeaturePlan,
        out: &Bound<'_, PyAny>,
    ) -> PyResult<bool> {
        let id = key_bytes(id)?;
        let t = &self.table;
        with_out(out, |o| match o {
            Out::F32(s) => t.assemble(id, &plan.plan, s),
            Out::F64(s) => t.assemble(id, &plan.plan, s),
        })
    }

    /// Fills rows of `out` (len(ids) × width, float32 or float64) and
    /// `found` (bool) for `ids`: str or bytes, or an array of integer ids.
    fn assemble_batch_into(
        &self,
        py: Python<'_>,
        ids: &Bound<'_, PyAny>,
        plan: &FeaturePlan,
        out: &Bound<'_, PyAny>,
        found: &Bound<'_, PyArray1<bool>>,
    ) -> PyResult<usize> {
        let prefix = PyBytes::new(py, self.table.row_prefix());
        let keys = KeyBatch::from_py(ids, Some(prefix.as_any()))?;
        let keys = keys.slices();
        let mut fw = found.readwrite();
        let found = fw
            .as_slice_mut()
            .map_err(|_| PyValueError::new_err("found must be contiguous"))?;
        let t = &self.table;
        let p = &plan.plan;
        with_out(out, |o| {
            py.detach(|| match o {
                Out::F32(s) => t.assemble_keys(&keys, p, s, found),
                Out::F64(s) => t.assemble_keys(&keys, p, s, found),
            })
        })
    }
}

fn schema_of(
    name: &str,
    version: u32,
    fields: &[(String, String, Vec<usize>)],
) -> PyResult<Schema> {
    let fields = fields
        .iter()
        .map(|(n, t, shape)| {
            Ok(Field::new(
                n,
                DType::parse(t).map_err(features_to_py)?,
                shape,
            ))
        })
        .collect::<PyResult<Vec<_>>>()?;
    Schema::new(name, version, fields).map_err(features_to_py)
}

/// A caller's output array, as the slice of its element type.
enum Out<'a> {
    F32(&'a mut [f32]),
    F64(&'a mut [f64]),
}

/// Runs `f` on `out`'s memory: a writable, C-contiguous, aligned float32
/// or float64 buffer (any shape; the table checks the length). Borrowing
/// through the buffer protocol costs less than NumPy's borrow tracking,
/// which a call of a few hundred nanoseconds would notice.
fn with_out<R>(
    out: &Bound<'_, PyAny>,
    f: impl FnOnce(Out<'_>) -> strata_features::Result<R>,
) -> PyResult<R> {
    let kind = out
        .cast::<PyUntypedArray>()
        .map(|a| (a.dtype().kind(), a.dtype().itemsize()))
        .map_err(|_| PyTypeError::new_err("out must be a float32 or float64 NumPy array"))?;
    let mut buf = CallerBuffer::contiguous(out)
        .ok_or_else(|| PyValueError::new_err("out must be C-contiguous"))?;
    let r = buf
        .with_bytes_mut(|b| {
            match kind {
                (b'f', 4) => bytemuck::try_cast_slice_mut::<u8, f32>(b)
                    .map(Out::F32)
                    .map_err(|_| PyValueError::new_err("out is not aligned for float32")),
                (b'f', 8) => bytemuck::try_cast_slice_mut::<u8, f64>(b)
                    .map(Out::F64)
                    .map_err(|_| PyValueError::new_err("out is not aligned for float64")),
                _ => Err(PyTypeError::new_err(
                    "out must be a float32 or float64 array",
                )),
            }
            .and_then(|o| f(o).map_err(features_to_py))
        })
        .ok_or_else(|| PyValueError::new_err("out is read-only"))?;
    r
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<FeatureTable>()?;
    m.add_class::<FeaturePlan>()?;
    m.add(
        "SchemaMismatchError",
        m.py().get_type::<SchemaMismatchError>(),
    )?;
    Ok(())
}
