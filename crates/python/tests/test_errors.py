"""Every failure is a typed exception; none crashes or loses data."""

import os

import pytest

import strata


def test_hierarchy():
    for cls in (
        strata.SegmentNotFoundError,
        strata.SegmentFullError,
        strata.ValueTooLargeError,
        strata.KeyTooLargeError,
        strata.ShmTooSmallError,
        strata.IncompatibleSegmentError,
        strata.CorruptSegmentError,
    ):
        assert issubclass(cls, strata.StrataError)
    assert issubclass(strata.StrataError, Exception)


def test_not_found_without_create(name):
    with pytest.raises(strata.SegmentNotFoundError):
        strata.Cache(name, create=False)


def test_attach_existing(name):
    with strata.Cache(name, memory="16MiB") as a:
        a.set("k", b"v")
        with strata.Cache(name, create=False) as b:
            assert b.get("k") == b"v"
    assert a.closed


def test_attaching_with_other_sizes_warns(name):
    """Size and capacity are fixed at creation: asking an existing cache
    for others attaches to it as it is, with a warning, never silently."""
    import warnings

    with strata.Cache(name, memory="16MiB") as a:
        a.set("k", b"v")
        with pytest.warns(RuntimeWarning, match=r"keeps its size, 16\.0 MiB \(not 32\.0 MiB\)"):
            b = strata.Cache(name, memory="32MiB")
        assert b.get("k") == b"v"
        b.close()
        with pytest.warns(RuntimeWarning, match=r"room for 4096 entries \(not 5000\)"):
            strata.Cache(name, max_entries=5000).close()
        with pytest.warns(RuntimeWarning, match=r"its eviction policy, wtinylfu \(not lru\)"):
            strata.Cache(name, policy="lru").close()
        # The same figures, or none at all (a size that rounds to the same
        # 2 MiB slabs included): no warning.
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            for kw in ({}, {"memory": "16MiB"}, {"memory": 15 * 2**20 + 1}, {"max_entries": 4096},
                       {"policy": "wtinylfu"}):
                strata.Cache(name, **kw).close()


@pytest.mark.parametrize("bad", ["arc", "", "l0"])
def test_an_unknown_policy_is_refused(name, bad):
    with pytest.raises(ValueError, match="unknown eviction policy"):
        strata.Cache(name, memory="16MiB", policy=bad)


def test_too_large(name):
    with strata.Cache(name, memory="16MiB") as c:
        c.set("keep", b"v")
        with pytest.raises(strata.ValueTooLargeError):
            c.set("big", b"x" * (c.max_value_size + 1))
        with pytest.raises(strata.KeyTooLargeError):
            c.set("k" * 9000, b"v")
        assert c.get("keep") == b"v"


def test_shm_too_small_names_the_fix(name):
    st = os.statvfs("/dev/shm")
    free = st.f_bavail * st.f_frsize
    want = free + (1 << 30)
    if want > 1 << 40:
        pytest.skip("/dev/shm is larger than the biggest segment")
    with pytest.raises(strata.ShmTooSmallError, match="shm-size"):
        strata.Cache(name, memory=want)
    assert name not in strata.segments()


def test_corrupt_and_incompatible(name):
    path = f"/dev/shm/strata.{name}"
    with open(path, "wb") as f:
        f.write(b"\xff" * (1 << 20))
    with pytest.raises(strata.CorruptSegmentError, match="strata drop"):
        strata.Cache(name, create=False)
    with pytest.raises(strata.CorruptSegmentError):
        strata.Cache(name)
    with strata.Cache(name + "-ok", memory="16MiB") as good:
        good.set("k", b"v")
    # A valid header with a different version is incompatible.
    with open(f"/dev/shm/strata.{name}-ok", "rb") as f:
        head = bytearray(f.read(4096))
    with open(path, "wb") as f:
        head[8:16] = (999).to_bytes(8, "little")
        f.write(head + b"\0" * ((16 << 20) - len(head)))
    with pytest.raises((strata.IncompatibleSegmentError, strata.CorruptSegmentError)):
        strata.Cache(name, create=False)
    strata.drop(name + "-ok")


def test_truncated(name):
    with strata.Cache(name, memory="16MiB"):
        pass
    os.truncate(f"/dev/shm/strata.{name}", 8192)
    with pytest.raises(strata.CorruptSegmentError):
        strata.Cache(name, create=False)


def test_bad_arguments(name):
    with pytest.raises(ValueError):
        strata.Cache("bad/name")
    with pytest.raises(ValueError):
        strata.Cache(name, memory="lots")
    with pytest.raises(TypeError):
        strata.Cache(name, memory=1.5)
    with pytest.raises(ValueError, match="max entries"):
        strata.Cache(name, memory="64MiB", max_entries=10)
    with pytest.raises((ValueError, OverflowError, TypeError)):
        strata.Cache(name, memory="64MiB", max_entries=-1)
    with pytest.raises(ValueError, match="memo must be 0 or more"):
        strata.Cache(name, memory="64MiB", memo=-1)
    assert name not in strata.segments(), "a refused cache leaves nothing behind"


def test_closed_cache_raises(name):
    c = strata.Cache(name, memory="16MiB")
    c.set("k", b"v")
    view = c.get_numpy("k")
    c.close()
    c.close()
    with pytest.raises(strata.StrataError, match="closed"):
        c.get("k")
    with pytest.raises(strata.StrataError, match="closed"):
        with c:
            pass
    assert view.tobytes() == b"v", "arrays outlive close()"


def test_version_is_the_package_version():
    parts = strata.__version__.split(".")
    assert len(parts) == 3 and all(p.isdigit() for p in parts), strata.__version__


def test_segments_lists_caches(name):
    with strata.Cache(name, memory="16MiB"):
        assert name in strata.segments()
    assert strata.drop(name)
    assert name not in strata.segments()
    assert not strata.drop(name)
