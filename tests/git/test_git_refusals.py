"""Where plain git refuses, `pkgcache git clone` refuses too: a submodule on this machine's own
disk (git's protocol.file.allow), a server that says no (a repository deleted or made private
upstream). And a cache that fails while building a mirror is a plain clone, not an error."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.git import GitRunner, GitServer, child_env, commit, git, make_repo


def _plain_git(grun: GitRunner, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], env=grun.env(), capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=120)


def test_a_submodule_on_this_machines_disk_is_refused_as_plain_git_refuses_it(
        gitsrv: GitServer, grun: GitRunner, tmp_path: Path) -> None:
    host = tmp_path / "host"
    host.mkdir()
    secret = make_repo(host, "secret.git")  # e.g. /etc's etckeeper repository, or root's own
    make_repo(gitsrv.root, "app.git")
    work = gitsrv.root / "app.git-work"
    git(["-C", str(work), "-c", "protocol.file.allow=always", "submodule", "add", "-q",
         str(secret), "vendor/s"])
    commit(work, "add s")
    git(["-C", str(work), "push", "-q", "origin", "main"])
    url = gitsrv.url("app.git")
    plain = _plain_git(grun, "clone", "-q", "--recurse-submodules", url, str(tmp_path / "plain"))
    assert plain.returncode != 0 and "not allowed" in plain.stderr, plain.stderr
    assert not (tmp_path / "plain" / "vendor" / "s" / "file0.txt").exists()
    r = grun("git", "clone", "--recurse-submodules", url, str(tmp_path / "c"))
    assert r.returncode == 5 and "not allowed" in r.stderr, (r.returncode, r.stderr)
    assert not (tmp_path / "c" / "vendor" / "s" / "file0.txt").exists()
    assert len(grun.mirrors()) == 1  # the superproject's: the local repository never read


def test_a_server_that_refuses_gets_gits_answer_not_the_old_mirror(
        gitsrv: GitServer, grun: GitRunner, tmp_path: Path) -> None:
    make_repo(gitsrv.root, "app.git")
    url = gitsrv.url("app.git")
    r = grun("git", "clone", url, str(tmp_path / "c1"))
    assert r.returncode == 0, r.stderr
    shutil.rmtree(gitsrv.root / "app.git")  # deleted upstream: the server answers 404
    plain = _plain_git(grun, "clone", "-q", url, str(tmp_path / "plain"))
    assert plain.returncode == 128 and "not found" in plain.stderr, plain.stderr
    r = grun("git", "clone", url, str(tmp_path / "c2"))
    assert r.returncode == 5 and "not found" in r.stderr, (r.returncode, r.stderr)
    assert not (tmp_path / "c2").exists()
    assert r.stderr.count("pkgcache: warning") <= 1
    # the mirror stays: asked for explicitly (--offline), it is still served
    r = grun("git", "clone", "--offline", url, str(tmp_path / "c3"))
    assert r.returncode == 0 and (tmp_path / "c3" / "file0.txt").is_file(), r.stderr


def test_a_cache_fault_while_building_a_mirror_is_a_plain_clone(
        gitsrv: GitServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capfd: pytest.CaptureFixture[str]) -> None:
    from cache_core import PackageCache
    from hooks.git import mirror

    for k in list(os.environ):
        monkeypatch.delenv(k)
    for k, v in child_env(tmp_path).items():
        monkeypatch.setenv(k, v)
    make_repo(gitsrv.root, "app.git")
    url = gitsrv.url("app.git")
    cache = PackageCache(str(tmp_path / "cache"))

    def full(*_a: object, **_k: object) -> str:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(mirror.tempfile, "mkdtemp", full)  # the mirror's temp dir (a full disk)
    assert mirror.clone(cache, url, str(tmp_path / "c")) == 0
    assert (tmp_path / "c" / "file0.txt").is_file()
    assert git(["-C", str(tmp_path / "c"), "remote", "get-url", "origin"]).strip() == url
    err = capfd.readouterr().err
    assert err.count("pkgcache: warning") == 1 and "No space left" in err, err
    assert not [p for p in (tmp_path / "cache" / "git-v1").iterdir() if not p.name.startswith(".")]
    # offline, nothing to clone from: one line and exit 1 (a miss), not a traceback
    with pytest.raises(mirror.GitError) as exc:
        mirror.clone(cache, url, str(tmp_path / "d"), offline=True)
    assert exc.value.exit_code == 1
