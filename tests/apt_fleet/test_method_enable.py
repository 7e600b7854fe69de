"""`pkgcache apt enable` from a pip install (no .deb) turns the download method on too, and
`apt disable` takes away all it added (issue 21); the real apt-get against the signed repo."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from tests.apt_fleet.test_fleet_apt import _ok
from tests.support.cli import pip_installed


def _tree(*dirs) -> set[str]:
    return {str(p) for d in dirs if d.exists() for p in d.rglob("*")}


@pytest.mark.slow
def test_enable_from_a_pip_install_gives_a_working_method(fleet, tmp_path) -> None:
    exe = pip_installed(tmp_path)
    s = fleet.server("p", method=False, remotes=[])
    methods = tmp_path / "methods"
    env = s.env()
    before = _tree(s.parts, methods)

    def pkgcache(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(exe), *args], env=env, capture_output=True, text=True)

    out = pkgcache("apt", "status").stdout
    assert re.search(r"^method\s+NOT active", out, re.M) and "apt enable" in out, out
    res = pkgcache("apt", "enable", "--method-dir", str(methods))
    assert res.returncode == 0, res.stderr
    assert f"05pkgcache-method (the download method, in {methods})" in res.stdout, res.stdout
    for name in ("http", "https"):
        assert f"{exe.parent}/python3 -I -S " in (methods / name).read_text()
    st = json.loads(pkgcache("apt", "status", "--json").stdout)
    assert st["method"]["active"] and st["method"]["http"] == str(methods / "http"), st
    fleet.origin.reset()
    res = s.apt("update")
    _ok(res)
    assert res.stderr == "", res.stderr
    run = json.loads(pkgcache("apt", "status", "--json").stdout)["last_method_run"]
    assert run and run["counts"]["origin"] >= 2, run  # InRelease and Packages went through it
    assert s.cache().exists(f"{fleet.url}./InRelease")  # ... and it kept the InRelease
    _ok(s.apt("install", "gamma"))
    assert s.installed("gamma") == "0.5"

    res = pkgcache("apt", "disable")
    assert res.returncode == 0, res.stderr
    assert _tree(s.parts, methods) == before and not methods.exists(), res.stdout
    out = pkgcache("apt", "status").stdout
    assert re.search(r"^method\s+NOT active", out, re.M), out


def test_enable_refuses_a_method_dir_it_cannot_quote(fleet, tmp_path) -> None:
    s = fleet.server("q", method=False, remotes=[])
    bad = tmp_path / "my methods"
    res = subprocess.run([str(s.pkgcache_bin), "apt", "enable", "--command", str(s.pkgcache_bin),
                          "--method-dir", str(bad)], env=s.env(), capture_output=True, text=True)
    assert res.returncode == 2, res
    assert res.stderr.count("\n") == 1 and "not a plain absolute path" in res.stderr, res.stderr
    assert not bad.exists() and not (s.parts / "05pkgcache-method").exists()
