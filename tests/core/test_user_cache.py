"""A non-root user reads root's safe system cache and writes their own."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from cache_core import PackageCache
from tests.support.user import NOBODY, pkgcache_as, readable_tree

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"),
                                reason="runs pkgcache as uid 65534: needs root and setpriv")


def as_user(home: Path, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """pkgcache ARGS as uid 65534 with HOME=home and the given config (from a copy of the code
    uid 65534 can read: the checkout itself may be private)."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "PKGCACHE_CONFIG": str(config),
           "LANG": "C.UTF-8"}
    return pkgcache_as(NOBODY, args, env, cwd=home, timeout=60)


@pytest.fixture
def world(public_dir: Path) -> dict[str, Path]:
    """Root's cache (one file in it), its config, and a home directory for uid 65534, in a
    directory uid 65534 can traverse."""
    system = public_dir / "system-cache"
    src = public_dir / "payload"
    src.write_bytes(b"from the system cache\n" * 100)
    with PackageCache(str(system)) as cache:
        assert cache.put("deb:x_1_all.deb", str(src))
    config = public_dir / "config.yaml"
    config.write_text(f"performance:\n  cache:\n    directory: {system}\n")
    home = public_dir / "home"
    home.mkdir()
    os.chown(home, NOBODY, NOBODY)
    return {"system": system, "config": config, "home": home, "src": src}


def tree_state(path: Path) -> dict[str, tuple[int, float]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime) for p in path.rglob("*")}


def test_user_gets_hits_from_root_cache_and_writes_own(world: dict[str, Path]) -> None:
    before = tree_state(world["system"])
    home = world["home"]
    r = as_user(home, world["config"], "get", "deb:x_1_all.deb", "-o", str(home / "x.deb"))
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    assert (home / "x.deb").read_bytes() == world["src"].read_bytes()
    mine = home / "new.bin"
    mine.write_bytes(b"the user's own download")
    os.chown(mine, NOBODY, NOBODY)
    r = as_user(home, world["config"], "put", "url:https://example.org/new.bin", str(mine))
    assert r.returncode == 0, r.stderr
    r = as_user(home, world["config"], "exists", "deb:x_1_all.deb")
    assert r.returncode == 0
    r = as_user(home, world["config"], "stats", "--json")
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["cache_dir"] == str(home / ".vps-configurator" / "cache")
    assert s["system_cache_dir"] == str(world["system"])
    assert (s["hits"], s["puts"]) == (1, 1)
    own = home / ".vps-configurator" / "cache"
    assert own.stat().st_uid == NOBODY
    assert tree_state(world["system"]) == before        # root's cache untouched


def test_shipped_config_does_not_lock_a_user_out(world: dict[str, Path]) -> None:
    shipped = readable_tree() / "debian" / "config.yaml"  # the packaged config
    r = as_user(world["home"], shipped, "stats", "--json")
    assert r.returncode == 0, r.stderr
    assert "refusing" not in r.stderr
    s = json.loads(r.stdout)
    assert s["cache_dir"] == str(world["home"] / ".vps-configurator" / "cache")


def test_unsafe_system_cache_is_not_read(world: dict[str, Path]) -> None:
    os.chmod(world["system"], 0o777)       # others may write it: never trusted
    home = world["home"]
    r = as_user(home, world["config"], "get", "deb:x_1_all.deb", "-o", str(home / "x.deb"))
    assert r.returncode == 1
    assert not (home / "x.deb").exists()
    assert "writable by other users" in r.stderr


def test_explicit_cache_dir_of_root_is_a_clear_error(world: dict[str, Path]) -> None:
    r = as_user(world["home"], world["config"], "--cache-dir", str(world["system"]), "stats")
    assert r.returncode == 4
    assert r.stderr.count("\n") == 1 and "owned by uid 0" in r.stderr


def test_private_root_index_is_a_quiet_miss(world: dict[str, Path]) -> None:
    os.chmod(world["system"] / "index-v1.sqlite", 0o600)    # root keeps its keys private
    home = world["home"]
    r = as_user(home, world["config"], "get", "deb:x_1_all.deb", "-o", str(home / "x.deb"))
    assert r.returncode == 1
    assert "warning" not in r.stderr
    r = as_user(home, world["config"], "stats", "--json")
    assert r.returncode == 0 and r.stderr == ""
