"""Issue 24 (apt warm path): the pre-install seed reads an install's debs from python-apt's
depcache in its own process, and gives the same set as apt-get's own `--print-uris` for the forms
it answers (the others are replayed). Real apt-get against the local repository lab."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.support import PY, REPO
from tests.support.apt import DEFAULT_DEBS, lab_in

DEBS = (*DEFAULT_DEBS, ("delta", "1.0", {"recommends": "gamma"}))

COMPARE = r"""
import json, sys
from hooks.apt import invocation, seed
from hooks.apt.aptenv import apt_pkg_module
argv = sys.argv[1:]
apt_pkg = apt_pkg_module()
words, options = invocation.parse_args(argv)
inv = invocation.AptInvocation(0, "/usr/bin/apt-get", ["apt-get", *argv], "/", words, options)
invocation.apply_config(inv, apt_pkg)
got = seed.request_in_process(inv, apt_pkg)
replay, errors = seed.replay_uris("apt-get", argv)
norm = lambda ws: None if ws is None else sorted([w.fname, w.sha256, w.size] for w in ws)
print(json.dumps({"in_process": norm(got), "replay": norm(replay), "errors": errors}))
"""


@pytest.fixture
def lab(tmp_path):
    yield from lab_in(tmp_path, debs=DEBS)


def both(lab, *argv: str) -> dict:
    res = subprocess.run([str(PY), "-c", COMPARE, *argv], env=lab.sb.env(), cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def same(lab, *argv: str) -> list:
    out = both(lab, *argv)
    assert out["in_process"] is not None, (argv, out)
    assert out["in_process"] == out["replay"], (argv, out)
    return out["in_process"]


def names(wants: list) -> list[str]:
    return [w[0].split("_", 1)[0] for w in wants]


def test_in_process_set_is_apt_gets_own(lab) -> None:
    lab.sb.apt("update", check=True)
    # nothing installed: dependencies and recommends, as apt-get resolves them
    assert names(same(lab, "install", "alpha")) == ["alpha", "beta"]
    assert names(same(lab, "install", "delta")) == ["delta", "gamma"]
    assert names(same(lab, "-y", "-qq", "--no-install-recommends", "install", "delta")) == ["delta"]
    assert names(same(lab, "-o", "APT::Install-Recommends=false", "install", "delta")) == ["delta"]
    assert names(same(lab, "reinstall", "gamma")) == ["gamma"]
    assert same(lab, "upgrade") == [] and same(lab, "dist-upgrade") == []
    lab.sb.apt("install", "alpha", "delta", check=True)

    # a newer alpha that needs a new package; beta newer too; delta unchanged
    lab.repo.add("zeta", "1.0")
    lab.repo.add("alpha", "1.1", depends="beta, zeta")
    lab.repo.add("beta", "2:1.1", arch="amd64")
    lab.republish()
    lab.sb.apt("update", check=True)
    assert names(same(lab, "upgrade")) == ["beta"]  # alpha held back: it needs a new package
    assert names(same(lab, "dist-upgrade")) == ["alpha", "beta", "zeta"]
    assert names(same(lab, "full-upgrade")) == ["alpha", "beta", "zeta"]
    assert names(same(lab, "install", "alpha")) == ["alpha", "zeta"]  # beta 1.0 still does
    assert names(same(lab, "install", "--reinstall", "delta")) == ["delta"]
    assert names(same(lab, "reinstall", "delta", "gamma")) == ["delta", "gamma"]
    assert same(lab, "install", "delta") == []  # already the newest: nothing to fetch


@pytest.mark.parametrize("argv", [
    ("install", "alpha=1.1"), ("install", "gamma", "delta-"), ("-t", "x", "install", "alpha"),
    ("install", "./alpha.deb"), ("install", "alpha*"), ("install", "--reinstall", "alpha"),
    ("install", "no-such-package"), ("build-dep", "alpha"), ("upgrade", "alpha"),
])
def test_other_forms_are_left_to_the_replay(lab, argv) -> None:
    lab.sb.apt("update", check=True)
    lab.sb.apt("install", "alpha", check=True)
    lab.repo.add("alpha", "1.1", depends="beta")
    lab.republish()
    lab.sb.apt("update", check=True)
    assert both(lab, *argv)["in_process"] is None


def test_warm_install_seeds_from_the_depcache_without_a_replay(lab) -> None:
    lab.sb.apt("update", check=True)
    lab.sb.apt("install", "alpha", check=True)
    lab.reprovision()
    res = lab.sb.apt("-y", "install", "alpha", check=True)
    assert "Need to get 0 B" in res.stdout, res.stdout
    last = lab.status()["last_seed"]
    assert (last["followed_request"], last["in_process"], last["placed"]) == (True, True, 2)
    assert lab.server.deb_requests() == []


def test_the_same_request_on_the_same_indexes_is_answered_from_its_memo(lab) -> None:
    """A warm re-provision (same request, same lists, same dpkg status) takes the set the last
    run computed (seed.request_key) and opens no package cache; a new index computes it again."""
    lab.sb.apt("update", check=True)
    lab.sb.apt("install", "alpha", check=True)
    lab.reprovision()
    lab.sb.apt("-y", "install", "alpha", check=True)  # computed in-process, remembered
    assert lab.status()["last_seed"]["in_process"] is True
    lab.reprovision()
    res = lab.sb.apt("-y", "install", "alpha", check=True)
    assert "Need to get 0 B" in res.stdout, res.stdout
    last = lab.status()["last_seed"]
    assert (last["remembered"], last["in_process"], last["placed"]) == (True, False, 2), last
    assert lab.server.deb_requests() == []
    assert lab.sb.installed("alpha") == "1.0-1" and lab.sb.installed("beta") == "2:1.0-1"

    lab.repo.add("alpha", "1.1-1", depends="beta")  # a new index: the set is computed again
    lab.republish()
    lab.sb.apt("update", check=True)
    lab.reprovision()
    lab.sb.apt("-y", "install", "alpha", check=True)
    last = lab.status()["last_seed"]
    assert (last["remembered"], last["in_process"]) == (False, True), last
    assert lab.sb.installed("alpha") == "1.1-1"
