"""Typed feature tables: a schema, one packed row per entity in the
shared memory, read as zero-copy records or assembled into a model's
input. See docs/features.md."""

from __future__ import annotations

import os
import time
import warnings
from typing import Any, Dict, Iterable, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from ._strata import Cache, FeaturePlan, _FeatureTable

FieldSpec = Union[Tuple[str, Any], Tuple[str, Any, Tuple[int, ...]]]


def _typestr(dtype: Any) -> str:
    dt = np.dtype(dtype)
    if dt.kind not in "biufS" or dt.kind == "S" and dt.itemsize == 0:
        raise ValueError(f"unsupported field dtype {dt}: use bool, (u)int8-64, float16/32/64 or S<n>")
    if dt.kind == "f" and dt.itemsize not in (2, 4, 8):
        raise ValueError(f"unsupported field dtype {dt}")
    return dt.newbyteorder("<").str if dt.itemsize > 1 and dt.kind != "S" else dt.str


class Schema:
    """A table's name, version and ordered fields, each ``(name, dtype)``
    or ``(name, dtype, shape)``::

        strata.Schema("user", version=1, fields=[
            ("age", "int32"), ("ltv", "float64"), ("emb", "float32", (128,)),
        ])
    """

    def __init__(self, name: str, version: int = 1, fields: Sequence[FieldSpec] = ()) -> None:
        self.name = name
        self.version = int(version)
        self.fields = []
        for f in fields:
            if len(f) == 2:
                fname, dt = f  # type: ignore[misc]
                shape: Tuple[int, ...] = ()
            elif len(f) == 3:
                fname, dt, shape = f  # type: ignore[misc]
                shape = tuple(int(d) for d in shape)
            else:
                raise ValueError(f"a field is (name, dtype) or (name, dtype, shape), not {f!r}")
            self.fields.append((str(fname), _typestr(dt), shape))

    def __repr__(self) -> str:
        return f"Schema({self.name!r}, version={self.version}, fields={self.fields!r})"


class FeatureTable:
    """The rows of one schema in a cache. ``FeatureTable(cache, schema)``
    creates the table, or attaches if it exists with the same schema (a
    different one raises ``SchemaMismatchError``); ``cache.table(name)``
    attaches to one another process created."""

    def __init__(self, cache: Cache, schema: Schema, ttl: Optional[float] = None,
                 default: Optional[Mapping[str, Any]] = None) -> None:
        t = _FeatureTable.create(cache, schema.name, schema.version, schema.fields, ttl)
        self._init(cache, t)
        self._set_default(ttl, default)

    @classmethod
    def open(cls, cache: Cache, name: str, ttl: Optional[float] = None,
             default: Optional[Mapping[str, Any]] = None) -> "FeatureTable":
        self = cls.__new__(cls)
        self._init(cache, _FeatureTable.open(cache, name, ttl))
        self._set_default(ttl, default)
        return self

    def _set_default(self, ttl: Optional[float], default: Optional[Mapping[str, Any]]) -> None:
        """`default`: the values assemble gives for an absent entity (fields
        left out are zero); None gives None (assemble) and zeros (batches)."""
        self._has_default = default is not None
        self._ttl, self._default = ttl, default
        if default is not None:
            row = self._row(default, {}, whole=False)
            self._t = _FeatureTable.open(self._cache, self.name, ttl, row.tobytes())

    def _reopened(self) -> bool:
        """After a miss: if the table moved on to a new version (evolve in
        some process), attach to it and say so, so the read is retried."""
        if self._t.is_current():
            return False
        self._init(self._cache, _FeatureTable.open(self._cache, self.name, self._ttl))
        if self._default is not None:
            self._set_default(self._ttl, self._default)
        return True

    def _init(self, cache: Cache, t: _FeatureTable) -> None:
        self._cache = cache
        self._t = t
        fields = t.fields()
        self.name: str = t.name
        self.version: int = t.version
        self.schema = Schema(t.name, t.version, [(n, ty, tuple(sh)) for n, ty, sh, _ in fields])
        names = [n for n, _, _, _ in fields]
        formats: list = [(ty, tuple(sh)) if sh else ty for n, ty, sh, _ in fields]
        offsets = [off for _, _, _, off in fields]
        #: A row as written: the fields, packed, each aligned to its size.
        self.row_dtype = np.dtype({"names": names, "formats": formats, "offsets": offsets,
                                   "itemsize": t.row_size})
        #: A record as read: the row and its write time (``_written_ms``,
        #: Unix milliseconds) after it.
        self.dtype = np.dtype({"names": names + ["_written_ms"], "formats": formats + ["<u8"],
                               "offsets": offsets + [t.row_size], "itemsize": t.row_size + 8})
        self._plans: dict = {}
        self._all = self._plan(None)
        #: Field names, in order.
        self.names: Tuple[str, ...] = tuple(n for n, _, _, _ in fields)
        by_name = self.dtype.fields
        assert by_name is not None
        self._types = {n: by_name[n][0] for n in self.names}

    def __repr__(self) -> str:
        return f"<FeatureTable {self.name} v{self.version}: {self.dtype}>"

    # Writing

    def _row(self, record: Any, fields: Mapping[str, Any], whole: bool = True) -> np.ndarray:
        if record is not None and fields:
            raise TypeError("give a record or fields, not both")
        if record is not None and not isinstance(record, Mapping):
            arr = np.asarray(record)
            if arr.dtype.names is None:
                raise TypeError("a record is a structured array or scalar of the table's dtype, or a dict")
            fields = {n: arr[n] for n in arr.dtype.names if n != "_written_ms"}
        elif record is not None:
            fields = record
        unknown = set(fields) - set(self.names)
        if unknown:
            raise ValueError(f"unknown fields {sorted(unknown)} for table {self.name!r} "
                             f"(fields: {', '.join(self.names)})")
        missing = [n for n in self.names if n not in fields]
        if missing and whole:
            raise ValueError(f"missing fields {missing}: a row is written whole")
        row = np.zeros((), self.row_dtype)
        for name, value in fields.items():
            row[name] = self._checked(name, np.asarray(value), ())
        return row

    def _checked(self, name: str, v: np.ndarray, lead: Tuple[int, ...]) -> np.ndarray:
        ft = self._types[name]
        base, shape = (ft.base, ft.shape)
        if v.shape != lead + shape:
            raise ValueError(f"field {name!r}: shape {v.shape}, expected {lead + shape}")
        if base.kind == "S":
            if v.dtype.kind not in "SU" and v.dtype != object:
                raise ValueError(f"field {name!r}: {v.dtype} given for {base}")
            return v
        if not np.can_cast(v.dtype, base, casting="same_kind"):
            raise ValueError(f"field {name!r}: {v.dtype} does not cast safely to {base}")
        cast = v.astype(base)
        if v.dtype.kind in "iu" and base.kind in "iu" and not np.array_equal(cast, v):
            raise ValueError(f"field {name!r}: a value does not fit in {base}")
        return cast

    def put(self, entity_id: Union[str, bytes], record: Any = None, /, *,
            ttl: Optional[float] = None, **fields: Any) -> None:
        """Publishes one entity's row: ``put(id, age=3, emb=vec)`` or
        ``put(id, record)``. Readers see the whole old row or the whole
        new one."""
        self._t.put_row(entity_id, self._row(record, fields).reshape(1).view(np.uint8), ttl)

    def put_many(self, ids: Union[Sequence[Union[str, bytes]], np.ndarray],
                 columns: Union[Mapping[str, Any], np.ndarray]) -> int:
        """Publishes many rows: ``columns`` is a dict of arrays (one row per
        id) or a structured array. Columns are checked before anything is
        written; a row that then fails raises with its index, the rows
        before it written."""
        # Integer ids go to Rust as they are (formatted there in decimal).
        if not (isinstance(ids, np.ndarray) and ids.dtype.kind in "iu"):
            ids = list(ids)
        n = len(ids)
        if isinstance(columns, np.ndarray):
            if columns.dtype.names is None:
                raise TypeError("columns must be a dict of arrays or a structured array")
            columns = {name: columns[name] for name in columns.dtype.names}
        unknown = set(columns) - set(self.names)
        missing = [m for m in self.names if m not in columns]
        if unknown or missing:
            raise ValueError(f"columns: unknown {sorted(unknown)}, missing {missing}")
        rows = np.zeros(n, self.row_dtype)
        for name, col in columns.items():
            rows[name] = self._checked(name, np.asarray(col), (n,))
        return self._t.put_rows(ids, rows.view(np.uint8).reshape(n, self.row_dtype.itemsize))

    def delete(self, entity_id: Union[str, bytes]) -> bool:
        return self._t.delete(entity_id)

    # Reading

    def get(self, entity_id: Union[str, bytes]) -> Optional[np.ndarray]:
        """The row as a read-only 0-d structured array over the shared
        memory (no copy); ``rec["emb"]`` is typed. None if absent."""
        rec = self._cache.get_numpy(self._t.key(entity_id), dtype=self.dtype, shape=())
        if rec is None and self._reopened():
            return self.get(entity_id)
        return rec

    def _plan(self, fields: Optional[Iterable[str]]) -> FeaturePlan:
        key = None if fields is None else tuple(fields)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = self._t.plan(None if key is None else list(key))
        return plan

    def width(self, fields: Optional[Iterable[str]] = None) -> int:
        """Values per entity that ``assemble`` writes for ``fields``."""
        return self._plan(fields).width

    def assemble(self, entity_id: Union[str, bytes], fields: Optional[Iterable[str]] = None,
                 out: Optional[np.ndarray] = None, dtype: Any = np.float32) -> Optional[np.ndarray]:
        """The model input: the chosen fields (all numeric ones by default)
        flattened in order and cast to ``dtype`` (float32 or float64;
        float32 rounds int64 and float64 values beyond its 24-bit
        mantissa). For an absent entity: the table's default row if it has
        one, else None."""
        plan = self._all if fields is None else self._plan(fields)
        if out is None:
            out = np.empty(plan.width, dtype)
        if self._t.assemble_into(entity_id, plan, out):
            return out
        if self._reopened():
            return self.assemble(entity_id, fields, None, dtype)
        return out if self._has_default else None

    def assemble_batch(self, ids: Union[Sequence[Union[str, bytes]], np.ndarray],
                       fields: Optional[Iterable[str]] = None, out: Optional[np.ndarray] = None,
                       dtype: Any = np.float32) -> Tuple[np.ndarray, np.ndarray]:
        """``(X, found)``: X of shape (len(ids), width); rows of absent ids
        hold the default row, or zeros. ``ids`` are str or bytes, or an
        int64 array."""
        plan = self._plan(fields)
        n = len(ids)
        if out is None:
            out = np.empty((n, plan.width), dtype)
        found = np.empty(n, dtype=bool)
        if self._t.assemble_batch_into(ids, plan, out, found) < n and self._reopened():
            return self.assemble_batch(ids, fields, None, dtype)
        return out, found

    # Streaming updates

    def publish(self, redis: Any, entity_id: Union[str, bytes], stream: str, /, *,
                partial: bool = False, maxlen: Optional[int] = None, **fields: Any) -> bytes:
        """Writes an update to a Redis Stream for ``consume`` to apply: the
        whole row (every field given), or with ``partial=True`` just the
        fields given. ``redis`` is a redis-py client or a URL. Returns the
        message id."""
        from ._stream import _redis, encode_row

        msg = encode_row(self, entity_id, fields, partial)
        return _redis(redis).xadd(stream, msg, maxlen=maxlen, approximate=maxlen is not None)

    def consume(self, redis: Any, stream: str, group: str, consumer: Optional[str] = None,
                batch: int = 500, block_ms: int = 100, dead_letter: Optional[str] = None,
                start: bool = True) -> Any:
        """Applies a Redis Stream's updates to this table in a background
        thread (``start=False``: call ``run_once`` yourself). Returns the
        consumer; ``stop()`` it to end."""
        from ._stream import StreamConsumer

        c = StreamConsumer(self, redis, stream, group, consumer, batch, block_ms, dead_letter)
        return c.start() if start else c

    # Export

    def export(self, path: Union[str, "os.PathLike[str]"], id_column: str = "id") -> int:
        """Writes every current row, with its write time, to ``.parquet``
        (pyarrow; ``written_at`` as a millisecond timestamp, shaped fields
        as fixed-size lists) or ``.npz`` (an array per field, the ids, and
        ``written_ms``): a point-in-time copy for training-serving skew
        checks. Returns the number of rows."""
        path = os.fspath(path)
        ids, raw, written = self._t.export_rows()
        recs = raw.view(self.row_dtype).reshape(-1) if len(ids) else np.zeros(0, self.row_dtype)
        id_arr = np.array([i.decode("utf-8", "surrogateescape") for i in ids], dtype=object)
        if path.endswith(".npz"):
            arrays: Dict[str, Any] = {id_column: id_arr.astype(str), "written_ms": written}
            arrays.update({n: recs[n] for n in self.names})
            np.savez(path, **arrays)
        elif path.endswith(".parquet"):
            try:
                import pyarrow as pa  # type: ignore[import-untyped]
                import pyarrow.parquet as pq  # type: ignore[import-untyped]
            except ImportError as e:
                raise ImportError("exporting Parquet needs pyarrow: pip install strata[parquet]") from e
            cols = {id_column: pa.array(list(id_arr), pa.string())}
            for n in self.names:
                v = np.ascontiguousarray(recs[n])
                arr = pa.array(v.reshape(len(v), -1)[:, 0] if not v.shape[1:] else v.ravel())
                for d in reversed(v.shape[1:]):
                    arr = pa.FixedSizeListArray.from_arrays(arr, d)
                cols[n] = arr
            cols["written_at"] = pa.array(written.astype("datetime64[ms]"))
            pq.write_table(pa.table(cols), path)
        else:
            raise ValueError(f"{path}: export to .parquet or .npz")
        return len(ids)

    # Evolution

    def evolve(self, schema: Schema, fill: Optional[Mapping[str, Any]] = None,
               allow_lossy: bool = False) -> dict:
        """Moves the table to ``schema`` (same name, a later version): rows
        are rebuilt under it (fields kept and widened, added ones from
        ``fill`` or zero, removed ones dropped; narrowing needs
        ``allow_lossy``), then it becomes current in one step and the old
        rows go. Readers in other processes move over on their next miss.
        Pause writers meanwhile."""
        if schema.name != self.name:
            raise ValueError(f"evolving {self.name!r} into a schema named {schema.name!r}")
        fields, size = _FeatureTable.layout_of(schema.name, schema.version, schema.fields)
        row = None
        if fill:
            dt = np.dtype({"names": [f[0] for f in fields],
                           "formats": [(f[1], tuple(f[2])) if f[2] else f[1] for f in fields],
                           "offsets": [f[3] for f in fields], "itemsize": size})
            unknown = set(fill) - set(dt.names or ())
            if unknown:
                raise ValueError(f"fill has fields the new schema lacks: {sorted(unknown)}")
            r = np.zeros((), dt)
            for k, v in fill.items():
                r[k] = v
            row = r.tobytes()
        before = self.version
        t, rows, removed = self._t.evolve(schema.version, schema.fields, row, allow_lossy)
        self._init(self._cache, t)
        return {"from_version": before, "to_version": schema.version, "rows": rows, "removed": removed}

    # Bulk hydration

    def load(self, ids: Any, columns: Union[Mapping[str, Any], np.ndarray],
              batch: int = 100_000, progress: Optional[bool] = None) -> LoadReport:
        """Writes many rows, in batches, with a progress line on a terminal;
        returns rows, seconds and rows per second. Columns as for put_many."""
        n = len(ids)
        self._warn_capacity(n)
        p = _Progress(n, f"loading {self.name}", progress)
        if isinstance(columns, np.ndarray):
            names = columns.dtype.names
            if names is None:
                raise TypeError("columns must be a dict of arrays or a structured array")
            by_name: Mapping[str, Any] = {name: columns[name] for name in names}
        else:
            by_name = columns
        for lo in range(0, n, batch):
            hi = min(n, lo + batch)
            cols = {k: np.asarray(v)[lo:hi] for k, v in by_name.items()}
            self.put_many(ids[lo:hi], cols)
            p.add(hi - lo)
        return p.finish()

    def _warn_capacity(self, rows: int) -> None:
        st = self._cache.stats()
        room = st["max_entries"] - st["entries"]
        if rows > room:
            warnings.warn(
                f"loading {rows:,} rows into a cache whose index has room for {room:,} more "
                f"entries (max_entries={st['max_entries']:,}): if they are new keys, rows written "
                "first will be evicted; create the cache with a larger max_entries", stacklevel=3)

    def load_file(self, path: Union[str, "os.PathLike[str]"], id_column: str = "id",
                   batch: int = 100_000, progress: Optional[bool] = None) -> LoadReport:
        """Loads rows from a file: ``.parquet`` (needs pyarrow: ``pip install
        strata[parquet]``; read in record batches, never whole), ``.npz`` (an
        array per field, plus the id column) or ``.npy`` (a structured array
        with the id column among its fields)."""
        path = os.fspath(path)
        wanted = list(self.names)
        p = _Progress(None, f"loading {self.name} from {os.path.basename(path)}", progress)
        if path.endswith(".parquet"):
            try:
                import pyarrow.parquet as pq  # type: ignore[import-untyped]
            except ImportError as e:
                raise ImportError("loading Parquet needs pyarrow: pip install strata[parquet]") from e
            f = pq.ParquetFile(path)
            have = set(f.schema_arrow.names)
            missing = [c for c in [id_column] + wanted if c not in have]
            if missing:
                raise ValueError(f"{path}: no column {missing}; it has {sorted(have)}")
            p.total = f.metadata.num_rows
            self._warn_capacity(p.total)
            for rb in f.iter_batches(batch_size=batch, columns=[id_column] + wanted):
                cols = {name: _column(rb.column(name), self._types[name]) for name in wanted}
                self.put_many(_id_list(rb.column(id_column).to_numpy(zero_copy_only=False)), cols)
                p.add(rb.num_rows)
            return p.finish()
        if path.endswith(".npz"):
            with np.load(path) as z:
                missing = [c for c in [id_column] + wanted if c not in z.files]
                if missing:
                    raise ValueError(f"{path}: no array {missing}; it has {sorted(z.files)}")
                ids = _id_list(z[id_column])
                cols = {name: z[name] for name in wanted}
        elif path.endswith(".npy"):
            a = np.load(path, mmap_mode="r")
            names = a.dtype.names or ()
            missing = [c for c in [id_column] + wanted if c not in names]
            if missing:
                raise ValueError(f"{path}: no field {missing}; it has {list(names)}")
            ids = _id_list(a[id_column])
            cols = {name: a[name] for name in wanted}
        else:
            raise ValueError(f"{path}: load .parquet, .npz or .npy files")
        p.total = len(ids)
        self._warn_capacity(len(ids))
        for lo in range(0, len(ids), batch):
            hi = min(len(ids), lo + batch)
            self.put_many(ids[lo:hi], {k: v[lo:hi] for k, v in cols.items()})
            p.add(hi - lo)
        return p.finish()


class LoadReport:
    """What a bulk load did: rows written, seconds, rows per second."""

    def __init__(self, rows: int, seconds: float) -> None:
        self.rows = rows
        self.seconds = seconds
        self.rows_per_sec = rows / seconds if seconds > 0 else float("inf")

    def __repr__(self) -> str:
        return f"LoadReport(rows={self.rows}, seconds={self.seconds:.3f}, rows_per_sec={self.rows_per_sec:,.0f})"


class _Progress:
    """A progress line on a terminal (standard error), nothing elsewhere."""

    def __init__(self, total: Optional[int], what: str, show: Optional[bool]) -> None:
        import sys

        self.total, self.what, self.done = total, what, 0
        self.out = sys.stderr
        self.on = self.out.isatty() if show is None else show
        self.start = time.monotonic()

    def add(self, n: int) -> None:
        self.done += n
        if not self.on:
            return
        rate = self.done / max(time.monotonic() - self.start, 1e-9)
        if self.total:
            pct = 100 * self.done / self.total
            self.out.write(f"\r{self.what}: {self.done:,}/{self.total:,} rows ({pct:.0f}%), {rate:,.0f} rows/s")
        else:
            self.out.write(f"\r{self.what}: {self.done:,} rows, {rate:,.0f} rows/s")
        self.out.flush()

    def finish(self) -> LoadReport:
        report = LoadReport(self.done, time.monotonic() - self.start)
        if self.on:
            self.out.write(f"\r{self.what}: {report.rows:,} rows in {report.seconds:.2f} s "
                           f"({report.rows_per_sec:,.0f} rows/s)\n")
        return report


def _id_list(ids: Any) -> list:
    ids = np.asarray(ids)
    if ids.dtype.kind in "iu":
        return [str(i) for i in ids.tolist()]
    if ids.dtype.kind in "SU" or ids.dtype == object:
        return [i if isinstance(i, (str, bytes)) else str(i) for i in ids.tolist()]
    raise ValueError(f"the id column has dtype {ids.dtype}: use integers or strings")


def _column(col: Any, ftype: np.dtype) -> np.ndarray:
    """An Arrow column as the field's array: fixed-size lists (and lists of
    lists) for shaped fields."""
    if ftype.shape:
        flat = col
        while hasattr(flat, "flatten") and hasattr(flat.type, "value_type"):
            flat = flat.flatten()
        return np.asarray(flat.to_numpy(zero_copy_only=False)).reshape((len(col),) + ftype.shape)
    return np.asarray(col.to_numpy(zero_copy_only=False))
