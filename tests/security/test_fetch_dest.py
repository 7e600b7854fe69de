"""``pkgcache fetch`` with the cache on, into a directory a local user can write: the temp beside
DEST is swapped for a symlink to a root-only file while root copies (a download) or places (a
cache hit) it. DEST is then never left as the user's symlink with exit 0: either DEST is the
right regular file, or fetch exits 5 with one line (as the cache-off path does)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tests.security.test_local_user import SWAPPER
from tests.support.cli import run_cli
from tests.support.user import User


@pytest.mark.slow
def test_fetch_with_the_cache_on_checks_dest_after_its_rename(user: User, fetch_server,
                                                             tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"root only\n")
    os.chmod(victim, 0o600)
    body = os.urandom(4_000_000)
    dl = user.dir("downloads-cache-on")
    racer = user.python(SWAPPER, str(dl), str(victim), "300", background=True)
    try:
        for i in range(16):
            # odd rounds: a cold download (_copy_to); even rounds: a cache hit (materialize)
            fetch_server.put(f"/big{i // 2}.bin", body)
            dest = dl / f"file{i}.bin"
            res = run_cli("--cache-dir", str(tmp_path / "cache"), "fetch",
                          fetch_server.url(f"/big{i // 2}.bin"), "-o", str(dest), "--retries", "0",
                          env={"PKGCACHE_DISABLE": "0"})
            assert "Traceback" not in res.stderr, res.stderr
            st = os.lstat(dest) if os.path.lexists(dest) else None
            if res.returncode == 0:
                assert st is not None and stat.S_ISREG(st.st_mode), \
                    f"round {i}: exit 0 but DEST is {'a symlink' if st else 'missing'}"
                assert dest.read_bytes() == body
            else:
                assert res.returncode == 5 and len(res.stderr.splitlines()) <= 2, res.stderr
            assert victim.read_bytes() == b"root only\n"
            assert stat.S_IMODE(os.stat(victim).st_mode) == 0o600
    finally:
        racer.kill()
        racer.wait()
