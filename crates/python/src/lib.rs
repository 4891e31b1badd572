//! The `strata._strata` extension module: `Cache`, its exceptions and the
//! segment listing. The Python package `strata` re-exports all of it.

mod arrays;
mod batch;
mod cache;
mod dtypes;
mod errors;
mod features;
mod keys;
mod memo;
mod values;

use pyo3::prelude::*;
use std::path::PathBuf;
use strata_shm::{default_dir, Segment};

/// The names of the caches in `dir` (default: `$STRATA_SHM_DIR`, else
/// `/dev/shm`).
#[pyfunction]
#[pyo3(signature = (dir = None))]
fn segments(dir: Option<PathBuf>) -> PyResult<Vec<String>> {
    Segment::list(&dir.unwrap_or_else(default_dir)).map_err(errors::to_py)
}

/// Removes the named cache. Processes attached to it keep their mapping
/// until they close it; new ones no longer find it. True if it existed.
#[pyfunction(name = "drop")]
#[pyo3(signature = (name, dir = None))]
fn drop_segment(name: &str, dir: Option<PathBuf>) -> PyResult<bool> {
    Segment::unlink(name, &dir.unwrap_or_else(default_dir)).map_err(errors::to_py)
}

/// Drains every write-back queue of this process (registered with
/// `atexit`, so that a process that exits normally loses no write).
/// Returns the writes Redis did not take within `timeout` seconds.
#[pyfunction]
#[pyo3(signature = (timeout = 10.0))]
fn _flush_all(py: Python<'_>, timeout: f64) -> usize {
    let t = std::time::Duration::from_secs_f64(timeout.clamp(0.0, 3600.0));
    py.detach(|| strata::flush_all(t))
}

#[pymodule]
fn _strata(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<cache::Cache>()?;
    m.add_class::<cache::ObjectTicketPy>()?;
    m.add_class::<arrays::PinnedValue>()?;
    m.add_function(wrap_pyfunction!(segments, m)?)?;
    m.add_function(wrap_pyfunction!(drop_segment, m)?)?;
    m.add_function(wrap_pyfunction!(_flush_all, m)?)?;
    errors::register(m)?;
    features::register(m)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
