"""get_or_compute and @strata.cached: one computation per miss between
threads and between processes, a killed lease holder taken over, errors
that reach every waiter, and keys that are stable across processes."""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import strata


def test_sixty_four_threads_missing_one_key_compute_it_once(cache):
    calls = []
    barrier = threading.Barrier(64)
    results = []

    def model():
        calls.append(1)
        time.sleep(0.2)
        return np.arange(4, dtype=np.float32)

    def worker():
        barrier.wait()
        results.append(cache.get_or_compute("pred:1", model, ttl=60))

    threads = [threading.Thread(target=worker) for _ in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert all(np.array_equal(r, np.arange(4, dtype=np.float32)) for r in results)
    assert results[0].flags.writeable is False, "an array comes back as get_numpy's view"
    assert cache.stats()["coalesced_waits"] >= 1
    assert cache.get_or_compute("pred:1", model).dtype == np.float32
    assert len(calls) == 1


def test_bytes_come_back_as_bytes(cache):
    assert cache.get_or_compute("b", lambda: b"raw") == b"raw"
    assert cache.get("b") == b"raw"


def count_in(path):
    with open(path) as f:
        return len(f.read())


def test_eight_processes_missing_one_key_compute_it_once(name, tmp_path):
    counter = tmp_path / "calls"
    counter.write_text("")
    strata.Cache(name, memory="64MiB").close()
    code = textwrap.dedent(f"""
        import time, strata
        c = strata.Cache({name!r}, create=False)
        while "go" not in c:
            time.sleep(0.001)
        def model():
            with open({str(counter)!r}, "a") as f:
                f.write("x")
            time.sleep(0.3)
            return b"result"
        assert c.get_or_compute("shared", model) == b"result"
    """)
    procs = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(8)]
    time.sleep(0.5)
    with strata.Cache(name) as c:
        c.set("go", b"1")
    for p in procs:
        assert p.wait(60) == 0
    assert count_in(counter) == 1


def test_a_killed_lease_holder_is_taken_over(name, tmp_path):
    strata.Cache(name, memory="64MiB").close()
    code = textwrap.dedent(f"""
        import sys, time, strata
        c = strata.Cache({name!r}, create=False)
        def stuck():
            print("holding", flush=True)
            time.sleep(60)
            return b"never"
        c.get_or_compute("slow", stuck)
    """)
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "holding"
    threading.Timer(0.3, lambda: holder.send_signal(signal.SIGKILL)).start()
    with strata.Cache(name) as c:
        t = time.monotonic()
        assert c.get_or_compute("slow", lambda: b"mine") == b"mine"
        assert time.monotonic() - t < 30
    holder.wait()


def test_an_exception_reaches_the_caller_and_every_waiter_and_caches_nothing(cache):
    class ModelCrashed(Exception):
        pass

    def model():
        time.sleep(0.2)
        raise ModelCrashed("boom")

    errors = []

    def worker():
        try:
            cache.get_or_compute("bad", model)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(errors) == 8
    assert sum(isinstance(e, ModelCrashed) for e in errors) == 1, "the caller that ran it"
    assert all(isinstance(e, (ModelCrashed, strata.ComputeError)) for e in errors)
    assert all("boom" in str(e) for e in errors)
    assert "bad" not in cache


def test_bad_arguments(cache):
    with pytest.raises(TypeError, match="callable"):
        cache.get_or_compute("k", 42)
    with pytest.raises(ValueError):
        cache.get_or_compute("k", lambda: b"x", beta=-1)
    with pytest.raises(TypeError):
        cache.get_or_compute("k", lambda: object())


def test_cached_stores_each_kind_and_calls_once(cache):
    calls = []

    @strata.cached(cache, ttl=300)
    def score(features, scale=1.0):
        calls.append(1)
        return {"score": float(features.sum()) * scale, "n": len(features)}

    x = np.arange(10, dtype=np.float32)
    assert score(x) == {"score": 45.0, "n": 10}
    assert score(x.copy()) == {"score": 45.0, "n": 10}
    assert len(calls) == 1
    score(x, scale=2.0)
    score(x.astype(np.float64))  # another dtype: another key
    assert len(calls) == 3

    @strata.cached(cache)
    def embed(i):
        return np.full(8, i, np.float32)

    v = embed(3)
    assert isinstance(v, np.ndarray) and not v.flags.writeable
    assert np.array_equal(embed(3), np.full(8, 3, np.float32))

    @strata.cached(cache, key=lambda user: f"u{user}", namespace="profiles")
    def profile(user):
        return b"profile of %d" % user

    assert profile(7) == b"profile of 7"
    assert cache.get(b"cached:profiles:u7") is not None

    @strata.cached(cache)
    def unpicklable():
        return lambda: None

    with pytest.raises(TypeError, match="cannot be pickled"):
        unpicklable()


def test_cache_keys_are_stable_across_processes():
    call = "(np.arange(3, dtype=np.int16), {'b': 1.5, 'a': [1, 'x', None]}), {'t': 0.1}"
    code = f"import numpy as np; from strata._cached import call_key; print(call_key({call}))"
    outs = {
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ, PYTHONHASHSEED=str(seed))).stdout
        for seed in (1, 2, 3)
    }
    assert len(outs) == 1 and len(outs.pop().strip()) == 40
    from strata._cached import call_key

    assert call_key((1.0,), {}) != call_key((1,), {})
    assert call_key(({"a": 1, "b": 2},), {}) == call_key(({"b": 2, "a": 1},), {})
    assert call_key((0.1,), {}) != call_key((0.1 + 1e-17 * 10,), {})


def test_cached_works_with_any_object_that_has_get_or_compute():
    class Dict:
        def __init__(self):
            self.d = {}

        def get_or_compute(self, key, fn, ttl=None):
            if key not in self.d:
                self.d[key] = fn()
            return self.d[key]

    calls = []

    @strata.cached(Dict())
    def f(x):
        calls.append(x)
        return {"x": x}

    assert f(1) == {"x": 1} and f(1) == {"x": 1} and calls == [1]
