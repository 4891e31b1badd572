"""Shared fixtures: every test gets caches of its own, removed afterwards."""

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid

import pytest

import strata


def unique_name(tag="t"):
    return f"pytest-{tag}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def name():
    """A fresh cache name; the segment is dropped after the test."""
    n = unique_name()
    yield n
    strata.drop(n)


@pytest.fixture
def cache(name):
    """A 256 MiB cache of its own."""
    c = strata.Cache(name, memory="256MiB")
    yield c
    c.close()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """A real redis-server on a free loopback port, started and stopped by
    the test (scripts/test installs redis-server)."""

    def __init__(self):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="strata-redis-")
        self.proc = None
        self.start()

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self):
        import redis

        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if redis.Redis(port=self.port).ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def kill(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def client(self):
        import redis

        return redis.Redis(port=self.port)

    def cli(self, *args):
        """redis-cli's raw output."""
        return subprocess.run(
            ["redis-cli", "-p", str(self.port), "--raw", *args],
            capture_output=True, check=True,
        ).stdout


@pytest.fixture
def redis_server():
    server = RedisServer()
    yield server
    server.kill()
    shutil.rmtree(server.dir, ignore_errors=True)
