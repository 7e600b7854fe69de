"""Fixtures for the apt driver tests: a local repo served on 127.0.0.1 by a request-counting
HTTP server, and a sandbox root where the real apt-get/dpkg run with pkgcache's snippet."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aptlab import CountingServer, Repo, Sandbox

TOOLS = ("apt-get", "dpkg", "dpkg-deb", "apt-ftparchive")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing or os.geteuid() != 0:
        why = f"needs root and {', '.join(missing) or 'apt tools'}"
        for item in items:
            if "tests/apt/" in str(item.fspath):
                item.add_marker(pytest.mark.skip(reason=why))


@dataclass
class Lab:
    """One test's world: repo + server + sandbox + cache dir."""

    repo: Repo
    server: CountingServer
    sb: Sandbox
    cache_dir: Path

    def republish(self) -> None:
        self.repo.publish()

    def cache(self):
        from cache_core import PackageCache

        return PackageCache(str(self.cache_dir))


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    yield from make_lab(tmp_path)


@pytest.fixture
def open_lab() -> Iterator[Lab]:
    """A lab in a directory other users can traverse (for runs as a non-root user)."""
    base = Path(tempfile.mkdtemp(prefix="pkgcache-lab-", dir="/var/tmp"))
    os.chmod(base, 0o755)
    try:
        yield from make_lab(base)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def make_lab(tmp_path: Path) -> Iterator[Lab]:
    repo = Repo(tmp_path / "repo")
    repo.path.mkdir()
    repo.add("alpha", "1.0-1", depends="beta")
    repo.add("beta", "2:1.0-1", arch="amd64")
    repo.add("gamma", "0.5", size=5000)
    repo.publish()
    server = CountingServer(repo.path)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    cache_dir = tmp_path / "pkgcache"
    sb = Sandbox(tmp_path / "sb", server.url, cache_dir)
    sb.install_snippet()
    try:
        yield Lab(repo, server, sb, cache_dir)
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[callable]:
    """Mount tmpfs file systems (a different fs from the sandbox); unmounted afterwards."""
    mounts: list[Path] = []

    def mount(name: str, opts: str = "size=64m") -> Path:
        where = tmp_path / name
        where.mkdir()
        res = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "pkgcache-test", str(where)],
                             capture_output=True, text=True)
        if res.returncode != 0:
            pytest.skip(f"cannot mount tmpfs here: {res.stderr.strip()}")
        mounts.append(where)
        return where

    yield mount
    for where in reversed(mounts):
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


@pytest.fixture
def bindmount(tmp_path: Path) -> Iterator[callable]:
    """Bind-mount a fresh directory (same file system, another mount: link() gives EXDEV)."""
    mounts: list[Path] = []

    def mount(name: str) -> Path:
        src, where = tmp_path / (name + "-src"), tmp_path / name
        src.mkdir()
        where.mkdir()
        res = subprocess.run(["mount", "--bind", str(src), str(where)], capture_output=True,
                             text=True)
        if res.returncode != 0:
            pytest.skip(f"cannot bind-mount here: {res.stderr.strip()}")
        mounts.append(where)
        return where

    yield mount
    for where in reversed(mounts):
        subprocess.run(["umount", "-l", str(where)], capture_output=True)
