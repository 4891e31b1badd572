"""Arrays from get_numpy are views of shared memory: read-only, never
copied, and unchanged for as long as they live."""

import gc
import threading
import time

import numpy as np
import pytest

import strata


def released(cache):
    """Pinned and limbo bytes once housekeeping has run."""
    gc.collect()
    cache.maintain()
    s = cache.stats()
    return s["pinned_bytes"], s["limbo_bytes"]


def test_view_is_read_only(cache):
    cache.set("k", np.arange(10, dtype=np.int64))
    v = cache.get_numpy("k")
    assert not v.flags.writeable
    with pytest.raises(ValueError):
        v[0] = 5
    with pytest.raises(ValueError):
        v.flags.writeable = True
    with pytest.raises(ValueError):
        v[2:4][0] = 1
    assert np.array_equal(cache.get_numpy("k"), np.arange(10))


def test_view_data_lies_inside_the_mapping(cache):
    cache.set("k", np.ones(1024, np.float32))
    v = cache.get_numpy("k")
    start, end = cache.mapping
    ptr = v.__array_interface__["data"][0]
    assert start <= ptr and ptr + v.nbytes <= end
    assert ptr % 64 == 0, "values are cache-line aligned"
    assert isinstance(v.base, strata.PinnedValue)


def test_rows_of_common_sizes_start_on_their_own_boundary(cache):
    """Rows of 1, 2 and 4 KiB and whole pages never straddle a page they
    need not: a gather reads each from one page."""
    for n, align in ((256, 1024), (512, 2048), (1024, 4096), (2048, 4096)):
        for i in range(3):
            cache.set(f"emb:{n}:{i}", np.full(n, i, np.float32))
            v = cache.get_numpy(f"emb:{n}:{i}")
            assert v.__array_interface__["data"][0] % align == 0, (n, i)
            assert np.all(v == i)


def test_view_survives_overwrite_delete_and_eviction(name):
    # LRU: under the default W-TinyLFU, fillers that are never read would
    # not displace a victim that was.
    c = strata.Cache(name, memory="16MiB", policy="lru")
    first = np.full(16384, 1.0, np.float32)
    c.set("k", first)
    v1 = c.get_numpy("k")
    c.set("k", np.full(16384, 2.0, np.float32))
    v2 = c.get_numpy("k")
    assert c.delete("k")
    assert np.all(v1 == 1.0) and np.all(v2 == 2.0)

    c.set("victim", np.full(16384, 3.0, np.float32))
    v3 = c.get_numpy("victim")
    filler = np.zeros(16384, np.float32)
    for i in range(2000):
        c.set(f"filler:{i}", filler)
        if "victim" not in c:
            break
    assert "victim" not in c, "the filler should have evicted the victim"
    assert c.stats()["evictions"] > 0
    assert np.all(v1 == 1.0) and np.all(v2 == 2.0) and np.all(v3 == 3.0)
    assert released(c)[0] > 0
    del v1, v2, v3
    assert released(c) == (0, 0)
    assert c.check()["clean"]
    c.close()


def test_slices_keep_the_value_alive(cache):
    cache.set("k", np.arange(1000, dtype=np.int32))
    v = cache.get_numpy("k")
    part = v[100:110]
    t = v.reshape(10, 100).T
    del v
    cache.set("k", np.zeros(1000, np.int32))
    cache.delete("k")
    assert released(cache)[0] > 0
    assert np.array_equal(part, np.arange(100, 110))
    assert t[0, 1] == 100
    del part, t
    assert released(cache) == (0, 0)


def test_zero_copy_is_more_than_1000x_faster_than_a_copy(cache):
    value = np.random.default_rng(0).random(8 << 20, dtype=np.float32)  # 32 MiB
    cache.set("big", value)

    def best(f, n):
        t = []
        for _ in range(n):
            s = time.perf_counter()
            f()
            t.append(time.perf_counter() - s)
        return min(t)

    view_s = best(lambda: cache.get_numpy("big"), 200)
    copy_s = best(lambda: cache.get("big"), 5)
    assert copy_s / view_s > 1000, (copy_s, view_s)
    assert np.array_equal(cache.get_numpy("big"), value)


def test_threads_read_while_a_writer_overwrites(cache):
    # Each value is uniform; a torn or recycled read would mix two fills.
    for k in range(8):
        cache.set(f"k{k}", np.full(4096, k, np.int64))
    stop = threading.Event()
    bad = []
    held = []

    def reader():
        rng = np.random.default_rng()
        while not stop.is_set():
            k = f"k{rng.integers(8)}"
            v = cache.get_numpy(k)
            if v is not None and not (v == v[0]).all():
                bad.append(k)
            if len(held) < 100:
                held.append(v)

    def writer():
        i = 0
        while not stop.is_set():
            i += 1
            cache.set(f"k{i % 8}", np.full(4096, i, np.int64))

    threads = [threading.Thread(target=reader) for _ in range(3)] + [threading.Thread(target=writer)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    stop.set()
    for t in threads:
        t.join()
    assert not bad
    assert all(v is None or (v == v[0]).all() for v in held)
    held.clear()
    for k in range(8):
        cache.delete(f"k{k}")
    assert released(cache) == (0, 0)


def test_torch_from_numpy_shares_memory(cache):
    torch = pytest.importorskip("torch")
    cache.set("k", np.arange(16, dtype=np.float32))
    v = cache.get_numpy("k")
    t = torch.from_numpy(v)
    assert t.data_ptr() == v.__array_interface__["data"][0]
    assert t.sum().item() == 120.0


def test_segment_full_when_everything_is_pinned(name):
    # LRU admits every newcomer, so each put must find room; under the
    # default, admission would refuse the newcomers instead.
    c = strata.Cache(name, memory="16MiB", policy="lru")
    chunk = np.zeros(1 << 20, np.uint8)
    views = []
    with pytest.raises(strata.SegmentFullError):
        for i in range(64):
            c.set(f"k{i}", chunk)
            views.append(c.get_numpy(f"k{i}"))
    assert all(v.shape == (1 << 20,) for v in views)
    views.clear()
    assert c.set("after", chunk), "space comes back once the views are gone"
    c.close()


@pytest.fixture
def memo_cache(name):
    """A cache that remembers recent get_numpy results."""
    c = strata.Cache(name, memory="64MiB", memo=256)
    yield c
    c.close()


def test_repeated_reads_share_one_pin_but_not_one_array(memo_cache):
    cache = memo_cache
    cache.set("k", np.arange(12, dtype=np.float32))
    first = cache.get_numpy("k")
    a = cache.get_numpy("k")
    assert a.base is not first.base, "a first read is noted, not remembered"
    b = cache.get_numpy("k")
    assert a is not b and a.base is b.base, "the second read reuses the pinned value"
    a.shape = (3, 4)
    assert b.shape == (12,), "reshaping one result in place leaves the other alone"
    hits = cache.stats()["hits"]
    cache.get_numpy("k")
    assert cache.stats()["hits"] == hits + 1
    cache.set("k", np.zeros(12, dtype=np.float32))
    c = cache.get_numpy("k")
    assert c.base is not a.base and not c.any()
    assert np.array_equal(a.ravel(), np.arange(12))


def test_remembered_reads_see_expiry_changes(memo_cache):
    cache = memo_cache
    cache.set("e", b"12345678")
    assert cache.get_numpy("e") is not None
    assert cache.get_numpy("e") is not None
    assert cache.expire("e", 0.2)
    time.sleep(0.3)
    assert cache.get_numpy("e") is None
    cache.set("p", b"12345678", ttl=0.3)
    assert cache.get_numpy("p") is not None
    assert cache.persist("p")
    time.sleep(0.4)
    assert cache.get_numpy("p") is not None


def test_memo_is_off_by_default(cache):
    cache.set("k", b"12345678")
    assert cache.get_numpy("k").base is not cache.get_numpy("k").base
    gc.collect()
    assert cache.stats()["pinned_bytes"] == 0


def test_keys_read_once_are_not_remembered(memo_cache):
    cache = memo_cache
    for i in range(20):
        cache.set(f"k{i}", np.full(1024, i, np.int32))
        assert cache.get_numpy(f"k{i}")[0] == i
    gc.collect()
    assert cache.stats()["pinned_bytes"] == 0, "one read each: nothing stays pinned"
    assert cache.get_numpy("k7") is not None
    gc.collect()
    assert cache.stats()["pinned_bytes"] > 0, "the second read of k7 is remembered"


def test_remembered_values_are_let_go_when_their_keys_change(memo_cache):
    cache = memo_cache
    for i in range(20):
        cache.set(f"k{i}", np.full(1024, i, np.int32))
        cache.get_numpy(f"k{i}")
        cache.get_numpy(f"k{i}")
    gc.collect()
    assert cache.stats()["pinned_bytes"] > 0, "the memo keeps current values pinned"
    for i in range(20):
        cache.delete(f"k{i}")
    assert released(cache) == (0, 0), "stats() lets go of stale entries"


def test_a_full_cache_lets_go_of_remembered_values(name):
    with strata.Cache(name, memory="16MiB", memo=256) as c:
        chunk = np.zeros(1 << 18, np.uint8)
        for i in range(200):
            assert c.set(f"k{i}", chunk) in (True, False)
            c.get_numpy(f"k{i}")
            c.get_numpy(f"k{i}")
        assert c.check()["clean"]


def test_a_forked_child_does_not_reuse_the_parents_pins(memo_cache):
    import os

    cache = memo_cache
    cache.set("k", np.arange(1024, dtype=np.int64))
    cache.get_numpy("k")
    parent_view = cache.get_numpy("k")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        v = cache.get_numpy("k")
        ok = v.base is not parent_view.base and np.array_equal(v, np.arange(1024))
        os.write(w, b"1" if ok else b"0")
        os._exit(0)
    os.close(w)
    assert os.read(r, 1) == b"1"
    os.waitpid(pid, 0)


def test_stats_report_the_sampled_read_latency(cache):
    cache.set("k", b"v")
    for _ in range(2000):
        cache.get_numpy("k")
    s = cache.stats()
    assert s["l0_latency_samples"] >= 2000 // 64 - 1
    assert 0 < s["l0_latency_p50_ns"] <= s["l0_latency_p99_ns"]
