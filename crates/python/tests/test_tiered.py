"""strata.Cache with Redis behind it: read-through and promotion, the
write policies, interop with redis-py and redis-cli, and Redis faults.
Every test runs against a real redis-server."""

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import strata


@pytest.fixture
def tiered(name, redis_server):
    c = strata.Cache(name, memory="64MiB", redis=redis_server.url)
    yield c
    c.close()


def test_a_miss_reads_redis_and_is_promoted(tiered, redis_server):
    r = redis_server.client()
    r.set("plain", b"from redis-py", ex=60)
    assert tiered.get("plain") == b"from redis-py"
    assert 55 < tiered.ttl("plain") <= 60, "Redis's TTL came along"
    before = tiered.stats()["l2_requests"]
    for _ in range(10):
        assert tiered.get("plain") == b"from redis-py"
    assert tiered.stats()["l2_requests"] == before, "served from L0 now"
    assert tiered.stats()["promotions"] == 1
    assert tiered.get("absent") is None


def test_a_value_written_by_another_client_is_read_as_an_array(tiered, redis_server):
    redis_server.client().set("emb:raw", np.arange(8, dtype=np.float32).tobytes())
    v = tiered.get_numpy("emb:raw", dtype=np.float32, shape=(2, 4))
    assert v.shape == (2, 4) and v.dtype == np.float32
    assert np.array_equal(v.ravel(), np.arange(8, dtype=np.float32))


def test_write_through_is_read_by_plain_clients_and_other_machines(name, redis_server):
    a = strata.Cache(name, memory="64MiB", redis=redis_server.url)
    other = name + "-b"
    try:
        # A second cache on the same Redis stands for another machine.
        b = strata.Cache(other, memory="64MiB", redis=redis_server.url)
        arr = np.arange(12, dtype=np.float64).reshape(3, 4)
        assert a.set("emb:1", arr, ttl=100)
        assert redis_server.cli("GET", "emb:1")[:-1] == arr.tobytes()
        assert 90_000 < redis_server.client().pttl("emb:1") <= 100_000
        got = b.get_numpy("emb:1")
        assert got.dtype == np.float64 and got.shape == (3, 4)
        assert np.array_equal(got, arr)
        # Keys that differ only in bytes that are not UTF-8 stay apart.
        a.set(b"k\xff", b"ff")
        a.set(b"k\xfe", b"fe")
        assert redis_server.client().get(b"k\xff") == b"ff"
        assert b.get(b"k\xfe") == b"fe"
        assert a.delete("emb:1")
        assert redis_server.client().exists("emb:1") == 0
        b.close()
    finally:
        a.close()
        strata.drop(other)


def test_a_batch_of_misses_is_one_request(tiered, redis_server):
    rows = np.random.default_rng(1).random((100, 16)).astype(np.float32)
    for i in range(100):
        tiered.set(f"emb:{i}", rows[i])
    for i in range(0, 100, 10):
        tiered.invalidate(f"emb:{i}")  # 10% missing from L0, still in Redis
    before = tiered.stats()["l2_requests"]
    got, found = tiered.get_numpy_many(np.arange(100), prefix="emb:")
    assert found.all()
    assert np.array_equal(got, rows)
    assert tiered.stats()["l2_requests"] == before + 1
    copies = tiered.get_many([f"emb:{i}" for i in range(100)] + ["nope"])
    assert copies[-1] is None and copies[0] == rows[0].tobytes()


def test_write_back_answers_at_once_and_drains(name, redis_server):
    c = strata.Cache(name, memory="64MiB", redis=redis_server.url, write="back")
    for i in range(1000):
        c.set(f"k{i}", b"v%d" % i)
    for n in range(50):
        c.set("hot", b"%d" % n)
    c.flush()
    assert redis_server.client().dbsize() == 1001
    assert redis_server.client().get("hot") == b"49"
    for i in range(200):
        c.set(f"late{i}", b"x")
    c.close()
    assert redis_server.client().dbsize() == 1201


def test_a_sigterm_that_exits_loses_no_queued_write(name, redis_server):
    code = textwrap.dedent(f"""
        import signal, sys, time, strata
        signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
        c = strata.Cache({name!r}, memory="64MiB", redis={redis_server.url!r}, write="back")
        for i in range(5000):
            c.set(f"w{{i}}", b"x" * 100)
        print("queued", flush=True)
        time.sleep(60)
    """)
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "queued"
    p.send_signal(signal.SIGTERM)
    assert p.wait(30) == 0
    assert redis_server.client().dbsize() == 5000


def test_cache_only_never_writes_redis(name, redis_server):
    c = strata.Cache(name, memory="64MiB", redis=redis_server.url, write="none")
    redis_server.client().set("remote", b"r")
    assert c.get("remote") == b"r"
    c.set("local", b"l")
    assert redis_server.client().exists("local") == 0
    c.close()


def test_redis_down_keeps_hits_and_fails_misses_fast(tiered, redis_server):
    tiered.set("hot", b"h")
    redis_server.kill()
    for _ in range(20):
        assert tiered.get("hot") == b"h"
    for _ in range(5):
        with pytest.raises(strata.UpstreamError):
            tiered.get("cold")
    assert tiered.stats()["l2_breaker"] == "open"
    assert tiered.stats()["l2_errors"] >= 5
    with pytest.raises(strata.UpstreamError):
        tiered.set("hot", b"new")
    # Redis may or may not have taken it: L0 no longer answers for the key.
    assert "hot" not in tiered
    # Back up: the cache recovers on its own.
    redis_server.start()
    redis_server.client().set("cold", b"warm")
    import time
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if tiered.get("cold") == b"warm":
                break
        except strata.UpstreamError:
            time.sleep(0.1)
    assert tiered.get("cold") == b"warm"


def test_bad_arguments(name, redis_server):
    with pytest.raises(ValueError, match="write policy"):
        strata.Cache(name, memory="16MiB", redis=redis_server.url, write="sideways")
    with pytest.raises(ValueError, match="redis"):
        strata.Cache(name, memory="16MiB", redis="http://not-redis")
    with pytest.raises(ValueError, match="not both"):
        strata.Cache(name, memory="16MiB", redis=redis_server.url, redis_cluster=[redis_server.url])
    with pytest.raises(ValueError, match="need Redis"):
        strata.Cache(name, memory="16MiB", write="back")
    # Unreachable: the cache opens (L0 serves), a miss says what is wrong.
    c = strata.Cache(name, memory="16MiB", redis="redis://127.0.0.1:1/0")
    with pytest.raises(strata.UpstreamError, match="redis"):
        c.get("k")
    c.close()
    # A wrong password: the first use says so.
    c = strata.Cache(name, memory="16MiB", redis=f"redis://:wrong@127.0.0.1:{redis_server.port}/0")
    with pytest.raises(strata.UpstreamError):
        c.get("k")
    c.close()


def test_a_value_over_redis_limit_is_refused_before_anything_is_written(tiered, redis_server):
    big = np.zeros((512 << 20) + 1, np.uint8)  # calloc'd: no memory touched
    with pytest.raises(strata.ValueTooLargeError, match="redis"):
        tiered.set("huge", big)
    assert redis_server.client().exists("huge") == 0


def test_a_namespace_bump_hides_its_entries_on_another_machine(name, redis_server):
    import time

    a = strata.Cache(name, memory="64MiB", redis=redis_server.url)
    other = name + "-b"
    b = strata.Cache(other, memory="64MiB", redis=redis_server.url)
    try:
        fa, fb = a.namespace("fraud"), b.namespace("fraud")
        fa.set("user:1", np.array([0.9], np.float32))
        assert fb.get_numpy("user:1")[0] == np.float32(0.9)
        v = fa.bump()
        assert fa.version == v
        assert fa.get("user:1") is None
        deadline = time.monotonic() + 5
        while fb.get("user:1") is not None:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert fb.get_or_compute("user:1", lambda: b"recomputed") == b"recomputed"
    finally:
        a.close()
        b.close()
        strata.drop(other)


def test_a_namespace_without_redis_bumps_at_once(cache):
    ns = cache.namespace("m")
    ns.set("k", b"v")
    assert ns.get("k") == b"v" and "k" in ns
    ns.bump()
    assert ns.get("k") is None


def two_machines(name, redis_server):
    """Two caches with their own shared memory on one Redis and one
    invalidation channel: two machines."""
    import time

    a = strata.Cache(name, memory="64MiB", redis=redis_server.url, channel=f"inval:{name}")
    b = strata.Cache(name + "-b", memory="64MiB", redis=redis_server.url, channel=f"inval:{name}")
    deadline = time.monotonic() + 10
    while not (a.stats()["invalidation_subscriber"] and b.stats()["invalidation_subscriber"]):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    return a, b


def wait_until(cond):
    import time

    deadline = time.monotonic() + 5
    while not cond():
        assert time.monotonic() < deadline
        time.sleep(0.005)


def test_a_set_on_one_machine_is_seen_by_another_that_had_the_old_value(name, redis_server):
    a, b = two_machines(name, redis_server)
    try:
        a.set("emb:1", np.zeros(4, np.float32))
        assert b.get_numpy("emb:1").sum() == 0  # now in b's shared memory
        a.set("emb:1", np.ones(4, np.float32))
        wait_until(lambda: "emb:1" not in b)
        assert b.get_numpy("emb:1").sum() == 4
        a.invalidate("emb:1")
        wait_until(lambda: "emb:1" not in b)
        assert redis_server.client().exists("emb:1") == 1, "Redis keeps it"
        assert b.stats()["invalidations_received"] >= 2
    finally:
        a.close()
        b.close()
        strata.drop(name + "-b")


def test_a_tiered_cache_pickles_with_its_tiers(tiered, redis_server):
    import pickle

    redis_server.client().set("remote", b"r")
    copy = pickle.loads(pickle.dumps(tiered))
    assert copy.get("remote") == b"r"
    assert copy.stats()["l2_requests"] >= 1
    copy.close()


def test_warm_by_keys_pattern_and_a_hot_keys_file(name, redis_server, tmp_path):
    r = redis_server.client()
    for i in range(600):
        r.set(f"emb:{i}", np.full(4, i, np.float32).tobytes())
    r.set("other:1", b"x")
    c = strata.Cache(name, memory="64MiB", redis=redis_server.url)
    rep = c.warm([f"emb:{i}" for i in range(10)] + ["absent"])
    assert rep == {"keys": 11, "present": 0, "loaded": 10, "missing": 1}
    rep = c.warm(pattern="emb:*")
    assert rep["loaded"] == 590 and rep["present"] == 10
    assert "other:1" not in c and "emb:599" in c
    for _ in range(20):
        c.get("emb:7")  # the hottest key
    path = tmp_path / "hot.keys"
    assert c.save_hot_keys(path, 50) == 50
    assert path.read_text().splitlines()[0] == "emb:7"
    # A new machine warms with what was hot on this one.
    other = name + "-new"
    fresh = strata.Cache(other, memory="64MiB", redis=redis_server.url)
    try:
        assert fresh.warm(path=path)["loaded"] == 50
        assert "emb:7" in fresh
        with pytest.raises(ValueError, match="exactly one"):
            fresh.warm(["a"], pattern="b")
    finally:
        fresh.close()
        strata.drop(other)
    c.close()


def test_warm_every_repeats_in_the_background_until_close(name, redis_server):
    import time

    c = strata.Cache(name, memory="64MiB", redis=redis_server.url)
    assert c.warm(pattern="job:*", every=0.05) is None
    redis_server.client().set("job:1", b"j")
    deadline = time.monotonic() + 5
    while "job:1" not in c:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    c.close()


def test_prometheus_collector_exports_every_figure(tiered):
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from strata.prometheus import Collector

    tiered.set("k", b"v")
    tiered.get("k")
    reg = CollectorRegistry()
    reg.register(Collector(tiered))
    text = generate_latest(reg).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["strata_hits"].type == "counter"
    assert families["strata_entries"].type == "gauge"
    sample = families["strata_hits"].samples[0]
    assert sample.labels["cache"] == tiered.name and sample.value >= 1
    assert "strata_l2_breaker" in families
