"""Harvest (a deb outside apt's archives, checked against its index record) and `apt import`
read and hash each deb once: the store's hashing copy checks the index's digest, so no second
full hash. What is stored is still exactly the index's bytes, and a file that is not is never
stored under the deb's name."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from cache_core import PackageCache
from hooks.apt import harvest, importer
from hooks.apt.naming import key_for

SIZE = 3 << 20
FNAME = "hello_2.10-3_amd64.deb"


class _Counting:
    """hashlib.sha256 that adds the bytes of large updates to a shared counter."""

    counted = 0

    def __init__(self, data: bytes = b"") -> None:
        self._h = _REAL()
        self.update(data)

    def update(self, data: Any) -> None:
        if len(data) >= 4096:
            _Counting.counted += len(data)
        self._h.update(data)

    def hexdigest(self) -> str:
        return self._h.hexdigest()

    def digest(self) -> bytes:
        return self._h.digest()


_REAL = hashlib.sha256


@pytest.fixture
def hashed(monkeypatch: pytest.MonkeyPatch) -> type[_Counting]:
    monkeypatch.setattr(hashlib, "sha256", _Counting)
    _Counting.counted = 0
    return _Counting


@pytest.fixture
def deb(tmp_path: Path) -> tuple[Path, str]:
    data = os.urandom(SIZE)
    path = tmp_path / "elsewhere" / FNAME
    path.parent.mkdir()
    path.write_bytes(data)
    return path, _REAL(data).hexdigest()


def test_harvest_outside_the_archives_hashes_once(tmp_path, deb, hashed) -> None:
    path, sha = deb
    cache = PackageCache(str(tmp_path / "cache"))
    assert harvest.store(cache, str(path), FNAME, link=False, sha256=sha) == ("stored", SIZE)
    assert hashed.counted == SIZE
    assert Path(cache.get(key_for(FNAME))).read_bytes() == path.read_bytes()


def test_harvest_of_other_bytes_stores_nothing_and_hashes_once(tmp_path, deb, hashed) -> None:
    path, sha = deb
    cache = PackageCache(str(tmp_path / "cache"))
    other = "0" * 64
    assert harvest.store(cache, str(path), FNAME, link=False, sha256=other) == ("skipped", 0)
    assert hashed.counted == SIZE
    assert cache.lookup(key_for(FNAME)) is None and cache.stats()["puts"] == 0


def test_harvest_of_a_deb_cached_already_hashes_once(tmp_path, deb, hashed) -> None:
    path, sha = deb
    cache = PackageCache(str(tmp_path / "cache"))
    harvest.store(cache, str(path), FNAME, link=False, sha256=sha)
    hashed.counted = 0
    assert harvest.store(cache, str(path), FNAME, link=False, sha256=sha) == ("already", SIZE)
    assert hashed.counted == SIZE


def test_import_hashes_once_and_refuses_other_bytes(tmp_path, deb, hashed) -> None:
    path, sha = deb
    cache = PackageCache(str(tmp_path / "cache"))
    meta = {"package": "hello", "version": "2.10-3", "arch": "amd64"}

    def imported(digest: str) -> tuple[str, str]:
        fd = os.open(path, os.O_RDONLY)  # import_dir opens each deb once (open_regular)
        try:
            os.read(fd, 100)  # the control was read first: the hash starts from the top
            return importer._import_one(cache, fd, FNAME, digest, meta)
        finally:
            os.close(fd)

    assert imported("f" * 64) == ("unmatched", "SHA256 differs from the index")
    assert hashed.counted == SIZE and cache.lookup(key_for(FNAME)) is None
    hashed.counted = 0
    assert imported(sha) == ("imported", FNAME)
    assert hashed.counted == SIZE
    assert cache.lookup(key_for(FNAME)).digest == sha
    hashed.counted = 0
    assert imported(sha) == ("already", "already cached")
    assert hashed.counted == SIZE


@pytest.mark.parametrize("pinned", [True, False])
def test_fetch_stores_a_download_hashing_it_once(tmp_path, hashed, monkeypatch, pinned) -> None:
    """`pkgcache fetch`: the downloaded file is hashed by the store's copy alone (pinned or not),
    and a pinned digest it does not have still stores nothing."""
    from cache_core import CacheError
    from hooks.common.errors import FetchError
    from hooks.fetch import download
    from tests.support.http import FetchServer

    monkeypatch.setenv("PKGCACHE_STATE_DIR", str(tmp_path / "state"))
    data = os.urandom(SIZE)
    srv = FetchServer().start()
    try:
        srv.put("/f.tar.gz", data)
        cache = PackageCache(str(tmp_path / "cache"))
        sha = _REAL(data).hexdigest()
        hashed.counted = 0  # the test server hashed the body for its ETag
        got = download.fetch(cache, srv.url("/f.tar.gz"), tmp_path / "out",
                             sha if pinned else None, progress=False)
        assert got.sha256 == sha and (tmp_path / "out").read_bytes() == data
        assert hashed.counted == SIZE
        if pinned:
            hashed.counted = 0
            with pytest.raises((FetchError, CacheError)):
                download.fetch(cache, srv.url("/f.tar.gz"), tmp_path / "out2", "1" * 64,
                               progress=False, retries=0)
            assert hashed.counted == SIZE and not (tmp_path / "out2").exists()
    finally:
        srv.stop()
