"""Fixtures for the fetch tests: a real HTTP server on 127.0.0.1 and a runner for `pkgcache`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import until_stopped
from tests.support.cli import Runner
from tests.support.http import FetchServer


@pytest.fixture
def run(tmp_path: Path) -> Runner:
    return Runner(tmp_path)


@pytest.fixture
def server() -> Iterator[FetchServer]:
    yield from until_stopped(FetchServer().start())
