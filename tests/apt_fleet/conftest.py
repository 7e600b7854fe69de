"""Fixtures for apt on the fleet: signed repo + counting origin, nginx WebDAV remote, servers."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fleetlab import GpgKey, Server, SignedRepo, start_server

from tests.remote.servers import Nginx

TOOLS = ("apt-get", "dpkg", "dpkg-deb", "apt-ftparchive", "gpg", "gpgv", "nginx")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    missing = [t for t in TOOLS if shutil.which(t) is None and not os.path.exists(f"/usr/sbin/{t}")]
    if missing or os.geteuid() != 0:
        why = f"needs root and {', '.join(missing) or 'apt tools'}"
        for item in items:
            if "tests/apt_fleet/" in str(item.fspath):
                item.add_marker(pytest.mark.skip(reason=why))


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
        from cache_core.storage.remote.records import generate_keypair

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
        self.origin, _ = start_server(self.repo.path)
        self.url = self.origin.url
        secret, self.public = generate_keypair("fleet-apt-1")
        self.secret_file = base / "signing.key"
        fd = os.open(self.secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secret + "\n")
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
        self.origin.shutdown()
        self.origin.server_close()

    def restart_origin(self) -> None:
        self.origin, _ = start_server(self.repo.path)
        self.url = self.origin.url


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
