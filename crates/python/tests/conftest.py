"""Shared fixtures: every test gets caches of its own, removed afterwards."""

import os
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
