"""``PackageCache.alias_many``: many keys for objects already stored, in one index transaction
(the fleet's pip run records its wheels this way): all or none when killed -9 midway, a key
never left without its object, the same answers as alias() one by one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from cache_core import PackageCache
from tests.support import REPO

N = 40

KILLER = r"""
import os, signal, sys
from cache_core import PackageCache

cache_dir, n, kill_at = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
cache = PackageCache(cache_dir, strict=True)
rows = [(f"wheel:p{i}-1.0-py3-none-any.whl", cache.calculate_hash(os.path.join(cache_dir, "..",
         f"src{i}")), "wheel", {"i": i}) for i in range(n)]
real = cache.index.conn


class Dying:
    # the index's connection, killing this process at the kill_at-th key it inserts
    seen = 0

    def __getattr__(self, name):
        return getattr(real, name)

    def execute(self, sql, *args):
        if sql.startswith("INSERT INTO keys"):
            Dying.seen += 1
            if Dying.seen == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
        return real.execute(sql, *args)


cache.index._conn = Dying()
cache.alias_many(rows)
print("not killed")
"""


def _sources(tmp_path: Path, cache: PackageCache, n: int) -> list[str]:
    """n stored objects (no key yet: stored by digest); their digests."""
    digests = []
    for i in range(n):
        src = tmp_path / f"src{i}"
        src.write_bytes(f"object {i}\n".encode() * (i + 1))
        digest = cache.put(f"sha256:{cache.calculate_hash(str(src))}", str(src))
        assert digest is not None
        digests.append(digest)
    return digests


def test_alias_many_records_every_key_of_a_stored_object_and_none_of_a_missing_one(
        tmp_path: Path) -> None:
    cache = PackageCache(str(tmp_path / "cache"), strict=True)
    digests = _sources(tmp_path, cache, N)
    rows: list[tuple[str, str, str | None, dict | None]] = [
        (f"wheel:p{i}.whl", d, "wheel", {"i": i}) for i, d in enumerate(digests)]
    rows.insert(7, ("wheel:ghost.whl", "f" * 64, "wheel", None))  # no such object
    gens = []
    real_bump = cache.index.bump_generation
    cache.index.bump_generation = lambda: (gens.append(1), real_bump())[1]  # type: ignore[method-assign]
    out = cache.alias_many(rows)
    assert out == [r[0] != "wheel:ghost.whl" for r in rows]
    assert len(gens) == 1  # one transaction for all of them
    for i, d in enumerate(digests):
        entry = cache.lookup(f"wheel:p{i}.whl")
        assert entry is not None and entry.digest == d and entry.meta == {"i": i}
        assert entry.kind == "wheel"
    assert cache.lookup("wheel:ghost.whl") is None
    assert cache.alias_many([]) == []


def test_a_changed_object_is_not_aliased(tmp_path: Path) -> None:
    cache = PackageCache(str(tmp_path / "cache"), strict=False)
    digests = _sources(tmp_path, cache, 3)
    path = cache.object_path(digests[1])
    os.chmod(path, 0o644)
    path.write_bytes(b"other bytes of the same size"[:path.stat().st_size].ljust(
        path.stat().st_size, b"x"))
    os.chmod(path, 0o444)
    out = cache.alias_many([(f"wheel:p{i}.whl", d, None, None) for i, d in enumerate(digests)])
    assert out == [True, False, True]  # verified by its hash: quarantined, never named
    assert cache.lookup("wheel:p1.whl") is None


def test_a_batch_killed_midway_leaves_no_key_and_none_dangling(tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    cache = PackageCache(str(cache_dir), strict=True)
    _sources(tmp_path, cache, N)
    cache.close()
    p = subprocess.run([sys.executable, "-c", KILLER, str(cache_dir), str(N), str(N // 2)],
                       cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == -signal.SIGKILL, p.stdout + p.stderr
    cache = PackageCache(str(cache_dir), strict=True)
    assert cache.keys("wheel:") == []  # all or none: none (one alias() at a time left N/2 - 1)
    assert cache.index.dangling_keys() == []
    report = cache.verify()
    assert not any(report.values()), report
    # and the same batch, not killed, records all of them
    p = subprocess.run([sys.executable, "-c", KILLER, str(cache_dir), str(N), str(N + 1)],
                       cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and "not killed" in p.stdout, p.stderr
    assert len(cache.keys("wheel:")) == N


def test_an_object_evicted_after_its_check_gets_no_key(tmp_path: Path) -> None:
    """An object checked good, then evicted (or quarantined) by another process before the
    keys are written: its key is not recorded and its object row is not made again (a row
    without its file); the others are. alias() is the same call for one key."""
    cache = PackageCache(str(tmp_path / "cache"), strict=True)
    digests = _sources(tmp_path, cache, 3)
    store = cache.store
    real_verify = store.verify

    def verify_then_evict(digest: str, size: int, *, full: bool = False) -> bool:
        good = real_verify(digest, size, full=full)
        if digest == digests[1]:
            assert store.quarantine(digest, quiet=True)  # as a concurrent gc or check would
        return good

    store.verify = verify_then_evict  # type: ignore[method-assign]
    out = cache.alias_many([(f"wheel:p{i}.whl", d, None, None) for i, d in enumerate(digests)])
    assert out == [True, False, True]
    assert cache.lookup("wheel:p1.whl") is None
    assert store.index.object_size(digests[1]) is None and not store.present(digests[1], 1)

    def verify_then_evict_all(digest: str, size: int, *, full: bool = False) -> bool:
        good = real_verify(digest, size, full=full)
        assert store.quarantine(digest, quiet=True)
        return good

    store.verify = verify_then_evict_all  # type: ignore[method-assign]
    assert not cache.alias("wheel:single.whl", digests[2])
    assert cache.lookup("wheel:single.whl") is None
    assert store.index.object_size(digests[2]) is None
