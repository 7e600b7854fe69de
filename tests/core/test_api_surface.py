"""The API drivers use instead of the store's layout (local_path, same_object, can_link_into,
bucket_lock, open), driver config keys, the one lock loop, the one sweep policy, the one
quarantine, durable renames and the index's migrations list."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cache_core import (
    ConfigError,
    LockTimeout,
    PackageCache,
    UnsafeCacheError,
    acquire_lock,
    register_key,
)
from cache_core.config import parse_config
from cache_core.fs import temp_name
from cache_core.index.migrations import SCHEMA_VERSION
from tests.support import REPO


def _file(tmp: Path, name: str, data: bytes) -> Path:
    p = tmp / name
    p.write_bytes(data)
    return p


# -- paths and inodes without the layout ----------------------------------------------------------
def test_local_path_is_the_object_for_a_key_or_digest_and_none_when_absent(cache_dir: Path,
                                                                           tmp_path: Path):
    cache = PackageCache(str(cache_dir))
    digest = cache.put("deb:a_1_all.deb", str(_file(tmp_path, "a", b"alpha" * 100)))
    path = cache.local_path("deb:a_1_all.deb")
    assert path is not None and Path(path).read_bytes() == b"alpha" * 100
    assert cache.local_path(f"sha256:{digest}") == path
    assert cache.local_path("deb:missing") is None
    os.chmod(path, 0o644)
    with open(path, "ab") as f:       # a different size: not handed out
        f.write(b"x")
    assert cache.local_path("deb:a_1_all.deb") is None


def test_same_object_is_true_only_for_the_objects_own_inode(cache_dir: Path, tmp_path: Path):
    cache = PackageCache(str(cache_dir))
    src = _file(tmp_path, "b", b"beta" * 100)
    digest = cache.put("deb:b_1_all.deb", str(src))
    linked = tmp_path / "linked.deb"
    assert cache.materialize_key("deb:b_1_all.deb", str(linked), mode="link")
    assert cache.same_object("deb:b_1_all.deb", str(linked))
    assert cache.same_object(f"sha256:{digest}", str(linked))
    assert not cache.same_object("deb:b_1_all.deb", str(src))       # same bytes, other inode
    assert not cache.same_object("deb:other", str(linked))
    assert not cache.same_object("deb:b_1_all.deb", str(tmp_path / "nothing"))


def test_can_link_into_is_tried_for_real(cache_dir: Path, tmp_path: Path):
    cache = PackageCache(str(cache_dir))
    target = tmp_path / "archives"
    target.mkdir()
    assert not cache.can_link_into(str(target))                     # nothing to try with
    cache.put("k", str(_file(tmp_path, "c", b"gamma")))
    assert cache.can_link_into(str(target))
    assert list(target.iterdir()) == []                             # the probe is gone
    assert not cache.can_link_into(str(tmp_path / "missing"))


def test_open_raises_for_an_unusable_cache(tmp_path: Path):
    bad = tmp_path / "shared"
    bad.mkdir(mode=0o777)
    os.chmod(bad, 0o777)
    with pytest.raises(UnsafeCacheError):
        PackageCache(str(bad)).open()


# -- named locks ----------------------------------------------------------------------------------
def test_bucket_lock_keeps_gc_from_evicting_the_entry(cache_dir: Path):
    cache = PackageCache(str(cache_dir))
    d = cache.bucket("git-v1") / "mirror"
    d.mkdir()
    (d / "pack").write_bytes(b"p" * 4096)
    cache.record_bucket_entry("git-v1", "mirror", 4096)
    with cache.bucket_lock("git-v1", "mirror", timeout=0):
        assert cache.gc(max_size_bytes=1, older_than=0)["evicted"] == 0
        assert d.is_dir()
    assert cache.gc(max_size_bytes=1, older_than=0)["evicted"] == 1
    assert not d.exists()


def test_bucket_lock_refuses_unsafe_names(cache_dir: Path):
    cache = PackageCache(str(cache_dir))
    with pytest.raises(Exception, match="unusable file name"), cache.bucket_lock("git-v1", "../x"):
        pass


def test_acquire_lock_polls_flock_and_posix_locks(tmp_path: Path):
    path = tmp_path / "lock"
    path.touch()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'r+'); "
         "fcntl.lockf(f, fcntl.LOCK_EX); fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); "
         "time.sleep(30)", str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        for posix in (False, True):
            fd = os.open(path, os.O_RDWR)
            try:
                t0 = time.monotonic()
                with pytest.raises(LockTimeout, match="held by another process"):
                    acquire_lock(fd, 0.3, "test", posix=posix)
                assert time.monotonic() - t0 >= 0.3
            finally:
                os.close(fd)
    finally:
        holder.kill()
        holder.wait()
    fd = os.open(path, os.O_RDWR)
    try:
        acquire_lock(fd, 0, "test", posix=True)   # free now: taken at once
        acquire_lock(fd, 0, "test")
    finally:
        os.close(fd)


# -- config keys of drivers -----------------------------------------------------------------------
def test_driver_keys_are_registered_by_the_driver_not_the_core():
    text = "performance:\n  cache:\n    pip_installer: uv\n"
    core_only = subprocess.run(
        [sys.executable, "-c", "import sys; from cache_core.config import parse_config\n"
         f"print(parse_config({text!r}, 'c.yaml').option('pip_installer'))"],
        cwd=REPO, capture_output=True, text=True)
    assert "performance.cache.pip_installer: unknown key" in core_only.stderr
    with_drivers = subprocess.run(
        [sys.executable, "-c", "import hooks; from cache_core.config import parse_config\n"
         f"print(parse_config({text!r}, 'c.yaml').option('pip_installer'))"],
        cwd=REPO, capture_output=True, text=True)
    assert with_drivers.stdout.strip() == "uv", with_drivers.stderr


def test_register_key_validates_and_defaults():
    register_key("test_colour", lambda v: v in ("red", "blue"), '"red" or "blue"', "red")
    assert parse_config("", "c.yaml").option("test_colour") == "red"
    cfg = parse_config("performance:\n  cache:\n    test_colour: blue\n", "c.yaml")
    assert cfg.option("test_colour") == "blue"
    with pytest.raises(ConfigError, match='test_colour: expected "red" or "blue"'):
        parse_config("performance:\n  cache:\n    test_colour: green\n", "c.yaml")
    lenient = parse_config("performance:\n  cache:\n    nobody_knows: 1\n", "c.yaml", lenient=True)
    assert lenient.option("nobody_knows") == 1
    with pytest.raises(ValueError):
        register_key("directory", lambda v: True, "", None)


# -- one sweep policy, one quarantine, durable renames --------------------------------------------
def test_verify_reports_exactly_the_temps_repair_removes(cache_dir: Path, tmp_path: Path):
    cache = PackageCache(str(cache_dir))
    cache.put("k", str(_file(tmp_path, "d", b"delta")))
    tmp = cache_dir / "tmp"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    crashed = tmp / f".pkgcache-{dead}-0123456789abcdef.tmp"
    crashed.write_bytes(b"x")
    fresh_unnamed = tmp / "unnamed-fresh"
    fresh_unnamed.write_bytes(b"y")
    live = Path(temp_name(tmp))                               # ours, in flight
    live.write_bytes(b"z")
    report = cache.verify()
    assert sorted(report["temps"]) == [crashed.name]
    cache.verify(repair=True)
    assert sorted(p.name for p in tmp.iterdir()) == sorted([fresh_unnamed.name, live.name])


def test_verify_repair_quarantines_a_corrupt_object_like_a_read_does(cache_dir: Path,
                                                                     tmp_path: Path):
    cache = PackageCache(str(cache_dir))
    digest = cache.put("k", str(_file(tmp_path, "e", b"epsilon" * 50)))
    obj = cache.object_path(digest)
    os.chmod(obj, 0o644)
    obj.write_bytes(b"EPSILON" * 50)
    assert cache.verify(repair=True)["corrupt"] == [digest]
    names = [p.name for p in (cache_dir / "quarantine").iterdir()]
    assert len(names) == 1 and names[0].startswith(digest + ".")
    assert cache.lookup("k") is None and cache.stats()["corrupt_detected"] == 1


def test_a_put_fsyncs_the_object_and_its_directory(cache_dir: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch):
    synced: list[str] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    cache = PackageCache(str(cache_dir))
    cache.open()
    monkeypatch.setattr(os, "fsync", fsync)
    digest = cache.put("k", str(_file(tmp_path, "f", b"zeta")))
    shard = str(cache.object_path(digest).parent)
    assert any(s.startswith(str(cache_dir / "tmp")) for s in synced), synced   # the bytes
    assert shard in synced, synced                                             # the rename
    synced.clear()
    PackageCache(str(tmp_path / "nofsync"), fsync=False).put("k", str(tmp_path / "f"))
    assert synced == []


# -- the index's migrations -----------------------------------------------------------------------
def test_an_index_from_a_newer_pkgcache_is_not_touched(cache_dir: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]):
    PackageCache(str(cache_dir)).put("k", str(_file(tmp_path, "g", b"eta")))
    conn = sqlite3.connect(cache_dir / "index-v1.sqlite")
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.close()
    assert PackageCache(str(cache_dir)).get("k") is None        # fail-open: a miss
    assert "newer than this pkgcache" in capsys.readouterr().err
    conn = sqlite3.connect(cache_dir / "index-v1.sqlite")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
    conn.close()


def test_add_many_records_objects_already_in_place(cache_dir: Path):
    cache = PackageCache(str(cache_dir))
    cache.open()
    rows = []
    for i in range(3):
        data = f"object {i}".encode()
        import hashlib

        digest = hashlib.sha256(data).hexdigest()
        obj = cache.object_path(digest)
        obj.parent.mkdir(exist_ok=True)
        obj.write_bytes(data)
        os.chmod(obj, 0o444)
        rows.append((f"k:{i}", digest, len(data), "k"))
    cache.index.add_many(rows)
    assert [e.key for e in cache.keys("k:")] == ["k:0", "k:1", "k:2"]
    assert Path(cache.get("k:1")).read_bytes() == b"object 1"
    assert cache.stats()["objects"] == 3


def test_settings_changed_before_first_use_reach_the_index(cache_dir: Path, tmp_path: Path):
    """The apt hook lowers busy_timeout after building the cache and before opening it."""
    cache = PackageCache(str(cache_dir))
    cache.busy_timeout = 0.25
    cache.max_size_bytes = 1234
    cache.open()
    assert cache.index.busy_timeout == 0.25 and cache.stats()["max_size_bytes"] == 1234


def test_a_remote_fault_is_a_miss_and_one_warning_without_its_message(
        cache_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    from cache_core import CacheConfig
    from cache_core.storage import Storage

    def broken(self: Storage, key: str) -> bool:
        raise RuntimeError("GET https://user:s3cr3t@remote.example/cas/x failed")

    monkeypatch.setattr(Storage, "fill", broken)
    cache = PackageCache(str(cache_dir), strict=True)   # strict or not: the remote never raises
    cache.config = CacheConfig(remote=["stand-in"])
    assert cache.get("deb:absent") is None
    err = capsys.readouterr().err
    assert err == "pkgcache: warning: remote tier unavailable (RuntimeError)\n", err
