"""Fixtures every test gets: an isolated pkgcache environment, a cache path, mounts.

``tests`` is a package under pytest's rootdir, so the repository root is on sys.path once and
every helper is imported as ``tests.support.…`` (see tests/support/__init__.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.mounts import Mounts
from tests.support.user import public_tmpdir


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test reads the machine's pkgcache config or cache."""
    monkeypatch.setenv("PKGCACHE_CONFIG", str(tmp_path / "no-such-config.yaml"))
    monkeypatch.delenv("PKGCACHE_DIR", raising=False)
    monkeypatch.delenv("PKGCACHE_DISABLE", raising=False)
    state = tmp_path / "state"  # trust memos (seed plan, fetch digests): never the host's
    monkeypatch.setenv("PKGCACHE_STATE_DIR", str(state))
    os.chmod(tmp_path, 0o755)
    cfg = tmp_path / "no-such-config.yaml"
    cfg.write_text("performance:\n  cache:\n    enabled: true\n")


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    """A path for a cache that does not exist yet."""
    return tmp_path / "cache"


@pytest.fixture
def mounts(tmp_path: Path) -> Iterator[Mounts]:
    """tmpfs and bind mounts under tmp_path, unmounted after the test (needs root)."""
    m = Mounts(tmp_path)
    yield m
    m.cleanup()


@pytest.fixture
def public_dir() -> Iterator[Path]:
    """A root-owned 0755 directory every local user can traverse (as /var/cache is), unlike
    tmp_path: pytest keeps /tmp/pytest-of-root at 0700 (and puts it back whenever another
    pytest session starts)."""
    yield from public_tmpdir("pkgcache-test-")
