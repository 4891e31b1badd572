"""Feature tables from Python: schemas, zero-copy records, assemble and
assemble_batch against a NumPy oracle, bad input, other processes, and no
torn row under a writer in another process."""

import multiprocessing as mp
import os
import signal
import time

import numpy as np
import pytest

import strata

USER = [("age", "int32"), ("clicks", "int64"), ("ltv", "float64"), ("score", "float32")]


@pytest.fixture
def users(cache):
    return strata.FeatureTable(cache, strata.Schema("user", 1, USER))


def test_records_are_zero_copy_read_only_views(users, cache):
    users.put("u1", age=31, clicks=7, ltv=12.5, score=0.25)
    rec = users.get("u1")
    assert rec.shape == () and rec.dtype == users.dtype
    assert not rec.flags.writeable
    assert rec["age"] == 31 and rec["ltv"] == 12.5
    assert rec["age"].dtype == np.int32
    assert users.get("nobody") is None
    # The same row from a table attached by name.
    again = cache.table("user")
    assert again.get("u1")["clicks"] == 7
    # A view stays valid after the row is replaced.
    users.put("u1", age=32, clicks=8, ltv=1.0, score=0.0)
    assert rec["age"] == 31 and users.get("u1")["age"] == 32


def test_every_dtype_and_shape_round_trips(cache):
    fields = [("b", "bool"), ("i1", "int8", (3,)), ("i2", "int16"), ("u4", "uint32"),
              ("u8", "uint64"), ("h", "float16", (2,)), ("f", "float32", (2, 2)),
              ("d", "float64"), ("code", "S5")]
    t = strata.FeatureTable(cache, strata.Schema("every", 1, fields))
    rec = np.zeros((), t.row_dtype)
    rec["b"] = True
    rec["i1"] = [-1, 2, -3]
    rec["i2"] = -300
    rec["u4"] = 4_000_000_000
    rec["u8"] = 2**60
    rec["h"] = [0.5, -2]
    rec["f"] = [[1, 2], [3, 4]]
    rec["d"] = 1e-300
    rec["code"] = b"ab"
    t.put("e", rec)
    got = t.get("e")
    assert got.tobytes()[: t.row_dtype.itemsize] == rec.tobytes()[: t.row_dtype.itemsize]
    assert abs(int(got["_written_ms"]) - time.time() * 1000) < 60_000  # coarse clock
    x = t.assemble("e", dtype=np.float64)
    want = np.concatenate([np.asarray(rec[n], np.float64).ravel() for n in t.names if n != "code"])
    np.testing.assert_array_equal(x, want)


@pytest.mark.parametrize("seed", range(20))
def test_assemble_equals_a_numpy_oracle(cache, seed):
    rng = np.random.default_rng(seed)
    kinds = ["int8", "int16", "int32", "int64", "uint16", "float16", "float32", "float64", "bool"]
    fields = [(f"f{i}", str(rng.choice(kinds)), (int(rng.integers(1, 4)),))
              for i in range(int(rng.integers(1, 8)))]
    t = strata.FeatureTable(cache, strata.Schema(f"rand{seed}", 1, fields))
    n = 50
    cols = {name: (rng.integers(-100, 100, (n,) + shape).astype(dt) if dt != "bool"
                   else rng.integers(0, 2, (n,) + shape).astype(bool))
            for name, dt, shape in fields}
    ids = [str(i) for i in range(n)]
    assert t.put_many(ids, cols) == n
    oracle = np.concatenate([cols[name].reshape(n, -1).astype(np.float64)
                             for name, _, _ in fields], axis=1)
    for dtype in (np.float32, np.float64):
        X, found = t.assemble_batch(np.arange(n + 5), dtype=dtype)
        assert found.tolist() == [True] * n + [False] * 5
        np.testing.assert_array_equal(X[:n], oracle.astype(dtype))
        assert not X[n:].any()
        np.testing.assert_array_equal(t.assemble("7", dtype=dtype), oracle[7].astype(dtype))
    sub = [fields[-1][0], fields[0][0]]
    want = np.concatenate([cols[sub[0]][3].ravel(), cols[sub[1]][3].ravel()]).astype(np.float32)
    np.testing.assert_array_equal(t.assemble("3", fields=sub), want)
    out = np.empty(t.width(sub), np.float32)
    assert t.assemble("3", fields=sub, out=out) is out


def test_bad_input_raises_and_writes_nothing(users, cache):
    with pytest.raises(ValueError, match="unknown fields"):
        users.put("x", age=1, clicks=1, ltv=1.0, score=1.0, nope=3)
    with pytest.raises(ValueError, match="missing fields"):
        users.put("x", age=1)
    with pytest.raises(ValueError, match="does not cast safely"):
        users.put("x", age=1.5, clicks=1, ltv=1.0, score=1.0)
    with pytest.raises(ValueError, match="does not fit"):
        users.put("x", age=2**40, clicks=1, ltv=1.0, score=1.0)
    with pytest.raises(ValueError, match="shape"):
        users.put("x", age=[1, 2], clicks=1, ltv=1.0, score=1.0)
    with pytest.raises(ValueError, match="too long"):
        users.put("i" * 9000, age=1, clicks=1, ltv=1.0, score=1.0)
    assert users.get("x") is None
    with pytest.raises(ValueError, match='no field "nope"'):
        users.assemble("x", fields=["nope"])
    with pytest.raises(ValueError, match="unsupported field dtype"):
        strata.Schema("c", 1, [("z", "complex64")])
    with pytest.raises(strata.SchemaMismatchError):
        strata.FeatureTable(cache, strata.Schema("user", 1, USER[:2]))
    with pytest.raises(KeyError):
        cache.table("absent")
    # put_many: bad columns write nothing; a bad id stops at its index.
    with pytest.raises(ValueError, match="columns"):
        users.put_many(["a"], {"age": [1]})
    cols = {"age": [1, 2, 3], "clicks": [1, 2, 3], "ltv": [1.0, 2, 3], "score": [1.0, 2, 3]}
    with pytest.raises(ValueError, match="row 1"):
        users.put_many(["a", "i" * 9000, "c"], cols)
    assert users.get("a") is not None and users.get("c") is None


def test_ttl_per_table_and_per_row(cache):
    t = strata.FeatureTable(cache, strata.Schema("short", 1, USER), ttl=0.05)
    t.put("a", age=1, clicks=1, ltv=1.0, score=1.0)
    t.put("b", age=1, clicks=1, ltv=1.0, score=1.0, ttl=100)
    time.sleep(0.15)
    assert t.get("a") is None
    assert t.get("b") is not None


def _writer(name, seconds):
    cache = strata.Cache(name)
    t = cache.table("wide")
    ones = np.ones((), t.dtype)
    twos = ones.copy()
    for n in t.names:
        twos[n] = 2
    end = time.monotonic() + seconds
    i = 0
    while time.monotonic() < end:
        t.put("hot", ones if i % 2 else twos)
        i += 1


def test_no_torn_row_under_a_writer_in_another_process(cache, name):
    fields = [(f"f{i}", "float32") for i in range(199)] + [("emb", "float32", (128,))]
    t = strata.FeatureTable(cache, strata.Schema("wide", 1, fields))
    t.put("hot", np.ones((), t.dtype))
    p = mp.get_context("spawn").Process(target=_writer, args=(name, 2.0))
    p.start()
    torn = reads = 0
    seen = set()
    while p.is_alive():
        x = t.assemble("hot")
        torn += int((x != x[0]).any())
        seen.add(float(x[0]))
        rec = t.get("hot")
        torn += int((rec["emb"] != rec["f0"]).any())
        reads += 1
    p.join()
    assert p.exitcode == 0
    assert torn == 0, f"{torn} torn rows in {reads} reads"
    assert seen == {1.0, 2.0}


def test_a_default_row_fills_absent_entities(cache):
    t = strata.FeatureTable(cache, strata.Schema("d", 1, USER), default={"age": 18, "ltv": 0.5})
    t.put("a", age=40, clicks=2, ltv=9.0, score=1.0)
    np.testing.assert_array_equal(t.assemble("zz"), [18, 0, 0.5, 0])
    X, found = t.assemble_batch(["a", "zz"])
    assert found.tolist() == [True, False]
    np.testing.assert_array_equal(X, [[40, 2, 9, 1], [18, 0, 0.5, 0]])
    assert t.get("zz") is None


def _user_columns(n, rng):
    return {
        "age": rng.integers(0, 100, n).astype(np.int32),
        "clicks": rng.integers(0, 10**12, n),
        "ltv": rng.random(n),
        "score": rng.random(n).astype(np.float32),
    }


def test_bulk_load_from_numpy_npz_npy_and_parquet(cache, tmp_path):
    rng = np.random.default_rng(1)
    t = strata.FeatureTable(cache, strata.Schema("bulk", 1, USER + [("emb", "float32", (3,))]))
    n = 1000
    cols = _user_columns(n, rng)
    cols["emb"] = rng.random((n, 3)).astype(np.float32)
    ids = np.arange(n)
    report = t.load(ids, cols, batch=300, progress=False)
    assert report.rows == n and report.rows_per_sec > 0
    X, found = t.assemble_batch(ids)
    assert found.all()
    np.testing.assert_array_equal(X[:, 4:], cols["emb"])

    # .npz: one array per field and the ids.
    np.savez(tmp_path / "f.npz", id=ids + n, **cols)
    assert t.load_file(tmp_path / "f.npz", progress=False).rows == n
    np.testing.assert_array_equal(t.get(str(n + 5))["emb"], cols["emb"][5])
    # .npy: a structured array with an id field.
    rec = np.zeros(n, [("uid", "<i8")] + [(k, t._types[k]) for k in t.names])
    rec["uid"] = ids + 2 * n
    for k in t.names:
        rec[k] = cols[k]
    np.save(tmp_path / "f.npy", rec)
    assert t.load_file(tmp_path / "f.npy", id_column="uid", progress=False).rows == n
    assert t.get(str(2 * n + 7))["age"] == cols["age"][7]
    # Parquet, in record batches, with the embedding as a fixed-size list.
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({
        "user_id": pa.array([f"p{i}" for i in range(n)]),
        **{k: pa.array(cols[k]) for k in USER_NAMES},
        "emb": pa.FixedSizeListArray.from_arrays(pa.array(cols["emb"].ravel()), 3),
    })
    pq.write_table(table, tmp_path / "f.parquet", row_group_size=128)
    assert t.load_file(tmp_path / "f.parquet", id_column="user_id", batch=100, progress=False).rows == n
    np.testing.assert_array_equal(t.assemble("p9"), X[9])
    # A file without a needed column says which.
    pq.write_table(table.drop(["ltv"]), tmp_path / "bad.parquet")
    with pytest.raises(ValueError, match="ltv"):
        t.load_file(tmp_path / "bad.parquet", id_column="user_id")
    with pytest.raises(ValueError, match="no array"):
        np.savez(tmp_path / "bad.npz", id=ids)
        t.load_file(tmp_path / "bad.npz")


USER_NAMES = [f for f, _ in USER]


def test_load_warns_when_the_index_is_too_small(name):
    small = strata.Cache(name, memory="16MiB", max_entries=1024)
    t = strata.FeatureTable(small, strata.Schema("w", 1, USER))
    cols = _user_columns(2000, np.random.default_rng(2))
    with pytest.warns(UserWarning, match="max_entries"):
        t.load(np.arange(2000), cols, progress=False)
    small.close()


def _reader_across_evolve(name, seconds, q):
    t = strata.Cache(name).table("ev")
    seen, bad = set(), 0
    end = time.monotonic() + seconds
    i = 0
    while time.monotonic() < end:
        i = (i + 1) % 500
        rec = t.get(str(i))
        if rec is None:
            continue
        seen.add(t.version)
        if t.version == 1:
            bad += int(rec["a"] != i or rec["b"] != i / 2)
        else:
            bad += int(rec["a"] != i or rec["c"] != 2.5 or "b" in rec.dtype.names)
    q.put((sorted(seen), bad))


def test_evolve_flips_for_readers_in_other_processes(cache, name):
    t = strata.FeatureTable(cache, strata.Schema("ev", 1, [("a", "int32"), ("b", "float32")]))
    n = 500
    t.put_many([str(i) for i in range(n)], {"a": np.arange(n, dtype=np.int32),
                                            "b": np.arange(n, dtype=np.float32) / 2})
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    readers = [ctx.Process(target=_reader_across_evolve, args=(name, 3.0, q)) for _ in range(2)]
    for r in readers:
        r.start()
    time.sleep(1.0)
    v2 = strata.Schema("ev", 2, [("a", "int64"), ("c", "float64")])
    report = t.evolve(v2, fill={"c": 2.5})
    assert report == {"from_version": 1, "to_version": 2, "rows": n, "removed": n}
    assert t.version == 2 and t.get("7")["a"] == 7 and t.get("7")["c"] == 2.5
    for r in readers:
        r.join()
        assert r.exitcode == 0
    results = [q.get() for _ in readers]
    for seen, bad in results:
        assert bad == 0
        assert seen[-1] == 2
    # Narrowing is refused unless allowed.
    with pytest.raises(ValueError, match="allow_lossy"):
        t.evolve(strata.Schema("ev", 3, [("a", "int8")]))
    assert t.evolve(strata.Schema("ev", 3, [("a", "int8")]), allow_lossy=True)["rows"] == n
    assert t.get("100")["a"] == 100


def test_stream_updates_apply_and_bad_messages_go_to_dead_letters(cache, redis_server):
    t = strata.FeatureTable(cache, strata.Schema("st", 1, USER + [("emb", "float32", (2,))]))
    r = redis_server.client()
    url = redis_server.url
    t.publish(url, "u1", "feat", age=30, clicks=1, ltv=2.0, score=0.5, emb=[1, 2])
    t.publish(r, "u1", "feat", partial=True, clicks=5, emb=[3, 4])
    t.publish(r, "u2", "feat", partial=True, ltv=9.5)
    r.xadd("feat", {"nothing": "here"})
    r.xadd("feat", {"id": "u3", "v": "1", "row": b"short"})
    r.xadd("feat", {"id": "u4", "v": "1", "f.nope": b"1234"})
    r.xadd("feat", {"id": "u5", "v": "7", "f.age": b"1234"})
    t.publish(r, "u6", "feat", partial=True, age=66)
    c = t.consume(url, "feat", "g1", start=False)
    c.run_until_idle()
    assert (c.applied, c.dead) == (4, 4)
    rec = t.get("u1")
    assert rec["age"] == 30 and rec["clicks"] == 5 and list(rec["emb"]) == [3, 4]
    assert t.get("u2")["ltv"] == 9.5 and t.get("u2")["age"] == 0
    assert t.get("u6")["age"] == 66
    dead = r.xrange("feat:dead")
    reasons = sorted(m[1][b"reason"].decode() for m in dead)
    assert reasons == sorted(["no id", "row of 5 bytes, the table's rows have 40",
                              "unknown field 'nope'", "schema version 7, the table is at 1"])
    assert r.xpending("feat", "g1")["pending"] == 0
    # A consumer in the background picks up what comes next.
    bg = t.consume(url, "feat", "g1", block_ms=50)
    t.publish(r, "u7", "feat", partial=True, score=1.5)
    deadline = time.monotonic() + 10
    while t.get("u7") is None and time.monotonic() < deadline:
        time.sleep(0.01)
    bg.stop()
    assert t.get("u7")["score"] == 1.5


def _consume_forever(name, url):
    t = strata.Cache(name).table("kill")
    c = t.consume(url, "upd", "g", consumer="one", batch=200, start=False)
    while True:
        c.run_once()


def test_a_consumer_killed_mid_batch_loses_nothing_and_keeps_order(cache, name, redis_server):
    t = strata.FeatureTable(cache, strata.Schema("kill", 1, [("n", "int64")]))
    r = redis_server.client()
    entities, rounds = 50, 1000
    pipe = r.pipeline(transaction=False)
    for k in range(rounds):
        for e in range(entities):
            pipe.xadd("upd", {"id": f"e{e}", "v": "1", "f.n": np.int64(k).tobytes()})
    pipe.execute()
    # Kill the consumer while it holds a batch it has not acknowledged.
    for _attempt in range(10):
        p = mp.get_context("spawn").Process(target=_consume_forever, args=(name, redis_server.url))
        p.start()
        deadline = time.monotonic() + 30
        while not (r.xinfo_groups("upd") and r.xinfo_groups("upd")[0]["pending"] > 0):
            assert time.monotonic() < deadline
        os.kill(p.pid, signal.SIGKILL)
        p.join()
        group = r.xinfo_groups("upd")[0]
        if group["pending"] > 0:
            break
    assert group["pending"] > 0 and group["entries-read"] < entities * rounds, group
    # Restarted under the same name: the pending batch is replayed first.
    c = t.consume(redis_server.url, "upd", "g", consumer="one", batch=500, start=False)
    c.run_until_idle()
    for e in range(entities):
        assert t.get(f"e{e}")["n"] == rounds - 1
    assert r.xpending("upd", "g")["pending"] == 0


def test_export_writes_rows_with_their_write_times(cache, tmp_path):
    t = strata.FeatureTable(cache, strata.Schema("ex", 1, USER + [("emb", "float32", (2, 2))]))
    rng = np.random.default_rng(3)
    n = 300
    cols = _user_columns(n, rng)
    cols["emb"] = rng.random((n, 2, 2)).astype(np.float32)
    before = time.time() * 1000
    t.put_many([f"u{i}" for i in range(n)], cols)
    after = time.time() * 1000
    for ext in ("npz", "parquet"):
        path = tmp_path / f"snap.{ext}"
        assert t.export(path) == n
        copy = strata.FeatureTable(cache, strata.Schema(f"copy_{ext}", 1, USER + [("emb", "float32", (2, 2))]))
        assert copy.load_file(path, progress=False).rows == n
        for i in (0, 17, n - 1):
            a, b = t.get(f"u{i}"), copy.get(f"u{i}")
            for name in t.names:
                np.testing.assert_array_equal(a[name], b[name])
    z = np.load(tmp_path / "snap.npz")
    # L0's clock is the coarse wall clock: a few milliseconds of resolution.
    assert ((z["written_ms"] >= before - 50) & (z["written_ms"] <= after + 50)).all()
    import pyarrow.parquet as pq

    pt = pq.read_table(tmp_path / "snap.parquet")
    assert str(pt.schema.field("written_at").type) == "timestamp[ms]"


def _create_other_schema(name, q):
    c = strata.Cache(name)
    try:
        strata.FeatureTable(c, strata.Schema("user", 1, [("age", "float64")]))
        q.put("created")
    except strata.SchemaMismatchError as e:
        q.put(f"mismatch: {e}")


def test_processes_agree_on_the_schema_and_a_fork_reads_the_rows(users, cache, name):
    users.put("u9", age=9, clicks=90, ltv=0.9, score=0.09)
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_create_other_schema, args=(name, q))
    p.start()
    p.join()
    assert q.get().startswith("mismatch: table \"user\" already exists with another schema")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            x = users.assemble("u9")
            os.write(w, b"ok" if list(x) == [9, 90, 0.9, np.float32(0.09)] else b"bad")
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(r, 2) == b"ok"
