"""Fixtures for the remote tier: real stores on 127.0.0.1 and caches configured to use them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from cache_core import PackageCache
from tests.support import until_stopped
from tests.support.remote import Moto, Nginx, Store, file_store, nginx_store, s3_store, write_keypair


@pytest.fixture(autouse=True)
def _manual_uploads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Uploads only when a test drains the spool (one test checks the detached uploader)."""
    monkeypatch.setenv("PKGCACHE_REMOTE_UPLOAD", "manual")
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(k, raising=False)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[Moto]:
    pytest.importorskip("moto")
    yield from until_stopped(Moto())


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[Nginx]:
    yield from until_stopped(Nginx(tmp_path / "nginx"))


@pytest.fixture(params=["file", "nginx", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "file":
        return file_store(tmp_path / "shared")
    if request.param == "nginx":
        return nginx_store(request.getfixturevalue("nginx"))
    return s3_store(request.getfixturevalue("moto_server"))


@pytest.fixture
def keypair(tmp_path: Path) -> tuple[str, str]:
    """(secret key file, public key) made like `pkgcache remote keygen`."""
    path = tmp_path / "signing.key"
    return str(path), write_keypair(path, "fleet-test-1")


@pytest.fixture
def make_cache(tmp_path: Path) -> Callable[..., PackageCache]:
    """make_cache(name, [remote, ...]) -> a PackageCache whose config lists those remotes."""
    def make(name: str, remotes: list[dict[str, Any]]) -> PackageCache:
        cfg = tmp_path / f"{name}.yaml"
        cfg.write_text(yaml.safe_dump({"performance": {"cache": {
            "directory": str(tmp_path / name), "remote": remotes}}}))
        cfg.chmod(0o600)  # it may hold inline secrets (S3 keys, a token): 0600, as documented
        return PackageCache.from_config(str(cfg))
    return make
