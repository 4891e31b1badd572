//! Batch reads: `get_many` and `get_numpy_many`, one segment call for the
//! whole batch so index loads overlap and no Python loop runs per key.

use crate::arrays::CallerBuffer;
use crate::cache::{resolve, Cache};
use crate::dtypes::Dims;
use crate::errors::to_py;
use crate::keys::KeyBatch;
use crate::values::numpy_fn;
use numpy::{PyArray1, PyArrayDescr, PyArrayDescrMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};
use strata_shm::{split_tag, Segment};

pub fn get_many<'py>(
    py: Python<'py>,
    cache: &Cache,
    keys: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyList>> {
    let seg = cache.seg()?;
    let batch = KeyBatch::from_py(keys, None)?;
    let keys = batch.slices();
    let mut out: Vec<Option<Bound<'py, PyBytes>>> = Vec::with_capacity(batch.len());
    seg.get_batch(&keys, |_, e| out.push(e.map(|e| PyBytes::new(py, e.value))))
        .map_err(to_py)?;
    let missing: Vec<usize> = (0..keys.len()).filter(|&i| out[i].is_none()).collect();
    for (i, v) in fetch_missing(py, cache, &keys, &missing)? {
        out[i] = Some(PyBytes::new(py, v.bytes()));
    }
    PyList::new(py, out)
}

/// The values of the keys at `missing` (L0 misses) from the tiers behind
/// L0, in one request per Redis node, without the GIL: (index, value) for
/// each one found. Nothing without Redis.
fn fetch_missing(
    py: Python<'_>,
    cache: &Cache,
    keys: &[&[u8]],
    missing: &[usize],
) -> PyResult<Vec<(usize, strata::Value)>> {
    let t = &cache.tiers;
    if missing.is_empty() || !t.has_tiers() {
        return Ok(Vec::new());
    }
    let wanted: Vec<&[u8]> = missing.iter().map(|&i| keys[i]).collect();
    let got = py
        .detach(|| t.fetch_many_copied(&wanted))
        .map_err(crate::errors::cache_to_py)?;
    Ok(missing
        .iter()
        .zip(got)
        .filter_map(|(&i, v)| v.map(|v| (i, v)))
        .collect())
}

/// The layout of one row of the output.
struct Row<'py> {
    descr: Bound<'py, PyArrayDescr>,
    dims: Dims,
    bytes: usize,
    /// The dtype as NumPy spells it in tags, such as `<f4`.
    dtype_str: String,
}

impl<'py> Row<'py> {
    fn new(descr: Bound<'py, PyArrayDescr>, dims: Dims) -> PyResult<Self> {
        let bytes = dims
            .count()
            .and_then(|n| n.checked_mul(descr.itemsize()))
            .ok_or_else(|| PyValueError::new_err("row shape too large"))?;
        let dtype_str = descr.getattr("str")?.extract()?;
        Ok(Row {
            descr,
            dims,
            bytes,
            dtype_str,
        })
    }
}

#[allow(clippy::too_many_arguments)]
pub fn get_numpy_many<'py>(
    py: Python<'py>,
    cache: &Cache,
    keys: &Bound<'py, PyAny>,
    out: Option<&Bound<'py, PyAny>>,
    prefix: Option<&Bound<'py, PyAny>>,
    shape: Option<&Bound<'py, PyAny>>,
    dtype: Option<&Bound<'py, PyAny>>,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    let seg = cache.seg()?;
    let batch = KeyBatch::from_py(keys, prefix)?;
    let keys = batch.slices();
    let n = keys.len();

    let (out, row) = match out {
        Some(o) => {
            let row = out_row(o, n)?;
            (o.clone(), row)
        }
        None => {
            let row = first_row(py, cache, seg, &keys, shape, dtype)?;
            let mut full = vec![n];
            full.extend(row.dims.as_slice().iter().map(|&d| d as usize));
            let arr = numpy_fn(py, "empty")?.call1((PyTuple::new(py, full)?, &row.descr))?;
            (arr, row)
        }
    };

    let mut found = vec![false; n];
    let mut bad: Option<(usize, String)> = None;
    let mut dtype_of = DtypeCheck::new(&row.dtype_str);
    let mut buf = CallerBuffer::contiguous(&out)
        .ok_or_else(|| PyValueError::new_err("out must be C-contiguous"))?;
    let copied = buf.with_bytes_mut(|dst| {
        seg.get_batch(&keys, |i, e| {
            let row_dst = &mut dst[i * row.bytes..(i + 1) * row.bytes];
            match e {
                Some(e) if e.value.len() == row.bytes && dtype_of.matches(e.raw_tag) => {
                    e.copy_to(row_dst);
                    found[i] = true;
                }
                Some(e) => {
                    row_dst.fill(0);
                    if bad.is_none() {
                        bad = Some((i, describe(e.raw_tag, e.value.len())));
                    }
                }
                None => row_dst.fill(0),
            }
        })
    });
    match copied {
        None => return Err(PyValueError::new_err("out is read-only")),
        Some(r) => r.map_err(to_py)?,
    }
    drop(buf);
    // L0's misses, from Redis in one request per node, promoted on the way.
    let missing: Vec<usize> = (0..n).filter(|&i| !found[i]).collect();
    let fetched = fetch_missing(py, cache, &keys, &missing)?;
    if !fetched.is_empty() {
        let mut buf = CallerBuffer::contiguous(&out)
            .ok_or_else(|| PyValueError::new_err("out must be C-contiguous"))?;
        buf.with_bytes_mut(|dst| {
            for (i, v) in &fetched {
                let raw = v
                    .type_tag()
                    .and_then(|t| t.encode().ok())
                    .unwrap_or_default();
                if v.len() == row.bytes && dtype_of.matches(&raw) {
                    dst[i * row.bytes..(i + 1) * row.bytes].copy_from_slice(v.bytes());
                    found[*i] = true;
                } else if bad.is_none() {
                    bad = Some((*i, describe(&raw, v.len())));
                }
            }
        })
        .ok_or_else(|| PyValueError::new_err("out is read-only"))?;
    }
    if let Some((i, what)) = bad {
        return Err(PyValueError::new_err(format!(
            "key {:?} holds {what}, not rows of {} bytes of {}",
            String::from_utf8_lossy(keys[i]),
            row.bytes,
            row.dtype_str
        )));
    }
    let found = PyArray1::from_vec(py, found).into_any();
    Ok((out, found))
}

/// The row layout of a caller's `out` array.
fn out_row<'py>(out: &Bound<'py, PyAny>, n: usize) -> PyResult<Row<'py>> {
    let arr = out
        .cast::<PyUntypedArray>()
        .map_err(|_| PyTypeError::new_err("out must be a numpy array"))?;
    let shape = arr.shape();
    if shape.first() != Some(&n) {
        return Err(PyValueError::new_err(format!(
            "out has shape {shape:?}; its first dimension must be the {n} keys"
        )));
    }
    if !arr.is_c_contiguous() {
        return Err(PyValueError::new_err("out must be C-contiguous"));
    }
    let mut dims = Dims::new();
    for &d in &shape[1..] {
        dims.push(d as u64)?;
    }
    Row::new(arr.dtype(), dims)
}

/// The row layout of the first key found, as `get_numpy` would see it.
fn first_row<'py>(
    py: Python<'py>,
    cache: &Cache,
    seg: &Segment,
    keys: &[&[u8]],
    shape: Option<&Bound<'py, PyAny>>,
    dtype: Option<&Bound<'py, PyAny>>,
) -> PyResult<Row<'py>> {
    for key in keys {
        // A guard, not a view: the layout is read at once, so no pin. A
        // peek, not a get: the batch read counts this key's access.
        if let Some(g) = seg.peek(key).map_err(to_py)? {
            let (descr, dims) = resolve(py, &cache.descrs, g.raw_tag(), g.len(), shape, dtype)?;
            return Row::new(descr, dims);
        }
    }
    // Nothing in L0: the first value Redis has, if the cache has Redis
    // (the fetch promotes them all, so the gather then finds them in L0).
    if cache.tiers.has_l2() && shape.is_none() && dtype.is_none() {
        let all: Vec<usize> = (0..keys.len()).collect();
        if let Some((_, v)) = fetch_missing(py, cache, keys, &all)?.into_iter().next() {
            let raw = v
                .type_tag()
                .and_then(|t| t.encode().ok())
                .unwrap_or_default();
            let (descr, dims) = resolve(py, &cache.descrs, &raw, v.len(), shape, dtype)?;
            return Row::new(descr, dims);
        }
    }
    // Nothing found: the caller's layout, or an empty row.
    let descr = match dtype {
        Some(d) => PyArrayDescr::new(py, d)?,
        None => cache.descrs.get(py, "|u1")?,
    };
    let dims = match shape {
        Some(s) => crate::dtypes::parse_shape(s, descr.itemsize(), 0)?,
        None => {
            let mut d = Dims::new();
            d.push(0)?;
            d
        }
    };
    Row::new(descr, dims)
}

/// Whether values' raw tags carry the row's dtype. Rows of one batch
/// nearly always carry the same tag, so the last one that matched is kept:
/// comparing its bytes costs a fraction of parsing a tag.
struct DtypeCheck<'a> {
    dtype: &'a str,
    last_match: Option<Vec<u8>>,
}

impl<'a> DtypeCheck<'a> {
    fn new(dtype: &'a str) -> Self {
        DtypeCheck {
            dtype,
            last_match: None,
        }
    }

    fn matches(&mut self, raw_tag: &[u8]) -> bool {
        if self.last_match.as_deref() == Some(raw_tag) {
            return true;
        }
        let ok = tag_matches(raw_tag, self.dtype);
        if ok {
            self.last_match = Some(raw_tag.to_vec());
        }
        ok
    }
}

fn tag_matches(raw_tag: &[u8], dtype: &str) -> bool {
    match split_tag(raw_tag) {
        Some((d, _)) => d == dtype,
        None => true,
    }
}

fn describe(raw_tag: &[u8], len: usize) -> String {
    match split_tag(raw_tag) {
        Some((d, dims)) => format!("{len} bytes of {d} {:?}", dims.collect::<Vec<_>>()),
        None => format!("{len} untagged bytes"),
    }
}
