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

from ._namespace import Namespace

F = TypeVar("F", bound=Callable[..., Any])

# Results other than plain arrays are stored pickled, behind this marker.
_PICKLED = b"\x00strata-pickle\x00"

# What `Cache._object_get` returns when L1 holds no object for the key
# (None is a result like any other).
_MISSING = object()


_Q = struct.Struct("<Q").pack
_D = struct.Struct("<d").pack


def _digest16(obj: Any) -> bytes:
    parts: list = []
    _encode(obj, parts)
    return hashlib.blake2b(b"".join(parts), digest_size=16).digest()


def _encode(obj: Any, out: list) -> None:
    """Appends a canonical, type-tagged encoding of `obj` to `out`: equal
    arguments give equal bytes in every process and on every machine
    (no `hash()`, whose strings are salted per process). Exact types are
    tested first: most arguments are ints and strings, and a call's key
    is on every call's path."""
    t = type(obj)
    if t is int:
        s = str(obj).encode()
        out.append(b"I" + _Q(len(s)) + s)
    elif t is str:
        b = obj.encode("utf-8", "surrogatepass")
        out.append(b"S" + _Q(len(b)) + b)
    elif obj is None:
        out.append(b"N")
    elif t is bool:
        out.append(b"T" if obj else b"F")
    elif t is float:
        # Exact: 0.1 and 0.1000000000000001 differ, -0.0 and 0.0 too.
        out.append(b"D" + _D(obj))
    elif t is tuple or t is list:
        out.append((b"L" if t is list else b"U") + _Q(len(obj)))
        for x in obj:
            _encode(x, out)
    elif isinstance(obj, bool):
        out.append(b"T" if obj else b"F")
    elif isinstance(obj, int):
        s = str(obj).encode()
        out.append(b"I" + _Q(len(s)) + s)
    elif isinstance(obj, float):
        out.append(b"D" + _D(obj))
    elif isinstance(obj, str):
        b = obj.encode("utf-8", "surrogatepass")
        out.append(b"S" + _Q(len(b)) + b)
    elif isinstance(obj, (bytes, bytearray, memoryview)):
        b = bytes(obj)
        out.append(b"B" + _Q(len(b)) + b)
    elif isinstance(obj, (np.ndarray, np.generic)):
        a = np.ascontiguousarray(obj)
        if a.dtype.hasobject:
            raise TypeError("@strata.cached cannot key on arrays of Python objects")
        d = a.dtype.str.encode()
        out.append(b"A" + _Q(len(d)) + d + _Q(a.ndim))
        out.append(struct.pack(f"<{a.ndim}Q", *a.shape))
        out.append(a.tobytes())
    elif isinstance(obj, (tuple, list)):
        out.append((b"L" if isinstance(obj, list) else b"U") + _Q(len(obj)))
        for x in obj:
            _encode(x, out)
    elif isinstance(obj, dict):
        # Key-sorted by each key's own encoding, so insertion order and
        # key types that do not compare do not matter.
        items = sorted(((_digest16(k), v) for k, v in obj.items()), key=lambda kv: kv[0])
        out.append(b"M" + _Q(len(items)))
        for kd, v in items:
            out.append(kd)
            _encode(v, out)
    elif isinstance(obj, (set, frozenset)):
        parts = sorted(_digest16(x) for x in obj)
        out.append(b"Z" + _Q(len(parts)) + b"".join(parts))
    else:
        # Anything else by its pickle: stable for plain data classes.
        b = pickle.dumps(obj, protocol=5)
        out.append(b"P" + _Q(len(b)) + b)


def call_key(args: tuple, kwargs: dict) -> str:
    """The key of one call: a hash of its arguments, stable across
    processes and machines. NumPy arrays count by dtype, shape and bytes;
    dicts by their items whatever their order; floats exactly."""
    out: list = []
    _encode(tuple(args), out)
    if kwargs:
        _encode(dict(kwargs), out)
    else:
        out.append(_NO_KWARGS)
    return hashlib.blake2b(b"".join(out), digest_size=20).hexdigest()


# The encoding of an empty dict, the kwargs of most calls.
_NO_KWARGS = b"M" + _Q(0)


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
    run the function once.

    With an L1 (`Cache(l1=...)`), a pickled result is also kept unpickled
    in this process's L1, so a repeated call returns the same object
    without unpickling it (as `functools.lru_cache` does: do not mutate
    it). The object goes when any process changes or deletes the key, and
    when the stored value expires."""

    def decorate(fn: F) -> F:
        ns = namespace or f"{fn.__module__}.{fn.__qualname__}"
        prefix = f"cached:{ns}:".encode()

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            k = key(*args, **kwargs) if key is not None else call_key(args, kwargs)
            full = prefix + (k.encode() if isinstance(k, str) else bytes(k))
            target = cache
            if isinstance(cache, Namespace):
                # One version for the whole call.
                full, target = cache.key(full), cache._cache
            # Any object with `get_or_compute` serves; only a strata Cache
            # keeps objects in L1.
            objects = hasattr(target, "_object_ticket")
            if objects:
                kept = target._object_get(full, _MISSING)
                if kept is not _MISSING:
                    return kept
            # Taken before the read: an object decoded from a value that
            # some process replaced meanwhile is not kept.
            ticket = target._object_ticket(full) if objects else None

            computed = []

            def compute() -> Any:
                computed.append(True)
                result = fn(*args, **kwargs)
                if isinstance(result, np.ndarray) and not result.dtype.hasobject and result.dtype.names is None:
                    return result
                try:
                    return _PICKLED + pickle.dumps(result, protocol=5)
                except Exception as e:
                    raise TypeError(f"@strata.cached: the result of {ns} cannot be pickled: {e}") from e

            value = target.get_or_compute(full, compute, ttl=ttl)
            if isinstance(value, bytes) and value.startswith(_PICKLED):
                obj = pickle.loads(value[len(_PICKLED):])
                if ticket is not None:
                    # Charged its pickled size, a fair measure of its own.
                    target._object_keep(full, ticket, obj, len(value), ttl, bool(computed))
                return obj
            return value

        return wrapper  # type: ignore[return-value]

    return decorate
