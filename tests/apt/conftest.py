"""Fixtures for the apt driver tests: a local repo served on 127.0.0.1 by the support HTTP
server, and a sandbox root where the real apt-get/dpkg run with pkgcache's snippet."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.apt import TOOLS, Lab, lab_in, skip_unless_tools
from tests.support.user import public_tmpdir


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_unless_tools(items, "apt", TOOLS, "apt tools")


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    yield from lab_in(tmp_path)


@pytest.fixture
def open_lab() -> Iterator[Lab]:
    """A lab in a directory other users can traverse (for runs as a non-root user)."""
    for base in public_tmpdir("pkgcache-lab-"):
        for lab in lab_in(base):
            lab.sb.for_other_users()
            yield lab
