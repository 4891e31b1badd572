"""A gunicorn app whose 4 workers share one copy of 10,000 embeddings.

Run it from the repository root:

    gunicorn -c examples/gunicorn_app.py --chdir examples gunicorn_app:app

This file is both the gunicorn config (the settings at the bottom) and the
app. With ``preload_app`` the master imports it once, creates the cache and
loads the embeddings before forking; each worker inherits the cache object
and reads the same shared memory. No worker holds a copy of the data.

    GET /emb/<i>   the checksum of embedding i, and the worker's pid
    GET /all       reads every embedding, returns the total and the pid
"""

import json
import os

import numpy as np

import strata

NAME = os.environ.get("STRATA_EXAMPLE_CACHE", "gunicorn-example")
COUNT = int(os.environ.get("STRATA_EXAMPLE_COUNT", "10000"))
DIM = 1024

cache = strata.Cache(NAME, memory="256MiB")


def embedding(i):
    """The embedding the master stores for id i (deterministic, so a test
    can recompute it)."""
    return np.random.default_rng(i).random(DIM, dtype=np.float32)


def checksum(arr):
    return float(arr.astype(np.float64).sum())


def load():
    for i in range(COUNT):
        cache.set(f"emb:{i}", embedding(i))


def app(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path.startswith("/emb/"):
        view = cache.get_numpy(f"emb:{int(path[5:])}")
        body = {"pid": os.getpid(), "checksum": None if view is None else checksum(view)}
    elif path == "/all":
        total, missing = 0.0, 0
        for i in range(COUNT):
            view = cache.get_numpy(f"emb:{i}")
            if view is None:
                missing += 1
            else:
                total += checksum(view)
        body = {"pid": os.getpid(), "total": total, "missing": missing}
    else:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found\n"]
    data = json.dumps(body).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [data]


# gunicorn settings, read when this file is passed with -c.
bind = os.environ.get("STRATA_EXAMPLE_BIND", "127.0.0.1:8000")
workers = 4
worker_class = "sync"
preload_app = True


def on_starting(server):
    """In the master, before any worker forks."""
    load()
