"""The tiered cache against its peers, in one run, with a redis-server the
script starts on a free loopback port:

- an L0 hit through a cache with Redis behind it, against the same read
  on a cache without (the tiers must not tax the hot path);
- a miss that reads through from Redis and promotes, against a bare
  redis-py GET of the same value;
- get_numpy_many of 1000 ids with 10% missing from L0, against redis-py
  MGET of those 100 keys plus the L0 gather, and against MGET of all 1000;
- write-back set throughput, against write-through and redis-py pipelined
  SET of the same values;
- get_or_compute under a stampede: processes x threads on one expiring
  key, counting calls of the function per expiry, with and without XFetch;
- invalidation between two caches standing for two machines: its latency
  and the staleness window, p50 and p99.

Each figure is reported beside its peer's, measured in the same run, and
as a ratio. `--json` prints one object. Timings are medians of per-call
(or per-batch) times.

    .venv/bin/python bench/tiered.py [--keys 20000] [--calls 20000] [--json]
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time

import numpy as np
import redis

import strata

ROW = 1024  # float32 values per row: 4 KiB


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_redis():
    port = free_port()
    d = tempfile.mkdtemp(prefix="strata-bench-redis-")
    p = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", d],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    for _ in range(500):
        try:
            if redis.Redis(port=port).ping():
                return p, port, d
        except redis.ConnectionError:
            time.sleep(0.01)
    raise RuntimeError("redis-server did not start")


def median_ns(fn, n):
    """Median of n timed calls of fn(i), in ns."""
    out = np.empty(n, np.int64)
    t = time.perf_counter_ns
    for i in range(n):
        a = t()
        fn(i)
        out[i] = t() - a
    return float(np.median(out))


def zipf_ids(n_keys, n, rng):
    ranks = rng.zipf(1.1, n) - 1
    return (ranks % n_keys).astype(np.int64)


def hit_path(bare, tiered, keys, calls, rng):
    ids = zipf_ids(len(keys), calls, rng)
    res = {}
    for label, c in (("bare", bare), ("tiered", tiered), ("bare2", bare), ("tiered2", tiered)):
        res[label] = median_ns(lambda i: c.get_numpy(keys[ids[i]]), calls)
    b = min(res["bare"], res["bare2"])
    t = min(res["tiered"], res["tiered2"])
    return {"l0_hit_bare_ns": b, "l0_hit_tiered_ns": t, "ratio": t / b}


def miss_path(tiered, r, keys, calls):
    n = min(calls, len(keys))

    def through(i):
        tiered.invalidate(keys[i])  # not timed separately: cheap next to a round trip
        tiered.get_numpy(keys[i])

    def invalidate_only(i):
        tiered.invalidate(keys[i])

    def plain(i):
        np.frombuffer(r.get(keys[i]), np.float32)

    rounds = {"through": [], "plain": [], "inval": []}
    for _ in range(2):
        rounds["plain"].append(median_ns(plain, n))
        rounds["through"].append(median_ns(through, n))
        rounds["inval"].append(median_ns(invalidate_only, n))
    through_ns = min(rounds["through"]) - min(rounds["inval"])
    plain_ns = min(rounds["plain"])
    # The next read of a promoted key is an L0 hit.
    tiered.get_numpy(keys[0])
    before = tiered.stats()["l2_requests"]
    tiered.get_numpy(keys[0])
    assert tiered.stats()["l2_requests"] == before
    return {"miss_through_ns": through_ns, "redis_py_get_ns": plain_ns, "ratio": through_ns / plain_ns}


def batch_path(bare, tiered, r, keys, rounds, rng):
    n = min(1000, len(keys))
    strs = np.array(keys)
    through, baseline, mget_all = [], [], []
    t = time.perf_counter_ns
    for _ in range(rounds):
        ids = rng.choice(len(keys), n, replace=False)
        missing = ids[rng.choice(n, n // 10, replace=False)]
        for i in missing:
            tiered.invalidate(keys[i])
        a = t()
        rows, found = tiered.get_numpy_many(ids, prefix="emb:")
        through.append(t() - a)
        assert found.all()
        # The peer: MGET of the 100 L0 misses, plus the gather of the rest
        # from L0 (a cache without Redis: its misses cost nothing).
        a = t()
        vals = r.mget([keys[i] for i in missing])
        _ = [np.frombuffer(v, np.float32) for v in vals]
        bare.get_numpy_many(ids, prefix="emb:")
        baseline.append(t() - a)
        a = t()
        vals = r.mget(list(strs[ids]))
        np.stack([np.frombuffer(v, np.float32) for v in vals])
        mget_all.append(t() - a)
    tm, bm, am = (float(np.median(x)) for x in (through, baseline, mget_all))
    return {
        "gather_10pct_missing_ns": tm,
        "mget_missing_plus_l0_gather_ns": bm,
        "ratio_to_mget_missing_plus_gather": tm / bm,
        "mget_all_1000_ns": am,
        "speedup_over_mget_all": am / tm,
    }


def write_path(name, url, r, n):
    value = np.ones(ROW, np.float32)
    raw = value.tobytes()
    out = {}
    for policy in ("back", "through"):
        r.flushdb()
        c = strata.Cache(f"{name}-{policy}", memory="512MiB", redis=url, write=policy)
        a = time.perf_counter()
        for i in range(n):
            c.set(f"w:{i}", value)
        if policy == "back":
            c.flush()
        out[f"{policy}_sets_per_s"] = n / (time.perf_counter() - a)
        c.close()
        strata.drop(f"{name}-{policy}")
    r.flushdb()
    a = time.perf_counter()
    pipe = r.pipeline(transaction=False)
    for i in range(n):
        pipe.set(f"w:{i}", raw)
        if len(pipe) >= 512:
            pipe.execute()
    pipe.execute()
    out["redis_py_pipelined_sets_per_s"] = n / (time.perf_counter() - a)
    out["back_over_through"] = out["back_sets_per_s"] / out["through_sets_per_s"]
    out["back_over_redis_py_pipeline"] = out["back_sets_per_s"] / out["redis_py_pipelined_sets_per_s"]
    return out


STAMPEDE = textwrap.dedent("""
    import sys, threading, time, strata
    name, log, seconds, beta = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
    c = strata.Cache(name, create=False)
    def model():
        start = time.time()
        time.sleep(0.05)
        with open(log, "a") as f:
            f.write(f"{start} {time.time()}\\n")
        return b"prediction"
    c.get("warm-up")  # attach before the clock starts
    lat = []
    def worker():
        # The first call may find the key not computed yet (a cold miss,
        # not an expiry): it is not counted.
        c.get_or_compute("hot", model, ttl=0.5, beta=beta)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            a = time.monotonic()
            assert c.get_or_compute("hot", model, ttl=0.5, beta=beta) == b"prediction"
            lat.append(time.monotonic() - a)
            time.sleep(0.001)
    ts = [threading.Thread(target=worker) for _ in range(16)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    # Calls that waited about as long as the function runs: they waited for it.
    print(len(lat), sum(1 for x in lat if x >= 0.04))
""")


def stampede(name, seconds, beta):
    """8 processes x 16 threads read one key with a TTL of 0.5 s whose
    function takes 50 ms. Reports the function's runs, how many of them
    overlapped another (a stampede runs it several times at once), and the
    calls that waited for it."""
    c = strata.Cache(name, memory="64MiB")
    log = tempfile.mktemp(prefix="strata-bench-calls-")
    open(log, "w").close()
    procs = [
        subprocess.Popen([sys.executable, "-c", STAMPEDE, name, log, str(seconds), str(beta)],
                         stdout=subprocess.PIPE, text=True)
        for _ in range(8)
    ]
    calls, waited = 0, 0
    for p in procs:
        n, w = p.communicate()[0].split()
        calls, waited = calls + int(n), waited + int(w)
    runs = sorted(tuple(map(float, line.split())) for line in open(log) if line.strip())
    overlapping = sum(1 for a, b in zip(runs, runs[1:]) if b[0] < a[1])
    os.unlink(log)
    c.close()
    strata.drop(name)
    return {"fn_runs": len(runs), "overlapping_runs": overlapping, "calls": calls,
            "calls_that_waited_for_fn": waited, "fn_ms": 50}


def invalidation(name, url, n):
    """Two caches (two machines) on one Redis and one channel. For each of
    n writes on the first: the time until the second's shared memory no
    longer holds the old value (invalidation latency), and until the second
    reads the new value (the staleness window), from the write returning."""
    a = strata.Cache(name + "-a", memory="64MiB", redis=url, channel=f"inval:{name}")
    b = strata.Cache(name + "-b", memory="64MiB", redis=url, channel=f"inval:{name}")
    while not (a.stats()["invalidation_subscriber"] and b.stats()["invalidation_subscriber"]):
        time.sleep(0.01)
    lat, stale = [], []
    for i in range(n):
        a.set("k", b"%d" % i)
        b.get("k")  # b holds the current value in its shared memory
        new = b"%d" % (i + 1)
        a.set("k", new)
        t0 = time.perf_counter_ns()
        while "k" in b:
            pass
        t1 = time.perf_counter_ns()
        while b.get("k") != new:
            pass
        t2 = time.perf_counter_ns()
        lat.append(t1 - t0)
        stale.append(t2 - t0)
    a.close()
    b.close()
    strata.drop(name + "-a")
    strata.drop(name + "-b")
    p = lambda xs, q: float(np.percentile(xs, q)) / 1e6  # noqa: E731
    return {"latency_p50_ms": p(lat, 50), "latency_p99_ms": p(lat, 99),
            "staleness_p50_ms": p(stale, 50), "staleness_p99_ms": p(stale, 99), "writes": n}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keys", type=int, default=20000)
    ap.add_argument("--calls", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=50, help="rounds of the 1000-id gather")
    ap.add_argument("--writes", type=int, default=20000)
    ap.add_argument("--stampede-seconds", type=float, default=3.0)
    ap.add_argument("--invalidations", type=int, default=500)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()

    proc, port, rdir = start_redis()
    url = f"redis://127.0.0.1:{port}/0"
    r = redis.Redis(port=port)
    name = f"bench-tiered-{os.getpid()}"
    rng = np.random.default_rng(7)
    result = {"keys": a.keys, "value_bytes": ROW * 4}
    try:
        bare = strata.Cache(name + "-bare", memory="1GiB")
        tiered = strata.Cache(name, memory="1GiB", redis=url)
        keys = [f"emb:{i}" for i in range(a.keys)]
        rows = rng.random((a.keys, ROW), dtype=np.float32)
        for i, k in enumerate(keys):
            bare.set(k, rows[i])
            tiered.set(k, rows[i])  # write-through: Redis and L0
        result["l0_hit"] = hit_path(bare, tiered, keys, a.calls, rng)
        result["miss"] = miss_path(tiered, r, keys, min(a.calls, 5000))
        for k in keys:  # the miss test left keys out of L0: put them back
            tiered.get_numpy(k)
        result["gather"] = batch_path(bare, tiered, r, keys, a.rounds, rng)
        bare.close()
        tiered.close()
        strata.drop(name + "-bare")
        strata.drop(name)
        result["writes"] = write_path(name + "-w", url, r, a.writes)
        result["stampede"] = stampede(name + "-s0", a.stampede_seconds, 0.0)
        result["stampede_xfetch"] = stampede(name + "-s1", a.stampede_seconds, 1.0)
        result["invalidation"] = invalidation(name + "-i", url, a.invalidations)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        shutil.rmtree(rdir, ignore_errors=True)
        for n in strata.segments():
            if n.startswith(name):
                strata.drop(n)

    if a.json:
        print(json.dumps(result))
        return
    h, m, g, w = result["l0_hit"], result["miss"], result["gather"], result["writes"]
    s0, s1 = result["stampede"], result["stampede_xfetch"]
    print(f"L0 hit, get_numpy: tiered {h['l0_hit_tiered_ns']:.0f} ns, bare {h['l0_hit_bare_ns']:.0f} ns: {h['ratio']:.2f}x")
    print(f"miss through Redis + promotion: {m['miss_through_ns'] / 1000:.1f} us, redis-py GET {m['redis_py_get_ns'] / 1000:.1f} us: {m['ratio']:.2f}x")
    print(f"gather 1000 ids, 10% missing: {g['gather_10pct_missing_ns'] / 1e6:.2f} ms; MGET of the 100 + L0 gather "
          f"{g['mget_missing_plus_l0_gather_ns'] / 1e6:.2f} ms: {g['ratio_to_mget_missing_plus_gather']:.2f}x; "
          f"MGET of all 1000 {g['mget_all_1000_ns'] / 1e6:.2f} ms: {g['speedup_over_mget_all']:.1f}x faster")
    print(f"writes/s: back {w['back_sets_per_s']:.0f}, through {w['through_sets_per_s']:.0f} ({w['back_over_through']:.1f}x), "
          f"redis-py pipelined SET {w['redis_py_pipelined_sets_per_s']:.0f} ({w['back_over_redis_py_pipeline']:.2f}x)")
    print(f"stampede, 8 processes x 16 threads, ttl 0.5 s, fn 50 ms, {s0['calls']} calls: fn ran {s0['fn_runs']} times, "
          f"{s0['overlapping_runs']} overlapping another; {s0['calls_that_waited_for_fn']} calls waited for it")
    inv = result["invalidation"]
    print(f"invalidation between two machines: p50 {inv['latency_p50_ms']:.2f} ms, p99 {inv['latency_p99_ms']:.2f} ms; "
          f"staleness window p50 {inv['staleness_p50_ms']:.2f} ms, p99 {inv['staleness_p99_ms']:.2f} ms")
    print(f"  with XFetch (beta 1), {s1['calls']} calls: fn ran {s1['fn_runs']} times, {s1['overlapping_runs']} overlapping; "
          f"{s1['calls_that_waited_for_fn']} calls waited for it")


if __name__ == "__main__":
    main()
