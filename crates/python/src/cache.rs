//! `strata.Cache`: one named shared-memory segment, seen from Python.

use crate::arrays::{readonly_array, PinnedValue};
use crate::batch;
use crate::dtypes::{flat, parse_shape, refuse_object, Descrs, Dims};
use crate::errors::{cache_to_py, to_py, StrataError};
use crate::keys::key_bytes;
use crate::memo::{Memo, Recall, Remembered};
use crate::values::{encode, numpy_fn};
use numpy::{PyArrayDescr, PyArrayDescrMethods};
use pyo3::exceptions::{PyKeyError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyInt, PyList, PyString, PyTuple};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use strata_shm::{parse_size, ttl_from_secs, PutOptions, PutOutcome, Segment, SegmentOptions};

/// The memory of a cache created without `memory=`.
const DEFAULT_MEMORY: u64 = 1 << 30;
/// `get_numpy` results a process remembers, at most, per shard: remembered
/// values stay pinned, and a shard's limbo has room for 896
/// replaced-but-pinned blocks across every process. The memo is off by
/// default: a remembered read is cheaper than a lookup and a read that
/// misses it costs a little more, so it pays only when a few keys take
/// most reads (`bench/python_read.py` measures both; `docs/python.md`
/// quotes it).
const MEMO_PER_SHARD: usize = 16;

/// A named cache in shared memory, which every process on the machine can
/// attach. Thread-safe; safe to create before `fork` (gunicorn's master,
/// a `multiprocessing` parent): a forked child registers itself on first
/// use. Arrays returned before a fork must not be used in the child.
/// `memo=N` remembers up to N recent `get_numpy` results of this process,
/// of keys read at least twice lately, and revalidates them with one index
/// load (see docs/python.md).
/// A key's place in L0's change log (`Cache._object_ticket`).
#[pyclass(frozen, module = "strata", name = "_ObjectTicket")]
pub struct ObjectTicketPy(strata::ObjectTicket);

#[pyclass(frozen, module = "strata")]
pub struct Cache {
    seg: Segment,
    /// The tiered cache (L0, and Redis when configured). L0 reads go to
    /// `seg` directly, and only their misses come here.
    pub(crate) tiers: strata::Cache,
    /// How it was opened, for pickling.
    redis: Option<String>,
    redis_cluster: Option<Vec<String>>,
    write: Option<String>,
    default_ttl: Option<f64>,
    channel: Option<String>,
    /// Cleared by `close()`. The segment itself stays mapped until this
    /// object and every array taken from it are gone: a call on another
    /// thread may still be using it, and a flag costs a read a plain load
    /// where a lock and a handle clone cost four atomic operations.
    open: AtomicBool,
    name: String,
    path: PathBuf,
    pub(crate) descrs: Descrs,
    memo: Memo,
    /// The `memo=` this object was opened with, for pickling.
    memo_asked: usize,
    /// The `trust_foreign=` it was opened with, for pickling.
    trust_foreign: bool,
}

impl Cache {
    /// Lets go of remembered `get_numpy` results whose keys have changed.
    fn sweep_memo(&self, seg: &Segment) {
        drop(self.memo.sweep(|p| seg.is_current(p.view())));
    }

    /// An array of a value read through the tiers: a zero-copy view of L0
    /// if it is there, else an array over a copy.
    fn value_array<'py>(
        &self,
        py: Python<'py>,
        value: strata::Value,
        shape: Option<&Bound<'py, PyAny>>,
        dtype: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        match value {
            strata::Value::Shared(view) => {
                let owner = Bound::new(py, PinnedValue::new(view))?;
                let v = owner.get().view();
                let (descr, dims) = resolve(py, &self.descrs, v.raw_tag(), v.len(), shape, dtype)?;
                readonly_array(owner, descr, &dims)
            }
            strata::Value::Owned { bytes, tag } => {
                let raw = tag.and_then(|t| t.encode().ok()).unwrap_or_default();
                let (descr, dims) = resolve(py, &self.descrs, &raw, bytes.len(), shape, dtype)?;
                let flat = numpy_fn(py, "frombuffer")?.call1((PyBytes::new(py, &bytes), descr))?;
                let dims: Vec<usize> = dims.as_slice().iter().map(|&d| d as usize).collect();
                flat.call_method1("reshape", (PyTuple::new(py, dims)?,))
            }
        }
    }

    /// The L1 and L2 half of a read that missed L0, without the GIL. None
    /// without either.
    pub(crate) fn fetch(&self, py: Python<'_>, key: &[u8]) -> PyResult<Option<strata::Value>> {
        if !self.tiers.has_tiers() {
            return Ok(None);
        }
        py.detach(|| self.tiers.fetch(key)).map_err(cache_to_py)
    }

    /// The segment, or an error once closed.
    #[inline]
    pub(crate) fn seg(&self) -> PyResult<&Segment> {
        if self.open.load(Ordering::Acquire) {
            Ok(&self.seg)
        } else {
            Err(StrataError::new_err(format!(
                "cache {:?} is closed",
                self.name
            )))
        }
    }
}

/// `memory=` as bytes: an int, or a size string such as `"1GiB"`.
fn memory_bytes(memory: Option<&Bound<'_, PyAny>>) -> PyResult<u64> {
    let Some(m) = memory else {
        return Ok(DEFAULT_MEMORY);
    };
    size_bytes(m, "memory")
}

/// A size given as an int of bytes or a string such as "256MiB".
fn size_bytes(m: &Bound<'_, PyAny>, what: &str) -> PyResult<u64> {
    if let Ok(s) = m.cast::<PyString>() {
        return parse_size(s.to_str()?).map_err(to_py);
    }
    if m.is_instance_of::<PyInt>() {
        return m.extract::<u64>().map_err(|_| {
            PyValueError::new_err(format!("{what} must be a positive number of bytes"))
        });
    }
    Err(PyTypeError::new_err(format!(
        "{what} must be an int or a size string such as \"1GiB\""
    )))
}

/// Warns when an existing cache was attached to with a `memory`,
/// `max_entries` or `policy` other than its own: all are fixed at
/// creation, and a caller who asked for more should not believe they got
/// it.
fn warn_if_kept(
    py: Python<'_>,
    seg: &Segment,
    memory: Option<u64>,
    max_entries: Option<u64>,
    policy: Option<strata_shm::Policy>,
) -> PyResult<()> {
    let Some(kept) = seg.kept_settings(memory, max_entries, policy) else {
        return Ok(());
    };
    let msg = format!(
        "cache {:?} already exists and keeps {kept}; drop it first to recreate it",
        seg.name()
    );
    let category = py.get_type::<pyo3::exceptions::PyRuntimeWarning>();
    PyErr::warn(py, category.as_any(), &std::ffi::CString::new(msg)?, 1)
}

/// The descriptor and dimensions of a value of `len` bytes with the raw
/// tag `raw_tag`, honouring the caller's `shape=` and `dtype=`. The tag's
/// dimensions are used unless a shape is given or the dtype differs.
pub(crate) fn resolve<'py>(
    py: Python<'py>,
    descrs: &Descrs,
    raw_tag: &[u8],
    len: usize,
    shape: Option<&Bound<'py, PyAny>>,
    dtype: Option<&Bound<'py, PyAny>>,
) -> PyResult<(Bound<'py, PyArrayDescr>, Dims)> {
    let tag = descrs.tag_layout(py, raw_tag)?;
    let descr = match (dtype, &tag) {
        (Some(d), _) => {
            let d = PyArrayDescr::new(py, d)?;
            refuse_object(&d)?;
            d
        }
        (None, Some(t)) => t.descr.bind(py).clone(),
        (None, None) => descrs.get(py, "|u1")?,
    };
    let dims = match (shape, &tag) {
        (Some(s), _) => parse_shape(s, descr.itemsize(), len)?,
        (None, Some(t)) if dtype.is_none() || t.descr.bind(py).is_equiv_to(&descr) => t.dims,
        _ => flat(descr.itemsize(), len)?,
    };
    Ok((descr, dims))
}

#[pymethods]
impl Cache {
    #[new]
    #[pyo3(signature = (name = "default", memory = None, create = true, dir = None, memo = 0, max_entries = None, huge_pages = true, trust_foreign = false, redis = None, redis_cluster = None, write = None, ttl = None, channel = None, l1 = None, l1_policy = None, policy = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        name: &str,
        memory: Option<&Bound<'_, PyAny>>,
        create: bool,
        dir: Option<PathBuf>,
        memo: i64,
        max_entries: Option<u64>,
        huge_pages: bool,
        trust_foreign: bool,
        redis: Option<String>,
        redis_cluster: Option<Vec<String>>,
        write: Option<String>,
        ttl: Option<f64>,
        channel: Option<String>,
        l1: Option<&Bound<'_, PyAny>>,
        l1_policy: Option<String>,
        policy: Option<String>,
    ) -> PyResult<Self> {
        let memo = usize::try_from(memo)
            .map_err(|_| PyValueError::new_err(format!("memo must be 0 or more, not {memo}")))?;
        let asked = memory_bytes(memory)?;
        let mut opts = SegmentOptions::default()
            .memory(asked)
            .huge_pages(huge_pages)
            .trust_foreign(trust_foreign);
        if let Some(dir) = dir {
            opts = opts.dir(dir);
        }
        if let Some(n) = max_entries {
            opts = opts.max_entries(n);
        }
        let policy = policy
            .map(|p| {
                p.parse::<strata_shm::Policy>()
                    .map_err(PyValueError::new_err)
            })
            .transpose()?;
        if let Some(p) = policy {
            opts = opts.policy(p);
        }
        let mut b = strata::Cache::builder(name)
            .segment_options(opts)
            .create(create);
        match (&redis, &redis_cluster) {
            (Some(_), Some(_)) => {
                return Err(PyValueError::new_err(
                    "give redis= or redis_cluster=, not both",
                ))
            }
            (Some(url), None) => b = b.redis(url),
            (None, Some(urls)) => b = b.redis_cluster(urls.clone()),
            (None, None) => {}
        }
        if let Some(w) = &write {
            b = b.write_policy(w.parse().map_err(cache_to_py)?);
        }
        if let Some(t) = ttl {
            b = b.default_ttl(ttl_from_secs(t).map_err(to_py)?);
        }
        if let Some(ch) = &channel {
            b = b.invalidation_channel(ch);
        }
        match (l1, &l1_policy) {
            (Some(size), policy) => {
                let bytes = size_bytes(size, "l1")?;
                if bytes == 0 {
                    return Err(PyValueError::new_err("l1 must be more than 0 bytes"));
                }
                let mut cfg = strata::L1Config::new(bytes);
                if let Some(p) = policy {
                    cfg = cfg.policy(
                        p.parse::<strata::PolicyKind>()
                            .map_err(|e| PyValueError::new_err(e.to_string()))?,
                    );
                }
                b = b.l1_config(cfg);
            }
            (None, Some(_)) => {
                return Err(PyValueError::new_err("l1_policy needs l1= (its size)"));
            }
            (None, None) => {}
        }
        // Creating reserves and zeroes the memory: let other threads run.
        let tiers = py.detach(|| b.build()).map_err(cache_to_py)?;
        let seg = tiers.segment().clone();
        warn_if_kept(py, &seg, memory.map(|_| asked), max_entries, policy)?;
        let memo_asked = memo;
        let memo = memo.min(seg.layout().shard_count as usize * MEMO_PER_SHARD);
        let memo_bytes = (seg.layout().arena_bytes() / 16) as usize;
        Ok(Cache {
            memo: Memo::new(memo, memo_bytes),
            memo_asked,
            trust_foreign,
            tiers,
            redis,
            redis_cluster,
            write,
            default_ttl: ttl,
            channel,
            path: seg.path().to_path_buf(),
            seg,
            open: AtomicBool::new(true),
            name: name.to_string(),
            descrs: Descrs::default(),
        })
    }

    /// Pickles as a way back to the same cache: unpickling attaches to it
    /// by name and directory, never creating one, with the same `memo=`.
    /// So a cache can be passed to `multiprocessing` children however
    /// they start, and to process pools.
    fn __reduce__<'py>(
        slf: &Bound<'py, Self>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        let py = slf.py();
        let me = slf.borrow();
        me.seg()?;
        let dir = me.path.parent().map(PathBuf::from).unwrap_or_default();
        use pyo3::IntoPyObjectExt;
        // The constructor's arguments, in its order.
        let args = PyTuple::new(
            py,
            [
                me.name.clone().into_bound_py_any(py)?,
                py.None().into_bound(py),
                false.into_bound_py_any(py)?,
                dir.into_bound_py_any(py)?,
                me.memo_asked.into_bound_py_any(py)?,
                py.None().into_bound(py),
                true.into_bound_py_any(py)?,
                me.trust_foreign.into_bound_py_any(py)?,
                me.redis.clone().into_bound_py_any(py)?,
                me.redis_cluster.clone().into_bound_py_any(py)?,
                me.write.clone().into_bound_py_any(py)?,
                me.default_ttl.into_bound_py_any(py)?,
                me.channel.clone().into_bound_py_any(py)?,
            ],
        )?;
        Ok((slf.get_type().into_any(), args))
    }

    /// The cache's name.
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// The file that backs the cache, such as `/dev/shm/strata.default`.
    #[getter]
    fn path(&self) -> PathBuf {
        self.path.clone()
    }

    /// Whether `close()` has been called.
    #[getter]
    fn closed(&self) -> bool {
        !self.open.load(Ordering::Acquire)
    }

    /// The address range `(start, end)` of this process's mapping: every
    /// array `get_numpy` returns points inside it.
    #[getter]
    fn mapping(&self) -> PyResult<(usize, usize)> {
        let m = self.seg()?.mapping();
        Ok((m.start, m.end))
    }

    /// Whether this process maps the cache with 2 MiB pages, which makes
    /// lookups faster: true when its creator could build them (Linux 6.1
    /// and later, unless `huge_pages=False`), or when its directory is a
    /// tmpfs mounted with `huge=within_size` or `huge=always` (see
    /// docs/huge-pages.md).
    #[getter]
    fn huge_pages(&self) -> PyResult<bool> {
        Ok(self.seg()?.huge_pages())
    }

    /// The largest value, in bytes, that fits in this cache.
    #[getter]
    fn max_value_size(&self) -> PyResult<u64> {
        Ok(self.seg()?.max_value_size())
    }

    /// Detaches from the cache: this object's calls raise `StrataError`
    /// from now on, and the calling thread's reader slot is given back.
    /// The data stays for other processes; arrays already returned stay
    /// valid until they are gone. The mapping is released once this object
    /// and every array taken from it are gone.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        if self.open.swap(false, Ordering::AcqRel) {
            drop(self.memo.clear());
            self.seg.release_thread();
            py.detach(|| self.tiers.close()).map_err(cache_to_py)?;
        }
        Ok(())
    }

    /// A closed cache cannot be entered: `with` on it raises StrataError.
    fn __enter__(slf: Bound<'_, Self>) -> PyResult<Bound<'_, Self>> {
        slf.borrow().seg()?;
        Ok(slf)
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        let state = if self.closed() { "closed" } else { "open" };
        format!("<strata.Cache {:?} ({state})>", self.name)
    }

    /// Stores `value` under `key`. `value` is bytes, any buffer, or a NumPy
    /// array, whose dtype and shape are kept (a non-contiguous array is
    /// stored contiguous; a NumPy scalar as a 0-d array). `ttl` is in
    /// seconds. Returns False if the cache was full and its admission
    /// policy kept the entries already there.
    #[pyo3(signature = (key, value, ttl = None))]
    fn set(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
        ttl: Option<f64>,
    ) -> PyResult<bool> {
        let seg = self.seg()?;
        let key = key_bytes(key)?;
        let (payload, tag) = encode(value)?;
        let mut opts = PutOptions::default();
        if let Some(ttl) = ttl {
            opts = opts.ttl(ttl_from_secs(ttl).map_err(to_py)?);
        }
        if let Some(tag) = tag {
            opts = opts.tag(tag);
        }
        let t = &self.tiers;
        if t.has_tiers() || t.default_ttl().is_some() {
            // Through the write policy; Redis is waited for without the GIL.
            let bytes = payload.bytes();
            let outcome = py
                .detach(|| t.put(key, bytes, &opts))
                .map_err(cache_to_py)?;
            return Ok(outcome != PutOutcome::Rejected);
        }
        let outcome = match seg.put(key, payload.bytes(), &opts) {
            // Remembered reads may pin blocks whose keys changed: let go of
            // those and try once more.
            Err(strata_shm::Error::Full(_)) if self.memo.enabled() => {
                self.sweep_memo(seg);
                seg.put(key, payload.bytes(), &opts)
            }
            r => r,
        }
        .map_err(to_py)?;
        Ok(outcome != PutOutcome::Rejected)
    }

    /// A copy of the value, or None.
    fn get<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let seg = self.seg()?;
        let key = key_bytes(key)?;
        if let Some(g) = seg.get(key).map_err(to_py)? {
            return Ok(Some(PyBytes::new(py, &g)));
        }
        Ok(self.fetch(py, key)?.map(|v| PyBytes::new(py, v.bytes())))
    }

    /// A read-only NumPy array whose buffer is the value in shared memory:
    /// no copy. It stays valid and unchanged while it (or any slice of it)
    /// lives, whatever happens to the key. dtype and shape come from the
    /// stored type tag (uint8 if none) unless given; given ones must cover
    /// the value's bytes exactly, else ValueError. None if absent.
    #[pyo3(signature = (key, shape = None, dtype = None))]
    fn get_numpy<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
        shape: Option<&Bound<'py, PyAny>>,
        dtype: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let seg = self.seg()?;
        let key = key_bytes(key)?;
        let mut dropped = Vec::new();
        // Only keys read twice lately are remembered: a key read once
        // would churn the memo (an insert, an eviction, an unpin) for nothing.
        let mut memo = false;
        if self.memo.enabled() && shape.is_none() && dtype.is_none() {
            match self.memo.recall(py, key, &mut dropped) {
                Recall::Found(owner, descr, dims) => {
                    if seg.revalidate(owner.get().view()).map_err(to_py)? {
                        return readonly_array(owner, descr, &dims).map(Some);
                    }
                    dropped.extend(self.memo.forget(key));
                    // It was remembered, so it was read twice lately.
                    memo = true;
                }
                Recall::Missed { admit } => memo = admit,
            }
        }
        let view = match seg.get_view(key).map_err(to_py)? {
            Some(v) => v,
            None => match self.fetch(py, key)? {
                None => return Ok(None),
                Some(strata::Value::Shared(v)) => v,
                // Fetched but not admitted into L0: an array of its own.
                Some(owned) => return self.value_array(py, owned, shape, dtype).map(Some),
            },
        };
        let owner = Bound::new(py, PinnedValue::new(view))?;
        let v = owner.get().view();
        if !memo && shape.is_none() && dtype.is_none() {
            // The common case: the stored layout, usually cached.
            if let Some(l) = self.descrs.tag_layout(py, v.raw_tag())? {
                return readonly_array(owner, l.descr.bind(py).clone(), &l.dims).map(Some);
            }
        }
        let (descr, dims) = resolve(py, &self.descrs, v.raw_tag(), v.len(), shape, dtype)?;
        if memo {
            let r = Remembered {
                owner: owner.clone().unbind(),
                descr: descr.clone().unbind(),
                dims,
            };
            self.memo.remember(key, r, &mut dropped);
        }
        readonly_array(owner, descr, &dims).map(Some)
    }

    /// The value of `key`; on a miss in every tier, `fn()` runs once (one
    /// call between this process's threads and the machine's processes),
    /// and its result is stored with `ttl` seconds to live and returned:
    /// as `get_numpy` would return it for an array, as `get` would for
    /// anything else. `fn` returns bytes, a buffer or an ndarray. If it
    /// raises, the exception reaches the caller that ran it, every caller
    /// that waited for it gets `ComputeError`, and nothing is cached. Near
    /// the expiry of a popular key, one reader recomputes it early (XFetch;
    /// `beta=0` turns that off), so its expiry is never a stampede.
    #[pyo3(signature = (key, r#fn, ttl = None, beta = 1.0))]
    fn get_or_compute<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
        r#fn: &Bound<'py, PyAny>,
        ttl: Option<f64>,
        beta: f64,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.seg()?;
        if !r#fn.is_callable() {
            return Err(PyTypeError::new_err("fn must be callable"));
        }
        if !beta.is_finite() || beta < 0.0 {
            return Err(PyValueError::new_err("beta must be 0 or more"));
        }
        let key = key_bytes(key)?.to_vec();
        let opts = strata::ComputeOptions {
            ttl: ttl.map(ttl_from_secs).transpose().map_err(to_py)?,
            beta,
            ..Default::default()
        };
        let func = r#fn.clone().unbind();
        let raised: std::sync::Mutex<Option<PyErr>> = std::sync::Mutex::new(None);
        let compute = || -> Result<strata::Computed, String> {
            Python::attach(|py| {
                let out = func.bind(py).call0().and_then(|v| {
                    let (payload, tag) = encode(&v)?;
                    Ok((payload.bytes().to_vec(), tag))
                });
                out.map_err(|e| {
                    let msg = e.to_string();
                    *raised.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                    msg
                })
            })
        };
        // Waiting for another computation, or for Redis, without the GIL.
        let got = py.detach(|| self.tiers.get_or_compute(&key, &opts, compute));
        let value = match got {
            Ok(v) => v,
            Err(e) => {
                let mine = raised.lock().unwrap_or_else(|p| p.into_inner()).take();
                return Err(mine.unwrap_or_else(|| cache_to_py(e)));
            }
        };
        if value.type_tag().is_some() {
            return self.value_array(py, value, None, None);
        }
        Ok(PyBytes::new(py, value.bytes()).into_any())
    }

    /// The object `@strata.cached` kept in this process's L1 for `key`,
    /// else `default`: see `Cache::get_object`.
    fn _object_get<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
        default: Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.seg()?;
        Ok(match self.tiers.get_object::<Py<PyAny>>(key_bytes(key)?) {
            Some(obj) => obj.bind(py).clone(),
            None => default,
        })
    }

    /// Where `key` stands in L0's change log, to take before reading the
    /// bytes an object is decoded from; None without L1.
    fn _object_ticket(&self, key: &Bound<'_, PyAny>) -> PyResult<Option<ObjectTicketPy>> {
        self.seg()?;
        Ok(self
            .tiers
            .object_ticket(key_bytes(key)?)
            .map(ObjectTicketPy))
    }

    /// Keeps `obj`, decoded from `key`'s value read after `ticket`, in L1
    /// unless the key changed since; charged `size` bytes; expiring with
    /// the value, or after `ttl` seconds if L0 does not hold it.
    /// `wrote`: this call computed and stored the value itself.
    #[pyo3(signature = (key, ticket, obj, size, ttl = None, wrote = false))]
    fn _object_keep(
        &self,
        key: &Bound<'_, PyAny>,
        ticket: &ObjectTicketPy,
        obj: Bound<'_, PyAny>,
        size: usize,
        ttl: Option<f64>,
        wrote: bool,
    ) -> PyResult<bool> {
        self.seg()?;
        let ttl = ttl.map(ttl_from_secs).transpose().map_err(to_py)?;
        let ticket = if wrote { ticket.0.wrote() } else { ticket.0 };
        Ok(self.tiers.keep_object(
            ticket,
            key_bytes(key)?,
            std::sync::Arc::new(obj.unbind()),
            size,
            ttl,
        ))
    }

    /// Loads values from Redis into the shared memory ahead of traffic, in
    /// pipelined batches: `keys` (a list), the keys matching `pattern` (a
    /// Redis glob, through SCAN, on every primary of a cluster), or the keys in the
    /// file at `path` that `save_hot_keys` wrote. Shows progress on a
    /// terminal. With `every=seconds` it repeats in a background thread
    /// until `close()`, and returns None at once. Returns
    /// `{"keys", "present", "loaded", "missing"}`.
    #[pyo3(signature = (keys = None, *, pattern = None, path = None, every = None))]
    fn warm<'py>(
        slf: &Bound<'py, Self>,
        keys: Option<&Bound<'py, PyAny>>,
        pattern: Option<String>,
        path: Option<PathBuf>,
        every: Option<f64>,
    ) -> PyResult<Option<Bound<'py, PyDict>>> {
        let py = slf.py();
        let me = slf.get();
        me.seg()?;
        if !me.tiers.has_l2() {
            return Err(PyValueError::new_err(
                "warming needs Redis (redis= or redis_cluster=)",
            ));
        }
        let list: Option<Vec<Vec<u8>>> = match keys {
            Some(k) => Some(
                k.try_iter()?
                    .map(|x| key_bytes(&x?).map(|b| b.to_vec()))
                    .collect::<PyResult<_>>()?,
            ),
            None => None,
        };
        let spec = match (list, pattern, path) {
            (Some(k), None, None) => WarmSpec::Keys(k),
            (None, Some(p), None) => WarmSpec::Pattern(p),
            (None, None, Some(p)) => WarmSpec::File(p),
            _ => {
                return Err(PyValueError::new_err(
                    "give exactly one of keys, pattern= or path=",
                ))
            }
        };
        if let Some(secs) = every {
            let period = std::time::Duration::try_from_secs_f64(secs)
                .ok()
                .filter(|d| !d.is_zero())
                .ok_or_else(|| {
                    PyValueError::new_err("every must be a positive number of seconds")
                })?;
            let obj = slf.clone().unbind();
            std::thread::Builder::new()
                .name("strata-warm".into())
                .spawn(move || loop {
                    std::thread::sleep(period);
                    let open = Python::attach(|py| {
                        let c = obj.bind(py).get();
                        if c.closed() {
                            return false;
                        }
                        let _ = py.detach(|| spec.run(&c.tiers, false));
                        true
                    });
                    if !open {
                        return;
                    }
                })
                .map_err(|e| {
                    StrataError::new_err(format!("cannot start the warming thread: {e}"))
                })?;
            return Ok(None);
        }
        let rep = py
            .detach(|| spec.run(&me.tiers, true))
            .map_err(cache_to_py)?;
        let d = PyDict::new(py);
        d.set_item("keys", rep.keys)?;
        d.set_item("present", rep.present)?;
        d.set_item("loaded", rep.loaded)?;
        d.set_item("missing", rep.missing)?;
        Ok(Some(d))
    }

    /// Writes the `n` keys this cache holds that are read most often, one
    /// per line, for `warm(path=...)` on another machine. Returns how many.
    fn save_hot_keys(&self, py: Python<'_>, path: PathBuf, n: usize) -> PyResult<usize> {
        self.seg()?;
        py.detach(|| self.tiers.save_hot_keys(&path, n))
            .map_err(cache_to_py)
    }

    /// The same cache under a namespace whose version `bump()` moves on,
    /// making all of its entries unreachable at once (see docs/tiered.md).
    fn namespace<'py>(slf: &Bound<'py, Self>, name: &str) -> PyResult<Bound<'py, PyAny>> {
        slf.borrow().seg()?;
        slf.py()
            .import("strata._namespace")?
            .getattr("Namespace")?
            .call1((slf, name))
    }

    /// The feature table `name` that some process created in this cache.
    #[pyo3(signature = (name, ttl=None))]
    fn table<'py>(
        slf: &Bound<'py, Self>,
        name: &str,
        ttl: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        slf.borrow().seg()?;
        slf.py()
            .import("strata._features")?
            .getattr("FeatureTable")?
            .call_method1("open", (slf, name, ttl))
    }

    /// A namespace's current version (for `Namespace`).
    fn _namespace_version(&self, py: Python<'_>, name: &str) -> PyResult<u64> {
        self.seg()?;
        py.detach(|| self.tiers.namespace_version(name))
            .map_err(cache_to_py)
    }

    /// Moves a namespace to a new version (for `Namespace.bump`).
    fn _namespace_bump(&self, py: Python<'_>, name: &str) -> PyResult<u64> {
        self.seg()?;
        py.detach(|| self.tiers.bump_namespace(name))
            .map_err(cache_to_py)
    }

    /// Removes the key, from Redis too unless the cache only reads it;
    /// True if it was there.
    fn delete(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        let seg = self.seg()?;
        let key = key_bytes(key)?;
        if self.tiers.has_l2() {
            return py.detach(|| self.tiers.delete(key)).map_err(cache_to_py);
        }
        seg.delete(key).map_err(to_py)
    }

    /// Drops the key from this machine's cache and, through Redis pub/sub,
    /// from every other machine's; Redis itself keeps it, so the next read
    /// anywhere fetches it again. True if it was here.
    fn invalidate(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        let seg = self.seg()?;
        let key = key_bytes(key)?;
        if self.tiers.has_l2() {
            return py
                .detach(|| self.tiers.invalidate(key))
                .map_err(cache_to_py);
        }
        seg.delete(key).map_err(to_py)
    }

    /// Waits until every write queued for Redis (write="back") is there.
    /// UpstreamError if Redis does not take them within `timeout` seconds;
    /// they stay queued.
    #[pyo3(signature = (timeout = 10.0))]
    fn flush(&self, py: Python<'_>, timeout: f64) -> PyResult<()> {
        self.seg()?;
        let t = &self.tiers;
        let timeout = std::time::Duration::try_from_secs_f64(timeout).map_err(|_| {
            PyValueError::new_err("timeout must be a non-negative number of seconds")
        })?;
        py.detach(|| t.flush_within(timeout)).map_err(cache_to_py)
    }

    /// Sets the key's time to live, in seconds (in Redis too, unless the
    /// cache only reads it); True if the key exists.
    fn expire(&self, py: Python<'_>, key: &Bound<'_, PyAny>, ttl: f64) -> PyResult<bool> {
        let ttl = ttl_from_secs(ttl).map_err(to_py)?;
        let seg = self.seg()?;
        let key = key_bytes(key)?;
        if self.tiers.has_l2() {
            return py
                .detach(|| self.tiers.expire(key, Some(ttl)))
                .map_err(cache_to_py);
        }
        seg.expire(key, ttl).map_err(to_py)
    }

    /// Removes the key's time to live (in Redis too, unless the cache only
    /// reads it); True if the key exists.
    fn persist(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        let seg = self.seg()?;
        let key = key_bytes(key)?;
        if self.tiers.has_l2() {
            return py
                .detach(|| self.tiers.expire(key, None))
                .map_err(cache_to_py);
        }
        seg.persist(key).map_err(to_py)
    }

    /// Seconds the key has left, None if it never expires. KeyError if the
    /// key is absent.
    fn ttl(&self, key: &Bound<'_, PyAny>) -> PyResult<Option<f64>> {
        let seg = self.seg()?;
        let k = key_bytes(key)?;
        let Some(guard) = seg.get(k).map_err(to_py)? else {
            return Err(PyKeyError::new_err(key.clone().unbind()));
        };
        Ok(guard
            .expires_at_ms()
            .map(|at| at.saturating_sub(seg.now_ms()) as f64 / 1000.0))
    }

    fn __contains__(&self, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        self.seg()?.contains(key_bytes(key)?).map_err(to_py)
    }

    /// Entries in the cache (expired ones count until swept).
    fn __len__(&self) -> PyResult<usize> {
        Ok(self.seg()?.len() as usize)
    }

    /// The live keys, as bytes. Keys written meanwhile may or may not appear.
    fn keys<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let seg = self.seg()?;
        let keys: Vec<Vec<u8>> = seg.keys().collect();
        PyList::new(py, keys.iter().map(|k| PyBytes::new(py, k)))
    }

    /// Everything the segment reports: entries, bytes, counters, readers.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let seg = self.seg()?;
        self.sweep_memo(seg);
        let s = seg.stats().map_err(to_py)?;
        let d = PyDict::new(py);
        for (k, v) in s.fields() {
            d.set_item(k, v)?;
        }
        {
            let ts = self.tiers.stats().map_err(cache_to_py)?;
            d.set_item("l0_latency_p50_ns", ts.l0_latency.p50_ns)?;
            d.set_item("l0_latency_p99_ns", ts.l0_latency.p99_ns)?;
            d.set_item("l0_latency_samples", ts.l0_latency.samples)?;
            if let Some(l2) = ts.l2 {
                d.set_item("l2_hits", l2.hits)?;
                d.set_item("l2_misses", l2.misses)?;
                d.set_item("l2_errors", l2.errors)?;
                d.set_item("l2_requests", l2.requests)?;
                d.set_item("l2_latency_p50_us", l2.latency_p50_us)?;
                d.set_item("l2_latency_p99_us", l2.latency_p99_us)?;
                d.set_item("l2_breaker", l2.breaker)?;
            }
            if let Some(l1) = ts.l1 {
                d.set_item("l1_hits", l1.hits)?;
                d.set_item("l1_misses", l1.misses)?;
                d.set_item("l1_entries", l1.entries)?;
                d.set_item("l1_bytes", l1.weight)?;
                d.set_item("l1_capacity", l1.capacity)?;
                d.set_item("l1_evictions", l1.evictions)?;
                d.set_item("l1_rejections", l1.rejections)?;
                d.set_item("l1_demotions", ts.l1_demotions)?;
                d.set_item("l1_promotions", ts.l1_promotions)?;
                d.set_item("l1_invalidated", ts.l1_invalidated)?;
                d.set_item("l1_lapped", ts.l1_lapped)?;
                d.set_item("l1_objects", ts.l1_objects)?;
            }
            d.set_item("promotions", ts.promotions)?;
            d.set_item("write_back_pending", ts.write_back_pending)?;
            d.set_item("write_back_lag_ms", ts.write_back_lag_ms)?;
            d.set_item("write_back_flushed", ts.write_back_flushed)?;
            d.set_item("write_back_errors", ts.write_back_errors)?;
            d.set_item("computes", ts.computes)?;
            d.set_item("coalesced_waits", ts.coalesced_waits)?;
            d.set_item("early_refreshes", ts.early_refreshes)?;
            if self.tiers.has_l2() {
                d.set_item("invalidations_sent", ts.invalidations_sent)?;
                d.set_item("invalidations_received", ts.invalidations_received)?;
                d.set_item("invalidation_gaps", ts.invalidation_gaps)?;
                d.set_item(
                    "invalidation_subscriber",
                    self.tiers.is_invalidation_subscriber(),
                )?;
            }
        }
        Ok(d)
    }

    /// Copies of many values at once: a list with None for each absent key.
    fn get_many<'py>(
        &self,
        py: Python<'py>,
        keys: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyList>> {
        batch::get_many(py, self, keys)
    }

    /// Many values gathered into one new (or the given) C-contiguous array
    /// of shape `(N, *row_shape)`, and a boolean mask of the keys found;
    /// rows of absent keys are zero.
    ///
    /// `keys` is a sequence of str or bytes, or a 1-d NumPy array of
    /// integer ids, each read as the key `prefix + str(id)` (formatted in
    /// Rust, the fast path for embedding tables). `prefix` also goes in
    /// front of str and bytes keys.
    ///
    /// The row layout is `out`'s, else what `get_numpy(first_found_key,
    /// shape, dtype)` would return. Every found value must have that many
    /// bytes, and a stored dtype equal to it, else ValueError. With no key
    /// found and no `out` or `shape`, the array has shape `(N, 0)`.
    #[pyo3(signature = (keys, out = None, *, prefix = None, shape = None, dtype = None))]
    fn get_numpy_many<'py>(
        &self,
        py: Python<'py>,
        keys: &Bound<'py, PyAny>,
        out: Option<&Bound<'py, PyAny>>,
        prefix: Option<&Bound<'py, PyAny>>,
        shape: Option<&Bound<'py, PyAny>>,
        dtype: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
        batch::get_numpy_many(py, self, keys, out, prefix, shape, dtype)
    }

    /// Housekeeping now: reaps dead processes' reader slots, pins and
    /// locks, sweeps expired entries and frees what no reader can see.
    /// Writers do a little of this as they go.
    fn maintain<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let seg = self.seg()?;
        self.sweep_memo(seg);
        let r = py.detach(|| seg.maintain()).map_err(to_py)?;
        let d = PyDict::new(py);
        d.set_item("reaped_slots", r.reaped_slots)?;
        d.set_item("reaped_pin_pages", r.reaped_pin_pages)?;
        d.set_item("recovered_shards", r.recovered_shards)?;
        d.set_item("expired", r.expired)?;
        d.set_item("freed_blocks", r.freed_blocks)?;
        Ok(d)
    }

    /// Walks the whole segment and checks its invariants (an fsck).
    /// Returns `{"clean": bool, "violations": [...], ...}`.
    fn check<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let seg = self.seg()?;
        let r = py.detach(|| seg.check()).map_err(to_py)?;
        let d = PyDict::new(py);
        d.set_item("clean", r.is_clean())?;
        d.set_item("violations", r.violations)?;
        d.set_item("entries", r.entries)?;
        d.set_item("limbo_blocks", r.limbo_blocks)?;
        d.set_item("pinned_blocks", r.pinned_blocks)?;
        Ok(d)
    }
}

/// What `warm` loads.
enum WarmSpec {
    Keys(Vec<Vec<u8>>),
    Pattern(String),
    File(PathBuf),
}

impl WarmSpec {
    /// Warms `cache`, with a progress line on a terminal if `show`.
    fn run(&self, cache: &strata::Cache, show: bool) -> strata::Result<strata::WarmReport> {
        use std::io::{IsTerminal, Write};
        let tty = show && std::io::stderr().is_terminal();
        let bar = |done: u64, total: Option<u64>| {
            let line = match total {
                Some(t) => format!("\r\x1b[Kwarming: {done} of {t} keys"),
                None => format!("\r\x1b[Kwarming: {done} keys"),
            };
            let _ = std::io::stderr().write_all(line.as_bytes());
        };
        let progress: Option<strata::WarmProgress<'_>> = if tty { Some(&bar) } else { None };
        let rep = match self {
            WarmSpec::Keys(k) => cache.warm_keys(k, progress),
            WarmSpec::Pattern(p) => cache.warm_pattern(p, progress),
            WarmSpec::File(p) => cache.warm_file(p, progress),
        };
        if tty {
            let _ = std::io::stderr().write_all(b"\r\x1b[K");
        }
        rep
    }
}
