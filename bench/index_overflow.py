#!/usr/bin/env python3
"""How often an index whose entries never move loses a key, by bucket shape.

    .venv/bin/python bench/index_overflow.py

Each key has two random candidate buckets. It goes into the first with
room ("first", what L0 does today: most keys then live in the bucket a
lookup reads first) or into the emptier one ("less"). When both are full,
the key is lost: L0 evicts a resident entry instead. Printed: the fraction
of keys lost by the time the index is filled to each load (keys per slot).
Today's index has 8 slots per bucket and 2 slots per `max_entries`, so
its load 0.5 is `max_entries` keys. This is a model of the index alone,
for docs/design/proposal-one-line-reads.md.
"""

import numpy as np

LOADS = [0.25, 0.35, 0.5, 0.6, 0.7, 0.8, 0.9]
SLOTS = 400_000


def lost_fractions(per, policy, rng):
    buckets = SLOTS // per
    occ = np.zeros(buckets, np.int32)
    n = int(SLOTS * max(LOADS))
    b1 = rng.integers(0, buckets, n)
    b2 = rng.integers(0, buckets, n)
    marks = {int(SLOTS * load): load for load in LOADS}
    lost, out = 0, {}
    for i in range(n):
        a, b = b1[i], b2[i]
        if policy == "first":
            t = a if occ[a] < per else (b if occ[b] < per else -1)
        else:
            t = a if occ[a] <= occ[b] else b
            if occ[t] >= per:
                t = -1
        if t < 0:
            lost += 1
        else:
            occ[t] += 1
        if i + 1 in marks:
            out[marks[i + 1]] = lost / (i + 1)
    return out


def main():
    rng = np.random.default_rng(7)
    print(f"{'slots/bucket':>12} {'policy':>6}  " + "  ".join(f"{load:>8}" for load in LOADS))
    for per in (8, 4, 1):
        for policy in ("first", "less"):
            r = lost_fractions(per, policy, rng)
            print(f"{per:>12} {policy:>6}  " + "  ".join(f"{r[load]:>8.1e}" for load in LOADS))


if __name__ == "__main__":
    main()
