"""A fill never takes the cache's disk: a body of unknown size (a ``sha256:`` key: pip's hash,
fetch --sha256) is read no further than the free space less a margin, an object known to be
larger is not asked for, and ENOSPC while writing is a miss of that fill: the temp removed, no
breaker, no mismatch, the local tier and the caller unaffected."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator

import pytest

from tests.support.http import FaultServer

KEYS = [f"sha256:{hashlib.sha256(bytes([i])).hexdigest()}" for i in range(3)]


@pytest.fixture
def endless() -> Iterator[FaultServer]:
    srv = FaultServer("endless")  # a body that never ends, for any object
    yield srv
    srv.stop()


def _no_temps(cache_dir) -> None:
    assert not list((cache_dir / "tmp").iterdir())


def _local_tier_works(cache, tmp_path) -> None:
    p = tmp_path / "small"
    p.write_bytes(b"local bytes")
    assert cache.put("name:small", str(p)) and cache.get("name:small")


def test_an_unsized_fill_stops_at_the_free_space(endless, make_cache, tmp_path, monkeypatch):
    """statvfs says 20 MiB of 100 MiB are free (the margin: the smaller of 64 MiB and 5%):
    each fill reads ~15 MiB at most, a plain miss (not a mismatch: the store did not lie)."""
    b = make_cache("b", [{"url": endless.url(), "max_object_gb": 4}])
    real = os.statvfs
    free = 20 << 20

    def statvfs(path):
        st = real(path)
        if str(path).startswith(str(tmp_path / "b")):  # 100 MiB, 20 MiB of it free
            return os.statvfs_result((4096, 4096, (100 << 20) // 4096, free // 4096, free // 4096,
                                      st.f_files, st.f_ffree, st.f_favail, st.f_flag,
                                      st.f_namemax))
        return st
    monkeypatch.setattr(os, "statvfs", statvfs)
    for key in KEYS:
        assert b.get(key) is None
    st = b.stats()["remote"]
    room = free - min(64 << 20, (100 << 20) // 20)
    assert st["misses"] == 3 and st["mismatches"] == 0 and not st["degraded"], st
    assert st["bytes_in"] <= 3 * (room + (1 << 20)), st  # before: up to 4 GiB each
    _no_temps(tmp_path / "b")
    _local_tier_works(b, tmp_path)
    # an object known to be larger than the room is not even asked for
    asked = endless.connections
    assert b.remote.get_object(KEYS[0][7:], size=room + 1) is None
    assert endless.connections == asked


@pytest.mark.root  # to mount a tmpfs
def test_a_full_disk_during_a_fill_is_a_miss_of_that_fill(endless, make_cache, mounts, tmp_path,
                                                          monkeypatch):
    """A real 64 MiB tmpfs: the first fill stops short of filling it; with the free space
    unknown the write meets ENOSPC: a miss, counted once, the temp removed, no
    breaker; the caller gets None and the local tier still works."""
    disk = mounts.tmpfs("disk", "64m")
    b = make_cache("disk/c", [{"url": endless.url(), "max_object_gb": 1}])
    assert b.get(KEYS[0]) is None
    st = os.statvfs(disk)
    assert st.f_bavail * st.f_frsize >= (64 << 20) // 20 - (1 << 20)  # never filled
    st = b.stats()["remote"]
    assert (st["misses"], st["mismatches"], st["degraded"]) == (1, 0, False), st
    monkeypatch.setattr(b.remote.tier, "room", lambda: None)  # the free space unknown
    for key in KEYS[1:]:
        assert b.get(key) is None
    st = b.stats()["remote"]
    assert (st["misses"], st["mismatches"], st["errors"], st["degraded"]) == (3, 0, 0, False), st
    _no_temps(disk / "c")
    _local_tier_works(b, tmp_path)
