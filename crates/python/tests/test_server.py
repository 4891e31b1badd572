"""`strata start` from Python's side: redis-py (sync and asyncio, RESP2 and
RESP3) talks to the server, and values cross between the server and a
Python process's zero-copy views of the same shared memory."""

import asyncio
import os
import pathlib
import subprocess

import numpy as np
import pytest
import redis
import redis.asyncio

import strata

from conftest import free_port, unique_name

ROOT = pathlib.Path(__file__).resolve().parents[3]


def strata_bin():
    """The `strata` executable: $STRATA_BIN (scripts/test sets it), else
    the one cargo built in this checkout."""
    if os.environ.get("STRATA_BIN"):
        return os.environ["STRATA_BIN"]
    for profile in ("release", "debug"):
        p = ROOT / "target" / profile / "strata"
        if p.exists():
            return str(p)
    pytest.skip("the strata executable is not built (cargo build -p strata-cli)")


@pytest.fixture
def server(tmp_path):
    """A `strata start` server on a free port over a cache of its own."""
    name = unique_name("srv")
    port = free_port()
    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path))
    out = subprocess.run(
        [strata_bin(), "start", "-n", name, "-m", "64MiB", "--port", str(port)],
        capture_output=True, text=True, env=env,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    yield name, port
    subprocess.run([strata_bin(), "stop", "-n", name], capture_output=True, env=env)
    strata.drop(name)


@pytest.mark.parametrize("protocol", [2, 3])
def test_redis_py_sync(server, protocol):
    _, port = server
    r = redis.Redis(port=port, protocol=protocol)
    assert r.ping()
    assert r.set("user:1", b"ada", ex=100)
    assert r.get("user:1") == b"ada"
    assert r.ttl("user:1") == 100
    assert r.incr("visits") == 1
    assert r.incrbyfloat("score", 1.5) == 1.5
    assert r.mget("user:1", "nope") == [b"ada", None]
    assert r.set("user:1", b"x", nx=True) is None
    assert r.getdel("visits") == b"1"
    assert r.exists("user:1", "visits") == 1
    pipe = r.pipeline(transaction=True)
    pipe.set("a", 1).incr("a").get("a")
    assert pipe.execute() == [True, 2, b"2"]
    assert sorted(r.keys("*")) == [b"a", b"score", b"user:1"]
    assert sorted(r.scan_iter(match="user:*")) == [b"user:1"]
    info = r.info()
    assert info["keyspace_hits"] >= 1
    assert "l0_hits" in r.info("strata")
    with pytest.raises(redis.ResponseError, match="unknown command"):
        r.hset("h", "f", "v")


@pytest.mark.parametrize("protocol", [2, 3])
def test_redis_py_asyncio_and_pubsub(server, protocol):
    _, port = server

    async def main():
        r = redis.asyncio.Redis(port=port, protocol=protocol)
        await r.set("k", "v")
        assert await r.get("k") == b"v"
        p = r.pubsub()
        await p.subscribe("events")
        msg = await p.get_message(timeout=5)
        assert msg["type"] == "subscribe"
        other = redis.asyncio.Redis(port=port, protocol=protocol)
        assert await other.publish("events", "deployed") == 1
        msg = await p.get_message(timeout=5)
        while msg is None:
            msg = await p.get_message(timeout=5)
        assert msg["type"] == "message" and msg["data"] == b"deployed"
        await p.unsubscribe("events")
        await p.aclose()
        await other.aclose()
        await r.aclose()

    asyncio.run(main())


def test_values_set_over_resp_are_numpy_views_in_python(server):
    name, port = server
    r = redis.Redis(port=port)
    emb = np.arange(128, dtype=np.float32)
    r.set("emb:42", emb.tobytes())
    c = strata.Cache(name)
    try:
        view = c.get_numpy("emb:42", dtype=np.float32)
        assert not view.flags.writeable
        np.testing.assert_array_equal(view, emb)
        assert c.get("emb:42") == emb.tobytes()
        # And the reverse: set from Python, read over RESP.
        row = np.ones((4, 8), dtype=np.float16)
        c.set("row:7", row)
        assert r.get("row:7") == row.tobytes()
        assert r.strlen("row:7") == row.nbytes
        assert b"row:7" in r.keys("row:*")
        c.delete("emb:42")
        assert r.get("emb:42") is None
    finally:
        c.close()


def test_status_reports_the_server(server, tmp_path):
    name, port = server
    out = subprocess.run([strata_bin(), "status", "-n", name, "--json"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    import json

    s = json.loads(out.stdout)
    assert s["server"]["port"] == port


def test_metrics_parse_as_prometheus_text(tmp_path):
    from prometheus_client.parser import text_string_to_metric_families
    import urllib.request

    name = unique_name("metrics")
    port, mport = free_port(), free_port()
    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path))
    out = subprocess.run(
        [strata_bin(), "start", "-n", name, "-m", "16MiB", "--port", str(port),
         "--metrics-port", str(mport)],
        capture_output=True, text=True, env=env,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    try:
        r = redis.Redis(port=port)
        r.set("k", "v")
        r.get("k")
        body = urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics").read().decode()
        families = {f.name: f for f in text_string_to_metric_families(body)}
        assert "strata_command_duration_seconds" in families
        assert families["strata_command_duration_seconds"].type == "histogram"
        hits = {s.labels.get("tier"): s.value for s in families["strata_tier_hits"].samples}
        assert hits["l0"] >= 1
        by_cmd = {s.labels["cmd"]: s.value for s in families["strata_commands"].samples}
        assert by_cmd["set"] == 1 and by_cmd["get"] == 1
    finally:
        subprocess.run([strata_bin(), "stop", "-n", name], capture_output=True, env=env)
        strata.drop(name)
