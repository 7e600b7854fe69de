"""Two caches ("servers" A and B) sharing a real WebDAV (nginx) or S3 (moto) remote on
127.0.0.1; the remote tier's and the pip tests' fixtures are reused. Each member has its own
cache, config and private state dir (trust records): no member reads another's state."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cache_core import PackageCache
from tests.git.conftest import gitsrv  # noqa: F401 - fixture
from tests.pip.conftest import make_venv, pip_isolation  # noqa: F401 - fixtures
from tests.remote.conftest import (  # noqa: F401 - fixtures
    _manual_uploads,
    keypair,
    make_cache,
    moto_server,
    nginx,
)
from tests.support.remote import Store, nginx_store, s3_store


@pytest.fixture(params=["nginx", "s3"])
def fleet_store(request: pytest.FixtureRequest) -> Store:
    """The fleet's shared store: nginx WebDAV or moto S3 (SigV4), both on 127.0.0.1."""
    if request.param == "nginx":
        return nginx_store(request.getfixturevalue("nginx"))
    return s3_store(request.getfixturevalue("moto_server"), "f")


class Fleet:
    """Server A (writes, signs) and server B (reads, trusts A's key) on one store."""

    def __init__(self, store: Store, make: Callable[..., PackageCache], key: tuple[str, str],
                 tmp_path: Path) -> None:
        self.store = store
        self.key = key
        self.tmp = tmp_path
        self._make = make
        self.a = make("a", [store.remote(mode="rw", signing_key_file=key[0],
                                         trusted_public_keys=[key[1]])])
        self.b = make("b", [store.remote(trusted_public_keys=[key[1]])])

    def config(self, name: str) -> str:
        """The config file of cache name (for the CLI)."""
        return str(self.tmp / f"{name}.yaml")

    def state(self, name: str) -> Path:
        """Member name's own private state dir (its trust records), 0700."""
        d = self.tmp / f"{name}.state"
        d.mkdir(mode=0o700, exist_ok=True)
        return d

    @contextlib.contextmanager
    def on(self, name: str) -> Iterator[None]:
        """Run in-process code as member name: its own PKGCACHE_STATE_DIR."""
        old = os.environ.get("PKGCACHE_STATE_DIR")
        os.environ["PKGCACHE_STATE_DIR"] = str(self.state(name))
        try:
            yield
        finally:
            if old is None:
                os.environ.pop("PKGCACHE_STATE_DIR", None)
            else:
                os.environ["PKGCACHE_STATE_DIR"] = old

    def pip(self, cache: PackageCache, argv: list[str]) -> int:
        """``pkgcache pip install ARGV`` on the member owning cache (with its own state)."""
        from hooks.pip.install import install

        with self.on(Path(cache.root).name):
            return install(cache, argv)

    def cli(self, name: str, *args: str):
        """``pkgcache --config <name's config> ARGS`` as member name (its own state dir)."""
        from tests.support.cli import run_cli

        return run_cli("--config", self.config(name), *args,
                       env={"PKGCACHE_STATE_DIR": str(self.state(name))})

    def push(self, cache: PackageCache | None = None) -> dict[str, int]:
        """Drain A's upload spool now (uploads are manual in tests)."""
        remote = (cache or self.a).remote
        assert remote is not None
        return remote.tier.drain(wait=True)

    def member(self, name: str, **extra: Any) -> PackageCache:
        """Another member reading the same store (extra: remote settings)."""
        spec = self.store.remote(**({"trusted_public_keys": [self.key[1]]} | extra))
        return self._make(name, [spec])


@pytest.fixture
def fleet(fleet_store: Store, make_cache, keypair, tmp_path: Path) -> Fleet:  # noqa: F811
    f = Fleet(fleet_store, make_cache, keypair, tmp_path)
    yield f
    f.a.close()
    f.b.close()
