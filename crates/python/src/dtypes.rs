//! From a stored type tag, or the caller's `dtype=` and `shape=`, to the
//! NumPy descriptor and dimensions of a view. Descriptors of stored tags are
//! made once per process and reused: building one costs more than a read.

use numpy::npyffi::npy_intp;
use numpy::{PyArrayDescr, PyArrayDescrMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyInt, PyTuple};
use std::sync::{Mutex, OnceLock};
use strata_shm::{split_tag, MAX_NDIM};

/// Dimensions of one array, kept on the stack.
#[derive(Clone, Copy)]
pub struct Dims {
    len: usize,
    dims: [npy_intp; MAX_NDIM],
}

impl Dims {
    pub fn new() -> Self {
        Dims {
            len: 0,
            dims: [0; MAX_NDIM],
        }
    }

    pub fn push(&mut self, d: u64) -> PyResult<()> {
        let d = npy_intp::try_from(d).map_err(|_| PyValueError::new_err("dimension too large"))?;
        let slot = self
            .dims
            .get_mut(self.len)
            .ok_or_else(|| PyValueError::new_err(format!("more than {MAX_NDIM} dimensions")))?;
        *slot = d;
        self.len += 1;
        Ok(())
    }

    pub fn as_slice(&self) -> &[npy_intp] {
        &self.dims[..self.len]
    }

    /// Elements in an array of these dimensions.
    pub fn count(&self) -> Option<usize> {
        self.as_slice()
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(usize::try_from(d).ok()?))
    }
}

/// The descriptor and dimensions a stored type tag stands for.
pub struct TagLayout {
    raw: Box<[u8]>,
    pub descr: Py<PyArrayDescr>,
    pub dims: Dims,
}

/// A tag's layout: cached, or worked out for this call only.
pub enum Layout<'a> {
    Cached(&'a TagLayout),
    Fresh(Box<TagLayout>),
}

impl std::ops::Deref for Layout<'_> {
    type Target = TagLayout;
    fn deref(&self) -> &TagLayout {
        match self {
            Layout::Cached(t) => t,
            Layout::Fresh(t) => t,
        }
    }
}

/// Stored tags whose layout is kept, per cache. Most caches hold one or a
/// few kinds of value; tags beyond these are worked out on every read.
const TAG_LAYOUTS: usize = 16;

/// Descriptors of the dtype strings seen in stored tags, and the layouts
/// of whole tags. A tag's layout is read without a lock: working it out
/// (decoding, a dtype lookup, the dimensions) cost a third of a `get_numpy`.
#[derive(Default)]
pub struct Descrs {
    known: Mutex<Vec<(Box<str>, Py<PyArrayDescr>)>>,
    tags: [OnceLock<TagLayout>; TAG_LAYOUTS],
}

impl Descrs {
    pub fn get<'py>(&self, py: Python<'py>, dtype: &str) -> PyResult<Bound<'py, PyArrayDescr>> {
        if let Some(d) = self.lookup(py, dtype) {
            return Ok(d);
        }
        // Made outside the lock: building a dtype runs Python code, which
        // may switch threads.
        let descr = PyArrayDescr::new(py, dtype)?;
        refuse_object(&descr)?;
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        if !known.iter().any(|(s, _)| &**s == dtype) && known.len() < 64 {
            known.push((dtype.into(), descr.clone().unbind()));
        }
        Ok(descr)
    }

    fn lookup<'py>(&self, py: Python<'py>, dtype: &str) -> Option<Bound<'py, PyArrayDescr>> {
        let known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        known
            .iter()
            .find(|(s, _)| &**s == dtype)
            .map(|(_, d)| d.bind(py).clone())
    }

    /// The layout of the raw stored tag `raw`; None if it is empty or not
    /// a valid tag (the value is then plain bytes).
    #[inline]
    pub fn tag_layout(&self, py: Python<'_>, raw: &[u8]) -> PyResult<Option<Layout<'_>>> {
        for slot in &self.tags {
            match slot.get() {
                Some(t) if *t.raw == *raw => return Ok(Some(Layout::Cached(t))),
                Some(_) => continue,
                None => break,
            }
        }
        let Some((dtype, tag_dims)) = split_tag(raw) else {
            return Ok(None);
        };
        let descr = self.get(py, dtype)?.unbind();
        let mut dims = Dims::new();
        for d in tag_dims {
            dims.push(d)?;
        }
        let mut fresh = TagLayout {
            raw: raw.into(),
            descr,
            dims,
        };
        for slot in &self.tags {
            if slot.get().is_some() {
                continue;
            }
            // Another thread may fill this slot first: try the next one.
            match slot.set(fresh) {
                Ok(()) => return Ok(slot.get().map(Layout::Cached)),
                Err(back) => fresh = back,
            }
        }
        Ok(Some(Layout::Fresh(Box::new(fresh))))
    }
}

/// Object dtypes hold pointers into one process's heap: meaningless, and
/// dangerous, in shared memory.
pub fn refuse_object(descr: &Bound<'_, PyArrayDescr>) -> PyResult<()> {
    if descr.has_object() {
        return Err(PyTypeError::new_err(format!(
            "dtype {descr} holds Python objects, which cannot live in shared memory"
        )));
    }
    Ok(())
}

/// A `shape=` argument: an int or a sequence of ints, with at most one -1
/// standing for whatever length makes the shape cover `len` bytes.
pub fn parse_shape(shape: &Bound<'_, PyAny>, itemsize: usize, len: usize) -> PyResult<Dims> {
    let items: Vec<i64> = if shape.is_instance_of::<PyInt>() {
        vec![shape.extract()?]
    } else if let Ok(t) = shape.cast::<PyTuple>() {
        t.extract()?
    } else {
        shape
            .extract()
            .map_err(|_| PyTypeError::new_err("shape must be an int or a sequence of ints"))?
    };
    let mut dims = Dims::new();
    let mut infer = None;
    let mut known = 1usize;
    for (i, &d) in items.iter().enumerate() {
        match d {
            -1 if infer.is_none() => {
                infer = Some(i);
                dims.push(0)?;
            }
            d if d >= 0 => {
                dims.push(d as u64)?;
                known = known.saturating_mul(d as usize);
            }
            _ => return Err(PyValueError::new_err(format!("invalid shape {items:?}"))),
        }
    }
    if let Some(i) = infer {
        let row = known.saturating_mul(itemsize);
        if row == 0 || len % row != 0 {
            return Err(PyValueError::new_err(format!(
                "shape {items:?} does not divide the value's {len} bytes"
            )));
        }
        dims.dims[i] = (len / row) as npy_intp;
    }
    Ok(dims)
}

/// The one-dimensional shape of `len` bytes of `itemsize`-byte items.
pub fn flat(itemsize: usize, len: usize) -> PyResult<Dims> {
    if itemsize == 0 || len % itemsize != 0 {
        return Err(PyValueError::new_err(format!(
            "the value's {len} bytes are not a whole number of {itemsize}-byte items"
        )));
    }
    let mut d = Dims::new();
    d.push((len / itemsize) as u64)?;
    Ok(d)
}
