#!/usr/bin/env python3
"""The hit rate of get_numpy's memo policy on the Python benchmark's trace.

    .venv/bin/python bench/memo_hit_rate.py

A model of the memo (crates/python/src/memo.rs): FIFO order, a second
chance for entries read since they were last passed over, at most 4
second chances per insert. It replays the Zipf 0.99 reads over 200k keys
that bench/python_read.py draws, for several capacities. A memo read is
cheap only when it hits; whether the median read hits decides whether the
memo can move the benchmark's p50.
"""

from collections import deque

import numpy as np

from python_read import zipf_ranks

KEYS = 200_000
READS = 200_000
MAX_SECOND_CHANCES = 4


def hit_rate(ids, capacity):
    referenced, order, hits = {}, deque(), 0
    for k in ids:
        if k in referenced:
            referenced[k] = True
            hits += 1
            continue
        referenced[k] = False
        order.append(k)
        chances = MAX_SECOND_CHANCES
        while len(referenced) > capacity:
            old = order.popleft()
            if referenced[old] and chances > 0:
                chances -= 1
                referenced[old] = False
                order.append(old)
            else:
                del referenced[old]
    return hits / len(ids)


def main():
    ids = zipf_ranks(KEYS, READS, 0.99, np.random.default_rng(42)).tolist()
    for capacity in (1024, 4096, 16384):
        print(f"memo of {capacity:>5} entries: {hit_rate(ids, capacity):.1%} of reads hit")


if __name__ == "__main__":
    main()
