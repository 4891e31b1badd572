#!/usr/bin/env python3
"""How often an index whose entries never move loses a key, by bucket shape.

    .venv/bin/python bench/index_overflow.py

Each key has two random candidate buckets. It goes into the first with
room ("first": most keys then live in the bucket a lookup reads first),
into the emptier one ("less"), or into the first until that is
three-quarters full and then into the emptier ("hybrid", what L0 does).
When both are full, the key is lost: L0 evicts a resident entry instead.
Printed, for each load (keys per slot): the fraction of keys lost by then,
and the fraction stored in their second bucket, which a hit reads only
after the first.
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
    lost, second, out = 0, 0, {}
    for i in range(n):
        a, b = b1[i], b2[i]
        if policy == "first":
            t = a if occ[a] < per else (b if occ[b] < per else -1)
        elif policy == "hybrid":
            # The first bucket until it is three-quarters full, then the
            # emptier of the two.
            if occ[a] < per * 3 // 4:
                t = a
            else:
                t = a if occ[a] <= occ[b] else b
                if occ[t] >= per:
                    t = -1
        else:
            t = a if occ[a] <= occ[b] else b
            if occ[t] >= per:
                t = -1
        if t < 0:
            lost += 1
        else:
            occ[t] += 1
            second += t != a
        if i + 1 in marks:
            out[marks[i + 1]] = (lost / (i + 1), second / (i + 1))
    return out


def main():
    rng = np.random.default_rng(7)
    print("keys lost / keys in their second bucket (which a hit reads second), by load")
    print(f"{'slots/bucket':>12} {'policy':>6}  " + "  ".join(f"{load:>13}" for load in LOADS))
    for per in (8, 4, 1):
        for policy in ("first", "hybrid", "less"):
            r = lost_fractions(per, policy, rng)
            cells = (f"{r[load][0]:.0e}/{r[load][1]:.2f}" for load in LOADS)
            print(f"{per:>12} {policy:>6}  " + "  ".join(f"{c:>13}" for c in cells))


if __name__ == "__main__":
    main()
