"""A cache file planted by another user is refused, and accepted only with
trust_foreign=True; a dead process's views are released with no call to
maintain()."""

import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import strata

from conftest import unique_name


def as_nobody(code, env):
    """Runs `code` in a Python process as user nobody."""
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None:
        pytest.skip("needs root and setpriv to run a process as nobody")
    return subprocess.run(
        [setpriv, "--reuid", "65534", "--regid", "65534", "--clear-groups", "--",
         sys.executable, "-c", code],
        env=env, capture_output=True, text=True, timeout=60,
    )


@pytest.fixture
def shared():
    """A directory anyone may create files in, as /dev/shm is."""
    path = f"/dev/shm/{unique_name('shared')}"
    os.mkdir(path)
    os.chmod(path, 0o1777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_a_cache_planted_by_another_user_is_refused(shared):
    name = unique_name("planted")
    env = dict(os.environ, STRATA_SHM_DIR=str(shared), PYTHONPATH=os.pathsep.join(sys.path))
    planted = as_nobody(
        "import os, strata\n"
        f"c = strata.Cache({name!r}, memory='16MiB')\n"
        "c.set('k', b'from nobody')\n"
        "os.chmod(c.path, 0o666)\n",
        env,
    )
    assert planted.returncode == 0, planted.stderr
    with pytest.raises(strata.ForeignSegmentError, match="belongs to user 65534"):
        strata.Cache(name, dir=shared)
    with pytest.raises(strata.ForeignSegmentError, match="trust_foreign"):
        strata.Cache(name, dir=shared, create=False)
    trusted = strata.Cache(name, dir=shared, trust_foreign=True)
    assert trusted.get("k") == b"from nobody"
    trusted.close()


def test_a_world_writable_cache_of_ones_own_is_refused(name):
    c = strata.Cache(name, memory="16MiB")
    assert os.stat(c.path).st_mode & 0o777 == 0o600
    os.chmod(c.path, 0o666)
    with pytest.raises(strata.ForeignSegmentError, match="666"):
        strata.Cache(name)
    c.close()


def hold_a_view(name, ready):
    c = strata.Cache(name, create=False)
    view = c.get_numpy("big")
    os.write(ready, b"x")
    time.sleep(60)
    del view


def test_a_killed_view_holder_is_reaped_without_maintain(name):
    c = strata.Cache(name, memory="64MiB")
    c.set("big", np.ones(1 << 20, np.float32))  # 4 MiB
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            hold_a_view(name, write_end)
        finally:
            os._exit(0)
    assert os.read(read_end, 1) == b"x"
    assert c.stats()["pinned_bytes"] >= 4 << 20
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    # Nobody calls maintain(): this process's janitor thread does the work.
    deadline = time.monotonic() + 10
    while c.stats()["pinned_bytes"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert c.stats()["pinned_bytes"] == 0
    c.close()
