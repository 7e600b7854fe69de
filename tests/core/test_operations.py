"""Operations: quarantine retention, and stats that count what happened."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from cache_core import PackageCache
from cache_core.storage.local import maintenance as maintenance
from tests.support.cli import run_cli

KB = 1024


def corrupt_one(cache: PackageCache, tmp: Path, key: str, size: int) -> None:
    """Store key, flip its object's bytes, and read it so the core quarantines it."""
    src = tmp / f"src-{key.replace(':', '_')}"
    src.write_bytes(os.urandom(size))
    digest = cache.put(key, str(src))
    assert digest
    obj = cache.object_path(digest)
    os.chmod(obj, 0o644)
    obj.write_bytes(os.urandom(size))        # same size, other bytes
    assert cache.get(key) is None             # detected, moved to quarantine/


def quarantined(cache_dir: Path) -> list[Path]:
    return sorted((cache_dir / "quarantine").iterdir())


def test_gc_older_than_zero_empties_quarantine(cache_dir: Path, tmp_path: Path):
    cache = PackageCache(str(cache_dir))
    corrupt_one(cache, tmp_path, "k:1", 50 * KB)
    cache.close()
    assert len(quarantined(cache_dir)) == 1
    r = run_cli("--cache-dir", str(cache_dir), "stats", "--json")
    s = json.loads(r.stdout)
    assert s["quarantine_files"] == 1 and s["quarantine_bytes"] == 50 * KB
    r = run_cli("--cache-dir", str(cache_dir), "gc", "--older-than", "0d")
    assert r.returncode == 0, r.stderr
    assert "emptied 1 quarantined files" in r.stdout
    assert quarantined(cache_dir) == []


def test_clear_empties_quarantine(cache_dir: Path, tmp_path: Path):
    cache = PackageCache(str(cache_dir))
    corrupt_one(cache, tmp_path, "k:1", 10 * KB)
    cache.close()
    r = run_cli("--cache-dir", str(cache_dir), "clear")
    assert r.returncode == 0, r.stderr
    assert quarantined(cache_dir) == []


def test_verify_repair_quarantine_then_plain_gc_applies_age(cache_dir: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch):
    cache = PackageCache(str(cache_dir))
    src = tmp_path / "a"
    src.write_bytes(os.urandom(20 * KB))
    digest = cache.put("k:a", str(src))
    obj = cache.object_path(digest)
    os.chmod(obj, 0o644)
    obj.write_bytes(b"x" * (20 * KB))
    cache.verify(repair=True)
    assert len(quarantined(cache_dir)) == 1
    cache.gc()                                # within the retention: kept for inspection
    assert len(quarantined(cache_dir)) == 1
    monkeypatch.setattr(maintenance, "QUARANTINE_MAX_AGE", 0)
    result = cache.gc()                       # past the retention: removed by a plain gc
    assert result["quarantine_removed"] == 1
    assert quarantined(cache_dir) == []


def test_quarantine_counts_against_the_cap_and_goes_first(cache_dir: Path, tmp_path: Path):
    cache = PackageCache(str(cache_dir), max_size_bytes=400 * KB)
    corrupt_one(cache, tmp_path, "bad:1", 30 * KB)   # 30 KiB <= 10 % of the cap: kept
    assert len(quarantined(cache_dir)) == 1
    for i in range(7):                               # 350 KiB of good objects
        p = tmp_path / f"g{i}"
        p.write_bytes(os.urandom(50 * KB))
        cache.put(f"good:{i}", str(p))
    # 350 + 30 > 360 (90 % of the cap): the quarantined file goes before any good object
    result = cache.gc()
    assert result["quarantine_removed"] == 1
    assert result["evicted"] == 0
    assert quarantined(cache_dir) == []
    assert all(cache.exists(f"good:{i}") for i in range(7))


def test_quarantine_size_bound_applies_when_an_object_is_quarantined(cache_dir: Path,
                                                                     tmp_path: Path):
    cache = PackageCache(str(cache_dir), max_size_bytes=1000 * KB)   # quarantine <= 100 KiB
    corrupt_one(cache, tmp_path, "bad:1", 80 * KB)
    corrupt_one(cache, tmp_path, "bad:2", 80 * KB)   # 160 KiB > 100 KiB: the older one goes
    left = quarantined(cache_dir)
    assert len(left) == 1
    assert left[0].stat().st_size == 80 * KB
    assert cache.stats()["quarantine_bytes"] == 80 * KB


def test_stats_text_shows_puts_buckets_and_quarantine(cache_dir: Path, tmp_path: Path):
    cache = PackageCache(str(cache_dir))
    p = tmp_path / "f"
    p.write_bytes(b"y" * 3000)
    cache.put("k:f", str(p))
    cache.bucket("git-v1")
    cache.record_bucket_entry("git-v1", "m.git", 2 * 1024 * KB)
    cache.close()
    r = run_cli("--cache-dir", str(cache_dir), "stats")
    assert r.returncode == 0, r.stderr
    lines = {ln[:18].strip(): ln[18:] for ln in r.stdout.splitlines()}
    assert lines["puts"].startswith("1 (2.9 KiB)")
    assert lines["in buckets"] == "2.0 MiB"
    assert lines["quarantine"] == "0 files, 0 B"


def test_count_miss_and_count_hit_are_public_and_counted(cache_dir: Path, tmp_path: Path):
    cache = PackageCache(str(cache_dir))
    p = tmp_path / "w.whl"
    p.write_bytes(b"z" * 1000)
    cache.count_miss("wheel:w.whl")          # the driver downloaded it itself
    cache.put("wheel:w.whl", str(p))
    assert cache.count_hit("wheel:w.whl")    # the driver served it through its own link
    assert cache.count_hit("wheel:w.whl")
    assert not cache.count_hit("wheel:absent.whl")
    s = cache.stats()
    assert (s["hits"], s["misses"], s["bytes_served"]) == (2, 1, 2000)
    assert cache.lookup("wheel:w.whl").hits == 2
