"""Streaming updates into a feature table from a Redis Stream: the
consumer (XREADGROUP in batches, XACK once the rows are published,
pending messages replayed on restart, bad messages to a dead-letter
stream) and the producer that writes such messages. See docs/features.md
for the message format."""

from __future__ import annotations

import socket
import threading
import time
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple

import numpy as np

if TYPE_CHECKING:
    from ._features import FeatureTable


def _redis(client_or_url: Any) -> Any:
    if not isinstance(client_or_url, str):
        return client_or_url
    try:
        import redis
    except ImportError as e:
        raise ImportError("streaming updates need redis-py: pip install strata[streams]") from e
    return redis.Redis.from_url(client_or_url)


class BadMessage(ValueError):
    """A stream message that cannot be applied; it goes to the dead-letter stream."""


def encode_row(table: "FeatureTable", entity_id: Any, fields: Dict[str, Any],
               partial: bool) -> Dict[bytes, bytes]:
    """The stream entry of one update: a whole row, or some fields."""
    eid = entity_id.encode() if isinstance(entity_id, str) else bytes(entity_id)
    msg = {b"id": eid, b"v": str(table.version).encode()}
    if not partial:
        row = table._row(None, fields)
        msg[b"row"] = row.tobytes()
        return msg
    unknown = set(fields) - set(table.names)
    if unknown:
        raise ValueError(f"unknown fields {sorted(unknown)}")
    for name, value in fields.items():
        v = table._checked(name, np.asarray(value), ())
        msg[b"f." + name.encode()] = np.ascontiguousarray(v, table._types[name].base).tobytes()
    return msg


def decode(table: "FeatureTable", fields: Dict[bytes, bytes]) -> Tuple[bytes, Optional[bytes], Dict[str, bytes]]:
    """(entity id, whole row or None, {field: bytes}) of a message;
    BadMessage says what is wrong with it."""
    eid = fields.get(b"id")
    if not eid:
        raise BadMessage("no id")
    v = fields.get(b"v")
    if v is not None and v != str(table.version).encode():
        raise BadMessage(f"schema version {v.decode(errors='replace')}, the table is at {table.version}")
    row = fields.get(b"row")
    if row is not None and len(row) != table.row_dtype.itemsize:
        raise BadMessage(f"row of {len(row)} bytes, the table's rows have {table.row_dtype.itemsize}")
    parts = {}
    for k, val in fields.items():
        if k.startswith(b"f."):
            name = k[2:].decode(errors="replace")
            ft = table._types.get(name)
            if ft is None:
                raise BadMessage(f"unknown field {name!r}")
            if len(val) != ft.itemsize:
                raise BadMessage(f"field {name!r}: {len(val)} bytes, expected {ft.itemsize}")
            parts[name] = val
    if row is None and not parts:
        raise BadMessage("neither a row nor fields")
    return eid, row, parts


class StreamConsumer:
    """Applies a stream's updates to a table from a thread of its own.
    Rows are published before their messages are acknowledged, and the
    consumer's pending messages are replayed when it starts, so a crash
    loses nothing; updates are upserts, so a replay is harmless. One
    consumer per group keeps each entity's updates in stream order."""

    def __init__(self, table: "FeatureTable", redis: Any, stream: str, group: str,
                 consumer: Optional[str] = None, batch: int = 500, block_ms: int = 100,
                 dead_letter: Optional[str] = None) -> None:
        self.table = table
        self.r = _redis(redis)
        self.stream, self.group = stream, group
        # A stable name: a restarted consumer finds its own pending messages.
        self.consumer = consumer or f"{socket.gethostname()}-{table.name}"
        self.batch, self.block_ms = batch, block_ms
        self.dead_letter = dead_letter or f"{stream}:dead"
        self.applied = 0
        self.dead = 0
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.error: Optional[BaseException] = None
        try:
            self.r.xgroup_create(stream, group, id="0", mkstream=True)
        except Exception as e:  # the group exists
            if "BUSYGROUP" not in str(e):
                raise
        self._backlog = True

    def run_once(self) -> int:
        """One round: the pending backlog first, then new messages (waiting
        up to block_ms). Returns how many messages were handled."""
        start = "0" if self._backlog else ">"
        resp = self.r.xreadgroup(self.group, self.consumer, {self.stream: start},
                                 count=self.batch, block=None if self._backlog else self.block_ms)
        entries: List[Tuple[bytes, Dict[bytes, bytes]]] = resp[0][1] if resp else []
        if self._backlog and not entries:
            self._backlog = False
            return 0
        done = []
        for msg_id, fields in entries:
            if not fields:  # pending, but deleted from the stream
                done.append(msg_id)
                continue
            try:
                eid, row, parts = decode(self.table, fields)
                self._apply(eid, row, parts)
                self.applied += 1
            except BadMessage as e:
                self.r.xadd(self.dead_letter, {b"reason": str(e).encode(), b"stream": self.stream.encode(),
                                               b"msg_id": msg_id, **fields})
                self.dead += 1
            done.append(msg_id)
        if done:
            self.r.xack(self.stream, self.group, *done)
        return len(entries)

    def _apply(self, eid: bytes, row: Optional[bytes], parts: Dict[str, bytes]) -> None:
        t = self.table
        if row is not None and not parts:
            t._t.put_row(eid, np.frombuffer(row, np.uint8), None)
            return
        rec = np.zeros((), t.row_dtype)
        if row is not None:
            rec = np.frombuffer(row, t.row_dtype).reshape(()).copy()
        else:
            cur = t.get(eid)
            if cur is not None:
                for name in t.names:
                    rec[name] = cur[name]
        for name, raw in parts.items():
            ft = t._types[name]
            rec[name] = np.frombuffer(raw, ft.base).reshape(ft.shape)
        t._t.put_row(eid, rec.reshape(1).view(np.uint8), None)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self.run_once()
        except BaseException as e:  # reported through .error and stop()
            self.error = e

    def start(self) -> "StreamConsumer":
        self._thread = threading.Thread(target=self._run, name=f"strata-consume-{self.stream}",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self.error is not None:
            raise self.error

    def run_until_idle(self, idle_rounds: int = 2, timeout: float = 60.0) -> int:
        """Applies messages until the stream has had nothing new for
        `idle_rounds` rounds (for scripts and tests); returns how many."""
        n = idle = 0
        end = time.monotonic() + timeout
        while idle < idle_rounds and time.monotonic() < end:
            got = self.run_once()
            n += got
            idle = idle + 1 if got == 0 and not self._backlog else 0
        return n
