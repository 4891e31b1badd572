"""``@strata.cached``: a decorator that keeps a function's results in a
strata cache, keyed by its arguments, with the stampede protection of
``Cache.get_or_compute``."""

from __future__ import annotations

import functools
import hashlib
import pickle
import struct
from typing import Any, Callable, Optional, TypeVar, Union

import numpy as np

F = TypeVar("F", bound=Callable[..., Any])

# Results other than plain arrays are stored pickled, behind this marker.
_PICKLED = b"\x00strata-pickle\x00"


def _feed(h: Any, obj: Any) -> None:
    """Feeds a canonical, type-tagged encoding of `obj` to `h`: equal
    arguments give equal bytes in every process and on every machine
    (no `hash()`, whose strings are salted per process)."""
    if obj is None:
        h.update(b"N")
    elif isinstance(obj, bool):
        h.update(b"T" if obj else b"F")
    elif isinstance(obj, int):
        s = str(obj).encode()
        h.update(b"I" + struct.pack("<Q", len(s)) + s)
    elif isinstance(obj, float):
        # Exact: 0.1 and 0.1000000000000001 differ, -0.0 and 0.0 too.
        h.update(b"D" + struct.pack("<d", obj))
    elif isinstance(obj, str):
        b = obj.encode("utf-8", "surrogatepass")
        h.update(b"S" + struct.pack("<Q", len(b)) + b)
    elif isinstance(obj, (bytes, bytearray, memoryview)):
        b = bytes(obj)
        h.update(b"B" + struct.pack("<Q", len(b)) + b)
    elif isinstance(obj, (np.ndarray, np.generic)):
        a = np.ascontiguousarray(obj)
        if a.dtype.hasobject:
            raise TypeError("@strata.cached cannot key on arrays of Python objects")
        d = a.dtype.str.encode()
        h.update(b"A" + struct.pack("<Q", len(d)) + d + struct.pack("<Q", a.ndim))
        h.update(struct.pack(f"<{a.ndim}Q", *a.shape))
        h.update(a.tobytes())
    elif isinstance(obj, (tuple, list)):
        h.update((b"L" if isinstance(obj, list) else b"U") + struct.pack("<Q", len(obj)))
        for x in obj:
            _feed(h, x)
    elif isinstance(obj, dict):
        # Key-sorted by each key's own encoding, so insertion order and
        # key types that do not compare do not matter.
        items = []
        for k, v in obj.items():
            kh = hashlib.blake2b(digest_size=16)
            _feed(kh, k)
            items.append((kh.digest(), v))
        items.sort(key=lambda kv: kv[0])
        h.update(b"M" + struct.pack("<Q", len(items)))
        for kd, v in items:
            h.update(kd)
            _feed(h, v)
    elif isinstance(obj, (set, frozenset)):
        parts = []
        for x in obj:
            xh = hashlib.blake2b(digest_size=16)
            _feed(xh, x)
            parts.append(xh.digest())
        h.update(b"Z" + struct.pack("<Q", len(parts)) + b"".join(sorted(parts)))
    else:
        # Anything else by its pickle: stable for plain data classes.
        b = pickle.dumps(obj, protocol=5)
        h.update(b"P" + struct.pack("<Q", len(b)) + b)


def call_key(args: tuple, kwargs: dict) -> str:
    """The key of one call: a hash of its arguments, stable across
    processes and machines. NumPy arrays count by dtype, shape and bytes;
    dicts by their items whatever their order; floats exactly."""
    h = hashlib.blake2b(digest_size=20)
    _feed(h, tuple(args))
    _feed(h, dict(kwargs))
    return h.hexdigest()


def cached(
    cache: Any,
    ttl: Optional[float] = None,
    key: Optional[Callable[..., Union[str, bytes]]] = None,
    namespace: Optional[str] = None,
) -> Callable[[F], F]:
    """Keeps the decorated function's results in `cache`.

    A call's key is `cached:<namespace>:<hash of the arguments>`, where the
    namespace defaults to the function's module and qualified name, or
    `key(*args, **kwargs)` in place of the hash. A result that is a NumPy
    array is stored as one and returned as a read-only, zero-copy view; any
    other result is pickled (an unpicklable one raises TypeError). Misses go
    through `cache.get_or_compute`, so concurrent callers, in any process,
    run the function once."""

    def decorate(fn: F) -> F:
        ns = namespace or f"{fn.__module__}.{fn.__qualname__}"
        prefix = f"cached:{ns}:".encode()

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            k = key(*args, **kwargs) if key is not None else call_key(args, kwargs)
            full = prefix + (k.encode() if isinstance(k, str) else bytes(k))

            def compute() -> Any:
                result = fn(*args, **kwargs)
                if isinstance(result, np.ndarray) and not result.dtype.hasobject and result.dtype.names is None:
                    return result
                try:
                    return _PICKLED + pickle.dumps(result, protocol=5)
                except Exception as e:
                    raise TypeError(f"@strata.cached: the result of {ns} cannot be pickled: {e}") from e

            value = cache.get_or_compute(full, compute, ttl=ttl)
            if isinstance(value, bytes) and value.startswith(_PICKLED):
                return pickle.loads(value[len(_PICKLED):])
            return value

        return wrapper  # type: ignore[return-value]

    return decorate
