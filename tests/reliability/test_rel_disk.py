"""The cache's file system fails under a real apt-get and a real pip: full (tmpfs), read-only
(remounted ro), the index deleted or overwritten with garbage. apt-get and pip succeed, say at
most one short warning per pkgcache process, and `pkgcache verify` is clean afterwards."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from cache_core import PackageCache
from tests.reliability.rel_lab import (
    AptWorld,
    PipWorld,
    assert_short_warnings,
    assert_verify_clean,
    cli,
    fill_debs,
    fill_wheels,
    needs_root,
    pkgcache_lines,
    stats,
    verify_report,
)
from tests.support.mounts import Mounts

pytestmark = needs_root


def fill_up(fs: Path) -> Path:
    """Write a filler file until the file system is full; return it."""
    filler = fs / "filler"
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


def apt_and_pip_succeed(apt: AptWorld, pip: PipWorld, cache_dir: Path) -> list[str]:
    """A fresh apt-get install and a fresh pip install; both as without the cache."""
    res = apt.install()
    assert res.returncode == 0, res.stdout + res.stderr
    seen = assert_short_warnings(res.stderr, 2)  # one per hook process at most
    apt.assert_installed_right()
    apt.assert_archives_right()
    venv = pip.venv()
    res = pip.install(cache_dir, venv)
    assert res.returncode == 0, res.stdout + res.stderr
    seen += assert_short_warnings(res.stderr, 1)
    assert pip.versions(venv) == ("1.0", "1.0")
    return seen


def test_full_file_system(apt_world: AptWorld, pip_world: PipWorld, mounts: Mounts) -> None:
    fs = mounts.tmpfs("full", "4m")
    cache_dir = fs / "pkgcache"
    apt_world.use_cache(cache_dir)
    with PackageCache(str(cache_dir), strict=True) as c:
        c.stats()  # the index exists, then the disk fills up
    filler = fill_up(fs)
    seen = apt_and_pip_succeed(apt_world, pip_world, cache_dir)
    assert seen, "a full cache must be reported once"
    assert len(apt_world.server.deb_requests()) == 3

    filler.unlink()  # space freed: the cache is consistent and fills normally
    assert_verify_clean(cache_dir)
    apt_world.reprovision()
    seen = apt_and_pip_succeed(apt_world, pip_world, cache_dir)
    assert seen == []
    apt_world.reprovision()
    res = apt_world.install()
    assert res.returncode == 0 and apt_world.server.deb_requests() == [], res.stderr
    assert_verify_clean(cache_dir)


def read_only_cache(apt: AptWorld, pip: PipWorld, mounts: Mounts) -> tuple[Path, Path]:
    fs = mounts.tmpfs("ro", "32m")
    cache_dir = fs / "pkgcache"
    apt.use_cache(cache_dir)
    fill_debs(apt)
    fill_wheels(pip, cache_dir)
    mounts.remount(fs, "ro")
    return fs, cache_dir


def test_read_only_cache(apt_world: AptWorld, pip_world: PipWorld, mounts: Mounts) -> None:
    fs, cache_dir = read_only_cache(apt_world, pip_world, mounts)
    seen = apt_and_pip_succeed(apt_world, pip_world, cache_dir)
    print(f"read-only cache: {len(seen)} warning line(s): {seen}")
    mounts.remount(fs, "rw")
    assert_verify_clean(cache_dir)


def test_read_only_cache_still_serves_apt(apt_world: AptWorld, pip_world: PipWorld,
                                          mounts: Mounts) -> None:
    read_only_cache(apt_world, pip_world, mounts)
    res = apt_world.install()
    assert res.returncode == 0, res.stderr
    assert apt_world.server.deb_requests() == []  # verified reads need no writes


INDEX = "index-v1.sqlite"


def damage_index(cache_dir: Path, damage: str) -> None:
    for suffix in ("", "-wal", "-shm"):
        p = cache_dir / (INDEX + suffix)
        if damage == "deleted":
            p.unlink(missing_ok=True)
        elif suffix == "":
            p.write_bytes(os.urandom(8192))


def filled_then_damaged(apt: AptWorld, pip: PipWorld, damage: str) -> tuple[Path, int]:
    """Both worlds' files in the cache, then its index damaged; (cache dir, objects before)."""
    cache_dir = apt.cache_dir
    fill_debs(apt)
    fill_wheels(pip, cache_dir)
    objects = stats(cache_dir)["objects"]
    damage_index(cache_dir, damage)
    return cache_dir, objects


def test_index_deleted_then_repair_rebuilds(apt_world: AptWorld, pip_world: PipWorld) -> None:
    cache_dir, objects = filled_then_damaged(apt_world, pip_world, "deleted")
    seen = apt_and_pip_succeed(apt_world, pip_world, cache_dir)
    assert seen == []  # a missing index is simply a new, empty one

    report = verify_report(cache_dir, repair=True)
    assert report["corrupt"] == [], report
    assert_verify_clean(cache_dir)
    st = stats(cache_dir)
    assert st["objects"] >= objects  # every object is indexed again
    # and the rebuilt cache serves the next provisioning run
    apt_world.reprovision()
    res = apt_world.install()
    assert res.returncode == 0 and not pkgcache_lines(res.stderr), res.stderr
    apt_world.assert_installed_right()
    assert cli(cache_dir, "stats").returncode == 0


def test_garbage_index_apt_and_pip_succeed(apt_world: AptWorld, pip_world: PipWorld) -> None:
    """The first process to open it moves the damaged index aside (one warning); all succeed."""
    cache_dir = apt_world.cache_dir
    fill_debs(apt_world)
    fill_wheels(pip_world, cache_dir)
    damage_index(cache_dir, "garbage")
    seen = apt_and_pip_succeed(apt_world, pip_world, cache_dir)
    assert len(seen) == 1 and "index was damaged" in seen[0], seen
    assert any(p.name.startswith("index.") for p in (cache_dir / "quarantine").iterdir())


def test_garbage_index_repair_rebuilds(apt_world: AptWorld, pip_world: PipWorld) -> None:
    cache_dir, objects = filled_then_damaged(apt_world, pip_world, "garbage")
    verify_report(cache_dir, repair=True)
    assert_verify_clean(cache_dir)
    assert stats(cache_dir)["objects"] == objects
