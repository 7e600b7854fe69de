"""Simulations are left untouched and silent: ``pkgcache pip install --dry-run`` (any spelling
pip accepts) runs plain pip as asked and writes nothing: no cache opened, no object, no index
row, no trust record, nothing for the fleet. Real pip against the PEP 503 index on 127.0.0.1."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cache_core import PackageCache
from hooks.pip.install import install, plain
from hooks.pip.options import parse
from tests.support.cli import run_cli
from tests.support.env import child_env
from tests.support.pip import Index, py


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) \
        if root.exists() else []


@pytest.mark.parametrize("spelling", [["--dry-run"], ["--dry"], [], ["--quiet", "--dry-run"]])
def test_dry_run_is_plain_pip_and_writes_nothing(
        spelling: list[str], cache: PackageCache, index: Index, make_venv, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> None:
    """An sdist (delta, built by a real dry run only as plain pip builds it) and wheels."""
    if not spelling:
        monkeypatch.setenv("PIP_DRY_RUN", "1")  # pip's environment spelling
    req = tmp_path / "req.txt"
    req.write_text("alpha\ndelta\n")
    args = [*spelling, "-i", index.url, "-r", str(req)]
    v = make_venv()
    capfd.readouterr()
    assert plain(py(v), parse(args)) == 0
    want = capfd.readouterr()
    assert ("Would install" in want.out) != ("--quiet" in args)
    opened: list[bool] = []

    def opener() -> PackageCache:
        opened.append(True)
        return cache

    state = tmp_path / "state"
    before = _files(Path(cache.root)), _files(state)
    v = make_venv()
    assert install(opener, ["--python", py(v), *args]) == 0
    got = capfd.readouterr()
    assert (got.out, got.err) == (want.out, want.err)
    assert opened == []  # nothing opened: nothing cached, built or published
    assert (_files(Path(cache.root)), _files(state)) == before
    # and with an open cache handed in (a caller that opened it already): still nothing
    assert install(cache, ["--python", py(v), *args]) == 0
    assert capfd.readouterr().out == want.out
    assert (_files(Path(cache.root)), _files(state)) == before  # (no index, no object)
    assert not list(v.glob("lib/python*/site-packages/alpha"))  # a simulation installs nothing


def test_the_cli_dry_run_creates_no_cache_and_no_state(
        index: Index, make_venv, tmp_path: Path) -> None:
    """``pkgcache pip install --dry-run`` as users run it: the cache directory and the state
    directory are not even created; pip's output is plain pip's."""
    v = make_venv()
    args = ["--dry-run", "-i", index.url, "alpha"]
    want = subprocess.run([sys.executable, "-m", "pip", "--python", py(v), "install", *args],
                          capture_output=True, text=True, env=child_env())
    assert want.returncode == 0 and "Would install" in want.stdout, want.stderr
    out = run_cli("pip", "install", "--python", py(v), *args, cache_dir=tmp_path / "c",
                  env={"PKGCACHE_STATE_DIR": str(tmp_path / "st")})
    assert (out.returncode, out.stdout, out.stderr) == (0, want.stdout, want.stderr)
    assert not (tmp_path / "c").exists() and not (tmp_path / "st").exists()
