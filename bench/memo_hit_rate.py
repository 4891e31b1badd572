#!/usr/bin/env python3
"""The hit rate of get_numpy's memo policy on the Python benchmark's trace.

    .venv/bin/python bench/memo_hit_rate.py

A model of the memo (crates/python/src/memo.rs): FIFO order, a second
chance for entries read since they were last passed over, at most 4
second chances per insert, and a doorkeeper of 64 bits per entry that
admits a key on its second read (cleared after 8 first reads per entry).
It replays the Zipf 0.99 reads over 200k keys that bench/python_read.py
draws, for several capacities, with and without the doorkeeper. A memo read
is cheap only when it hits; a read that misses costs an insert (and an
eviction) only when the key is admitted, which the last column counts.
"""

from collections import deque

import numpy as np

from python_read import zipf_ranks

KEYS = 200_000
READS = 200_000
MAX_SECOND_CHANCES = 4
DOORKEEPER_BITS_PER_ENTRY = 64
DOORKEEPER_PERIOD = 8


def hit_rate(ids, capacity, doorkeeper):
    """(share of reads that hit, share of reads that insert)"""
    referenced, order, hits, inserts = {}, deque(), 0, 0
    bits = capacity * DOORKEEPER_BITS_PER_ENTRY
    # A fixed random hash of each key onto the doorkeeper's bits.
    bit_of = np.random.default_rng(7).integers(0, bits, KEYS)
    seen, noted = set(), 0
    for k in ids:
        if k in referenced:
            referenced[k] = True
            hits += 1
            continue
        if doorkeeper:
            b = int(bit_of[k])
            if b not in seen:
                noted += 1
                if noted > capacity * DOORKEEPER_PERIOD:
                    noted = 0
                    seen.clear()
                seen.add(b)
                continue
        inserts += 1
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
    return hits / len(ids), inserts / len(ids)


def main():
    ids = zipf_ranks(KEYS, READS, 0.99, np.random.default_rng(42)).tolist()
    print("memo entries  doorkeeper  reads that hit  reads that insert")
    for capacity in (1024, 4096, 16384):
        for doorkeeper in (False, True):
            hit, ins = hit_rate(ids, capacity, doorkeeper)
            print(f"{capacity:>12}  {str(doorkeeper):>10}  {hit:>14.1%}  {ins:>17.1%}")


if __name__ == "__main__":
    main()
