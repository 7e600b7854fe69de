"""Fixtures for the remote tier: real stores on 127.0.0.1 and caches configured to use them."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from cache_core import PackageCache
from tests.remote.servers import Moto, Nginx


@pytest.fixture(autouse=True)
def _manual_uploads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Uploads only when a test drains the spool (one test checks the detached uploader)."""
    monkeypatch.setenv("PKGCACHE_REMOTE_UPLOAD", "manual")
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(k, raising=False)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[Moto]:
    pytest.importorskip("moto")
    server = Moto()
    yield server
    server.stop()


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[Nginx]:
    server = Nginx(tmp_path / "nginx")
    yield server
    server.stop()


class Store:
    """One backend under test: its config entry and a way to tamper with it behind our back."""

    def __init__(self, kind: str, remote: dict[str, Any], write: Callable[[str, bytes], None],
                 read: Callable[[str], bytes | None]) -> None:
        self.kind = kind
        self._remote = remote
        self.write = write   # write(name, data): replace an object in the store directly
        self.read = read     # read(name) -> bytes or None

    def remote(self, **extra: Any) -> dict[str, Any]:
        d = dict(self._remote, read_timeout=20)  # 2 cores shared by many jobs: moto can lag
        d.update(extra)
        return d


@pytest.fixture(params=["file", "nginx", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    kind = request.param
    if kind == "file":
        base = tmp_path / "shared"
        base.mkdir()
        return Store(kind, {"url": f"file://{base}"}, lambda n, d: _write(base / n, d),
                     lambda n: _read(base / n))
    if kind == "nginx":
        ng = request.getfixturevalue("nginx")
        base = ng.root / "store"
        return Store(kind, {"url": ng.url()}, lambda n, d: _write(base / n, d),
                     lambda n: _read(base / n))
    moto = request.getfixturevalue("moto_server")
    prefix = "t" + secrets.token_hex(6)

    def s3_write(name: str, data: bytes) -> None:
        moto.s3.put_object(Bucket="fleet", Key=f"{prefix}/{name}", Body=data)

    def s3_read(name: str) -> bytes | None:
        try:
            return moto.s3.get_object(Bucket="fleet", Key=f"{prefix}/{name}")["Body"].read()
        except Exception:  # noqa: BLE001 - NoSuchKey
            return None
    return Store(kind, moto.remote(url=f"s3://fleet/{prefix}"), s3_write, s3_read)


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _read(path: Path) -> bytes | None:
    return path.read_bytes() if path.exists() else None


@pytest.fixture
def keypair(tmp_path: Path) -> tuple[str, str]:
    """(secret key file, public key) made like `pkgcache remote keygen`."""
    from cache_core.storage.remote.records import generate_keypair

    secret, public = generate_keypair("fleet-test-1")
    path = tmp_path / "signing.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secret + "\n")
    return str(path), public


@pytest.fixture
def make_cache(tmp_path: Path) -> Callable[..., PackageCache]:
    """make_cache(name, [remote, ...]) -> a PackageCache whose config lists those remotes."""
    def make(name: str, remotes: list[dict[str, Any]]) -> PackageCache:
        cfg = tmp_path / f"{name}.yaml"
        cfg.write_text(yaml.safe_dump({"performance": {"cache": {
            "directory": str(tmp_path / name), "remote": remotes}}}))
        return PackageCache.from_config(str(cfg))
    return make


def config_file(tmp_path: Path, name: str, remotes: list[dict[str, Any]]) -> Path:
    """The config file make_cache wrote for name."""
    return tmp_path / f"{name}.yaml"
