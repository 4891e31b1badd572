"""`@strata.cached` hits against their peers, in one run: the cost of a
repeated call whose result is a Python object (a dict of a few strings
and a list of floats, about 1 KB pickled, by default).

- strata without L1: the pickled result read from L0 and unpickled on
  every call;
- strata with L1 (`Cache(l1=...)`): the object kept unpickled in the
  process's L1, checked against L0's change log;
- `functools.lru_cache`: the floor, a dict lookup in one process, with
  nothing shared and nothing kept current.

Each figure is the median of per-call times over `--calls` calls spread
over `--keys` keys, beside its ratio to the floor.

    .venv/bin/python bench/cached.py [--keys 1000] [--calls 200000] [--floats 100] [--json]
"""

import argparse
import functools
import json
import os
import shutil
import tempfile
import time

import numpy as np

import strata


def result(i, floats):
    return {"id": i, "name": f"item-{i}", "tags": ["a", "b", "c"], "vec": [float(j) for j in range(floats)]}


def per_call_ns(fn, order):
    times = np.empty(len(order), dtype=np.int64)
    clock = time.perf_counter_ns
    for n, i in enumerate(order):
        t0 = clock()
        fn(int(i))
        times[n] = clock() - t0
    return float(np.median(times))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keys", type=int, default=1000)
    ap.add_argument("--calls", type=int, default=200_000)
    ap.add_argument("--floats", type=int, default=100, help="floats in each result's list")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    rng = np.random.default_rng(1)
    order = rng.integers(0, args.keys, args.calls)
    d = tempfile.mkdtemp(prefix="strata-bench-cached-")
    out = {"keys": args.keys, "calls": args.calls, "floats": args.floats}
    try:
        name = f"bench-cached-{os.getpid()}"
        plain = strata.Cache(name, memory="256MiB", dir=d, huge_pages=False)
        with_l1 = strata.Cache(name, dir=d, l1="256MiB")

        @strata.cached(plain, namespace="bench")
        def f_plain(i):
            return result(i, args.floats)

        @strata.cached(with_l1, namespace="bench")
        def f_l1(i):
            return result(i, args.floats)

        @functools.lru_cache(maxsize=None)
        def f_floor(i):
            return result(i, args.floats)

        for i in range(args.keys):
            f_plain(i)
            f_l1(i)
            f_l1(i)
            f_floor(i)
        out["pickled_bytes"] = len(plain.get(b"cached:bench:" + strata._cached.call_key((0,), {}).encode()) or b"")
        # Alternating rounds, so that drift hits every contender alike.
        rounds = {"strata_no_l1_ns": [], "strata_l1_ns": [], "lru_cache_ns": []}
        for _ in range(3):
            rounds["strata_no_l1_ns"].append(per_call_ns(f_plain, order))
            rounds["strata_l1_ns"].append(per_call_ns(f_l1, order))
            rounds["lru_cache_ns"].append(per_call_ns(f_floor, order))
        for k, v in rounds.items():
            out[k] = float(np.median(v))
        out["l1_objects"] = with_l1.stats()["l1_objects"]
        out["l1_vs_no_l1"] = out["strata_l1_ns"] / out["strata_no_l1_ns"]
        out["l1_vs_lru_cache"] = out["strata_l1_ns"] / out["lru_cache_ns"]
        plain.close()
        with_l1.close()
    finally:
        shutil.rmtree(d, ignore_errors=True)

    if args.json:
        print(json.dumps(out))
        return
    print(f"@strata.cached hit, {args.keys} keys, results of {out['pickled_bytes']} bytes pickled, median per call:")
    print(f"  strata, no L1 (unpickle each call): {out['strata_no_l1_ns']:8.0f} ns")
    print(f"  strata, L1 (object kept):           {out['strata_l1_ns']:8.0f} ns  "
          f"{out['l1_vs_no_l1']:.2f}x of no L1")
    print(f"  functools.lru_cache (floor):        {out['lru_cache_ns']:8.0f} ns  "
          f"strata L1 is {out['l1_vs_lru_cache']:.1f}x the floor")


if __name__ == "__main__":
    main()
