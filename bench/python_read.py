#!/usr/bin/env python3
"""Python read latency of strata against its peers, all in one run.

    .venv/bin/python bench/python_read.py            # defaults: 200k keys
    .venv/bin/python bench/python_read.py --json     # one JSON object

Values are float32[1024] (4 KiB). `get_numpy_memo` is the same call on a
cache opened with memo=1024 (remembered reads of hot keys). Every measurement reads random keys,
uniform and Zipf 0.99, two ways:
  single  each call timed on its own (includes the timer's own cost);
  batch   100 calls timed together, divided by 100 (the per-call cost of a
          loop; its percentiles are over batches).
The cases of each group (single-key reads, bulk reads, the hot set) take
turns in 5 rounds, so a slow spell of the machine falls on all of them,
each round starting one case later, so that no case always runs after the
same other one. redis has groups of its own: its calls stream megabytes
through a second process and the caches, and would leave the next case
cold.

Peers, started by this script on this machine:
  floor       multiprocessing.shared_memory + np.ndarray(shape, dtype, buf,
              offset) of row i: no lookup at all. The block is mapped the
              way strata maps its segment (at a 2 MiB boundary, with the
              kernel asked for 2 MiB pages) and says which pages it got,
              so that ratios to it measure the lookup, not the page size;
  dict        a plain dict lookup of a prebuilt ndarray (per process);
  lmdb        py-lmdb get in a read transaction + np.frombuffer;
  redis       redis-py with hiredis, GET + np.frombuffer, MGET of 100/1000,
              against a redis-server on a free loopback port;
  np.take     a gather of the same rows from the shared-memory array,
              the floor of get_numpy_many; np_take_stdlib is the same
              gather through the mapping shared_memory made itself (4 KiB
              pages, at whatever address), as a program using it as it
              comes reads it. The *_cold cases time get_numpy_many and
              np.take of 1000 rows each right after a read of 64 MiB of
              other memory, as after a model ran between two requests.
"""

import argparse
import ctypes
import gc
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from multiprocessing import shared_memory

import numpy as np

import strata

DIM = 1024
ROW = DIM * 4
ns = time.perf_counter_ns


def zipf_ranks(n, count, s, rng):
    """`count` draws of Zipf(s) over n items, ranks mapped to random ids."""
    w = 1.0 / np.arange(1, n + 1, dtype=np.float64) ** s
    cdf = np.cumsum(w)
    cdf /= cdf[-1]
    ranks = np.searchsorted(cdf, rng.random(count))
    return rng.permutation(n)[np.minimum(ranks, n - 1)]


HUGE = 2 << 20


def map_like_strata(shm, huge):
    """The shared memory block `shm`, mapped as strata maps a segment: at a
    2 MiB-aligned address and, if `huge`, with the kernel asked to build
    2 MiB pages (MADV_COLLAPSE, one reserved small page per piece first).
    Returns (buffer, whether it got huge pages); (shm.buf, False) where
    this cannot be done."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mmap.restype = ctypes.c_void_p
        libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int,
                              ctypes.c_int, ctypes.c_int, ctypes.c_long]
        libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        size = shm.size
        # PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE
        hole = libc.mmap(None, size + HUGE, 0, 0x02 | 0x20 | 0x4000, -1, 0)
        if hole in (None, ctypes.c_void_p(-1).value):
            return shm.buf, False
        base = -(-hole // HUGE) * HUGE
        # PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED
        if libc.mmap(base, size, 0x1 | 0x2, 0x01 | 0x10, shm._fd, 0) != base:
            return shm.buf, False
        got = False
        if huge:
            got = True
            for off in range(0, size - HUGE + 1, HUGE):
                os.posix_fallocate(shm._fd, off, 1)
                if libc.madvise(base + off, HUGE, 25) != 0:  # MADV_COLLAPSE
                    got = off > 0
                    break
        return memoryview((ctypes.c_char * size).from_address(base)).cast("B"), got
    except (AttributeError, OSError):
        return shm.buf, False


def pct(lat):
    a = np.asarray(lat, dtype=np.float64)
    return {
        "p50_ns": float(np.percentile(a, 50)),
        "p99_ns": float(np.percentile(a, 99)),
        "p999_ns": float(np.percentile(a, 99.9)),
    }


def time_single(f, args):
    lat = np.empty(len(args), dtype=np.int64)
    for j, a in enumerate(args):
        t = ns()
        f(a)
        lat[j] = ns() - t
    return lat


def time_batch(f, args, per=100):
    lat = []
    for j in range(0, len(args) - per + 1, per):
        chunk = args[j : j + per]
        t = ns()
        for a in chunk:
            f(a)
        lat.append((ns() - t) / per)
    return np.asarray(lat)


# Every case of a group runs in turns, a slice at a time, so that a slow
# spell of a shared machine falls on every case alike and the ratios hold.
# Each round starts one case later, so that no case always runs right
# after the same other one and inherits the state of the caches it left.
ROUNDS = 5


def rotated(cases, r):
    """The cases' items, in round r's order."""
    items = list(cases.items())
    k = r % len(items)
    return items[k:] + items[:k]


def measure(cases):
    """{name: (f, args)} -> {name: percentiles of f(arg) timed one call at a
    time and in batches of 100, and ops/s}, the cases interleaved over
    ROUNDS turns."""
    single = {k: [] for k in cases}
    batch = {k: [] for k in cases}
    for f, args in cases.values():
        f(args[0])
    for r in range(ROUNDS):
        for k, (f, args) in rotated(cases, r):
            step = len(args) // ROUNDS
            part = args[r * step : (r + 1) * step]
            single[k].append(time_single(f, part))
            batch[k].append(time_batch(f, part))
    out = {}
    for k in cases:
        b = np.concatenate(batch[k])
        total_s = float(b.sum() * 100) / 1e9
        out[k] = {
            "single": pct(np.concatenate(single[k])),
            "batch": pct(b),
            "ops_per_s": len(b) * 100 / total_s if total_s else 0.0,
        }
    return out


def measure_calls(cases):
    """{name: (f, reps)} -> {name: percentiles of f()'s whole-call latency
    over reps calls, and calls/s}, the cases interleaved over ROUNDS turns."""
    lat = {k: [] for k in cases}
    for f, _ in cases.values():
        f()
    for r in range(ROUNDS):
        for k, (f, reps) in rotated(cases, r):
            lat[k].append(time_single(lambda _: f(), range(max(1, reps // ROUNDS))))
    return calls_report(cases, lat)


def calls_report(cases, lat):
    out = {}
    for k in cases:
        a = np.concatenate(lat[k])
        out[k] = pct(a)
        out[k]["calls_per_s"] = 1e9 / float(np.mean(a))
    return out


# Read before each cold call, untimed: more than the last-level cache holds.
SWEEP_BYTES = 64 << 20


def measure_cold(cases):
    """{name: (f, reps)} -> like measure_calls, but each call runs after a
    read of SWEEP_BYTES of other memory has pushed what the calls before
    it left out of the CPU caches: the state a gather finds after the
    model has run between two requests."""
    sweep = np.ones(SWEEP_BYTES // 8, dtype=np.uint64)
    lat = {k: [] for k in cases}
    for r in range(ROUNDS):
        for k, (f, reps) in rotated(cases, r):
            a = np.empty(max(1, reps // ROUNDS), dtype=np.int64)
            for j in range(len(a)):
                sweep.sum()
                t = ns()
                f()
                a[j] = ns() - t
            lat[k].append(a)
    return calls_report(cases, lat)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_redis():
    exe = shutil.which("redis-server")
    if not exe:
        return None, None
    port = free_port()
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import redis

    client = redis.Redis(host="127.0.0.1", port=port)
    for _ in range(100):
        try:
            client.ping()
            return proc, client
        except redis.ConnectionError:
            time.sleep(0.05)
    proc.kill()
    return None, None


def private_bytes(pid):
    total = 0
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith(("Private_Clean:", "Private_Dirty:")):
                total += int(line.split()[1]) * 1024
    return total


def memory_workers(name, n, workers, shm_dir):
    """Forks workers that each hold views of every key; returns their
    combined private bytes once all views are held."""
    pids, pipes = [], []
    for _ in range(workers):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            # A forked child must never return into the parent's code.
            try:
                os.close(r)
                c = strata.Cache(name, create=False, dir=shm_dir)
                views = [c.get_numpy(f"emb:{i}") for i in range(n)]
                assert all(v is not None for v in views)
                os.write(w, b"1")
                time.sleep(3600)
            finally:
                os._exit(1)
        os.close(w)
        pids.append(pid)
        pipes.append(r)
    ready = [os.read(r, 1) == b"1" for r in pipes]
    for r in pipes:
        os.close(r)
    total = sum(private_bytes(p) for p, ok in zip(pids, ready) if ok)
    for p in pids:
        os.kill(p, 9)
        os.waitpid(p, 0)
    if not all(ready):
        raise RuntimeError("a worker could not hold views of every key (see its error above)")
    return total


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--keys", type=int, default=200_000, help="keys of 4 KiB (default 200000)")
    ap.add_argument("--calls", type=int, default=100_000, help="timed calls per case (default 100000)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--no-redis", action="store_true", help="skip the redis-server peer")
    ap.add_argument(
        "--no-huge-pages",
        action="store_true",
        help="keep 4 KiB pages for the cache and the floor (by default both get 2 MiB pages "
        "where the kernel can build them)",
    )
    ap.add_argument(
        "--dir",
        default=os.environ.get("STRATA_SHM_DIR", "/dev/shm"),
        help="directory of the strata cache (default: $STRATA_SHM_DIR or /dev/shm)",
    )
    args = ap.parse_args()
    n, calls = args.keys, args.calls
    say = (lambda *a: print(*a, file=sys.stderr, flush=True)) if args.json else print
    rng = np.random.default_rng(42)

    name = f"bench-py-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    cache = strata.Cache(
        name,
        memory=max(n * 8192 + (96 << 20), 256 << 20),
        dir=args.dir,
        huge_pages=not args.no_huge_pages,
    )
    tmp = tempfile.mkdtemp(prefix="strata-bench-")
    shm = shared_memory.SharedMemory(create=True, size=n * ROW)
    redis_proc = None
    report = {"keys": n, "value_bytes": ROW, "calls": calls, "huge_pages": cache.huge_pages}
    try:
        pages = "2 MiB" if cache.huge_pages else "4 KiB"
        say(f"strata cache in {args.dir}, {pages} pages")
        if not cache.huge_pages and not args.no_huge_pages:
            say("  (this kernel would not build 2 MiB pages for it, which Linux 6.1 and later do; "
                "--dir on a tmpfs mounted with huge=within_size gives them: docs/huge-pages.md)")
        floor_buf, floor_huge = map_like_strata(shm, cache.huge_pages)
        report["floor_huge_pages"] = floor_huge
        say(f"floor (shared_memory) mapped as strata maps its segment, {'2 MiB' if floor_huge else '4 KiB'} pages")
        say(f"loading {n} keys of {ROW} bytes into strata, shared_memory, lmdb, dict, redis ...")
        floor_arr = np.ndarray((n, DIM), np.float32, floor_buf)
        # The same rows through the mapping multiprocessing.shared_memory
        # made itself: 4 KiB pages, what a program using it as it comes gets.
        stdlib_arr = np.ndarray((n, DIM), np.float32, shm.buf)
        floor_arr[:] = rng.random((n, DIM), dtype=np.float32)
        keys = [f"emb:{i}" for i in range(n)]
        d = {}
        for i, k in enumerate(keys):
            cache.set(k, floor_arr[i])
            d[k] = np.array(floor_arr[i])

        import lmdb

        env = lmdb.open(tmp, map_size=n * 8192 + (64 << 20), sync=False, metasync=False)
        with env.begin(write=True) as txn:
            for i, k in enumerate(keys):
                txn.put(k.encode(), floor_arr[i].tobytes())

        client = None
        if not args.no_redis:
            redis_proc, client = start_redis()
            if client is None:
                say("redis-server not found: skipping the redis peer")
            else:
                pipe = client.pipeline(transaction=False)
                for i, k in enumerate(keys):
                    pipe.set(k, floor_arr[i].tobytes())
                    if i % 1000 == 999:
                        pipe.execute()
                pipe.execute()

        buf = floor_buf
        nd, f32 = np.ndarray, np.float32
        frombuffer = np.frombuffer
        memo_cache = strata.Cache(name, create=False, memo=1024, dir=args.dir)
        gn, gb, gm = cache.get_numpy, cache.get, memo_cache.get_numpy
        dget = d.get

        def lmdb_get(k, _txn=[None]):
            return frombuffer(_txn[0].get(k), f32)

        for dist in ("zipf", "uniform"):
            ids = zipf_ranks(n, calls, 0.99, rng) if dist == "zipf" else rng.integers(0, n, calls)
            # Every case gets arguments made afresh in call order, as a
            # server makes them from its requests: the floor its offsets,
            # the others their keys. (Reusing the 200k strings made at load
            # time would cost the key-based cases a cache miss per call on
            # the string alone, which the floor's fresh ints never pay.)
            ks = [f"emb:{i}" for i in ids]
            bks = [k.encode() for k in ks]
            offs = [int(i) * ROW for i in ids]
            say(f"[{dist}] single-key reads, {calls} calls each")
            floor = lambda o: nd((DIM,), f32, buf, o)  # noqa: E731
            single = {
                "strata_get_numpy": (gn, ks),
                "strata_get_numpy_memo": (gm, ks),
                "strata_get": (gb, ks),
                "floor_shared_memory": (floor, offs),
                "dict": (dget, ks),
                "lmdb_get_frombuffer": (lmdb_get, bks),
            }
            with env.begin(buffers=True) as txn:
                lmdb_get.__defaults__[0][0] = txn
                r = measure(single)
            # redis in a group of its own, here and below: its calls run a
            # second process and stream its replies through the caches, and
            # whichever case ran next would start in the state they left.
            if client is not None:
                few = ks[: min(calls, 20_000)]
                r.update(measure({"redis_get_frombuffer": (lambda k: frombuffer(client.get(k), f32), few)}))

            say(f"[{dist}] batches")
            for size in (100, 1000):
                reps = max(20, min(2000, calls // size))
                id_batches = [ids[j * size : (j + 1) * size] for j in range(reps) if (j + 1) * size <= calls]
                id_batches = id_batches or [ids[:size]]
                kb = [[f"emb:{i}" for i in b] for b in id_batches]

                def cycle(batches):
                    it = iter(range(10**9))
                    return lambda: batches[next(it) % len(batches)]

                nxt_ids, nxt_keys = cycle(id_batches), cycle(kb)
                out = np.empty((size, DIM), np.float32)
                n_b = len(id_batches)
                bulk = {
                    f"strata_get_numpy_many_{size}_ids": (
                        lambda: cache.get_numpy_many(nxt_ids(), prefix="emb:"), n_b),
                    f"strata_get_numpy_many_{size}_ids_out": (
                        lambda: cache.get_numpy_many(nxt_ids(), out, prefix="emb:"), n_b),
                    f"strata_get_numpy_many_{size}_str": (
                        lambda: cache.get_numpy_many(nxt_keys()), n_b),
                    f"np_take_{size}": (lambda: np.take(floor_arr, nxt_ids(), axis=0), n_b),
                    f"np_take_stdlib_{size}": (lambda: np.take(stdlib_arr, nxt_ids(), axis=0), n_b),
                }
                r.update(measure_calls(bulk))
                if client is not None:
                    r.update(measure_calls({f"redis_mget_{size}": (
                        lambda: [frombuffer(v, f32) for v in client.mget(nxt_keys())], min(n_b, 200))}))
                if size == 1000:
                    cold = measure_cold({
                        f"strata_get_numpy_many_{size}_ids": (
                            lambda: cache.get_numpy_many(nxt_ids(), prefix="emb:"), n_b),
                        f"np_take_{size}": (lambda: np.take(floor_arr, nxt_ids(), axis=0), n_b),
                    })
                    r.update({f"{k}_cold": v for k, v in cold.items()})
            report[dist] = r

        say("hot set: 100 keys read over and over")
        hot = [f"emb:{i % 100}" for i in range(calls)]
        hot_offs = [(i % 100) * ROW for i in range(calls)]
        report["hot100"] = measure({
            "strata_get_numpy": (gn, hot),
            "strata_get_numpy_memo": (gm, hot),
            "floor_shared_memory": (lambda o: nd((DIM,), f32, buf, o), hot_offs),
            "dict": (dget, hot),
        })

        say("32 MiB value: get_numpy against get")
        big = rng.random(8 << 20, dtype=np.float32)
        cache.set("big", big)
        report["big_32mib"] = measure_calls({
            "get_numpy": (lambda: cache.get_numpy("big"), 2000),
            "get": (lambda: cache.get("big"), 20),
        })
        del big

        say("memory: 4 workers each holding views of every key")
        gc.collect()
        private = memory_workers(name, n, 4, args.dir)
        report["memory"] = {
            "workers": 4,
            "data_bytes": n * ROW,
            "workers_private_bytes": private,
            "per_worker_copies_bytes": 4 * n * ROW,
        }
        env.close()
        memo_cache.close()
    finally:
        if redis_proc is not None:
            redis_proc.kill()
        # Arrays over the block must go before it closes.
        stdlib_arr = floor_arr = buf = floor_buf = None  # noqa: F841
        shm.close()
        shm.unlink()
        cache.close()
        strata.drop(name, dir=args.dir)
        shutil.rmtree(tmp, ignore_errors=True)

    z = report["zipf"]
    ratios = {
        "get_numpy_vs_floor": z["strata_get_numpy"]["single"]["p50_ns"] / z["floor_shared_memory"]["single"]["p50_ns"],
        "get_numpy_vs_dict": z["strata_get_numpy"]["single"]["p50_ns"] / z["dict"]["single"]["p50_ns"],
        "hot100_get_numpy_memo_vs_floor": report["hot100"]["strata_get_numpy_memo"]["single"]["p50_ns"] / report["hot100"]["floor_shared_memory"]["single"]["p50_ns"],
        "lmdb_vs_get_numpy": z["lmdb_get_frombuffer"]["single"]["p50_ns"] / z["strata_get_numpy"]["single"]["p50_ns"],
        "many1000_ids_vs_np_take": z["strata_get_numpy_many_1000_ids"]["p50_ns"] / z["np_take_1000"]["p50_ns"],
        "many1000_ids_vs_np_take_stdlib": z["strata_get_numpy_many_1000_ids"]["p50_ns"] / z["np_take_stdlib_1000"]["p50_ns"],
        "many1000_ids_vs_np_take_cold": z["strata_get_numpy_many_1000_ids_cold"]["p50_ns"] / z["np_take_1000_cold"]["p50_ns"],
        "big_vs_4k_get_numpy": report["big_32mib"]["get_numpy"]["p50_ns"] / z["strata_get_numpy"]["single"]["p50_ns"],
        "big_get_vs_get_numpy": report["big_32mib"]["get"]["p50_ns"] / report["big_32mib"]["get_numpy"]["p50_ns"],
    }
    if "redis_get_frombuffer" in z:
        ratios["redis_vs_get_numpy"] = z["redis_get_frombuffer"]["single"]["p50_ns"] / z["strata_get_numpy"]["single"]["p50_ns"]
        ratios["redis_mget1000_vs_many1000_ids"] = z["redis_mget_1000"]["p50_ns"] / z["strata_get_numpy_many_1000_ids"]["p50_ns"]
    report["ratios_zipf"] = ratios

    if args.json:
        print(json.dumps(report, indent=1))
        return
    for dist in ("zipf", "uniform"):
        print(f"\n{dist}: per call, ns (single = timed one by one; batch = 100 calls timed together)")
        print(f"{'case':38} {'p50':>9} {'p99':>9} {'p999':>9} {'batch p50':>10} {'ops/s':>12}")
        for case, v in report[dist].items():
            if "single" in v:
                s = v["single"]
                print(f"{case:38} {s['p50_ns']:9.0f} {s['p99_ns']:9.0f} {s['p999_ns']:9.0f} "
                      f"{v['batch']['p50_ns']:10.0f} {v['ops_per_s']:12,.0f}")
        print(f"\n{dist}: whole bulk calls, us")
        print(f"{'case':38} {'p50':>9} {'p99':>9} {'p999':>9} {'calls/s':>12}")
        for case, v in report[dist].items():
            if "single" not in v:
                print(f"{case:38} {v['p50_ns']/1e3:9.1f} {v['p99_ns']/1e3:9.1f} {v['p999_ns']/1e3:9.1f} {v['calls_per_s']:12,.0f}")
    print("\nhot set of 100 keys: per call, ns")
    for case, v in report["hot100"].items():
        s = v["single"]
        print(f"{case:38} {s['p50_ns']:9.0f} {s['p99_ns']:9.0f} {s['p999_ns']:9.0f} "
              f"{v['batch']['p50_ns']:10.0f} {v['ops_per_s']:12,.0f}")
    b = report["big_32mib"]
    print(f"\n32 MiB value: get_numpy p50 {b['get_numpy']['p50_ns']:.0f} ns, get p50 {b['get']['p50_ns']/1e6:.2f} ms")
    m = report["memory"]
    print(f"memory: 4 workers holding views of all {n} keys: {m['workers_private_bytes']/2**20:.1f} MiB private "
          f"in all, against {m['per_worker_copies_bytes']/2**20:.0f} MiB for 4 per-worker copies")
    print("\nratios (zipf, p50):")
    for k, v in ratios.items():
        print(f"  {k:34} {v:8.2f}")


if __name__ == "__main__":
    main()
