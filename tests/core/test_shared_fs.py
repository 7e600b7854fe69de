"""A cache on a shared or network file system (NFS, vboxsf, CIFS, FUSE): the index uses a
rollback journal there, because SQLite's WAL needs shared memory those file systems lack.

This machine's kernel has no NFS client or server (no nfs in /proc/filesystems, no modules), so
no real NFS export is tested. The FUSE test is real: bindfs with direct_io refuses the shared
mmap of WAL's -shm file, and WAL there fails with "disk I/O error" as on vboxsf."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import cache_core.errors as errors
import cache_core.index as index_mod
from cache_core import PackageCache
from cache_core.fs.mounts import fs_type, wal_unsafe

MOUNTINFO = r"""22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
30 22 0:40 / /srv/nfs rw,relatime shared:9 - nfs4 fs:/export rw,vers=4.2
31 30 8:1 /local /srv/nfs/local rw - ext4 /dev/sda1 rw
32 22 0:41 / /vagrant rw,nodev - vboxsf vagrant rw
33 22 0:42 / /mnt/smb rw - cifs //nas/share rw
34 22 0:43 / /mnt/with\040space rw - nfs nas:/x rw
35 22 0:44 / /home/u/remote rw - fuse.sshfs u@host:/ rw
36 22 0:45 / /tmp rw - tmpfs tmpfs rw
37 36 0:46 / /tmp/over rw - tmpfs tmpfs rw
38 36 0:47 / /tmp/over rw - cifs //nas/over rw
"""


@pytest.mark.parametrize(("path", "kind", "unsafe"), [
    ("/var/cache/vps-configurator", "ext4", False),
    ("/srv/nfs/cache", "nfs4", True),
    ("/srv/nfs", "nfs4", True),
    ("/srv/nfs/local/cache", "ext4", False),      # a local mount inside the NFS tree
    ("/srv/nfsx/cache", "ext4", False),           # a prefix of the name is not the mount
    ("/vagrant/cache", "vboxsf", True),
    ("/mnt/smb/c", "cifs", True),
    ("/mnt/with space/c", "nfs", True),
    ("/home/u/remote/c", "fuse.sshfs", True),
    ("/tmp/c", "tmpfs", False),
    ("/tmp/over/c", "cifs", True),                # the last mount over a point wins
])
def test_fs_type_from_mountinfo(path: str, kind: str, unsafe: bool) -> None:
    """The innermost mount decides; escaped names and over-mounts are read right."""
    assert fs_type(path, MOUNTINFO) == kind
    assert wal_unsafe(path, MOUNTINFO) is unsafe


def test_fs_type_of_this_machines_tmp(tmp_path: Path) -> None:
    """The real mount table names a type for any existing path."""
    assert fs_type(str(tmp_path)) != ""


def _journal(cache_dir: Path) -> str:
    db = next(p for p in cache_dir.rglob("*") if p.suffix in (".db", ".sqlite"))
    with sqlite3.connect(db) as c:
        return c.execute("PRAGMA journal_mode").fetchone()[0].lower()


def test_local_disk_keeps_wal(tmp_path: Path) -> None:
    """On local disk the index stays in WAL mode."""
    src = tmp_path / "f"
    src.write_bytes(b"x" * 100)
    c = PackageCache(str(tmp_path / "cache"))
    c.put("k", str(src))
    assert c.get("k")
    assert _journal(tmp_path / "cache") == "wal"


@pytest.fixture
def fuse_direct_io(tmp_path: Path) -> Iterator[Path]:
    """A FUSE mount (bindfs -o direct_io): no shared writable mmap, like vboxsf."""
    if shutil.which("bindfs") is None:
        pytest.skip("needs bindfs (tests/requirements-apt.txt)")
    src, mnt = tmp_path / "src", tmp_path / "mnt"
    src.mkdir()
    mnt.mkdir()
    res = subprocess.run(["bindfs", "-o", "direct_io", str(src), str(mnt)], capture_output=True,
                         text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount FUSE here: {res.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _use_cache(cache_dir: Path, tmp_path: Path) -> bool:
    """put then get one file; whether it came back intact."""
    src = tmp_path / "payload"
    src.write_bytes(b"y" * 5000)
    with PackageCache(str(cache_dir)) as c:  # closed here: its WAL index is not left open
        c.put("url:http://example.invalid/p", str(src))
        got = c.get("url:http://example.invalid/p")
        return got is not None and Path(got).read_bytes() == b"y" * 5000


def test_cache_on_fuse_without_shared_mmap_works(fuse_direct_io: Path, tmp_path: Path) -> None:
    """put and get on the FUSE mount: the index is in rollback-journal mode there."""
    cache_dir = fuse_direct_io / "cache"
    assert _use_cache(cache_dir, tmp_path)
    assert _journal(cache_dir) == "delete"


def test_wal_index_made_on_local_disk_opens_on_the_share(fuse_direct_io: Path,
                                                         tmp_path: Path) -> None:
    """A cache filled on local disk (WAL), then used through the share (a cache moved to NFS,
    an index from an older pkgcache): opened and switched to a rollback journal."""
    local = tmp_path / "src" / "cache"   # the FUSE mount's backing directory
    assert _use_cache(local, tmp_path)
    assert _journal(local) == "wal"
    got = PackageCache(str(fuse_direct_io / "cache")).get("url:http://example.invalid/p")
    assert got is not None and Path(got).read_bytes() == b"y" * 5000
    assert _journal(fuse_direct_io / "cache") == "delete"


def test_wal_on_fuse_without_shared_mmap_fails(fuse_direct_io: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """The control: with the detection off, the same cache is unusable (what vboxsf users see;
    the facade fails open with one warning)."""
    monkeypatch.setattr(index_mod, "wal_unsafe", lambda _path: False)
    monkeypatch.setattr(errors, "_warned", set())  # warnings are once per process
    assert not _use_cache(fuse_direct_io / "cache", tmp_path)
    assert "disk I/O error" in capsys.readouterr().err
