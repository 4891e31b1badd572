"""The example gunicorn app: a master loads the data, 4 sync workers serve
it from shared memory without copying it."""

import concurrent.futures
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

import strata

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples"
COUNT = 10_000
DATA_BYTES = COUNT * 1024 * 4

sys.path.insert(0, str(EXAMPLES))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url):
    with urllib.request.urlopen(url, timeout=60) as r:
        return json.loads(r.read())


def private_bytes(pid):
    """Private_Clean + Private_Dirty of a process, from smaps_rollup."""
    total = 0
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith(("Private_Clean:", "Private_Dirty:")):
            total += int(line.split()[1]) * 1024
    return total


def worker_pids(master):
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return sorted(int(p) for p in children)


@pytest.fixture
def server(name):
    pytest.importorskip("gunicorn")
    port = free_port()
    env = dict(
        os.environ,
        STRATA_EXAMPLE_CACHE=name,
        STRATA_EXAMPLE_BIND=f"127.0.0.1:{port}",
    )
    gunicorn = Path(sys.executable).parent / "gunicorn"
    proc = subprocess.Popen(
        [str(gunicorn), "-c", str(EXAMPLES / "gunicorn_app.py"), "--chdir", str(EXAMPLES),
         "gunicorn_app:app"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        try:
            get(f"{base}/emb/0")
            break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                raise RuntimeError(proc.stderr.read().decode()[-3000:])
            time.sleep(0.2)
    while len(worker_pids(proc.pid)) < 4 and time.time() < deadline:
        time.sleep(0.1)
    yield proc, base
    proc.terminate()
    proc.wait(30)


def test_four_workers_share_one_copy(server, name, monkeypatch):
    # The module attaches its cache on import: point it at this test's.
    monkeypatch.setenv("STRATA_EXAMPLE_CACHE", name)
    import gunicorn_app

    proc, base = server
    workers = worker_pids(proc.pid)
    assert len(workers) == 4

    # Right answers from every worker.
    rng = np.random.default_rng(7)
    ids = rng.integers(0, COUNT, 40)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda i: get(f"{base}/emb/{i}"), ids))
    for i, a in zip(ids, answers):
        assert a["checksum"] == pytest.approx(gunicorn_app.checksum(gunicorn_app.embedding(int(i))))

    before = {pid: private_bytes(pid) for pid in workers}
    expected_total = sum(gunicorn_app.checksum(gunicorn_app.embedding(i)) for i in range(COUNT))
    seen = set()
    deadline = time.time() + 120
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        while seen != set(workers) and time.time() < deadline:
            for a in pool.map(lambda _: get(f"{base}/all"), range(8)):
                assert a["missing"] == 0
                assert a["total"] == pytest.approx(expected_total)
                seen.add(a["pid"])
    assert seen == set(workers), "every worker served a full read"

    after = {pid: private_bytes(pid) for pid in workers}
    growth = sum(after[p] - before[p] for p in workers)
    # Four private copies would add 4 x 40 MiB; shared reads add next to nothing.
    assert growth < DATA_BYTES // 4, (before, after)
    for pid in workers:
        assert after[pid] < DATA_BYTES, (pid, after[pid])

    with strata.Cache(name, create=False) as c:
        assert len(c) == COUNT
        assert c.check()["clean"]
