//! The raw-pointer glue between the segment and Python's memory APIs: an
//! ndarray whose buffer is a pinned value, and the bytes of a caller's
//! buffer. This file holds the crate's only `unsafe` code; the segment
//! side of every invariant named here is kept by `strata-shm`.

use crate::dtypes::Dims;
use numpy::npyffi::{self, npy_intp, NpyTypes, PY_ARRAY_API};
use numpy::{PyArrayDescr, PyArrayDescrMethods};
use pyo3::buffer::PyUntypedBuffer;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use std::os::raw::c_int;
use strata_shm::View;

/// Keeps one value pinned in shared memory. It is the `base` of the arrays
/// built on that value, so the value lives exactly as long as they do.
#[pyclass(frozen, module = "strata", name = "PinnedValue")]
pub struct PinnedValue {
    view: View,
}

impl PinnedValue {
    pub fn new(view: View) -> Self {
        PinnedValue { view }
    }
    pub fn view(&self) -> &View {
        &self.view
    }
}

#[pymethods]
impl PinnedValue {
    fn __len__(&self) -> usize {
        self.view.len()
    }
    fn __repr__(&self) -> String {
        format!("<strata.PinnedValue of {} bytes>", self.view.len())
    }
}

/// A read-only ndarray over the pinned value, with `owner` as its base.
/// Fails with `ValueError` unless `dims` times the item size is exactly the
/// value's length.
pub fn readonly_array<'py>(
    owner: Bound<'py, PinnedValue>,
    descr: Bound<'py, PyArrayDescr>,
    dims: &Dims,
) -> PyResult<Bound<'py, PyAny>> {
    let py = owner.py();
    let bytes = owner.get().view.value();
    let need = dims.count().and_then(|n| n.checked_mul(descr.itemsize()));
    let dims = dims.as_slice();
    if need != Some(bytes.len()) {
        return Err(PyValueError::new_err(format!(
            "shape {dims:?} of {} does not cover the value's {} bytes",
            descr,
            bytes.len()
        )));
    }
    let data = bytes.as_ptr() as *mut std::ffi::c_void;
    // SAFETY: `data` points at `bytes.len()` bytes, exactly what `dims` and
    // the item size describe (checked above), C-contiguous, and 64-byte
    // aligned by the block layout. They stay mapped and unchanged while
    // `owner` lives: its View holds a pin entry, which the segment's
    // reclamation honours, and holds the mapping through an Arc.
    // `owner` becomes the array's base, so it lives as long as the array
    // and every view derived from it. Flags 0 leaves WRITEABLE unset, and
    // NumPy refuses to set it later because the base exports no writable
    // buffer. NewFromDescr steals the descriptor reference we pass and
    // SetBaseObject steals the owner reference.
    unsafe {
        let subtype = npyffi::get_type_object(py, NpyTypes::PyArray_Type);
        let arr = PY_ARRAY_API.PyArray_NewFromDescr(
            py,
            subtype,
            descr.into_dtype_ptr(),
            dims.len() as c_int,
            dims.as_ptr() as *mut npy_intp,
            std::ptr::null_mut(),
            data,
            0,
            std::ptr::null_mut(),
        );
        let arr = Bound::from_owned_ptr_or_err(py, arr)?;
        if PY_ARRAY_API.PyArray_SetBaseObject(
            py,
            arr.as_ptr() as *mut npyffi::PyArrayObject,
            owner.into_any().into_ptr(),
        ) < 0
        {
            return Err(PyErr::fetch(py));
        }
        Ok(arr)
    }
}

/// A caller's buffer, exported for the duration of one call.
pub struct CallerBuffer {
    buf: PyUntypedBuffer,
}

impl CallerBuffer {
    /// Exports `obj`'s buffer; None if `obj` has none or it is not
    /// C-contiguous (the caller then makes a contiguous copy).
    pub fn contiguous(obj: &Bound<'_, PyAny>) -> Option<Self> {
        let buf = PyUntypedBuffer::get(obj).ok()?;
        buf.is_c_contiguous().then_some(CallerBuffer { buf })
    }

    /// The buffer's bytes.
    pub fn bytes(&self) -> &[u8] {
        let len = self.buf.len_bytes();
        if len == 0 {
            return &[];
        }
        // SAFETY: the exporter guarantees `len_bytes` contiguous bytes at
        // `buf_ptr` (C-contiguity checked at export) until the buffer is
        // released, which happens when `self` drops; the borrow cannot
        // outlive `self`. Exported memory may not be freed or resized
        // (bytearray and ndarray refuse to while exports exist). Writes to
        // it from other threads that released the GIL are the caller's
        // race, as with every buffer consumer.
        unsafe { std::slice::from_raw_parts(self.buf.buf_ptr() as *const u8, len) }
    }

    /// The buffer's bytes, for writing; None if the buffer is read-only.
    /// The closure form keeps the mutable borrow from escaping or being
    /// taken twice.
    pub fn with_bytes_mut<R>(&mut self, f: impl FnOnce(&mut [u8]) -> R) -> Option<R> {
        if self.buf.readonly() {
            return None;
        }
        let len = self.buf.len_bytes();
        if len == 0 {
            return Some(f(&mut []));
        }
        // SAFETY: as in `bytes`, plus: the exporter declared the buffer
        // writable, and `&mut self` makes this the only borrow of it from
        // this object. The caller holds the GIL across `f` and `f` runs no
        // Python code, so no Python-level alias is used meanwhile.
        let bytes = unsafe { std::slice::from_raw_parts_mut(self.buf.buf_ptr() as *mut u8, len) };
        Some(f(bytes))
    }
}
