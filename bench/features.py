"""Feature tables against their peers, in one run:

- assemble of the 4-field schema (age:int32, clicks:int64, ltv:float64,
  score:float32), one entity and 100k entities, p50/p99/p999, and get (the
  record view);
- assemble of the 200-field schema (199 float32 + one float32[128]), warm
  and cold (after sweeping a buffer of 4x the L3 cache);
- assemble_batch of 1000 random entities out of 1M, against np.take of the
  same rows from a packed float32 array in shared memory (the floor);
- torn rows under a writer in another process, by one probe;
- hydration rows/s from NumPy and from Parquet;
- stream freshness: from XADD to the row being readable, one update at a
  time, with the consumer in another process (a redis-server the script
  starts);

with Quorin 0.1.0 measured by the same code in the same run when a venv
that has it is given (`--quorin-venv`; Quorin needs Python >= 3.12, and on
3.11 gets a `collections.abc.Buffer` shim from typing_extensions, and a
redis-server for its registry). Each call is timed on its own.

    .venv/bin/python bench/features.py [--entities 1000000] [--calls 100000]
        [--quorin-venv PATH] [--json]
"""

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from multiprocessing import shared_memory

import numpy as np

import strata

FOUR = [("age", "int32"), ("clicks", "int64"), ("ltv", "float64"), ("score", "float32")]
WIDE = [(f"f{i}", "float32") for i in range(199)] + [("emb", "float32", (128,))]


def pct(ns, q):
    return float(np.percentile(ns, q))


def timed(fn, args_list):
    out = np.empty(len(args_list), np.int64)
    t = time.perf_counter_ns
    for i, a in enumerate(args_list):
        s = t()
        fn(a)
        out[i] = t() - s
    return out


def summary(ns):
    return {"p50_ns": pct(ns, 50), "p99_ns": pct(ns, 99), "p999_ns": pct(ns, 99.9)}


def four_columns(n, rng):
    return {
        "age": rng.integers(0, 100, n).astype(np.int32),
        "clicks": rng.integers(0, 10**6, n),
        "ltv": rng.random(n),
        "score": rng.random(n).astype(np.float32),
    }


def l3_bytes():
    try:
        with open("/sys/devices/system/cpu/cpu0/cache/index3/size") as f:
            s = f.read().strip()
        return int(s[:-1]) * (1024 if s.endswith("K") else 1 << 20)
    except OSError:
        return 32 << 20


def torn_probe_writer(name, seconds):
    c = strata.Cache(name)
    t = c.table("wide")
    ones, twos = np.ones((), t.dtype), np.ones((), t.dtype)
    for n in t.names:
        twos[n] = 2
    end = time.monotonic() + seconds
    i = 0
    while time.monotonic() < end:
        t.put("hot", ones if i % 2 else twos)
        i += 1


def strata_side(args, r):
    rng = np.random.default_rng(0)
    name = f"bench-features-{os.getpid()}"
    cache = strata.Cache(name, memory="4GiB", max_entries=max(2 * args.entities, 1 << 20))
    try:
        four = strata.FeatureTable(cache, strata.Schema("four", 1, FOUR))
        n = args.entities
        ids = np.arange(n)
        cols = four_columns(n, rng)
        rep = four.load(ids, cols, progress=False)
        r["hydrate_numpy_rows_per_s"] = rep.rows_per_sec
        # Parquet, when pyarrow is there.
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq

            d = tempfile.mkdtemp()
            path = os.path.join(d, "four.parquet")
            pq.write_table(pa.table({"id": ids, **{k: cols[k] for k, _ in FOUR}}), path)
            rep = four.load_file(path, progress=False)
            r["hydrate_parquet_rows_per_s"] = rep.rows_per_sec
            shutil.rmtree(d)
        except ImportError:
            pass
        out = np.empty(four.width(), np.float32)
        one = [b"7"] * args.calls
        four.assemble(b"7", out=out)
        r["four_assemble_one"] = summary(timed(lambda i: four.assemble(i, out=out), one))
        many = [str(i).encode() for i in rng.integers(0, min(n, 100_000), args.calls)]
        r["four_assemble_100k"] = summary(timed(lambda i: four.assemble(i, out=out), many))
        r["four_get"] = summary(timed(four.get, many))

        wide = strata.FeatureTable(cache, strata.Schema("wide", 1, WIDE))
        wn = min(n, 100_000)
        wcols = {k: rng.random((wn,) + (s[0] if s else ())).astype(np.float32)
                 for k, _, *s in WIDE}
        wide.load(np.arange(wn), wcols, progress=False)
        wout = np.empty(wide.width(), np.float32)
        wids = [str(i).encode() for i in rng.integers(0, wn, args.calls)]
        r["wide_assemble_warm"] = summary(timed(lambda i: wide.assemble(i, out=wout), wids[:args.calls]))
        sweep = np.ones(4 * l3_bytes() // 8)
        cold = []
        for i in wids[: min(2000, args.calls)]:
            sweep += 1.0
            s = time.perf_counter_ns()
            wide.assemble(i, out=wout)
            cold.append(time.perf_counter_ns() - s)
        r["wide_assemble_cold"] = summary(np.array(cold))

        # Batch of 1000 out of n, against np.take from a packed array in
        # shared memory.
        shm = shared_memory.SharedMemory(create=True, size=n * 4 * 4)
        try:
            packed = np.ndarray((n, 4), np.float32, buffer=shm.buf)
            for j, (k, _) in enumerate(FOUR):
                packed[:, j] = cols[k]
            batches = [rng.integers(0, n, 1000) for _ in range(max(1, args.calls // 100))]
            X = np.empty((1000, 4), np.float32)
            ours = timed(lambda b: four.assemble_batch(b, out=X), batches)
            floor = timed(lambda b: np.take(packed, b, axis=0, out=X), batches)
            r["batch_1000"] = {"p50_ns": pct(ours, 50), "floor_p50_ns": pct(floor, 50),
                               "ratio": pct(ours, 50) / pct(floor, 50)}
            del packed
        finally:
            shm.close()
            shm.unlink()

        # Torn rows.
        p = mp.get_context("spawn").Process(target=torn_probe_writer, args=(name, args.torn_seconds))
        p.start()
        torn = reads = 0
        while p.is_alive():
            x = wide.assemble(b"hot") if wide.get(b"hot") is not None else None
            if x is not None:
                torn += int((x != x[0]).any())
                reads += 1
        p.join()
        r["torn_rows"] = torn
        r["torn_probe_reads"] = reads
    finally:
        cache.close()
        strata.drop(name)


def stream_consumer(name, url, stop_after):
    t = strata.Cache(name).table("fresh")
    c = t.consume(url, "fresh", "bench", block_ms=1, batch=100, start=False)
    end = time.monotonic() + stop_after
    while time.monotonic() < end:
        c.run_once()


@contextlib.contextmanager
def redis_server():
    """A redis-server on a free loopback port, ready; yields the port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    d = tempfile.mkdtemp()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--save", "", "--appendonly", "no",
                             "--dir", d], stdout=subprocess.DEVNULL)
    try:
        for _ in range(500):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as c:
                    c.sendall(b"PING\r\n")
                    if c.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                time.sleep(0.02)
        yield port
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(d, ignore_errors=True)


def stream_side(args, r):
    """XADD to the row being readable, one update at a time, with the
    consumer in another process."""
    try:
        import redis as redis_py
    except ImportError:
        r["stream_freshness"] = "not measured (no redis-py)"
        return
    name = f"bench-fresh-{os.getpid()}"
    cache = strata.Cache(name, memory="64MiB")
    try:
        with redis_server() as port:
            url = f"redis://127.0.0.1:{port}/0"
            client = redis_py.Redis(port=port)
            t = strata.FeatureTable(cache, strata.Schema("fresh", 1, [("n", "int64")]))
            t.put("f", n=-1)
            p = mp.get_context("spawn").Process(target=stream_consumer, args=(name, url, 120))
            p.start()
            time.sleep(1.0)
            lat = []
            for k in range(args.stream_updates):
                start = time.perf_counter_ns()
                t.publish(client, "f", "fresh", partial=True, n=k)
                while t.get("f")["n"] != k:
                    pass
                lat.append(time.perf_counter_ns() - start)
            p.terminate()
            p.join()
            r["stream_freshness"] = summary(np.array(lat))
    finally:
        cache.close()
        strata.drop(name)


QUORIN = r"""
import collections.abc, typing_extensions
if not hasattr(collections.abc, "Buffer"):
    collections.abc.Buffer = typing_extensions.Buffer
import json, sys, time
import numpy as np, pyarrow as pa, redis
from quorin.schema import FeatureSchema, FeatureField, DType
from quorin.shm import SegmentRegistry
from quorin._internal.insert_kernel import insert_many
from quorin.assembly import assemble, assemble_batch, prewarm

port, n, calls = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
class Four(FeatureSchema):
    version = 1
    fields = [FeatureField("age", DType.INT32), FeatureField("clicks", DType.INT64),
              FeatureField("ltv", DType.FLOAT64), FeatureField("score", DType.FLOAT32)]
class Wide(FeatureSchema):
    version = 1
    fields = [FeatureField(f"f{i}", DType.FLOAT32) for i in range(199)] + [FeatureField("emb", DType.FLOAT32, (128,))]
r = redis.Redis(port=port)
reg = SegmentRegistry(r)
rng = np.random.default_rng(0)
out = {}
def pctl(a, q): return float(np.percentile(a, q))
def summ(a): return {"p50_ns": pctl(a, 50), "p99_ns": pctl(a, 99), "p999_ns": pctl(a, 99.9)}
def timed(fn, xs):
    o = np.empty(len(xs), np.int64); t = time.perf_counter_ns
    for i, x in enumerate(xs):
        s = t(); fn(x); o[i] = t() - s
    return o
prewarm()
seg = reg.create(Four, capacity=2 * n)
ids = [str(i) for i in range(n)]
tbl = pa.table({"entity_id": pa.array(ids), "age": rng.integers(0, 100, n).astype(np.int32),
                "clicks": rng.integers(0, 10**6, n), "ltv": rng.random(n), "score": rng.random(n).astype(np.float32)})
s = time.perf_counter(); insert_many(seg, tbl); out["hydrate_rows_per_s"] = n / (time.perf_counter() - s)
buf = np.empty(4, np.float32)
assemble(seg, "7", out=buf)
out["four_assemble_one"] = summ(timed(lambda i: assemble(seg, i, out=buf), ["7"] * calls))
many = [str(i) for i in rng.integers(0, min(n, 100000), calls)]
out["four_assemble_100k"] = summ(timed(lambda i: assemble(seg, i, out=buf), many))
batches = [[str(i) for i in rng.integers(0, n, 1000)] for _ in range(max(1, calls // 100))]
X = np.empty((1000, 4), np.float32); m = np.empty(1000, bool)
out["batch_1000_p50_ns"] = pctl(timed(lambda b: assemble_batch(seg, b, out=X, found_mask=m), batches), 50)
wn = min(n, 100000)
wseg = reg.create(Wide, capacity=2 * wn)
cols = {f"f{i}": rng.random(wn).astype(np.float32) for i in range(199)}
emb = rng.random((wn, 128)).astype(np.float32)
cols["emb"] = pa.FixedSizeListArray.from_arrays(pa.array(emb.ravel()), 128)
insert_many(wseg, pa.table({"entity_id": pa.array([str(i) for i in range(wn)]), **cols}))
wbuf = np.empty(327, np.float32)
wids = [str(i) for i in rng.integers(0, wn, calls)]
out["wide_assemble_warm"] = summ(timed(lambda i: assemble(wseg, i, out=wbuf), wids))
print(json.dumps(out))
"""


def quorin_side(args, r):
    if not args.quorin_venv:
        r["quorin"] = "not measured (no --quorin-venv)"
        return
    py = os.path.join(args.quorin_venv, "bin", "python")
    with redis_server() as port:
        o = subprocess.run([py, "-c", QUORIN, str(port), str(args.entities), str(args.calls)],
                           capture_output=True, text=True)
    if o.returncode != 0:
        r["quorin"] = f"failed: {o.stderr.strip().splitlines()[-1] if o.stderr else o.returncode}"
    else:
        r["quorin"] = json.loads(o.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--entities", type=int, default=1_000_000)
    ap.add_argument("--calls", type=int, default=100_000)
    ap.add_argument("--torn-seconds", type=float, default=2.0)
    ap.add_argument("--stream-updates", type=int, default=2000)
    ap.add_argument("--quorin-venv")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    r = {}
    strata_side(args, r)
    stream_side(args, r)
    quorin_side(args, r)
    if args.json:
        print(json.dumps(r))
        return
    q = r["quorin"] if isinstance(r["quorin"], dict) else {}
    us = lambda ns: f"{ns / 1000:.2f} µs"
    print("| figure | strata | Quorin 0.1.0, same run | ratio |")
    print("|---|---|---|---|")
    for key, label in [("four_assemble_one", "4-field assemble, one entity"),
                       ("four_assemble_100k", "4-field assemble, 100k entities"),
                       ("wide_assemble_warm", "200-field assemble, warm")]:
        s, o = r[key], q.get(key)
        peer = f"p50 {us(o['p50_ns'])}, p99 {us(o['p99_ns'])}" if o else "-"
        ratio = f"{o['p50_ns'] / s['p50_ns']:.1f}x faster (p50)" if o else ""
        print(f"| {label} | p50 {us(s['p50_ns'])}, p99 {us(s['p99_ns'])}, p999 {us(s['p999_ns'])} | {peer} | {ratio} |")
    print(f"| 4-field get (record view) | p50 {us(r['four_get']['p50_ns'])}, p99 {us(r['four_get']['p99_ns'])} | | |")
    c = r["wide_assemble_cold"]
    print(f"| 200-field assemble, cold | p50 {us(c['p50_ns'])}, p99 {us(c['p99_ns'])} | | |")
    b = r["batch_1000"]
    qb = q.get("batch_1000_p50_ns")
    qb_ratio = f"{qb / b['p50_ns']:.1f}x faster" if qb else ""
    print(f"| assemble_batch, 1000 of {args.entities:,} | p50 {us(b['p50_ns'])}; {b['ratio']:.2f}x np.take ({us(b['floor_p50_ns'])}) | "
          f"{us(qb) if qb else '-'} | {qb_ratio} |")
    print(f"| torn rows under a writer | {r['torn_rows']} in {r['torn_probe_reads']:,} reads | | |")
    hq = q.get("hydrate_rows_per_s")
    print(f"| hydration from NumPy | {r['hydrate_numpy_rows_per_s']:,.0f} rows/s | {f'{hq:,.0f} rows/s (from Arrow)' if hq else '-'} | |")
    if "hydrate_parquet_rows_per_s" in r:
        print(f"| hydration from Parquet | {r['hydrate_parquet_rows_per_s']:,.0f} rows/s | | |")
    f = r["stream_freshness"]
    if isinstance(f, dict):
        print(f"| stream freshness, XADD to readable | p50 {us(f['p50_ns'])}, p99 {us(f['p99_ns'])} | | |")
    if not q:
        print(f"\nQuorin: {r['quorin']}")


if __name__ == "__main__":
    main()
