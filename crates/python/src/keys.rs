//! Keys from Python: `str` (as UTF-8) or `bytes`, one at a time or a batch,
//! and the integer-id fast path that formats `prefix + decimal id` in Rust.

use numpy::PyArrayDescrMethods;
use numpy::{PyReadonlyArray1, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};

/// The bytes of one key.
#[inline]
pub fn key_bytes<'a>(key: &'a Bound<'_, PyAny>) -> PyResult<&'a [u8]> {
    if let Ok(s) = key.cast::<PyString>() {
        return Ok(s.to_str()?.as_bytes());
    }
    if let Ok(b) = key.cast::<PyBytes>() {
        return Ok(b.as_bytes());
    }
    Err(PyTypeError::new_err(format!(
        "key must be str or bytes, not {}",
        key.get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_default()
    )))
}

/// A batch of keys laid end to end in one buffer.
#[derive(Default)]
pub struct KeyBatch {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl KeyBatch {
    /// The keys of `keys`: a sequence of str or bytes, or a 1-d array of
    /// integer ids. `prefix` goes in front of each.
    pub fn from_py(keys: &Bound<'_, PyAny>, prefix: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let prefix = match prefix {
            Some(p) => key_bytes(p)?,
            None => &[],
        };
        if let Ok(arr) = keys.cast::<PyUntypedArray>() {
            let kind = arr.dtype().kind();
            if kind == b'i' || kind == b'u' {
                return Self::from_ids(arr, prefix, kind == b'u');
            }
        }
        if keys.is_instance_of::<PyString>() || keys.is_instance_of::<PyBytes>() {
            return Err(PyTypeError::new_err(
                "keys must be a sequence of keys or an array of integer ids, not one key",
            ));
        }
        let mut batch = KeyBatch::default();
        for key in keys.try_iter()? {
            let key = key?;
            batch.push_parts(prefix, key_bytes(&key)?);
        }
        Ok(batch)
    }

    fn from_ids(arr: &Bound<'_, PyUntypedArray>, prefix: &[u8], unsigned: bool) -> PyResult<Self> {
        if arr.ndim() != 1 {
            return Err(PyValueError::new_err(format!(
                "ids must be a 1-d array, not {}-d",
                arr.ndim()
            )));
        }
        let n = arr.len();
        let mut batch = KeyBatch {
            bytes: Vec::with_capacity(n * (prefix.len() + 8)),
            ends: Vec::with_capacity(n),
        };
        let mut digits = [0u8; 20];
        if unsigned {
            let ids: PyReadonlyArray1<u64> = as_dtype(arr, "uint64")?;
            for &id in ids.as_array() {
                batch.push_parts(prefix, format_u64(id, &mut digits));
            }
        } else {
            let ids: PyReadonlyArray1<i64> = as_dtype(arr, "int64")?;
            for &id in ids.as_array() {
                if id < 0 {
                    batch.bytes.extend_from_slice(prefix);
                    batch.bytes.push(b'-');
                    batch
                        .bytes
                        .extend_from_slice(format_u64(id.unsigned_abs(), &mut digits));
                    batch.ends.push(batch.bytes.len());
                } else {
                    batch.push_parts(prefix, format_u64(id as u64, &mut digits));
                }
            }
        }
        Ok(batch)
    }

    fn push_parts(&mut self, prefix: &[u8], key: &[u8]) {
        self.bytes.extend_from_slice(prefix);
        self.bytes.extend_from_slice(key);
        self.ends.push(self.bytes.len());
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// The keys, as slices of the batch.
    pub fn slices(&self) -> Vec<&[u8]> {
        let mut start = 0;
        self.ends
            .iter()
            .map(|&end| {
                let k = &self.bytes[start..end];
                start = end;
                k
            })
            .collect()
    }
}

/// The ids as 64-bit integers: the array itself when it already holds
/// them (the usual int64 array costs no copy), else a converted copy.
fn as_dtype<'py, T: numpy::Element>(
    arr: &Bound<'py, PyUntypedArray>,
    dtype: &str,
) -> PyResult<PyReadonlyArray1<'py, T>> {
    match arr.extract() {
        Ok(ids) => Ok(ids),
        Err(_) => arr.call_method1("astype", (dtype,))?.extract(),
    }
}

/// The decimal digits of `n`, as Python's `str(n)` writes them.
fn format_u64(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}
