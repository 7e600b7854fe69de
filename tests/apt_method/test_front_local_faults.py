"""The front's own hits (LocalObjects) meet a broken world in-process: a cache dir that is gone
or not ours is no local hits (the helper serves, the front is not faulted into relaying), with
no descriptor left open; a temp name that exists already in the destination is never removed."""

from __future__ import annotations

import os
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from cache_core import stamps
from hooks.apt.method import Front, LocalObjects, Request


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def selects(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Point the recorded cache selection (cache_core.stamps) at a cache root; returns a
    function that records a root."""
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    monkeypatch.setenv("PKGCACHE_STATE_DIR", str(state))
    cfg = tmp_path / "c.yaml"
    cfg.write_text("performance:\n  cache:\n    enabled: true\n")
    monkeypatch.setenv("PKGCACHE_CONFIG", str(cfg))
    for var in ("PKGCACHE_DIR", "PKGCACHE_DISABLE"):
        monkeypatch.delenv(var, raising=False)

    def select(root: Path) -> None:
        stamps.remember_cache(stamps.config_identity(), str(root))
        assert stamps.selected_cache() == str(root.resolve())

    return select


def test_a_missing_cache_dir_is_no_local_hits(selects, tmp_path: Path) -> None:
    root = tmp_path / "cache"
    root.mkdir()
    selects(root)
    root.rmdir()  # rm -rf /var/cache/vps-configurator
    assert LocalObjects.open() is None


def test_a_cache_dir_not_ours_leaks_no_descriptor(selects, tmp_path: Path) -> None:
    root = tmp_path / "cache"
    (root / "objects-v1" / "sha256").mkdir(parents=True)
    selects(root)
    os.chmod(root, 0o777)  # writable by others: never trusted
    before = _fds()
    assert LocalObjects.open() is None
    assert _fds() == before


@pytest.mark.parametrize("exc", [ImportError("cache_core.stamps"), PermissionError(13, "no"),
                                 ValueError("embedded null byte")])
def test_serve_local_asks_the_helper_when_the_objects_cannot_be_opened(
        monkeypatch: pytest.MonkeyPatch, exc: Exception) -> None:
    def broken() -> None:
        raise exc

    monkeypatch.setattr(LocalObjects, "open", classmethod(lambda cls: broken()))
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.delenv("PKGCACHE_DISABLE", raising=False)
    front = SimpleNamespace(local=None, hashes_ok=True, relay_only=False)
    req = Request("http://h/pool/a_1_all.deb", "/tmp/x", "0" * 64, False)
    assert Front.serve_local(front, req) is False  # type: ignore[arg-type]
    assert front.local is False  # no local hits this session; the front still asks the helper


def test_a_temp_name_taken_already_is_left_alone(tmp_path: Path) -> None:
    src = tmp_path / "obj"
    src.write_bytes(b"deb bytes")
    dest = tmp_path / "dest"
    dest.mkdir()
    theirs = dest / f".pkgcache-{os.getpid()}-1.part"
    theirs.write_text("someone else's file")
    objects = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    local = LocalObjects(stamps, str(tmp_path), str(tmp_path), objects, False)
    fd = os.open(src, os.O_RDONLY)
    try:
        st = os.fstat(fd)
        with pytest.raises(FileExistsError):
            local._copy_to(fd, st, stamps.of(st), str(dest / "a_1_all.deb"), "0" * 64)
    finally:
        os.close(fd)
        os.close(objects)
    assert theirs.read_text() == "someone else's file"
    assert not (dest / "a_1_all.deb").exists()


def test_a_dead_fronts_temp_is_removed_at_the_next_copy_into_its_dir(tmp_path: Path) -> None:
    """A front killed mid-copy leaves .pkgcache-PID-N.part in apt's partial dir; the next front
    to copy there removes it once no process has that pid and it is over a minute old (the
    pid may be another pid namespace's). A live pid's temp, a fresh one, a symlink, a name
    that is not ours and other names are left alone."""
    import subprocess
    import sys

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    src = tmp_path / "obj"
    src.write_bytes(b"deb bytes")
    dest = tmp_path / "partial"
    dest.mkdir()
    killed = dest / f".pkgcache-{dead.pid}-3.part"
    killed.write_bytes(b"deb by")  # half a copy
    old = time.time() - 120
    os.utime(killed, (old, old))
    fresh = dest / f".pkgcache-{dead.pid}-5.part"  # a container's front, sharing the dir
    fresh.write_bytes(b"in use")
    odd = dest / f".pkgcache-{dead.pid}-x.part"
    odd.write_bytes(b"a user's")
    os.utime(odd, (old, old))
    alive = dest / f".pkgcache-{os.getppid()}-1.part"
    alive.write_bytes(b"in use")
    link = dest / f".pkgcache-{dead.pid}-4.part"
    link.symlink_to(src)
    other = dest / "b_1_all.deb"
    other.write_bytes(b"apt's")
    objects = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    local = LocalObjects(stamps, str(tmp_path), str(tmp_path), objects, False)
    fd = os.open(src, os.O_RDONLY)
    try:
        st = os.fstat(fd)
        assert local._copy_to(fd, st, stamps.of(st), str(dest / "a_1_all.deb"), "0" * 64)
    finally:
        os.close(fd)
        os.close(objects)
    assert not killed.exists()
    assert alive.read_bytes() == b"in use" and link.is_symlink() and other.exists()
    assert (dest / "a_1_all.deb").read_bytes() == b"deb bytes"
    assert sorted(p.name for p in dest.iterdir()) == sorted(
        ["a_1_all.deb", alive.name, link.name, other.name, fresh.name, odd.name])


def test_a_recorded_path_that_cannot_be_opened_is_no_local_hits(
        selects, monkeypatch: pytest.MonkeyPatch) -> None:
    """A NUL in a recorded cache path makes os.open raise ValueError, not OSError."""
    monkeypatch.setattr(stamps, "selected", lambda: ("/var/cache/x\0y", False))
    assert LocalObjects.open() is None


def _copied(tmp_path: Path, size: int) -> bytes:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.write_bytes(os.urandom(size))
    with open(src, "rb") as a, open(dst, "wb") as b:
        assert stamps.copy_range(a.fileno(), b.fileno(), size) == size
    assert dst.read_bytes() == src.read_bytes()
    return dst.read_bytes()


def test_copy_falls_back_to_sendfile_when_copy_file_range_copies_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Some file systems (overlayfs on older kernels, /proc-like ones) answer 0: not the end."""
    calls = []

    def nothing(src: int, dst: int, count: int, *args: object) -> int:
        calls.append(count)
        return 0

    monkeypatch.setattr(os, "copy_file_range", nothing, raising=False)
    _copied(tmp_path, 300_000)
    assert calls == [300_000]  # asked once, then sendfile did the copy


@pytest.mark.parametrize("code", [18, 38, 22, 95, 1])  # EXDEV ENOSYS EINVAL EOPNOTSUPP EPERM
def test_copy_falls_back_to_sendfile_when_copy_file_range_refuses(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int) -> None:
    def refuses(*args: object) -> int:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "copy_file_range", refuses, raising=False)
    _copied(tmp_path, 70_000)


def test_copy_stops_on_another_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(*args: object) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "copy_file_range", full, raising=False)
    with pytest.raises(OSError):
        _copied(tmp_path, 10)
