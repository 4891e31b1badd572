"""Huge pages. A new cache is built on 2 MiB pages where the kernel can
(Linux 6.1 and later), and a worker that attaches maps them too. A cache in
a tmpfs mounted with huge=within_size has them anyway; one created with
huge_pages=False in a huge=never tmpfs says it has not. Mounting needs
root: that test is skipped otherwise."""

import multiprocessing as mp
import os
import subprocess

import numpy as np
import pytest

import strata


@pytest.fixture
def mount(tmp_path):
    made = []

    def make(huge):
        d = tmp_path / huge
        d.mkdir()
        r = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size=64m,huge={huge}", "tmpfs", str(d)],
            capture_output=True,
        )
        if r.returncode != 0:
            pytest.skip("cannot mount a tmpfs here (needs root)")
        made.append(d)
        return d

    yield make
    for d in made:
        # Lazily: a failed test may still hold a mapping.
        subprocess.run(["umount", "-l", str(d)], capture_output=True)


def test_huge_pages_are_reported(mount, name):
    try:
        with open("/sys/kernel/mm/transparent_hugepage/shmem_enabled") as f:
            if "[deny]" in f.read():
                pytest.skip("no transparent huge pages for tmpfs here")
    except OSError:
        pytest.skip("no transparent huge pages here")
    for huge, expected in (("within_size", True), ("never", False)):
        d = mount(huge)
        with strata.Cache(name, memory="16MiB", dir=d, huge_pages=False) as c:
            assert c.huge_pages is expected
            v = np.arange(1024, dtype=np.float32)
            c.set("k", v)
            assert np.array_equal(c.get_numpy("k"), v)
            assert c.check()["clean"]
        assert strata.drop(name, dir=d)


def kernel_collapses():
    """Whether this kernel builds tmpfs huge pages on request (Linux 6.1)."""
    release = os.uname().release.split(".")
    try:
        version = (int(release[0]), int(release[1].split("-")[0]))
        with open("/sys/kernel/mm/transparent_hugepage/shmem_enabled") as f:
            return version >= (6, 1) and "[deny]" not in f.read()
    except (ValueError, IndexError, OSError):
        return False


def _attach_and_report(name, out):
    with strata.Cache(name, create=False) as c:
        v = c.get_numpy("k")
        out.put((c.huge_pages, float(v.sum())))


def test_new_caches_get_huge_pages_and_workers_map_them(name):
    if not kernel_collapses():
        pytest.skip("this kernel cannot build huge pages on request")
    with strata.Cache(name, memory="64MiB") as c:
        assert c.huge_pages
        v = np.arange(1024, dtype=np.float32)
        c.set("k", v)
        out = mp.get_context("spawn").Queue()
        p = mp.get_context("spawn").Process(target=_attach_and_report, args=(name, out))
        p.start()
        assert out.get(timeout=60) == (True, float(v.sum()))
        p.join()
        assert c.check()["clean"]
    small = name + "-small"
    try:
        with strata.Cache(small, memory="64MiB", huge_pages=False) as c:
            if not default_dir_may_be_huge():
                assert not c.huge_pages
    finally:
        strata.drop(small)


def default_dir_may_be_huge():
    """Whether the default directory may have huge pages anyway: /dev/shm
    mounted with them, or another directory, about which nothing is known."""
    if os.environ.get("STRATA_SHM_DIR"):
        return True  # not /dev/shm: unknown, so assert nothing
    with open("/proc/mounts") as f:
        for line in f:
            fields = line.split()
            if len(fields) > 3 and fields[1] == "/dev/shm":
                return "huge=" in fields[3] and "huge=never" not in fields[3]
    return False
