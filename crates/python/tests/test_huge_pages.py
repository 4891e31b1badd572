"""A cache in a tmpfs mounted with huge=within_size says it has 2 MiB
pages and works as any other; one in a huge=never tmpfs says it has not.
Mounting needs root: skipped otherwise."""

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
        with strata.Cache(name, memory="16MiB", dir=d) as c:
            assert c.huge_pages is expected
            v = np.arange(1024, dtype=np.float32)
            c.set("k", v)
            assert np.array_equal(c.get_numpy("k"), v)
            assert c.check()["clean"]
        assert strata.drop(name, dir=d)
