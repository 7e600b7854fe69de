"""After a downgrade: an index written by a newer pkgcache (a fake future schema version) turns
the cache off with one line and is left exactly as it was, for the newer release to use again."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from cache_core import PackageCache, errors
from cache_core.index.migrations import SCHEMA_VERSION
from tests.support.cli import run_cli

FUTURE = SCHEMA_VERSION + 1


def _future_cache(tmp_path: Path) -> Path:
    cache_dir = tmp_path / "cache"
    (tmp_path / "f").write_bytes(b"from the newer release")
    PackageCache(str(cache_dir)).put("k", str(tmp_path / "f"))
    conn = sqlite3.connect(cache_dir / "index-v1.sqlite")
    conn.execute(f"PRAGMA user_version={FUTURE}")
    conn.commit()
    conn.close()
    return cache_dir


def _untouched(cache_dir: Path) -> None:
    conn = sqlite3.connect(cache_dir / "index-v1.sqlite")
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == FUTURE
        assert conn.execute("SELECT key FROM keys").fetchall() == [("k",)]
    finally:
        conn.close()


def test_every_command_says_one_line_and_leaves_a_newer_index_alone(tmp_path: Path):
    cache_dir = _future_cache(tmp_path)
    for args in (("stats",), ("gc",), ("verify",), ("get", "k"), ("ls",), ("clear",)):
        r = run_cli(*args, cache_dir=cache_dir)
        assert r.returncode == 4, (args, r.stdout, r.stderr)       # cache unusable
        lines = r.stderr.splitlines()
        assert len(lines) == 1 and "newer than this pkgcache" in lines[0], (args, r.stderr)
        assert "Traceback" not in r.stderr
    _untouched(cache_dir)


def test_the_api_is_a_miss_with_one_warning(tmp_path: Path, capsys, monkeypatch):
    monkeypatch.setattr(errors, "_warned", set())   # warn() says a message once per process
    cache_dir = _future_cache(tmp_path)
    cache = PackageCache(str(cache_dir))
    assert cache.get("k") is None
    assert cache.put("k2", str(tmp_path / "f")) is None
    assert not cache.exists("k")
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("pkgcache: warning: "), err
    _untouched(cache_dir)
