#!/usr/bin/env python3
"""How many keys a real cache keeps as its index fills toward max_entries.

    .venv/bin/python bench/index_capacity.py [--seeds 150]

Each seed is a new cache (the hash seed is drawn per segment) of 64 MiB
with max_entries=16384, filled with 1-byte values up to 70%, 100%, 120%
and 140% of max_entries. Memory is never short. max_entries is a bound:
each shard holds at most its share, so below it a key is lost only when
both of its index buckets are full (the index has two slots per entry),
and from it the eviction policy makes room. Prints the worst fraction
kept over all seeds at each fill.
"""

import argparse
import os

import strata

M = 16384
FILLS = (0.7, 1.0, 1.2, 1.4)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=150, help="caches per fill (default 150)")
    args = ap.parse_args()
    name = f"bench-capacity-{os.getpid()}"
    worst = {f: 1.0 for f in FILLS}
    lost = {f: 0 for f in FILLS}
    for _ in range(args.seeds):
        for fill in FILLS:
            n = int(M * fill)
            with strata.Cache(name, memory="64MiB", max_entries=M) as c:
                for i in range(n):
                    c.set(f"k{i}", b"v")
                kept = len(c)
            strata.drop(name)
            worst[fill] = min(worst[fill], kept / n)
            lost[fill] = max(lost[fill], n - kept)
    for fill in FILLS:
        print(f"{fill:>4.0%} of max_entries ({int(M * fill)} keys): worst kept {worst[fill]:.5f}, "
              f"at most {lost[fill]} lost, over {args.seeds} seeds")


if __name__ == "__main__":
    main()
