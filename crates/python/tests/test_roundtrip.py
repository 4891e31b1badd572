"""Values go in and come back bit for bit, with their dtype and shape."""

import array

import numpy as np
import pytest

import strata

DTYPES = [
    np.bool_,
    np.int8,
    np.int16,
    np.int32,
    np.int64,
    np.uint8,
    np.uint16,
    np.uint32,
    np.uint64,
    np.float16,
    np.float32,
    np.float64,
    np.complex64,
    np.complex128,
]
SHAPES = [(), (0,), (1,), (7,), (3, 4), (2, 0, 3), (2, 3, 4, 5)]


def sample(dtype, shape, seed=0):
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape)) if shape else 1
    raw = rng.integers(0, 256, size=n * np.dtype(dtype).itemsize, dtype=np.uint8)
    arr = raw.view(dtype).reshape(shape)
    if dtype == np.bool_:
        arr = raw.astype(bool).reshape(shape)
    return arr


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_array_round_trip(cache, dtype, shape):
    arr = sample(dtype, shape)
    assert cache.set("k", arr)
    got = cache.get_numpy("k")
    assert got.dtype == arr.dtype
    assert got.shape == arr.shape
    assert got.tobytes() == arr.tobytes()
    assert cache.get("k") == arr.tobytes()


def test_many_layouts_in_one_cache(cache):
    # More kinds of value than the cache keeps layouts for: the first ones
    # are read through the kept layouts, the rest are worked out each time,
    # and none may be read with another's layout.
    arrays = {}
    for i, dtype in enumerate(DTYPES):
        for j, shape in enumerate([(6,), (2, 3), (3, 2), (1, 6), (6, 1)]):
            arrays[f"k{i}.{j}"] = sample(dtype, shape)
    assert len(arrays) > 40
    for k, arr in arrays.items():
        cache.set(k, arr)
    for _ in range(2):
        for k, arr in arrays.items():
            got = cache.get_numpy(k)
            assert (got.dtype, got.shape) == (arr.dtype, arr.shape), k
            assert got.tobytes() == arr.tobytes(), k
    # Overrides still apply to a value whose layout is kept.
    assert cache.get_numpy("k0.1", shape=-1).shape == (6,)


def test_max_entries_sizes_the_index(name):
    # Many small values: the default index (one entry per 4 KiB) holds
    # only part of them however much memory is free; a larger one holds all.
    n = 100_000
    for max_entries, all_kept in ((None, False), (2 * n, True)):
        with strata.Cache(name, memory="64MiB", max_entries=max_entries) as c:
            for i in range(n):
                c.set(f"f:{i}", i.to_bytes(8, "little"))
            st = c.stats()
            assert (len(c) == n) is all_kept, (len(c), st["max_entries"])
            if all_kept:
                assert st["max_entries"] == 2 * n
                assert all(c.get(f"f:{i}") == i.to_bytes(8, "little") for i in range(0, n, 997))
        strata.drop(name)


def test_large_array(cache):
    arr = np.random.default_rng(1).random((2048, 2048), dtype=np.float32)
    cache.set("big", arr)
    got = cache.get_numpy("big")
    assert got.shape == (2048, 2048)
    assert np.array_equal(got, arr)


def test_non_contiguous_arrays_are_stored_contiguous(cache):
    base = np.arange(60, dtype=np.int32).reshape(6, 10)
    for arr in (base[:, ::3], base.T, np.asfortranarray(base), base[::-1]):
        cache.set("k", arr)
        got = cache.get_numpy("k")
        assert got.flags.c_contiguous
        assert np.array_equal(got, arr)


def test_other_numpy_dtypes(cache):
    for arr in (
        np.array(["2024-01-01", "2025-06-30"], dtype="datetime64[ns]"),
        np.array(["ab", "xyz"], dtype="<U3"),
        np.array([b"ab", b"xyz"], dtype="S3"),
        np.arange(4, dtype=">i4"),
    ):
        cache.set("k", arr)
        got = cache.get_numpy("k")
        assert got.dtype == arr.dtype
        assert np.array_equal(got, arr)


def test_numpy_scalars_keep_their_dtype(cache):
    """A NumPy scalar is stored as the 0-d array it converts to."""
    for v in (np.float32(1.5), np.int64(-3), np.bool_(True), np.complex64(1 + 2j),
              np.float16(2), np.uint8(255), np.datetime64("2026-01-01")):
        cache.set("s", v)
        a = cache.get_numpy("s")
        assert (a.shape, a.dtype) == ((), np.asarray(v).dtype)
        assert a == v
    # numpy.str_ is a str: refused like one.
    with pytest.raises(TypeError, match="not str"):
        cache.set("s", np.str_("abc"))


@pytest.mark.parametrize(
    "size", [0, 1, 7, 63, 64, 65, 4095, 4096, 4097, 1 << 20, (1 << 20) + 3, 64 << 20]
)
def test_bytes_of_every_size(cache, size):
    value = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes()
    cache.set(b"bytes-key", value)
    assert cache.get(b"bytes-key") == value
    view = cache.get_numpy(b"bytes-key")
    assert view.dtype == np.uint8 and view.shape == (size,)
    assert view.tobytes() == value


def test_buffers(cache):
    data = bytes(range(256)) * 4
    values = [
        bytearray(data),
        memoryview(data),
        array.array("d", [1.5, 2.5]),
        memoryview(np.arange(12, dtype=np.int16))[::2],
    ]
    for v in values:
        cache.set("k", v)
        assert cache.get("k") == memoryview(v).tobytes()
        # Only NumPy arrays carry a dtype: buffers come back as bytes.
        assert cache.get_numpy("k").dtype == np.uint8


def test_str_and_bytes_keys_are_the_same_key(cache):
    cache.set("é-key", b"v")
    assert cache.get("é-key".encode()) == b"v"
    assert "é-key" in cache and b"\xc3\xa9-key" in cache


def test_refused_values_and_keys(cache):
    with pytest.raises(TypeError):
        cache.set("k", np.array([object(), 1], dtype=object))
    with pytest.raises(TypeError):
        cache.set("k", np.zeros(2, dtype=[("a", "<i4"), ("b", "<f8")]))
    with pytest.raises(TypeError):
        cache.set("k", "a str value")
    with pytest.raises(TypeError):
        cache.set("k", 12)
    with pytest.raises(TypeError):
        cache.set(12, b"v")
    with pytest.raises(TypeError):
        cache.get(None)
    with pytest.raises(ValueError):
        cache.set("k", b"v", ttl=-1)
    with pytest.raises(ValueError):
        cache.set("k", b"v", ttl=1e300)
    assert len(cache) == 0
    cache.set("k", b"12345678")
    with pytest.raises(TypeError):
        cache.get_numpy("k", dtype=object)


def test_shape_and_dtype_overrides(cache):
    arr = np.arange(24, dtype=np.float32)
    cache.set("k", arr)
    assert cache.get_numpy("k", shape=(4, 6)).shape == (4, 6)
    assert cache.get_numpy("k", shape=(2, -1)).shape == (2, 12)
    assert cache.get_numpy("k", shape=[24]).shape == (24,)
    as_int = cache.get_numpy("k", dtype=np.int32)
    assert as_int.dtype == np.int32 and as_int.shape == (24,)
    assert np.array_equal(as_int, arr.view(np.int32))
    assert cache.get_numpy("k", dtype="u1").shape == (96,)
    with pytest.raises(ValueError):
        cache.get_numpy("k", shape=(5, 5))
    with pytest.raises(ValueError):
        cache.get_numpy("k", shape=(7, -1))
    with pytest.raises(ValueError):
        cache.get_numpy("k", dtype=np.complex128, shape=(3, 3))
    cache.set("raw", b"\x01" * 10)
    with pytest.raises(ValueError):
        cache.get_numpy("raw", dtype=np.float32)


def test_get_many(cache):
    cache.set("a", b"1")
    cache.set("c", b"333")
    assert cache.get_many(["a", "b", b"c"]) == [b"1", None, b"333"]
    assert cache.get_many([]) == []


def test_get_numpy_many(cache):
    rows = {i: np.full(8, i, dtype=np.float32) for i in range(0, 20, 2)}
    for i, row in rows.items():
        cache.set(f"emb:{i}", row)
    ids = np.array([4, 5, 0, 18, 19], dtype=np.int64)
    expect = np.stack([rows.get(i, np.zeros(8, np.float32)) for i in ids])
    expect_found = np.array([i in rows for i in ids])

    before = cache.stats()
    arr, found = cache.get_numpy_many(ids, prefix="emb:")
    assert arr.shape == (5, 8) and arr.dtype == np.float32
    assert np.array_equal(arr, expect) and np.array_equal(found, expect_found)
    after = cache.stats()
    assert after["hits"] - before["hits"] == 3, "one hit per key found, no more"
    assert after["misses"] - before["misses"] == 2

    arr, found = cache.get_numpy_many([f"emb:{i}" for i in ids])
    assert np.array_equal(arr, expect) and np.array_equal(found, expect_found)

    arr, found = cache.get_numpy_many([str(i) for i in ids], prefix="emb:")
    assert np.array_equal(arr, expect)

    for id_dtype in (np.int32, np.uint16, np.uint64, ">i8"):
        arr, _ = cache.get_numpy_many(ids.astype(id_dtype), prefix=b"emb:")
        assert np.array_equal(arr, expect)
    # int64 ids are read in place, strided ones included.
    arr, _ = cache.get_numpy_many(np.repeat(ids, 2)[::2], prefix=b"emb:")
    assert np.array_equal(arr, expect)

    out = np.full((5, 8), 7, dtype=np.float32)
    arr, found = cache.get_numpy_many(ids, out, prefix="emb:")
    assert arr is out
    assert np.array_equal(out, expect), "rows of absent keys are zeroed"

    arr, found = cache.get_numpy_many(np.array([], dtype=np.int64), prefix="emb:")
    assert arr.shape[0] == 0 and found.shape == (0,)

    arr, found = cache.get_numpy_many(np.array([1, 3]), prefix="emb:", shape=(8,), dtype=np.float32)
    assert arr.shape == (2, 8) and not found.any()


def test_get_numpy_many_of_a_long_batch(cache):
    """Longer than one chunk of lookups (256), with absent and repeated ids
    and an id whose row was overwritten: every row lands in its place."""
    for i in range(0, 3000, 3):
        cache.set(f"emb:{i}", np.full(16, i, dtype=np.int32))
    cache.set("emb:300", np.full(16, -1, dtype=np.int32))
    ids = np.random.default_rng(5).integers(0, 3000, 2000)
    arr, found = cache.get_numpy_many(ids, prefix="emb:")
    assert np.array_equal(found, ids % 3 == 0)
    want = np.where(found, np.where(ids == 300, -1, ids), 0)
    assert np.array_equal(arr, np.repeat(want[:, None], 16, axis=1))


def test_get_numpy_many_errors(cache):
    cache.set("a", np.zeros(4, np.float32))
    cache.set("b", np.zeros(5, np.float32))
    cache.set("c", np.zeros(4, np.int32))
    with pytest.raises(ValueError, match='"b"'):
        cache.get_numpy_many(["a", "b"])
    with pytest.raises(ValueError, match='"c"'):
        cache.get_numpy_many(["a", "c"])
    with pytest.raises(ValueError):
        cache.get_numpy_many(["a"], np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError):
        cache.get_numpy_many(["a"], cache.get_numpy("a")[None, :])
    with pytest.raises(ValueError):
        cache.get_numpy_many(["a"], np.zeros((1, 8), np.float32)[:, ::2])
    with pytest.raises(ValueError):
        cache.get_numpy_many(np.zeros((2, 2), np.int64), prefix="x")
    with pytest.raises(TypeError):
        cache.get_numpy_many("a")
    with pytest.raises(TypeError):
        cache.get_numpy_many([1, 2])


def test_ttl_expire_persist(cache):
    import time

    cache.set("t", b"v", ttl=0.3)
    assert 0 < cache.ttl("t") <= 0.3
    cache.set("p", b"v")
    assert cache.ttl("p") is None
    with pytest.raises(KeyError):
        cache.ttl("absent")
    assert cache.expire("p", 100)
    assert 99 < cache.ttl("p") <= 100
    assert cache.persist("p")
    assert cache.ttl("p") is None
    assert not cache.expire("absent", 1)
    time.sleep(0.4)
    assert cache.get("t") is None
    assert cache.get_numpy("t") is None
    assert "t" not in cache


def test_delete_len_contains_keys_stats(cache):
    for i in range(10):
        cache.set(f"k{i}", b"x" * i)
    assert len(cache) == 10
    assert sorted(cache.keys()) == sorted(f"k{i}".encode() for i in range(10))
    assert cache.delete("k3")
    assert not cache.delete("k3")
    assert "k3" not in cache and "k4" in cache
    assert len(cache) == 9
    s = cache.stats()
    for field in (
        "entries", "used_bytes", "free_bytes", "hits", "misses", "inserts", "updates",
        "evictions", "expirations", "rejections", "limbo_bytes", "pinned_bytes",
        "reader_slots_attached", "reader_slots_live", "global_epoch",
    ):
        assert field in s
    assert s["entries"] == 9 and s["inserts"] == 10 and s["deletes"] == 1


def test_get_numpy_many_into_out_at_any_offset(cache):
    """Rows land whole wherever `out` starts within a page, and whatever
    their length: rows whose output sits differently from the segment
    within a cache line are copied in pieces."""
    rows = {750: np.float32, 1024: np.float32, 96: np.int64}
    for n, dt in rows.items():
        for i in range(4):
            cache.set(f"r{n}:{i}", (np.arange(n) * (i + 1)).astype(dt))
    for n, dt in rows.items():
        item = np.dtype(dt).itemsize
        raw = np.zeros(4 * n * item + 8192, np.uint8)
        base = -raw.ctypes.data % 4096
        for off in (0, 8, 16, 64, 200):
            out = raw[base + off : base + off + 4 * n * item].view(dt).reshape(4, n)
            arr, found = cache.get_numpy_many([f"r{n}:{i}" for i in (3, 0, 2, 1)], out)
            assert arr is out and found.all()
            for j, i in enumerate((3, 0, 2, 1)):
                assert np.array_equal(out[j], (np.arange(n) * (i + 1)).astype(dt)), (n, off, j)
