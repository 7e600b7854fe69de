"""Eviction under the cap, verify/repair, and the CLI's commands and exit codes."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path

import pytest

from cache_core import PackageCache
from tests.support.cli import run_cli

KB = 1024


def fill(cache: PackageCache, tmp: Path, n: int, size: int, prefix: str = "k") -> list[str]:
    keys = []
    for i in range(n):
        p = tmp / f"{prefix}{i}"
        p.write_bytes(os.urandom(size))
        cache.put(f"{prefix}:{i}", str(p))
        keys.append(f"{prefix}:{i}")
    return keys


def test_eviction_keeps_cache_under_cap_lru_first(cache_dir: Path, tmp_path: Path):
    cache = PackageCache(str(cache_dir), max_size_bytes=100 * KB)
    keys = fill(cache, tmp_path, 5, 10 * KB, "old")
    # make the old ones look used long ago, except old:0 which we then use
    with cache.index.write() as c:
        c.execute("UPDATE objects SET last_used = last_used - 10000")
        c.execute("UPDATE keys SET last_used = last_used - 10000")
    assert cache.get(keys[0])
    cache.index.flush()
    fill(cache, tmp_path, 8, 10 * KB, "new")
    s = cache.stats()
    assert s["size_bytes"] <= 100 * KB
    assert s["evictions"] >= 3
    assert cache.exists(keys[0])            # recently used: kept
    assert not cache.exists(keys[1])        # least recently used: gone
    assert cache.exists("new:7")
    on_disk = sum(f.stat().st_size for f in (cache_dir / "objects-v1").rglob("*") if f.is_file())
    assert on_disk == s["size_bytes"]


def test_hardlinked_objects_are_pinned_not_counted_as_freed(cache_dir: Path, tmp_path: Path):
    cache = PackageCache(str(cache_dir))
    fill(cache, tmp_path, 4, 10 * KB)
    pinned_src = tmp_path / "pinned"
    pinned_src.write_bytes(os.urandom(10 * KB))
    cache.put("pinned", str(pinned_src), link=True)   # shares its inode with pinned_src
    assert Path(cache.get("pinned")).stat().st_nlink == 2
    with cache.index.write() as c:
        c.execute("UPDATE objects SET last_used = 0 WHERE digest = ?", (cache.lookup("pinned").digest,))
    result = cache.gc(max_size_bytes=20 * KB)
    assert result["pinned"] == 1 and result["pinned_bytes"] == 10 * KB
    assert cache.exists("pinned")
    assert cache.stats()["size_bytes"] - result["pinned_bytes"] <= 18 * KB


def test_gc_older_than(cache_dir: Path, tmp_path: Path):
    cache = PackageCache(str(cache_dir))
    fill(cache, tmp_path, 3, KB)
    with cache.index.write() as c:
        c.execute("UPDATE objects SET last_used = ? WHERE digest = (SELECT digest FROM keys WHERE key='k:0')",
                  (time.time() - 40 * 86400,))
    cache.gc(older_than=30 * 86400)
    assert not cache.exists("k:0") and cache.exists("k:1") and cache.exists("k:2")


def test_verify_finds_and_repairs_every_kind_of_damage(cache_dir: Path, tmp_path: Path):
    cache = PackageCache(str(cache_dir))
    fill(cache, tmp_path, 4, KB)
    d = [cache.lookup(f"k:{i}").digest for i in range(4)]
    obj = [Path(cache.object_path(x)) for x in d]
    os.chmod(obj[0], 0o644)
    obj[0].write_bytes(b"\0" * KB)                    # same-size corruption
    obj[1].unlink()                                   # row without file
    with cache.index.write() as c:                    # file without row
        c.execute("DELETE FROM objects WHERE digest = ?", (d[2],))
    (cache_dir / "tmp" / ".pkgcache-999999-dead.tmp").write_bytes(b"partial")  # crash leftover
    (cache_dir / "objects-v1" / "sha256" / "zz").mkdir()                       # stray
    report = cache.verify()
    assert report["corrupt"] == [d[0]]
    assert report["missing"] == [d[1]]
    assert report["orphans"] == [d[2]]
    assert report["temps"] == [".pkgcache-999999-dead.tmp"]
    assert len(report["strays"]) == 1
    cache.verify(repair=True)
    assert not any(cache.verify().values())
    assert cache.get("k:3") and cache.get(f"sha256:{d[2]}")
    assert cache.get("k:0") is None and cache.get("k:1") is None
    s = cache.stats()
    assert s["objects"] == 2 and s["size_bytes"] == 2 * KB


def test_index_deleted_or_corrupted_is_fail_open_and_repairable(cache_dir: Path, tmp_path: Path):
    cache = PackageCache(str(cache_dir))
    fill(cache, tmp_path, 2, KB)
    cache.close()
    for suffix in ("", "-wal", "-shm"):
        p = Path(str(cache_dir / "index-v1.sqlite") + suffix)
        if p.exists():
            p.unlink()
    (cache_dir / "index-v1.sqlite").write_bytes(b"this is not a database" * 100)
    broken = PackageCache(str(cache_dir))
    assert broken.get("k:0") is None          # keys are lost: a miss, not an exception
    assert [p.name.split(".")[0] for p in (cache_dir / "quarantine").iterdir()] == ["index"]
    report = broken.verify(repair=True)
    assert len(report["orphans"]) == 2         # objects re-indexed by digest
    assert broken.stats()["objects"] == 2
    assert not any(broken.verify().values())


def test_cli_round_trip_and_exit_codes(cache_dir: Path, tmp_path: Path):
    src = tmp_path / "f"
    src.write_bytes(b"hello")
    cd = ["--cache-dir", str(cache_dir)]
    r = run_cli(*cd, "put", "https://e/f", str(src))
    assert r.returncode == 0 and len(r.stdout.strip()) == 64
    assert run_cli(*cd, "exists", "https://e/f").returncode == 0
    assert run_cli(*cd, "exists", "https://e/g").returncode == 1
    r = run_cli(*cd, "get", "https://e/g")
    assert r.returncode == 1 and r.stderr.count("\n") == 1
    out = tmp_path / "out"
    assert run_cli(*cd, "get", "https://e/f", "-o", str(out)).returncode == 0
    assert out.read_bytes() == b"hello"
    r = run_cli(*cd, "stats", "--json")
    s = json.loads(r.stdout)
    assert s["hits"] == 1 and s["misses"] == 1 and s["entries"] == 1
    assert "https://e/f" in run_cli(*cd, "ls").stdout
    assert run_cli(*cd, "verify").returncode == 0
    assert run_cli(*cd, "gc", "--max-size", "0.000001G").returncode == 0
    assert run_cli(*cd, "clear").returncode == 0
    assert run_cli(*cd, "exists", "https://e/f").returncode == 1
    r = run_cli(*cd, "stats", "--zero", "--json")
    assert json.loads(r.stdout)["hits"] == 0


@pytest.mark.parametrize(("args", "code", "needle"), [
    (["gc", "--max-size", "lots"], 2, "cannot read size"),
    (["put", "k", "/nonexistent/file"], 2, "no such file"),
    (["frobnicate"], 2, "invalid choice"),
    (["get"], 2, "required"),
])
def test_cli_bad_input_one_line_no_traceback(cache_dir: Path, args, code, needle):
    r = run_cli("--cache-dir", str(cache_dir), *args)
    assert r.returncode == code
    assert needle in r.stderr and "Traceback" not in r.stderr
    assert r.stderr.strip().count("\n") == 0


def test_cli_bad_config_exit_3(tmp_path: Path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("performance:\n  cache:\n    max_size_gb: huge\n")
    r = run_cli("--config", str(cfg), "stats")
    assert r.returncode == 3 and str(cfg) in r.stderr and "max_size_gb" in r.stderr
    assert "Traceback" not in r.stderr


def test_cli_unsafe_dir_exit_4(cache_dir: Path):
    cache_dir.mkdir()
    os.chmod(cache_dir, 0o777)
    r = run_cli("--cache-dir", str(cache_dir), "stats")
    assert r.returncode == 4 and "writable by other users" in r.stderr


def test_cli_help_on_every_command():
    for cmd in ("put", "get", "exists", "ls", "stats", "verify", "gc", "clear"):
        r = run_cli(cmd, "--help")
        assert r.returncode == 0 and "usage:" in r.stdout
    assert run_cli("--version").stdout.startswith("pkgcache ")


def test_index_is_wal_and_has_running_totals(cache_dir: Path, tmp_path: Path):
    cache = PackageCache(str(cache_dir))
    fill(cache, tmp_path, 3, KB)
    conn = sqlite3.connect(cache_dir / "index-v1.sqlite")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    totals = dict(conn.execute("SELECT name, value FROM counters"))
    assert totals["total_size"] == 3 * KB and totals["objects"] == 3 and totals["entries"] == 3


@pytest.mark.parametrize("cmd", ["gc", "stats", "verify", "clear"])
def test_maintenance_never_creates_a_missing_or_disabled_cache(cache_dir: Path, tmp_path: Path, cmd: str):
    assert run_cli("--cache-dir", str(cache_dir), cmd).returncode == (1 if cmd == "stats" else 0)
    assert not cache_dir.exists()
    cfg = tmp_path / "off.yaml"
    cfg.write_text(f"performance:\n  cache:\n    enabled: false\n    directory: {cache_dir}\n")
    assert run_cli("--config", str(cfg), cmd).returncode == 0
    assert not cache_dir.exists()


def test_one_cleaner_at_a_time(cache_dir: Path, tmp_path: Path):
    """While another cleaner holds the gc lock, an automatic gc skips instead of piling up."""
    cache = PackageCache(str(cache_dir))
    fill(cache, tmp_path, 3, 10 * KB)
    other = PackageCache(str(cache_dir))
    with other.lock("gc"):   # a second open file description: flock conflicts as across processes
        assert cache.gc(max_size_bytes=1) == {"skipped": 1}
        assert cache.stats()["objects"] == 3
    assert cache.gc(max_size_bytes=1)["evicted"] == 3


@pytest.mark.parametrize("cmd", [["get", "k:1"], ["get", "k:1", "-o", "OUT"], ["ls"], ["ls", "--json"],
                                 ["stats"], ["stats", "--json"], ["exists", "k:1"]])
def test_read_only_commands_on_a_missing_cache_say_so_and_create_nothing(tmp_path: Path,
                                                                         cmd: list[str]):
    """A typo'd --cache-dir: exit 1 (not found) and one line naming the directory, no cache
    tree made, no zeros printed as if it were an empty cache (exists: a silent predicate)."""
    typo = tmp_path / "cahce"
    r = run_cli("--cache-dir", str(typo), *[str(tmp_path / "out") if a == "OUT" else a for a in cmd])
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr == ("" if cmd[0] == "exists" else f"pkgcache: no cache at {typo}\n")
    assert not typo.exists() and not (tmp_path / "out").exists()


def test_stats_does_not_call_enabled_a_cache_put_refuses(tmp_path: Path):
    """Where put refuses to make a cache (under a file; in a directory other users can write),
    stats must not show a usable, enabled cache with zero entries."""
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    src = tmp_path / "f"
    src.write_bytes(b"x")
    for where in (src / "cache", shared / "cache", shared):
        put = run_cli("--cache-dir", str(where), "put", "k:1", str(src))
        assert put.returncode == 4 and len(put.stderr.splitlines()) == 1
        stats = run_cli("--cache-dir", str(where), "stats")
        assert stats.returncode != 0 and "enabled" not in stats.stdout, stats.stdout
        assert len(stats.stderr.splitlines()) == 1
