"""The fleet's git bundle refresh as it runs on a real member: a detached
``python -m hooks.git.bundler`` started by ``pkgcache git clone``/``update`` with automatic uploads.
Found by the real-machine world (tests/world): the child must find pkgcache's code by itself,
since the .deb's /usr/bin/pkgcache runs ``python3 -I`` and hands it no PYTHONPATH."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import yaml

from tests.support.cli import run_cli
from tests.support.git import make_repo


def test_detached_bundle_refresh_publishes_without_the_tests_pythonpath(fleet, gitsrv, tmp_path,
                                                                        monkeypatch):
    """A's mirror (made before the fleet was configured) gets its bundle from the detached
    refresh, run by the system python from / with no PYTHONPATH."""
    from hooks.git import fleet as git_fleet
    from hooks.git.mirror import Mirrors, refresh

    make_repo(gitsrv.root, "proj")
    url = gitsrv.url("proj")
    cfg = yaml.safe_load(Path(fleet.config("a")).read_text())
    cfg["performance"]["cache"].pop("remote")
    (tmp_path / "plain.yaml").write_text(yaml.safe_dump(cfg))
    home = tmp_path / "home"
    home.mkdir()
    r = run_cli("--config", str(tmp_path / "plain.yaml"), "git", "clone", url,
                str(tmp_path / "a-clone"),
                env={"HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1", "LC_ALL": "C"})
    assert r.returncode == 0, r.stderr
    fleet.a.close()
    assert fleet.a.lookup(git_fleet.key_of(url)) is None
    (a,) = [p for p in (fleet.tmp / "a" / "git-v1").iterdir() if not p.name.startswith(".")]
    assert Mirrors(fleet.a).path(url) == a
    monkeypatch.delenv("PKGCACHE_REMOTE_UPLOAD")
    monkeypatch.delenv("PYTHONPATH", raising=False)
    monkeypatch.chdir("/")
    monkeypatch.setattr(sys, "executable", "/usr/bin/python3")  # no venv that finds the checkout
    refresh(fleet.a, [url])
    deadline = time.monotonic() + 30
    while fleet.a.lookup(git_fleet.key_of(url)) is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert fleet.a.lookup(git_fleet.key_of(url)) is not None, "the detached refresh published nothing"
