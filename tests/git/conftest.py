"""Fixtures for the git tests: bare repositories served over git's smart HTTP on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import until_stopped
from tests.support.git import GitRunner, GitServer


@pytest.fixture
def gitsrv(tmp_path: Path) -> Iterator[GitServer]:
    root = tmp_path / "srv"
    root.mkdir()
    yield from until_stopped(GitServer(root).start())


@pytest.fixture
def grun(tmp_path: Path) -> GitRunner:
    return GitRunner(tmp_path)
