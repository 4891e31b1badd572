"""L1, each process's own tier: what L0 evicts through this process's
writes is kept and served, and a write by another process drops it."""

import os

import pytest

import strata


@pytest.fixture
def l1_cache(name):
    """A small L0 (8 MiB, so 4 KiB values overflow it) with a 64 MiB L1."""
    c = strata.Cache(name, memory="8MiB", huge_pages=False, l1="64MiB")
    yield c
    c.close()


def fill(c, n, gen=1):
    for i in range(n):
        c.set(f"k{i}", bytes([gen]) * 4096)


def test_evicted_values_are_served_from_l1(name, l1_cache):
    c = l1_cache
    fill(c, 6000)
    s = c.stats()
    assert s["evictions"] > 0 and s["l1_demotions"] > 0
    for i in range(6000):
        assert c.get(f"k{i}") == b"\x01" * 4096, i
    s = c.stats()
    assert s["l1_hits"] > 0 and s["l1_bytes"] <= s["l1_capacity"]
    plain = strata.Cache(name)
    assert any(plain.get(f"k{i}") is None for i in range(6000))


def test_another_process_s_write_drops_the_copy(name):
    c = strata.Cache(name, memory="8MiB", huge_pages=False, l1="64MiB", l1_policy="s3fifo")
    try:
        fill(c, 6000)
        gone = [i for i in range(6000) if f"k{i}" not in c][:50]
        assert gone
        pid = os.fork()
        if pid == 0:
            try:
                other = strata.Cache(name)
                for i in gone:
                    other.set(f"k{i}", b"\x02" * 4096)
                other.delete(f"k{gone[0]}")
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
        assert c.get(f"k{gone[0]}") is None
        for i in gone[1:]:
            assert c.get(f"k{i}") in (None, b"\x02" * 4096), i
        assert c.stats()["l1_invalidated"] > 0
    finally:
        c.close()


@pytest.mark.parametrize("bad", [dict(l1=0), dict(l1="lots"), dict(l1=[1]), dict(l1="1MiB", l1_policy="arc"),
                                 dict(l1_policy="lru")])
def test_bad_l1_arguments_are_refused(name, bad):
    with pytest.raises((ValueError, TypeError)):
        strata.Cache(name, memory="8MiB", **bad)


def test_cached_results_stay_unpickled_in_l1_until_another_process_changes_them(name, l1_cache):
    c = l1_cache
    calls = []

    @strata.cached(c, key=lambda user: f"u{user}", namespace="profiles")
    def profile(user):
        calls.append(user)
        return {"user": user, "tags": ["a", "b"]}

    first = profile(1)
    assert profile(1) is first, "the same object, not a new unpickling"
    assert calls == [1] and c.stats()["l1_objects"] == 1
    # The pickled value is in L0 for every other process.
    assert c.get("cached:profiles:u1").startswith(b"\x00strata-pickle\x00")
    # Another process invalidates it: this process drops its object.
    pid = os.fork()
    if pid == 0:
        try:
            strata.Cache(name).delete("cached:profiles:u1")
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    again = profile(1)
    assert again == first and again is not first and calls == [1, 1]
    # A function returning None has its None kept too.
    nothing = []

    @strata.cached(c)
    def absent():
        nothing.append(1)
        return None

    assert absent() is None and absent() is None and nothing == [1]


def test_cached_objects_expire_with_the_value(l1_cache):
    import time

    calls = []

    @strata.cached(l1_cache, ttl=0.3)
    def f(x):
        calls.append(x)
        return [x]

    assert f(1) is f(1) and len(calls) == 1
    time.sleep(0.4)
    assert f(1) == [1] and len(calls) == 2


def test_cached_through_a_namespace_keeps_objects_per_version(name):
    c = strata.Cache(name, memory="64MiB", huge_pages=False, l1="64MiB")
    calls = []
    try:
        ns = c.namespace("model")

        @strata.cached(ns)
        def f(x):
            calls.append(x)
            return {"x": x}

        assert f(2) is f(2) and len(calls) == 1
        ns.bump()
        assert f(2) == {"x": 2} and len(calls) == 2
    finally:
        c.close()
