"""Issue 11 item 9: git's options anywhere, broken mirrors rebuilt, verify, submodules."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.support.git import GitRunner, GitServer, add_commit, commit, git, make_repo


def head(repo: Path, ref: str = "HEAD") -> str:
    return git(["-C", str(repo), "rev-parse", ref]).strip()


def test_git_options_before_url_and_dest(gitsrv: GitServer, grun: GitRunner,
                                         tmp_path: Path) -> None:
    make_repo(gitsrv.root, "o.git")
    add_commit(gitsrv.root, "o.git", "second")
    url = gitsrv.url("o.git")
    r = grun("git", "clone", "--depth", "1", url, str(tmp_path / "c1"))
    assert r.returncode == 0, r.stderr
    assert git(["-C", str(tmp_path / "c1"), "rev-list", "--count", "HEAD"]).strip() == "1"
    r = grun("git", "clone", "--branch", "main", "--offline", url, str(tmp_path / "c2"))
    assert r.returncode == 0, r.stderr
    # pkgcache's own option after DEST is recognised, never handed to git
    gitsrv.stop()
    r = grun("git", "clone", url, str(tmp_path / "c3"), "--offline")
    assert r.returncode == 0, r.stderr
    assert "usage" not in r.stderr and "pkgcache" not in r.stderr   # no git usage dump, no warning
    assert head(tmp_path / "c3") == head(tmp_path / "c2")
    # DEST may be left out, as with git
    r = grun("git", "clone", "--offline", url, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "o" / ".git").is_dir()


def test_clone_usage_errors_and_help(grun: GitRunner, tmp_path: Path) -> None:
    r = grun("git", "clone", "--depth")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--depth needs a value" in r.stderr
    r = grun("git", "clone")
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    r = grun("git", "clone", "a", "b", "c")
    assert r.returncode == 2 and "too many arguments: c" in r.stderr
    r = grun("git", "clone", "--help")
    assert r.returncode == 0 and "--offline" in r.stdout and "DEST" in r.stdout


def break_mirror(grun: GitRunner) -> None:
    """Damage the object of the mirror's tip tree (loose: small fetches are unpacked)."""
    (mirror,) = grun.mirrors()
    tree = git(["--git-dir", str(mirror), "rev-parse", "main^{tree}"]).strip()
    obj = mirror / "objects" / tree[:2] / tree[2:]
    assert obj.is_file(), "expected a loose object"
    os.chmod(obj, 0o644)
    obj.write_bytes(b"garbage")


def test_broken_mirror_is_rebuilt_by_clone_update_and_verify(gitsrv: GitServer,
                                                            grun: GitRunner,
                                                            tmp_path: Path) -> None:
    make_repo(gitsrv.root, "b.git")
    url = gitsrv.url("b.git")
    assert grun("git", "clone", url, str(tmp_path / "c1")).returncode == 0
    break_mirror(grun)
    r = grun("git", "clone", url, str(tmp_path / "c2"))     # server up: must succeed
    assert r.returncode == 0, r.stderr
    assert "rebuilding" in r.stderr
    git(["-C", str(tmp_path / "c2"), "fsck", "--no-dangling"])
    (mirror,) = grun.mirrors()
    git(["--git-dir", str(mirror), "fsck", "--no-dangling"])

    break_mirror(grun)
    r = grun("verify", "--json")
    assert r.returncode == 1
    assert json.loads(r.stdout)["git_mirrors"] == [mirror.name]
    r = grun("git", "update")
    assert r.returncode == 0, r.stderr
    git(["--git-dir", str(mirror), "fsck", "--no-dangling"])
    assert grun("verify").returncode == 0

    break_mirror(grun)
    r = grun("verify", "--repair")
    assert r.returncode == 0, r.stdout + r.stderr
    git(["--git-dir", str(mirror), "fsck", "--no-dangling"])
    r = grun("git", "verify")
    assert r.returncode == 0 and "1 git mirror(s) pass" in r.stdout


def test_submodules_are_mirrored_and_served_offline(gitsrv: GitServer, grun: GitRunner,
                                                    tmp_path: Path) -> None:
    make_repo(gitsrv.root, "lib.git")
    make_repo(gitsrv.root, "app.git")
    work = gitsrv.root / "app.git-work"
    git(["-C", str(work), "-c", "protocol.file.allow=always", "submodule", "add", "-q",
         gitsrv.url("lib.git"), "vendor/lib"])
    commit(work, "add lib")
    git(["-C", str(work), "push", "-q", "origin", "main"])
    url = gitsrv.url("app.git")
    r = grun("git", "clone", "--recurse-submodules", url, str(tmp_path / "c1"))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "c1" / "vendor" / "lib" / "file0.txt").is_file()
    assert len(grun.mirrors()) == 2             # the submodule has its own mirror
    want = head(tmp_path / "c1" / "vendor" / "lib")
    gitsrv.stop()
    r = grun("git", "clone", url, str(tmp_path / "c2"), "--recurse-submodules", "--offline")
    assert r.returncode == 0, r.stderr
    sub = tmp_path / "c2" / "vendor" / "lib"
    assert head(sub) == want
    assert git(["-C", str(sub), "remote", "get-url", "origin"]).strip() == gitsrv.url("lib.git")
    assert git(["-C", str(tmp_path / "c2"), "config", "submodule.vendor/lib.url"]).strip() \
        == gitsrv.url("lib.git")
