"""Namespaces: a cache's calls with keys under a version that ``bump()``
moves on, so that every entry of the namespace becomes unreachable at
once, with no scan (old entries age out by eviction and TTL)."""

from __future__ import annotations

from typing import Any, Callable, Optional, Union

_Key = Union[str, bytes]


class Namespace:
    """``cache.namespace("fraud-model")``: get, get_numpy, set, delete and
    get_or_compute as on the cache, with keys ``name \\0 version \\0 key``.
    With Redis, the version lives there and other machines see a bump
    within a second; without it, every process on the machine sees it at
    once."""

    def __init__(self, cache: Any, name: str) -> None:
        self._cache = cache
        self.name = name
        self._prefix = name.encode()

    @property
    def version(self) -> int:
        return int(self._cache._namespace_version(self.name))

    def bump(self) -> int:
        """Makes every entry of the namespace unreachable; the new version."""
        return int(self._cache._namespace_bump(self.name))

    def key(self, key: _Key) -> bytes:
        k = key.encode() if isinstance(key, str) else bytes(key)
        return self._prefix + b"\0" + str(self.version).encode() + b"\0" + k

    def get(self, key: _Key) -> Optional[bytes]:
        return self._cache.get(self.key(key))  # type: ignore[no-any-return]

    def get_numpy(self, key: _Key, shape: Any = None, dtype: Any = None) -> Any:
        return self._cache.get_numpy(self.key(key), shape=shape, dtype=dtype)

    def set(self, key: _Key, value: Any, ttl: Optional[float] = None) -> bool:
        return bool(self._cache.set(self.key(key), value, ttl=ttl))

    def delete(self, key: _Key) -> bool:
        return bool(self._cache.delete(self.key(key)))

    def get_or_compute(self, key: _Key, fn: Callable[[], Any], ttl: Optional[float] = None, beta: float = 1.0) -> Any:
        return self._cache.get_or_compute(self.key(key), fn, ttl=ttl, beta=beta)

    def __contains__(self, key: _Key) -> bool:
        return self.key(key) in self._cache

    def __repr__(self) -> str:
        return f"<strata.Namespace {self.name!r} of {self._cache!r}>"
