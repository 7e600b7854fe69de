"""Fixtures for apt on the fleet: signed repo + counting origin, nginx WebDAV remote, servers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.apt import skip_unless_tools
from tests.support.fleet import GpgKey, Server, SignedRepo, start_server
from tests.support.remote import Nginx, write_keypair

TOOLS = ("apt-get", "dpkg", "dpkg-deb", "apt-ftparchive", "gpg", "gpgv", "nginx")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_unless_tools(items, "apt_fleet", TOOLS, "apt tools")


@pytest.fixture(scope="session")
def lab_key() -> Iterator[GpgKey]:
    key = GpgKey("pkgcache-lab")
    yield key
    key.close()


@pytest.fixture(scope="session")
def rogue_key() -> Iterator[GpgKey]:
    key = GpgKey("pkgcache-rogue")
    yield key
    key.close()


class Fleet:
    """The origin (signed repo + counting server), the remote (nginx) and its servers."""

    def __init__(self, base: Path, key: GpgKey, nginx: Nginx) -> None:
        self.base = base
        self.key = key
        self.nginx = nginx
        self.repo = SignedRepo(base / "repo")
        self.repo.key = key
        self.repo.path.mkdir()
        self.repo.add("alpha", "1.0-1", depends="beta", size=300_000)
        self.repo.add("beta", "2:1.0-1", arch="amd64", size=200_000)
        self.repo.add("gamma", "0.5", size=5000)
        self.repo.publish()
        self.origin = start_server(self.repo.path)
        self.url = self.origin.base
        self.secret_file = base / "signing.key"
        self.public = write_keypair(self.secret_file, "fleet-apt-1")
        self.servers: list[Server] = []

    def remote(self) -> dict[str, Any]:
        return {"url": self.nginx.url(), "mode": "rw", "signing_key_file": str(self.secret_file),
                "trusted_public_keys": [self.public], "read_timeout": 20}

    def server(self, name: str, *, method: bool = True,
               remotes: list[dict[str, Any]] | None = None) -> Server:
        s = Server(self.base / name, self.url, self.key,
                   [self.remote()] if remotes is None else remotes, method=method)
        self.servers.append(s)
        return s

    def stop_origin(self) -> None:
        self.origin.stop()

    def restart_origin(self) -> None:
        self.origin = start_server(self.repo.path)
        self.url = self.origin.base


@pytest.fixture
def fleet(tmp_path: Path, lab_key: GpgKey) -> Iterator[Fleet]:
    ng = Nginx(tmp_path / "nginx")
    f = Fleet(tmp_path, lab_key, ng)
    try:
        yield f
    finally:
        try:
            f.stop_origin()
        except OSError:
            pass
        ng.stop()
