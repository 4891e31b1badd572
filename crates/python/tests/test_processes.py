"""Several processes, one copy of the data: children started by fork and
spawn, writes in both directions, and a reader killed with SIGKILL."""

import multiprocessing as mp
import os
import signal

import numpy as np
import pytest

import strata


def child_reads_and_writes(name, n, conn):
    """Reads the parent's rows, writes rows of its own, reports back."""
    c = strata.Cache(name, create=False)
    sums = [float(c.get_numpy(f"row:{i}").sum()) for i in range(n)]
    for i in range(n):
        c.set(f"child:{os.getpid()}:{i}", np.full(64, i, np.int32))
    conn.send((os.getpid(), sums))
    conn.close()


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_children_read_parent_writes_and_parent_reads_theirs(name, method):
    ctx = mp.get_context(method)
    c = strata.Cache(name, memory="64MiB")
    n = 50
    for i in range(n):
        c.set(f"row:{i}", np.full(256, i, np.float64))
    held = c.get_numpy("row:1")  # a view alive across the fork
    pipes, procs = [], []
    for _ in range(3):
        parent, child = ctx.Pipe()
        p = ctx.Process(target=child_reads_and_writes, args=(name, n, child))
        p.start()
        pipes.append(parent)
        procs.append(p)
    results = [p.recv() for p in pipes]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    for pid, sums in results:
        assert sums == [256.0 * i for i in range(n)]
        for i in range(n):
            assert np.array_equal(c.get_numpy(f"child:{pid}:{i}"), np.full(64, i, np.int32))
    assert held.sum() == 256.0
    c.maintain()
    s = c.stats()
    assert s["reader_slots_live"] >= 1
    assert c.check()["clean"]
    c.close()


def row_sum_and_mark(cache, i):
    """Runs in a pool worker that got the cache object itself, pickled."""
    cache.set(f"seen:{i}", np.array(os.getpid(), np.int64))
    return float(cache.get_numpy(f"row:{i}").sum())


def test_a_cache_object_passes_to_spawned_pool_workers(name):
    """Pickling a cache attaches the receiving process to the same
    segment, so it can be handed to any multiprocessing start method."""
    from concurrent.futures import ProcessPoolExecutor

    c = strata.Cache(name, memory="16MiB", memo=4)
    for i in range(20):
        c.set(f"row:{i}", np.full(8, i, np.float32))
    with ProcessPoolExecutor(2, mp_context=mp.get_context("spawn")) as pool:
        sums = list(pool.map(row_sum_and_mark, [c] * 20, range(20)))
    assert sums == [8.0 * i for i in range(20)]
    pids = {int(c.get_numpy(f"seen:{i}")) for i in range(20)}
    assert os.getpid() not in pids and len(pids) >= 1
    c.close()
    with pytest.raises(strata.StrataError, match="closed"):
        c.__reduce__()


def test_fork_child_uses_the_parents_cache_object(name):
    c = strata.Cache(name, memory="16MiB")
    c.set("k", b"from parent")
    c.get("k")  # the parent's thread has a reader slot now
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        ok = c.get("k") == b"from parent"
        ok = ok and c.set("child", b"from child")
        os.write(w, b"1" if ok else b"0")
        os._exit(0)
    os.close(w)
    assert os.read(r, 1) == b"1"
    os.waitpid(pid, 0)
    assert c.get("child") == b"from child"
    c.close()


def holder(name, conn):
    c = strata.Cache(name, create=False)
    views = [c.get_numpy(f"k{i}") for i in range(20)]
    conn.send(sum(v.nbytes for v in views))
    signal.pause()


def test_views_of_a_killed_process_are_released(name):
    ctx = mp.get_context("fork")
    c = strata.Cache(name, memory="64MiB")
    for i in range(20):
        c.set(f"k{i}", np.full(4096, i, np.float32))
    parent, child = ctx.Pipe()
    p = ctx.Process(target=holder, args=(name, child))
    p.start()
    held = parent.recv()
    assert held == 20 * 4096 * 4
    # Replace every value: the old blocks stay, pinned by the holder.
    for i in range(20):
        c.set(f"k{i}", np.zeros(4096, np.float32))
    c.maintain()
    assert c.stats()["pinned_bytes"] >= held
    os.kill(p.pid, signal.SIGKILL)
    p.join(30)
    report = c.maintain()
    assert report["reaped_slots"] + report["reaped_pin_pages"] >= 1
    c.maintain()
    s = c.stats()
    assert s["pinned_bytes"] == 0 and s["limbo_bytes"] == 0
    assert c.check()["clean"]
    c.close()
