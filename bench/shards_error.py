"""The error of `strata simulate`'s sampled LRU curve (SHARDS) against the
exact one, on the suite's traces: for each rate, the mean and largest
difference in points of hit ratio over the curve's sizes where the sample
holds at least 100 entries, and the seconds each curve took.

    .venv/bin/python bench/shards_error.py [--traces DIR] [--rates 0.1,0.01,0.001] [--zipf-requests N]

The ARC traces are used on condition that the ARC paper is cited:
N. Megiddo, D. S. Modha, "ARC: A Self-Tuning, Low Overhead Replacement
Cache", USENIX FAST 2003.
"""

import argparse
import json
import os
import subprocess
import tempfile

import numpy as np

STRATA = os.environ.get("STRATA_BIN") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "target", "release", "strata")


def curve(path, fmt, rate):
    out = subprocess.run([STRATA, "simulate", path, "--format", fmt, "-p", "lru", "-s", "1%", "-q",
                          "--no-recommendation", "--sample-rate", str(rate), "--json"],
                         capture_output=True, check=True, text=True).stdout
    d = json.loads(out)
    return d["trace"]["requests"], d["lru_curve"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--traces", help="a directory with the ARC and cache2k traces")
    ap.add_argument("--rates", default="0.1,0.01,0.001")
    ap.add_argument("--zipf-requests", type=int, default=10_000_000)
    args = ap.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        traces = []
        if args.traces:
            for f in sorted(os.listdir(args.traces)):
                if f.endswith(".lis.zst"):
                    traces.append((f.split(".")[0], os.path.join(args.traces, f), "arc"))
                elif f.endswith(".trace.xz"):
                    traces.append((f.split(".")[0], os.path.join(args.traces, f), "i32be"))
        rng = np.random.default_rng(1)
        n = 1_000_000
        p = np.arange(1, n + 1, dtype=np.float64) ** -0.99
        p /= p.sum()
        z = os.path.join(tmp, "zipf.u64")
        rng.choice(n, size=args.zipf_requests, p=p).astype("<u8").tofile(z)
        traces.append(("zipf-0.99", z, "u64"))
        print("| trace (requests) | exact | " + " | ".join(f"R = {r}: mean / max" for r in rates) + " |")
        print("|---|---|" + "---|" * len(rates))
        for name, path, fmt in traces:
            requests, exact = curve(path, fmt, 1)
            cells = []
            for r in rates:
                _, c = curve(path, fmt, r)
                errs = [abs(b[1] - a[1]) for a, b in zip(exact["points"], c["points"]) if a[0] * r >= 100]
                cells.append(f"{100 * np.mean(errs):.2f} / {100 * max(errs):.2f} ({c['seconds']:.2f} s)" if errs
                             else "no size of 100 sampled")
            print(f"| {name} ({requests / 1e6:.1f}M) | {exact['seconds']:.2f} s | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
