//! What `set` stores: the bytes of a Python value, and for a NumPy array its
//! dtype and shape as the type tag.

use crate::arrays::CallerBuffer;
use crate::dtypes::refuse_object;
use numpy::{PyArrayDescrMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};
use strata_shm::TypeTag;

/// A value ready to copy into the segment.
pub enum Payload<'py> {
    Bytes(Bound<'py, PyBytes>),
    Buffer(CallerBuffer),
}

impl Payload<'_> {
    pub fn bytes(&self) -> &[u8] {
        match self {
            Payload::Bytes(b) => b.as_bytes(),
            Payload::Buffer(b) => b.bytes(),
        }
    }
}

/// The bytes and type tag of `value`.
pub fn encode<'py>(value: &Bound<'py, PyAny>) -> PyResult<(Payload<'py>, Option<TypeTag>)> {
    if let Ok(b) = value.cast::<PyBytes>() {
        return Ok((Payload::Bytes(b.clone()), None));
    }
    if let Ok(arr) = value.cast::<PyUntypedArray>() {
        return encode_array(arr);
    }
    if value.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err(
            "value must be bytes, a buffer or a numpy array, not str; encode it first",
        ));
    }
    let py = value.py();
    if value.is_instance(&numpy_fn(py, "generic")?)? {
        // A NumPy scalar, such as numpy.float32(1.5): kept with its dtype,
        // as the 0-d array it converts to, rather than as anonymous bytes.
        let arr = numpy_fn(py, "asarray")?.call1((value,))?;
        return encode_array(arr.cast::<PyUntypedArray>()?);
    }
    Ok((contiguous_bytes(value)?, None))
}

fn encode_array<'py>(
    arr: &Bound<'py, PyUntypedArray>,
) -> PyResult<(Payload<'py>, Option<TypeTag>)> {
    let descr = arr.dtype();
    refuse_object(&descr)?;
    if descr.has_fields() || descr.has_subarray() {
        return Err(PyTypeError::new_err(format!(
            "structured dtype {descr} is not supported; store a plain dtype, or .view(numpy.uint8)"
        )));
    }
    let dtype: String = descr.getattr("str")?.extract()?;
    let shape = arr.shape().iter().map(|&d| d as u64).collect();
    let tag = TypeTag::new(dtype, shape);
    let py = arr.py();
    let contiguous = if arr.is_c_contiguous() {
        arr.clone().into_any()
    } else {
        numpy_fn(py, "ascontiguousarray")?.call1((arr,))?
    };
    if let Some(buf) = CallerBuffer::contiguous(&contiguous) {
        return Ok((Payload::Buffer(buf), Some(tag)));
    }
    // Some dtypes (datetime64, for one) are not exported through the
    // buffer protocol; their bytes are.
    let raw = contiguous
        .call_method1("reshape", (-1,))?
        .call_method1("view", (numpy_fn(py, "uint8")?,))?;
    let buf = CallerBuffer::contiguous(&raw)
        .ok_or_else(|| PyTypeError::new_err(format!("cannot read the bytes of dtype {descr}")))?;
    Ok((Payload::Buffer(buf), Some(tag)))
}

/// Bytes of any buffer; a non-contiguous one is copied first.
fn contiguous_bytes<'py>(value: &Bound<'py, PyAny>) -> PyResult<Payload<'py>> {
    if let Some(buf) = CallerBuffer::contiguous(value) {
        return Ok(Payload::Buffer(buf));
    }
    let py = value.py();
    let view = py
        .get_type::<pyo3::types::PyMemoryView>()
        .call1((value,))
        .map_err(|_| {
            PyTypeError::new_err(format!(
                "value must be bytes, a buffer or a numpy array, not {}",
                value
                    .get_type()
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_default()
            ))
        })?;
    let copy = view.call_method0("tobytes")?.cast_into::<PyBytes>()?;
    Ok(Payload::Bytes(copy))
}

/// An attribute of the numpy module.
pub fn numpy_fn<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
    py.import("numpy")?.getattr(name)
}
