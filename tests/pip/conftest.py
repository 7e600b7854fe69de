"""Fixtures for the pip driver tests (the helpers live in tests/support/pip.py)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cache_core import PackageCache
from tests.support.env import PIP_SET, PIP_VARS
from tests.support.pip import OTHER_MACHINE, PY_TAG, Index, Packages, make_sdist, make_wheel


@pytest.fixture(scope="session")
def packages(tmp_path_factory: pytest.TempPathFactory) -> Packages:
    """Build the wheels and the sdist once."""
    d = tmp_path_factory.mktemp("dists")
    other = f"{PY_TAG}-{PY_TAG}-manylinux_2_17_{OTHER_MACHINE}"
    return Packages(
        dir=d,
        alpha=make_wheel(d, "alpha", "1.0", requires=("beta>=1.0",)),
        beta=make_wheel(d, "beta", "1.0"),
        delta=make_sdist(d, "delta", "1.0"),
        plat_any=make_wheel(d, "plat", "1.0"),
        plat_other=make_wheel(d, "plat", "2.0", other),
        onlyother=make_wheel(d, "onlyother", "1.0", other),
        newpy=make_wheel(d, "newpy", "1.0", requires_python=">=4"),
    )


@pytest.fixture
def index(tmp_path: Path, packages: Packages) -> Iterator[Index]:
    """A running index with every test distribution published."""
    files = tmp_path / "index-files"
    files.mkdir()
    idx = Index(files)
    for p in (packages.alpha, packages.beta, packages.delta, packages.plat_any,
              packages.plat_other, packages.onlyother):
        idx.add(p)
    idx.add(packages.newpy, ">=4")
    idx.start()
    yield idx
    idx.stop()


@pytest.fixture(autouse=True)
def pip_isolation(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Switch off the machine's pip config; count sdist builds in a log file."""
    for var in PIP_VARS:
        monkeypatch.delenv(var, raising=False)
    for var, value in PIP_SET.items():
        monkeypatch.setenv(var, value)
    # this machine's private trust memos (vouched pip files, stat stamps): one per test
    monkeypatch.setenv("PKGCACHE_STATE_DIR", str(tmp_path / "state"))
    log = tmp_path / "builds.log"
    monkeypatch.setenv("PKGCACHE_TEST_BUILD_LOG", str(log))
    return log


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[PackageCache]:
    """A fresh strict cache (as the CLI opens it)."""
    c = PackageCache(str(tmp_path / "cache"), strict=True)
    yield c
    c.close()


@pytest.fixture
def make_venv(tmp_path: Path):
    """Create fresh virtual environments without pip (pkgcache drives pip --python)."""
    count = [0]

    def make(with_pip: bool = False) -> Path:
        count[0] += 1
        path = tmp_path / f"venv{count[0]}"
        cmd = [sys.executable, "-m", "venv", str(path)]
        if not with_pip:
            cmd.insert(3, "--without-pip")
        subprocess.run(cmd, check=True, capture_output=True)
        return path

    return make
