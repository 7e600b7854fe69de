"""A warm `apt-get update` costs what it costs without pkgcache (issue 24): when nothing the
post-update hook reads has changed since its last full run (hooks/apt/updatememo.py), the hook
ends at once and the cache is not touched; a new Release file, or a cache that changed (cleared),
runs the full import again. Real apt-get and gpgv, signed repository on 127.0.0.1."""

from __future__ import annotations

import hashlib
import subprocess

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.root]


def _ok(res: subprocess.CompletedProcess[str]) -> None:
    assert res.returncode == 0, f"rc={res.returncode}\n{res.stdout}\n{res.stderr}"
    assert "pkgcache" not in res.stderr, res.stderr


def _release(server):
    """(cache key, digest) of the InRelease the cache holds for the server's source, or None."""
    got = [e for e in server.cache().keys("http") if e.key.endswith("/InRelease")]
    return (got[0].key, got[0].digest.split(":", 1)[-1]) if got else None


def _lists_release(server) -> str:
    (path,) = (server.root / "var/lib/apt/lists").glob("*_InRelease")
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_warm_update_leaves_the_cache_alone_until_something_changes(fleet) -> None:
    a = fleet.server("a")
    a.install_snippet()
    _ok(a.apt("update"))  # the full import: apt's InRelease joins the cache
    key, digest = _release(a)
    assert digest == _lists_release(a)
    confirmed = a.cache().lookup(key).meta["confirmed"]
    token = a.cache().generation()
    for _ in range(2):  # warm: nothing new (the full run recorded the memo)
        _ok(a.apt("update"))
        assert a.cache().generation() == token  # no key or object changed
        assert a.cache().lookup(key).meta["confirmed"] == confirmed

    pin = a.root / "etc/apt/preferences.d/pkgcache-test"  # the seed's plan follows pinning
    pin.write_text("Package: gamma\nPin: release *\nPin-Priority: 100\n")
    _ok(a.apt("update"))
    assert a.cache().lookup(key).meta["confirmed"] != confirmed  # a full run: not the memo
    pin.unlink()
    _ok(a.apt("update"))
    confirmed = a.cache().lookup(key).meta["confirmed"]
    _ok(a.apt("update"))
    assert a.cache().lookup(key).meta["confirmed"] == confirmed  # warm again

    fleet.repo.add("delta", "1.0", size=1000)  # the origin publishes a new Release
    fleet.repo.publish()
    _ok(a.apt("update"))
    assert _release(a) == (key, _lists_release(a)) and _lists_release(a) != digest

    a.cache().clear()  # the cache changed under the memo: the full import runs again
    assert _release(a) is None
    _ok(a.apt("update"))
    assert _release(a) == (key, _lists_release(a))


def test_a_warm_updates_hook_as_installed_loads_nothing_but_its_memo(fleet, tmp_path) -> None:
    """As the .deb installs it (/usr/bin/pkgcache: the system's python3 -I -S), the hook of a
    warm update reads its memo with the standard library alone: no site (dist-packages and
    their .pth files), importlib, parser module or cache; the full run before it, with site
    loaded late, recorded that memo."""
    a = fleet.server("a")
    a.install_snippet()
    log = tmp_path / "imports"
    a.write_installed_cli(tmp_path, flags="-X importtime", tail=f'2>>"{log}"')
    _ok(a.apt("update"))  # the full import (site loaded once the memo said no)
    assert _release(a) is not None and "site" in log.read_text()
    token = a.cache().generation()
    log.write_text("")
    _ok(a.apt("update"))
    assert a.cache().generation() == token
    imported = {line.split("|")[-1].strip() for line in log.read_text().splitlines()
                if line.startswith("import time:")}
    assert "hooks.apt.updatememo" in imported
    late = {"site", "importlib", "warnings", "hooks.cli.app", "yaml", "sqlite3", "cache_core.api"}
    assert not imported & late, sorted(imported & late)
