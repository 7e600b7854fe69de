"""Fixtures for the git tests: bare repositories served over git's smart HTTP on 127.0.0.1."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from git_server import GitHttpServer, GitRunner


@pytest.fixture
def gitsrv(tmp_path: Path) -> Iterator[GitHttpServer]:
    root = tmp_path / "srv"
    root.mkdir()
    srv = GitHttpServer(root).start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def grun(tmp_path: Path) -> GitRunner:
    return GitRunner(tmp_path)
