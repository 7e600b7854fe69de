"""Fixtures for the fetch tests: a real HTTP server on 127.0.0.1 and a runner for `pkgcache`."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from fetch_server import FetchServer, Runner


@pytest.fixture
def run(tmp_path: Path) -> Runner:
    return Runner(tmp_path)


@pytest.fixture
def server() -> Iterator[FetchServer]:
    srv = FetchServer().start()
    try:
        yield srv
    finally:
        srv.stop()
