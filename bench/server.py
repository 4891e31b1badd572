"""`strata start` against redis-server, in one run, with the same load
from redis-benchmark, alternating between the servers:

- GET and SET of 4 KiB values with 50 clients at pipeline depth 1 and 16,
  and of 64-byte values at depth 1;
- GET through strata in front of a redis-server upstream at a 90% L0 hit
  ratio (90% of the keys are in L0, 10% exist nowhere, so every miss is a
  round trip upstream), against that redis-server alone (the upstream,
  standing for a Redis on another machine, is not pinned);
- a Python process reading the keys the benchmark wrote with get_numpy
  while the server is under load, against the same reads with the server
  idle.

Each server runs pinned to CPU 0 and redis-benchmark to CPU 1 (when the
machine has two CPUs or more), so they do not compete for a core. Figures
are ops/s and p50/p99 latency in ms as redis-benchmark reports them, with
strata's figure as a ratio of redis-server's.

    .venv/bin/python bench/server.py [--requests 200000] [--rounds 3] [--only PART] [--json]
"""

import argparse
import csv
import io
import json
import os
import pathlib
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import redis

import strata

ROOT = pathlib.Path(__file__).resolve().parents[1]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def strata_bin():
    exe = os.environ.get("STRATA_BIN") or str(ROOT / "target" / "release" / "strata")
    if not os.path.exists(exe):
        sys.exit("build it first: cargo build --release -p strata-cli")
    return exe


CPUS = os.cpu_count() or 1


def pinned(cpu, argv):
    if CPUS >= 2 and shutil.which("taskset"):
        return ["taskset", "-c", str(cpu)] + argv
    return argv


def wait_ping(port, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if redis.Redis(port=port).ping():
                return
        except redis.ConnectionError:
            time.sleep(0.02)
    raise RuntimeError(f"nothing answers on port {port}")


class Redis:
    def __init__(self, cpu=0):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="strata-bench-redis-")
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", self.dir]
        self.proc = subprocess.Popen(argv if cpu is None else pinned(cpu, argv),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_ping(self.port)

    def stop(self):
        self.proc.terminate()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class Strata:
    def __init__(self, name, memory, upstream=None):
        self.name = name
        self.port = free_port()
        self.state = tempfile.mkdtemp(prefix="strata-bench-state-")
        argv = [strata_bin(), "start", "--foreground", "-n", name, "-m", memory,
                "--port", str(self.port)]
        if upstream:
            argv += ["--redis", upstream]
        self.proc = subprocess.Popen(pinned(0, argv), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL,
                                     env=dict(os.environ, XDG_STATE_HOME=self.state))
        wait_ping(self.port)

    def stop(self):
        self.proc.terminate()
        self.proc.wait()
        strata.drop(self.name)
        shutil.rmtree(self.state, ignore_errors=True)


def benchmark(port, tests, size, pipeline, requests, keyspace, clients=50):
    """redis-benchmark's figures: {test: (ops/s, p50 ms, p99 ms)}."""
    argv = pinned(1, ["redis-benchmark", "-p", str(port), "-t", tests, "-d", str(size),
                      "-c", str(clients), "-P", str(pipeline), "-n", str(requests),
                      "-r", str(keyspace), "--csv", "-q"])
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    figures = {}
    for row in csv.DictReader(io.StringIO(out)):
        figures[row["test"]] = (float(row["rps"]), float(row["p50_latency_ms"]),
                                float(row["p99_latency_ms"]))
    return figures


def median_of(runs):
    return tuple(statistics.median(r[i] for r in runs) for i in range(3))


def compare(args, results):
    """GET and SET, each setting, servers alternating round by round."""
    settings = [(4096, 1), (4096, 16), (64, 1)]
    for size, pipeline in settings:
        runs = {"redis": [], "strata": []}
        for _ in range(args.rounds):
            for who in ("redis", "strata"):
                srv = Redis() if who == "redis" else Strata(f"bench-srv-{os.getpid()}", "2GiB")
                try:
                    # SET first fills the keyspace that GET then reads.
                    runs[who].append(benchmark(srv.port, "set,get", size, pipeline,
                                               args.requests, args.keyspace))
                finally:
                    srv.stop()
        for test in ("SET", "GET"):
            r = median_of([x[test] for x in runs["redis"]])
            s = median_of([x[test] for x in runs["strata"]])
            results.append({
                "load": f"{test} -d {size} -c 50 -P {pipeline}",
                "redis_ops": r[0], "strata_ops": s[0], "ratio": s[0] / r[0],
                "redis_p50_ms": r[1], "strata_p50_ms": s[1],
                "redis_p99_ms": r[2], "strata_p99_ms": s[2],
            })


def fill_upstream(port, keys, size):
    r = redis.Redis(port=port)
    value = b"x" * size
    pipe = r.pipeline(transaction=False)
    for i in range(keys):
        pipe.set(f"key:{i:012d}", value)
        if i % 1000 == 999:
            pipe.execute()
    pipe.execute()


def tiered(args, results):
    """GET at a 90% L0 hit ratio, strata over redis-server vs redis-server."""
    runs = {"redis": [], "strata": []}
    present = args.keyspace * 9 // 10
    for _ in range(args.rounds):
        # The upstream stands for a Redis on another machine: not pinned,
        # the same process for both runs.
        up = Redis(cpu=None)
        try:
            fill_upstream(up.port, present, 4096)
            runs["redis"].append(benchmark(up.port, "get", 4096, 1, args.requests,
                                           args.keyspace)["GET"])
            s = Strata(f"bench-tier-{os.getpid()}", "2GiB", upstream=f"redis://127.0.0.1:{up.port}/0")
            try:
                c = redis.Redis(port=s.port)
                pipe = c.pipeline(transaction=False)
                for i in range(present):
                    pipe.get(f"key:{i:012d}")
                    if i % 1000 == 999:
                        pipe.execute()
                pipe.execute()
                before = c.info("stats")
                runs["strata"].append(benchmark(s.port, "get", 4096, 1, args.requests,
                                                args.keyspace)["GET"])
                after = c.info("stats")
                hits = after["keyspace_hits"] - before["keyspace_hits"]
                misses = after["keyspace_misses"] - before["keyspace_misses"]
            finally:
                s.stop()
        finally:
            up.stop()
    r, s = median_of(runs["redis"]), median_of(runs["strata"])
    results.append({
        "load": f"GET -d 4096 -c 50 -P 1, strata over redis, {100 * hits / max(1, hits + misses):.0f}% L0 hits",
        "redis_ops": r[0], "strata_ops": s[0], "ratio": s[0] / r[0],
        "redis_p50_ms": r[1], "strata_p50_ms": s[1],
        "redis_p99_ms": r[2], "strata_p99_ms": s[2],
    })


READER = r"""
import sys, time, json, random
import numpy as np, strata
name, keys, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
c = strata.Cache(name)
ids = [f"key:{random.randrange(keys):012d}" for _ in range(4096)]
times = []
end = time.monotonic() + seconds
i = 0
while time.monotonic() < end:
    k = ids[i % len(ids)]; i += 1
    t = time.perf_counter_ns()
    v = c.get_numpy(k, dtype=np.uint8)
    times.append(time.perf_counter_ns() - t)
times.sort()
print(json.dumps({"p50_ns": times[len(times) // 2], "reads": len(times)}))
"""


def reader(args, results):
    """get_numpy from Python while the server is idle, then under load."""
    name = f"bench-read-{os.getpid()}"
    s = Strata(name, "2GiB")
    try:
        benchmark(s.port, "set", 4096, 16, args.keyspace * 2, args.keyspace)
        run = lambda secs: json.loads(subprocess.run(
            pinned(1, [sys.executable, "-c", READER, name, str(args.keyspace), str(secs)]),
            capture_output=True, text=True, check=True).stdout)
        idle = run(2.0)
        load = subprocess.Popen(
            pinned(1, ["redis-benchmark", "-p", str(s.port), "-t", "get", "-d", "4096",
                       "-c", "50", "-P", "16", "-n", str(args.requests * 20),
                       "-r", str(args.keyspace), "-q"]),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        busy = run(2.0)
        load.terminate()
        load.wait()
    finally:
        s.stop()
    results.append({
        "load": "Python get_numpy p50 while the server serves GET -P 16",
        "idle_p50_ns": idle["p50_ns"], "loaded_p50_ns": busy["p50_ns"],
        "ratio": busy["p50_ns"] / idle["p50_ns"],
    })


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=200_000)
    ap.add_argument("--keyspace", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", choices=["compare", "tiered", "reader"],
                    help="run one part only")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    results = []
    for part in (compare, tiered, reader):
        if args.only in (None, part.__name__):
            part(args, results)
    placement = "server on CPU 0, redis-benchmark on CPU 1" if CPUS >= 2 else "one CPU"
    version = subprocess.run(["redis-server", "--version"], capture_output=True,
                             text=True).stdout.split()[2]
    if args.json:
        print(json.dumps({"placement": placement, "redis": version, "results": results}))
        return
    print(f"redis-server {version}; {placement}; medians of {args.rounds} rounds\n")
    print("| load | redis-server ops/s | strata ops/s | ratio | p50 ms (redis / strata) | p99 ms (redis / strata) |")
    print("|---|---|---|---|---|---|")
    for r in results:
        if "redis_ops" in r:
            print(f"| {r['load']} | {r['redis_ops']:,.0f} | {r['strata_ops']:,.0f} | "
                  f"{r['ratio']:.2f}x | {r['redis_p50_ms']:.3f} / {r['strata_p50_ms']:.3f} | "
                  f"{r['redis_p99_ms']:.3f} / {r['strata_p99_ms']:.3f} |")
        else:
            print(f"\n{r['load']}: idle {r['idle_p50_ns']} ns, under load "
                  f"{r['loaded_p50_ns']} ns ({r['ratio']:.2f}x)")


if __name__ == "__main__":
    main()
