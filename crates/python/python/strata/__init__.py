"""strata: a tiered, zero-copy cache for ML serving.

The hot data lives in a shared-memory segment that every process on the
machine maps. ``Cache.get_numpy`` returns a read-only NumPy array whose
buffer *is* that memory: no copy, no deserialization, and one copy of the
data however many worker processes read it.

    >>> import numpy as np, strata
    >>> cache = strata.Cache("demo", memory="64MiB")
    >>> cache.set("emb:1", np.arange(4, dtype=np.float32))
    True
    >>> cache.get_numpy("emb:1")
    array([0., 1., 2., 3.], dtype=float32)

Create the cache before forking (a gunicorn master with ``preload_app``,
a ``multiprocessing`` parent): children attach on their first call. Arrays
obtained before a fork must not be used in the child.
"""

import atexit

from ._cached import cached
from ._features import FeatureTable, Schema
from ._namespace import Namespace
from ._strata import (
    Cache,
    ComputeError,
    CorruptSegmentError,
    ForeignSegmentError,
    IncompatibleSegmentError,
    KeyTooLargeError,
    PinnedValue,
    SchemaMismatchError,
    SegmentFullError,
    SegmentNotFoundError,
    ShmTooSmallError,
    StrataError,
    UpstreamError,
    ValueTooLargeError,
    __version__,
    _flush_all,
    drop,
    segments,
)

__all__ = [
    "Cache",
    "ComputeError",
    "FeatureTable",
    "CorruptSegmentError",
    "ForeignSegmentError",
    "IncompatibleSegmentError",
    "KeyTooLargeError",
    "Namespace",
    "PinnedValue",
    "Schema",
    "SchemaMismatchError",
    "SegmentFullError",
    "SegmentNotFoundError",
    "ShmTooSmallError",
    "StrataError",
    "UpstreamError",
    "ValueTooLargeError",
    "__version__",
    "cached",
    "drop",
    "segments",
]

# Write-back caches hand their queued writes to Redis before the process
# exits (a normal exit, or a SIGTERM handler that exits).
atexit.register(_flush_all)
