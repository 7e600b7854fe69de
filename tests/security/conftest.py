"""Fixtures for the security tests: a real unprivileged local user, the apt lab (one package),
the fetch server (public_dir: tests/conftest.py). Everything here needs root."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import until_stopped
from tests.support.apt import Lab, lab_in, skip_unless_tools
from tests.support.http import FetchServer
from tests.support.user import User, make_user

TOOLS = ("useradd", "userdel", "setpriv", "apt-get", "dpkg-deb", "apt-ftparchive")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_unless_tools(items, "security", TOOLS, "useradd/setpriv")


@pytest.fixture(scope="session")
def user() -> Iterator[User]:
    """A throwaway unprivileged account, removed afterwards."""
    yield from make_user()


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    yield from lab_in(tmp_path, debs=(("alpha", "1.0-1", {"size": 30000}),))


@pytest.fixture
def fetch_server() -> Iterator[FetchServer]:
    yield from until_stopped(FetchServer().start())
