"""Each file crosses the network once: pip's (or uv's resolve's) download is the one cached.

Real pip and uv against the PEP 503 index on 127.0.0.1, which logs every request.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections import Counter
from pathlib import Path

import pytest
import yaml

from cache_core import PackageCache
from hooks.pip.install import install
from tests.support.cli import popen_cli
from tests.support.pip import Index, _write_wheel, make_legacy_sdist, py, sha256_of, venv_version

pytestmark = pytest.mark.slow


def _file_requests(index: Index) -> Counter[str]:
    return Counter(r.split("?", 1)[0] for r in index.requests if r.startswith("/files/"))


@pytest.mark.parametrize("installer", ["pip", "uv"])
def test_cold_install_fetches_each_file_once(installer: str, cache: PackageCache, index: Index,
                                             make_venv, capfd: pytest.CaptureFixture[str]) -> None:
    v1 = make_venv()
    rc = install(cache, ["--python", py(v1), "--installer", installer, "-i", index.url,
                         "alpha", "delta"])
    assert rc == 0, capfd.readouterr().err
    assert venv_version(v1, "alpha") == "1.0" and venv_version(v1, "beta") == "1.0"
    assert venv_version(v1, "delta") == "1.0"
    files = _file_requests(index)
    # the three files pip needs, each from the index's file URL exactly once
    assert files == Counter({"/files/alpha-1.0-py3-none-any.whl": 1,
                             "/files/beta-1.0-py3-none-any.whl": 1,
                             "/files/delta-1.0.tar.gz": 1}), files
    keys = {e.key for e in cache.keys()}
    assert {"wheel:alpha-1.0-py3-none-any.whl", "wheel:beta-1.0-py3-none-any.whl",
            "sdist:delta-1.0.tar.gz"} <= keys
    # a second install (index up, unpinned: pip resolves online) downloads no file
    v2 = make_venv()
    rc = install(cache, ["--python", py(v2), "--installer", installer, "-i", index.url,
                         "alpha", "delta"])
    assert rc == 0, capfd.readouterr().err
    assert venv_version(v2, "alpha") == "1.0" and venv_version(v2, "delta") == "1.0"
    assert _file_requests(index) == files


def test_pip_output_names_the_users_index(cache: PackageCache, index: Index, make_venv,
                                          capfd: pytest.CaptureFixture[str]) -> None:
    """pip reads through a local view, but its lines name the user's index, as plain pip's do."""
    rc = install(cache, ["--python", py(make_venv()), "-i", index.url, "beta"])
    out, err = capfd.readouterr()
    assert rc == 0, err
    assert f"Looking in indexes: {index.url}" in out
    assert f"Downloading http://127.0.0.1:{index.port}/files/beta-1.0-py3-none-any.whl" in out
    assert set(re.findall(r"127\.0\.0\.1:(\d+)", out + err)) == {str(index.port)}


def test_legacy_sdist_install_is_cached_and_served_offline(cache: PackageCache, index: Index,
                                                           make_venv, tmp_path: Path,
                                                           capfd: pytest.CaptureFixture[str]) -> None:
    """A setup.py-only sdist that pip installs with ``setup.py install`` (no wheel built, as
    with Debian's pip 23 and no ``wheel`` in the venv) is cached by its hash and installs again
    from the cache with the index down."""
    index.add(make_legacy_sdist(tmp_path, "oldstyle", "0.6.2"))
    v1 = make_venv(with_pip=True)
    rc = install(cache, ["--python", py(v1), "-i", index.url, "oldstyle"])
    assert rc == 0, capfd.readouterr().err
    assert venv_version(v1, "oldstyle") == "0.6.2"
    entry = cache.lookup("sdist:oldstyle-0.6.2.tar.gz")
    assert entry is not None and entry.digest == sha256_of(tmp_path / "oldstyle-0.6.2.tar.gz")
    assert _file_requests(index)["/files/oldstyle-0.6.2.tar.gz"] == 1
    # pip's build environment and the driver's resolve of the build dependencies (setuptools,
    # wheel: not on this index) read each page once
    pages = Counter(r for r in index.requests if r.startswith("/simple/"))
    assert pages and max(pages.values()) == 1, pages
    index.stop()
    capfd.readouterr()
    v2 = make_venv(with_pip=True)
    rc = install(cache, ["--python", py(v2), "-i", index.url, "oldstyle"])
    assert rc == 0, capfd.readouterr().err
    assert venv_version(v2, "oldstyle") == "0.6.2"


def _tool_wheel(out: Path, name: str, version: str) -> Path:
    """A build tool's wheel for the index (plain pip must never ask for it here)."""
    info = f"{name}-{version}.dist-info"
    return _write_wheel(out / f"{name}-{version}-py3-none-any.whl", info, {
        f"{name}_stub.py": b"",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: t\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    })


def _freeze(venv: Path) -> list[str]:
    out = subprocess.run([py(venv), "-m", "pip", "freeze", "--all"], capture_output=True,
                         text=True, check=True).stdout
    return sorted(out.splitlines())


def test_cold_legacy_sdist_asks_the_index_for_what_plain_pip_asks(
        cache: PackageCache, index: Index, make_venv, tmp_path: Path,
        capfd: pytest.CaptureFixture[str]) -> None:
    """A setup.py-only sdist into a venv with setuptools (and no ``wheel``): plain pip installs it
    with the venv's setuptools, downloading no build tool; a cold pkgcache install asks the
    index for exactly the files plain pip asks for, once each, and serves the sdist offline."""
    index.add(make_legacy_sdist(tmp_path, "oldstyle", "0.6.2"))
    for name in ("setuptools", "wheel"):  # on the index, as on PyPI
        index.add(_tool_wheel(tmp_path, name, "99.0"))
    plain = make_venv(with_pip=True)
    plain_err = subprocess.run([py(plain), "-m", "pip", "install", "--no-cache-dir",
                                "--disable-pip-version-check", "-i", index.url, "oldstyle"],
                               check=True, capture_output=True, text=True).stderr
    want = _file_requests(index)
    assert want == Counter({"/files/oldstyle-0.6.2.tar.gz": 1}), want
    index.requests.clear()
    v1 = make_venv(with_pip=True)
    rc = install(cache, ["--python", py(v1), "-i", index.url, "oldstyle"])
    out, err = capfd.readouterr()
    assert rc == 0, err
    assert _file_requests(index) == want, _file_requests(index)
    assert not [r for r in index.requests if "setuptools" in r or "/wheel" in r], index.requests
    assert _freeze(v1) == _freeze(plain)
    # nothing printed on success but plain pip's own lines (its setup.py install deprecation)
    assert set(err.splitlines()) <= set(plain_err.splitlines()), err
    # the next run, with the index down, installs it from the cache
    index.stop()
    v2 = make_venv(with_pip=True)
    rc = install(cache, ["--python", py(v2), "-i", index.url, "oldstyle"])
    err = capfd.readouterr().err
    assert rc == 0, err
    assert venv_version(v2, "oldstyle") == "0.6.2"
    assert _freeze(v2) == _freeze(plain)
    assert "WARNING" not in err, err  # (pip unpacks the cached sdist under its own name)


def _big_wheel(out: Path, name: str, version: str, size: int) -> Path:
    """A wheel with an incompressible payload (so a slow index takes a while to send it)."""
    dist = name.replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    files = {
        f"{dist}/__init__.py": f'VERSION = "{version}"\n'.encode(),
        f"{dist}/blob.bin": os.urandom(size),
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: t\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    return _write_wheel(out / f"{dist}-{version}-py3-none-any.whl", info, files)


def test_two_members_installing_at_once_download_each_file_once(tmp_path: Path, make_venv) -> None:
    """Two fleet members (own caches, own state dirs) install the same project at the same time
    from a slow index: one downloads the wheel, the other takes it from the store (a lease)."""
    files = tmp_path / "slow-files"
    files.mkdir()
    index = Index(files, chunk_delay=0.04)
    wheel = index.add(_big_wheel(tmp_path, "bigpkg", "1.0", 600_000))  # ~37 pieces: ~1.5 s
    index.start()
    shared = tmp_path / "shared"
    shared.mkdir()
    try:
        procs = []
        for name in ("m1", "m2"):
            cfg = tmp_path / f"{name}.yaml"
            cfg.write_text(yaml.safe_dump({"performance": {"cache": {
                "directory": str(tmp_path / name),
                "remote": [{"url": f"file://{shared}", "mode": "rw", "trust": "unsigned"}]}}}))
            procs.append(popen_cli("--config", str(cfg), "pip", "install", "--python",
                                   py(make_venv()), "-q", "-i", index.url, "bigpkg",
                                   env={"PKGCACHE_STATE_DIR": str(tmp_path / f"state-{name}"),
                                        "PKGCACHE_REMOTE_UPLOAD": "manual"},
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        for p in procs:
            _, err = p.communicate(timeout=300)
            assert p.returncode == 0, err
    finally:
        index.stop()
    assert _file_requests(index)[f"/files/{wheel.name}"] == 1, index.requests
    assert (shared / "cas" / sha256_of(wheel)).is_file()
