"""SIGKILL at random points (>= 100 times) and >= 8 concurrent processes on overlapping keys."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cache_core import PackageCache
from tests.core.workload import payload_ok
from tests.support import REPO

WORKLOAD = [sys.executable, "-m", "tests.core.workload"]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def check_everything_served_is_right(cache_dir: Path, nkeys: int) -> int:
    """Every key returns a correct payload or a miss; returns how many hits there were."""
    cache = PackageCache(str(cache_dir), strict=True)
    hits = 0
    for i in range(nkeys):
        key = f"key:{i}"
        path = cache.get(key)
        if path is not None:
            hits += 1
            assert payload_ok(key, Path(path).read_bytes()), key
    cache.close()
    return hits


def test_sigkill_at_random_points(cache_dir: Path):
    rng = random.Random(1234)
    trials, nkeys = 120, 24
    # A small cap keeps eviction busy; 2 victims at once so kills also land during contention.
    for trial in range(0, trials, 2):
        procs = [subprocess.Popen([*WORKLOAD, str(cache_dir), str(trial * 10 + j), "400", str(nkeys),
                                   "300000", "2000000"], env=ENV, cwd=REPO,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                 for j in range(2)]
        time.sleep(rng.uniform(0.15, 0.6))
        for p in procs:
            p.send_signal(signal.SIGKILL)
        for p in procs:
            _, err = p.communicate()
            assert b"Traceback" not in err, err.decode()
        if trial % 20 == 0:
            check_everything_served_is_right(cache_dir, nkeys)
    check_everything_served_is_right(cache_dir, nkeys)
    leftovers = list((cache_dir / "tmp").iterdir())
    cache = PackageCache(str(cache_dir), strict=True)
    cache.verify(repair=True)
    report = cache.verify()
    assert not any(report.values()), report
    assert list((cache_dir / "tmp").iterdir()) == []
    stats = cache.stats()
    on_disk = sum(f.stat().st_size for f in (cache_dir / "objects-v1").rglob("*") if f.is_file())
    assert stats["size_bytes"] == on_disk
    check_everything_served_is_right(cache_dir, nkeys)
    print(f"{trials} kills; {len(leftovers)} temp leftovers swept; {stats['objects']} objects intact")


def test_eight_processes_overlapping_keys(cache_dir: Path):
    nkeys = 12
    procs = [subprocess.Popen([*WORKLOAD, str(cache_dir), str(seed), "250", str(nkeys), "200000", "0"],
                              env=ENV, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
             for seed in range(8)]
    results = [p.communicate(timeout=600) + (p.returncode,) for p in procs]
    for out, err, rc in results:
        assert rc == 0 and out.strip() == "bad=0", (out, err)
        assert err == "", err  # zero errors and zero warnings
    assert check_everything_served_is_right(cache_dir, nkeys) == nkeys
    assert not any(PackageCache(str(cache_dir)).verify().values())


def test_eight_processes_with_eviction(cache_dir: Path):
    nkeys = 16
    procs = [subprocess.Popen([*WORKLOAD, str(cache_dir), str(100 + seed), "200", str(nkeys), "200000",
                               "1000000"], env=ENV, cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
             for seed in range(8)]
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0 and out.strip() == "bad=0", (out, err)
        assert "Traceback" not in err and "error" not in err.lower(), err
    check_everything_served_is_right(cache_dir, nkeys)
    cache = PackageCache(str(cache_dir))
    assert cache.stats()["size_bytes"] <= 1_000_000 + 200_100  # cap plus at most one in-flight put
    cache.verify(repair=True)
    assert not any(cache.verify().values())


def test_many_processes_create_one_new_cache_at_once(tmp_path: Path):
    """A brand-new cache opened by 8 processes at the same instant: no 'database is locked'."""
    script = ("import os, sys, time; from cache_core import PackageCache\n"
              "c = PackageCache(sys.argv[1], strict=True)\n"
              "open(sys.argv[2], 'wb').write(sys.argv[2].encode())\n"
              "while not os.path.exists(sys.argv[3]): time.sleep(0.0005)\n"
              "assert c.put('k:' + sys.argv[2], sys.argv[2])\n")
    for trial in range(12):
        cache_dir, go = tmp_path / f"c{trial}", tmp_path / f"go{trial}"
        procs = [subprocess.Popen([sys.executable, "-c", script, str(cache_dir),
                                   str(tmp_path / f"f{trial}-{i}"), str(go)],
                                  env=ENV, cwd=REPO, stderr=subprocess.PIPE, text=True)
                 for i in range(8)]
        time.sleep(0.4)  # all started and waiting at the barrier
        go.touch()
        for p in procs:
            _, err = p.communicate(timeout=120)
            assert p.returncode == 0, err
        assert PackageCache(str(cache_dir)).stats()["entries"] == 8


@pytest.mark.parametrize("holder", ["put", "verify", "gc-command"])
def test_a_put_made_during_another_process_gc_is_not_left_over_the_cap(
        tmp_path: Path, holder: str) -> None:
    """Process B stores while A holds the gc lock (A's own put over the cap, `pkgcache
    verify`, `pkgcache gc`): B's gc is skipped (the lock is busy), and A, once it has let the
    lock go, sees B's puts and evicts: the cap holds when both are done (before: B's puts stayed
    over the cap until the next put)."""
    from cache_core.storage.local import maintenance

    cap = 1_000_000
    a = PackageCache(str(tmp_path / "cache"), max_size_bytes=cap, strict=True)
    b = PackageCache(str(tmp_path / "cache"), max_size_bytes=cap, strict=True)
    src = tmp_path / "src"
    for i in range(4):
        src.write_bytes(bytes([i]) * 200_000)
        a.put(f"key:a{i}", str(src))
    name = "verify" if holder == "verify" else "gc"
    real = getattr(maintenance, name)
    during: list[dict] = []

    def with_b_storing(*args):  # A's work under the lock; B stores meanwhile
        out = real(*args)
        if not during:
            for i in range(3):
                src.write_bytes(bytes([100 + i]) * 300_000)
                b.put(f"key:b{i}", str(src))  # its own gc finds the lock held: skipped
            during.append(b.stats())
        return out

    setattr(maintenance, name, with_b_storing)
    try:
        if holder == "put":
            src.write_bytes(b"x" * 300_000)
            a.put("key:over", str(src))  # over the cap: A's gc runs
        elif holder == "verify":
            a.verify()
        else:
            a.gc(wait=True)
    finally:
        setattr(maintenance, name, real)
    assert during and during[0]["size_bytes"] > cap  # B's puts went over while A held it
    assert a.stats()["size_bytes"] <= cap
    assert b.get("key:b2") is not None  # the newest stays (least recently used go first)


def test_a_cap_fault_after_verify_is_one_warning_and_the_report_stands(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The cap looked at again after verify (or clear, gc) fails (a full disk, a locked
    index): verify still returns its report, with one warning."""
    cache = PackageCache(str(tmp_path / "cache"), max_size_bytes=1_000_000, strict=True)
    src = tmp_path / "src"
    src.write_bytes(b"x" * 1000)
    cache.put("key:a", str(src))

    def broken() -> None:
        raise OSError(28, "No space left on device")

    cache.store.maybe_evict = broken  # type: ignore[method-assign]
    report = cache.verify()
    assert not any(report.values()), report
    err = capsys.readouterr().err
    assert err.count("size cap not applied") == 1, err
