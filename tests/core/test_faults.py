"""Real faults: a full disk (tmpfs) and a read-only cache. The caller never sees an exception."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from cache_core import PackageCache

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting tmpfs needs root")


@pytest.fixture
def small_fs(tmp_path: Path):
    mnt = tmp_path / "smallfs"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0755", "tmpfs", str(mnt)], check=True)
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_full_disk_is_a_miss_with_a_warning_and_leaves_nothing_partial(small_fs: Path, tmp_path: Path,
                                                                       capfd):
    cache = PackageCache(str(small_fs / "cache"))
    small = tmp_path / "small"
    small.write_bytes(os.urandom(100_000))
    assert cache.put("small", str(small))
    big = tmp_path / "big"
    big.write_bytes(os.urandom(3_000_000))
    assert cache.put("big", str(big)) is None                    # ENOSPC: no exception
    assert "pkgcache: warning:" in capfd.readouterr().err
    assert list((small_fs / "cache" / "tmp").iterdir()) == []    # the partial temp is gone
    assert cache.get("big") is None
    assert Path(cache.get("small")).read_bytes() == small.read_bytes()
    # keep filling until even the index cannot grow: still no exception, still consistent
    for i in range(40):
        f = tmp_path / f"f{i}"
        f.write_bytes(os.urandom(60_000))
        cache.put(f"k{i}", str(f))
    assert Path(cache.get("small")).read_bytes() == small.read_bytes()
    # once space is back, everything works again and the cache is consistent
    subprocess.run(["mount", "-o", "remount,size=16m", str(small_fs)], check=True)
    assert cache.put("big", str(big))
    assert Path(cache.get("big")).read_bytes() == big.read_bytes()
    cache.verify(repair=True)
    assert not any(cache.verify().values())


def test_read_only_cache_serves_or_misses_without_exceptions(tmp_path: Path, capfd):
    ro = tmp_path / "ro"
    ro.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0755", "tmpfs", str(ro)], check=True)
    try:
        cache = PackageCache(str(ro / "cache"))
        src = tmp_path / "src"
        src.write_bytes(b"content")
        cache.put("k", str(src))
        cache.close()
        subprocess.run(["mount", "-o", "remount,ro", str(ro)], check=True)
        again = PackageCache(str(ro / "cache"))
        got = again.get("k")
        assert got is not None and Path(got).read_bytes() == b"content"  # still serves hits
        assert again.put("k2", str(src)) is None
        assert "pkgcache: warning:" in capfd.readouterr().err
    finally:
        subprocess.run(["umount", "-l", str(ro)], check=False)


def test_the_state_dir_is_refused_without_proc(tmp_path: Path):
    """With /proc really gone (a mount namespace with an empty tmpfs over /proc, as in a chroot
    without /proc) no ACL can be read: the state dir is refused, not taken as ACL-free."""
    import shutil
    import sys

    if shutil.which("unshare") is None:
        pytest.skip("unshare(1) missing")
    base = tmp_path / "noproc"
    base.mkdir(0o755)
    code = ("import os; from cache_core.fs import state_dir; "
            f"os.environ['PKGCACHE_STATE_DIR'] = {str(base / 'state')!r}; print(state_dir())")
    root = str(Path(__file__).resolve().parents[2])
    with_proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                               cwd=root, check=True)
    assert with_proc.stdout.strip() == str(base / "state"), with_proc
    r = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                        'mount -t tmpfs none /proc && exec "$0" -c "$1"', sys.executable, code],
                       capture_output=True, text=True, cwd=root)
    assert r.returncode == 0 and r.stdout.strip() == "None", (r.stdout, r.stderr)
