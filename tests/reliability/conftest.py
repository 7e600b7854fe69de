"""Fixtures for the reliability suite (faults injected for real; needs root for apt and mounts)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability.rel_lab import AptWorld, PipWorld, make_apt_world, make_pip_world
from tests.support import until_stopped


@pytest.fixture
def apt_world(tmp_path: Path) -> Iterator[AptWorld]:
    yield from until_stopped(make_apt_world(tmp_path / "apt", tmp_path / "pkgcache"))


@pytest.fixture
def pip_world(tmp_path: Path) -> Iterator[PipWorld]:
    yield from until_stopped(make_pip_world(tmp_path / "pip"))
