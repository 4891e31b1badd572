"""Type stubs of the strata extension module."""

from os import PathLike
from types import TracebackType
from typing import Any, Optional, Sequence, Tuple, Type, Union, final

import numpy as np
import numpy.typing as npt

__all__ = [
    "Cache",
    "PinnedValue",
    "segments",
    "drop",
    "StrataError",
    "SegmentNotFoundError",
    "SegmentFullError",
    "ValueTooLargeError",
    "KeyTooLargeError",
    "ShmTooSmallError",
    "IncompatibleSegmentError",
    "CorruptSegmentError",
    "ForeignSegmentError",
    "UpstreamError",
    "ComputeError",
    "SchemaMismatchError",
    "FeaturePlan",
    "_FeatureTable",
    "_ObjectTicket",
    "__version__",
    "_flush_all",
]

__version__: str
"""The version of strata."""

_Key = Union[str, bytes]
"""A key: a str (stored as its UTF-8 bytes) or bytes."""

class StrataError(Exception):
    """Base class of every error the cache reports."""

class SegmentNotFoundError(StrataError):
    """The named cache does not exist and `create=False` was given."""

class SegmentFullError(StrataError):
    """The cache is full and nothing in it can be evicted."""

class ValueTooLargeError(StrataError):
    """The value is larger than the biggest block the cache can hold."""

class KeyTooLargeError(StrataError):
    """The key is longer than 8 KiB."""

class ShmTooSmallError(StrataError):
    """/dev/shm has less room than the cache needs; the message names the fix."""

class IncompatibleSegmentError(StrataError):
    """The segment was made by an incompatible version of strata."""

class CorruptSegmentError(StrataError):
    """The segment is corrupt, truncated or unfinished."""

class ForeignSegmentError(StrataError):
    """The cache file belongs to another user, or others may write it."""

class UpstreamError(StrataError):
    """Redis failed, timed out, or is cut off by the circuit breaker."""

class ComputeError(StrataError):
    """get_or_compute's function failed in the thread or process that ran it."""

class SchemaMismatchError(StrataError):
    """A feature table of this name exists with another schema."""

@final
class FeaturePlan:
    """A compiled choice of fields for assemble."""

    @property
    def width(self) -> int: ...

@final
class _FeatureTable:
    @staticmethod
    def create(
        cache: Cache,
        name: str,
        version: int,
        fields: list[tuple[str, str, tuple[int, ...]]],
        ttl: Optional[float] = None,
        default: Optional[bytes] = None,
    ) -> _FeatureTable: ...
    @staticmethod
    def open(
        cache: Cache, name: str, ttl: Optional[float] = None, default: Optional[bytes] = None
    ) -> _FeatureTable: ...
    @staticmethod
    def layout_of(
        name: str, version: int, fields: list[tuple[str, str, tuple[int, ...]]]
    ) -> tuple[list[tuple[str, str, list[int], int]], int]: ...
    def is_current(self) -> bool: ...
    def evolve(
        self,
        version: int,
        fields: list[tuple[str, str, tuple[int, ...]]],
        fill: Optional[bytes] = None,
        allow_lossy: bool = False,
    ) -> tuple[_FeatureTable, int, int]: ...
    @property
    def name(self) -> str: ...
    @property
    def version(self) -> int: ...
    @property
    def row_size(self) -> int: ...
    @property
    def prefix(self) -> bytes: ...
    def fields(self) -> list[tuple[str, str, list[int], int]]: ...
    def key(self, id: _Key) -> bytes: ...
    def put_row(self, id: _Key, row: Any, ttl: Optional[float] = None) -> None: ...
    def put_rows(self, ids: Any, rows: Any) -> int: ...
    def export_rows(self) -> tuple[list[bytes], Any, Any]: ...
    def delete(self, id: _Key) -> bool: ...
    def plan(self, fields: Optional[list[str]] = None) -> FeaturePlan: ...
    def assemble_into(self, id: _Key, plan: FeaturePlan, out: Any) -> bool: ...
    def assemble_batch_into(self, ids: Any, plan: FeaturePlan, out: Any, found: Any) -> int: ...

@final
class PinnedValue:
    """Keeps one value pinned in shared memory; the `base` of its arrays."""

    def __len__(self) -> int: ...

@final
class _ObjectTicket:
    """A key's place in L0's change log, taken before a read (see `cached`)."""

@final
class Cache:
    """A named cache in shared memory that every process on the machine can
    attach. Thread-safe, and safe to create before fork: a forked child
    registers itself on first use. Arrays obtained before a fork must not be
    used in the child."""

    def __new__(
        cls,
        name: str = "default",
        memory: Union[int, str, None] = None,
        create: bool = True,
        dir: Union[str, PathLike[str], None] = None,
        memo: int = 0,
        max_entries: Optional[int] = None,
        huge_pages: bool = True,
        trust_foreign: bool = False,
        redis: Optional[str] = None,
        redis_cluster: Optional[Sequence[str]] = None,
        write: Optional[str] = None,
        ttl: Optional[float] = None,
        channel: Optional[str] = None,
        l1: Union[int, str, None] = None,
        l1_policy: Optional[str] = None,
        policy: Optional[str] = None,
    ) -> "Cache":
        """Attach to the named cache, creating it (with `memory` bytes or a
        size such as "1GiB"; default 1 GiB) if `create` is true. `dir`
        defaults to $STRATA_SHM_DIR, else /dev/shm. `memo` > 0 remembers
        up to that many recent get_numpy results per process, of keys read
        at least twice lately (see docs/python.md).
        `l1` (bytes or a size such as "256MiB") adds this process's own
        tier: it keeps what L0 evicts through this process's writes or
        refuses to admit, and answers L0 misses before Redis is asked;
        `l1_policy` is one of lru, fifo, lfu, s3fifo, wtinylfu (the
        default) or none.
        `max_entries` is the most entries a new cache holds (default: one
        per 4 KiB of memory; each costs about 200 bytes of index); raise it
        for values much smaller than 4 KiB. `policy` is how a new cache
        evicts: wtinylfu (the default), s3fifo, lru, lfu, fifo, or none
        (refuse new keys when full). A new cache is built on 2 MiB pages where
        the kernel can (Linux 6.1 and later), which makes lookups faster;
        `huge_pages=False` keeps 4 KiB pages. An existing cache keeps the
        size, capacity and policy it was created with: asking for others warns
        (RuntimeWarning). A cache file that another user owns, or that
        others may write, is refused with ForeignSegmentError unless
        `trust_foreign=True` (for sharing a cache between users on
        purpose; the file's group and mode then govern access).

        `redis="redis://host:port/db"` (or `redis_cluster=[urls]`) puts
        Redis behind the shared memory: a miss reads Redis and promotes
        what it finds, with Redis's TTL. `write` is "through" (the default
        with Redis: Redis, then the cache), "back" (the cache now, Redis in
        the background; `flush()` and `close()` drain it) or "none" (Redis
        is only read). `ttl` is the default TTL in seconds of writes that
        give none. Redis errors raise UpstreamError; what the cache holds
        is served regardless. Writes invalidate other machines' copies
        through Redis pub/sub on `channel` (default
        "strata:inval:<name>")."""
    def __reduce__(self) -> Tuple[Any, Tuple[Any, ...]]:
        """Pickles as a way back to the same cache: unpickling attaches to
        it by name and directory (never creating it), so a cache can be
        passed to multiprocessing children and process pools."""
    @property
    def name(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def closed(self) -> bool: ...
    @property
    def mapping(self) -> Tuple[int, int]:
        """(start, end) addresses of this process's mapping of the cache."""
    @property
    def huge_pages(self) -> bool:
        """Whether this process maps the cache with 2 MiB pages: built at
        creation (Linux 6.1 and later, unless huge_pages=False), or from a
        tmpfs mounted with huge=within_size or huge=always."""
    @property
    def max_value_size(self) -> int: ...
    def close(self) -> None:
        """Detach: later calls raise StrataError. Arrays already returned
        stay valid while they live; the mapping goes when they and this
        object are gone."""
    def __enter__(self) -> "Cache": ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...
    def set(self, key: _Key, value: Any, ttl: Optional[float] = None) -> bool:
        """Store bytes, any buffer, or a NumPy array (dtype and shape kept;
        a NumPy scalar is stored as a 0-d array of its dtype). False if a
        full cache's admission policy kept what it had."""
    def get(self, key: _Key) -> Optional[bytes]:
        """A copy of the value, or None."""
    def get_numpy(
        self,
        key: _Key,
        shape: Union[int, Sequence[int], None] = None,
        dtype: Optional[npt.DTypeLike] = None,
    ) -> Optional[np.ndarray]:
        """A read-only, zero-copy view of the value in shared memory, or None.
        Valid and unchanged while it (or any slice of it) lives."""
    def get_many(self, keys: Sequence[_Key]) -> list[Optional[bytes]]:
        """Copies of many values; None for each absent key."""
    def get_numpy_many(
        self,
        keys: Union[Sequence[_Key], npt.NDArray[np.integer]],
        out: Optional[np.ndarray] = None,
        *,
        prefix: Optional[_Key] = None,
        shape: Union[int, Sequence[int], None] = None,
        dtype: Optional[npt.DTypeLike] = None,
    ) -> Tuple[np.ndarray, npt.NDArray[np.bool_]]:
        """Many values gathered into one (N, *row_shape) array, plus a mask of
        the keys found; absent rows are zero. An integer array of ids reads
        the keys `prefix + str(id)`."""
    def get_or_compute(
        self,
        key: _Key,
        fn: Any,
        ttl: Optional[float] = None,
        beta: float = 1.0,
    ) -> Any:
        """The value of `key`; on a miss, `fn()` runs once across threads and
        processes and its result (bytes, a buffer or an ndarray) is stored
        with `ttl` and returned (an array as get_numpy returns it, else
        bytes). Near expiry one reader refreshes early (XFetch, `beta`)."""
    def warm(
        self,
        keys: Optional[Sequence[_Key]] = None,
        *,
        pattern: Optional[str] = None,
        path: Union[str, PathLike[str], None] = None,
        every: Optional[float] = None,
    ) -> Optional[dict[str, int]]:
        """Load values from Redis into the shared memory: `keys`, the keys
        matching `pattern` (SCAN), or the file `save_hot_keys` wrote; with
        `every`, again and again in the background until close()."""
    def save_hot_keys(self, path: Union[str, PathLike[str]], n: int) -> int:
        """Write the n most frequently read keys, for warm(path=...)."""
    def namespace(self, name: str) -> Any:
        """This cache under a namespace whose version bump() moves on."""
    def table(self, name: str, ttl: Optional[float] = None) -> Any:
        """The feature table `name` that some process created in this cache."""
    def _namespace_version(self, name: str) -> int: ...
    def _namespace_bump(self, name: str) -> int: ...
    def _object_get(self, key: _Key, default: Any) -> Any: ...
    def _object_ticket(self, key: _Key) -> Optional[_ObjectTicket]: ...
    def _object_keep(
        self, key: _Key, ticket: _ObjectTicket, obj: Any, size: int, ttl: Optional[float] = None, wrote: bool = False
    ) -> bool: ...
    def delete(self, key: _Key) -> bool:
        """Remove the key here and, unless write="none", in Redis."""
    def invalidate(self, key: _Key) -> bool:
        """Drop the key from every machine's cache, leaving Redis alone."""
    def flush(self, timeout: float = 10.0) -> None:
        """Wait until every write queued for Redis (write="back") is there."""
    def expire(self, key: _Key, ttl: float) -> bool: ...
    def persist(self, key: _Key) -> bool: ...
    def ttl(self, key: _Key) -> Optional[float]:
        """Seconds left; None if the key never expires; KeyError if absent."""
    def __contains__(self, key: _Key, /) -> bool: ...
    def __len__(self) -> int: ...
    def keys(self) -> list[bytes]: ...
    def stats(self) -> dict[str, Any]: ...
    def maintain(self) -> dict[str, int]:
        """Reap dead processes' slots, pins and locks; sweep expired entries."""
    def check(self) -> dict[str, Any]:
        """Walk the segment and check its invariants: {"clean": bool, ...}."""

def segments(dir: Union[str, PathLike[str], None] = None) -> list[str]:
    """Names of the caches on this machine."""

def drop(name: str, dir: Union[str, PathLike[str], None] = None) -> bool:
    """Remove the named cache; True if it existed."""

def _flush_all(timeout: float = 10.0) -> int:
    """Drain every write-back queue of this process; the writes left."""
