"""`pkgcache git clone/update` against real repositories served by git http-backend on 127.0.0.1."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

from hooks.git.mirror import SENTINEL, is_valid_mirror, mirror_name
from tests.support.git import GitRunner, GitServer, add_commit, git, make_repo


def head(repo: Path, ref: str = "HEAD") -> str:
    return git(["-C", str(repo), "rev-parse", ref]).strip()


def upstream_head(gitsrv: GitServer, name: str) -> str:
    return git(["--git-dir", str(gitsrv.root / name), "rev-parse", "main"]).strip()


def sent(gitsrv: GitServer) -> int:
    return sum(h.sent for h in gitsrv.hits)


def assert_independent_clone(path: Path, url: str) -> None:
    """A complete clone that needs nothing from the cache: fsck clean, no alternates."""
    assert not (path / ".git" / "objects" / "info" / "alternates").exists()
    git(["-C", str(path), "fsck", "--full", "--no-dangling"])
    assert git(["-C", str(path), "remote", "get-url", "origin"]).strip() == url


def test_second_clone_works_offline(gitsrv: GitServer, grun: GitRunner, tmp_path: Path) -> None:
    make_repo(gitsrv.root, "app.git")
    url = gitsrv.url("app.git")
    r = grun("git", "clone", url, str(tmp_path / "c1"))
    assert r.returncode == 0, r.stderr
    assert_independent_clone(tmp_path / "c1", url)
    assert [m.name for m in grun.mirrors()] == [mirror_name(url)]
    assert is_valid_mirror(grun.mirrors()[0]) and grun.leftovers() == []
    assert grun.mirrors()[0].stat().st_mode & 0o077 == 0     # private: may hold private code
    want = upstream_head(gitsrv, "app.git")
    gitsrv.stop()
    # Server gone, no flag: served from the mirror with one warning line.
    r = grun("git", "clone", url, str(tmp_path / "c2"))
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("pkgcache: warning") == 1
    assert head(tmp_path / "c2") == want
    assert_independent_clone(tmp_path / "c2", url)
    # Explicit --offline: no warning about the network.
    r = grun("git", "clone", "--offline", url, str(tmp_path / "c3"))
    assert r.returncode == 0 and "warning" not in r.stderr
    assert head(tmp_path / "c3") == want
    assert git(["-C", str(tmp_path / "c3"), "branch", "--show-current"]).strip() == "main"


def test_clones_borrow_objects_from_the_mirror(gitsrv: GitServer, grun: GitRunner,
                                               tmp_path: Path) -> None:
    make_repo(gitsrv.root, "big.git", files=4, size=150_000)   # ~600 kB of incompressible data
    url = gitsrv.url("big.git")
    assert grun("git", "clone", url, str(tmp_path / "c1")).returncode == 0
    first = sent(gitsrv)
    assert first > 600_000
    assert first < 1.3 * 600_000          # the objects crossed the network once, not twice
    assert grun("git", "clone", url, str(tmp_path / "c2")).returncode == 0
    second = sent(gitsrv) - first
    assert second < 20_000, second        # refs and negotiation only
    assert_independent_clone(tmp_path / "c2", url)


def test_update_picks_up_new_commits(gitsrv: GitServer, grun: GitRunner,
                                     tmp_path: Path) -> None:
    make_repo(gitsrv.root, "a.git")
    make_repo(gitsrv.root, "b.git")
    ua, ub = gitsrv.url("a.git"), gitsrv.url("b.git")
    assert grun("git", "clone", ua, str(tmp_path / "a1")).returncode == 0
    assert grun("git", "update", ub).returncode == 0          # update URL creates its mirror
    new_a = add_commit(gitsrv.root, "a.git", "second a")
    new_b = add_commit(gitsrv.root, "b.git", "second b")
    r = grun("git", "update")                                  # all mirrors
    assert r.returncode == 0 and r.stderr == "" and r.stdout == ""
    for url, want in ((ua, new_a), (ub, new_b)):
        mirror = grun.bucket / mirror_name(url)
        assert git(["--git-dir", str(mirror), "rev-parse", "main"]).strip() == want
    gitsrv.stop()
    r = grun("git", "clone", "--offline", ua, str(tmp_path / "a2"))
    assert r.returncode == 0, r.stderr
    assert head(tmp_path / "a2") == new_a and (tmp_path / "a2" / "news.txt").exists()
    r = grun("git", "update")
    assert r.returncode == 5 and r.stderr.count("pkgcache: git update:") == 2


def test_clone_refreshes_the_mirror_when_online(gitsrv: GitServer, grun: GitRunner,
                                                tmp_path: Path) -> None:
    make_repo(gitsrv.root, "r.git")
    url = gitsrv.url("r.git")
    assert grun("git", "clone", url, str(tmp_path / "c1")).returncode == 0
    new = add_commit(gitsrv.root, "r.git", "later")
    assert grun("git", "clone", url, str(tmp_path / "c2")).returncode == 0
    assert head(tmp_path / "c2") == new
    assert git(["--git-dir", str(grun.mirrors()[0]), "rev-parse", "main"]).strip() == new


def test_clone_killed_half_way_leaves_no_broken_mirror(gitsrv: GitServer, grun: GitRunner,
                                                       tmp_path: Path) -> None:
    make_repo(gitsrv.root, "k.git", files=4, size=150_000)
    url = gitsrv.url("k.git")
    gitsrv.stall_after = 50_000           # the pack stops mid-way until released
    proc = grun.popen("git", "clone", url, str(tmp_path / "c1"), stdout=subprocess.DEVNULL,
                      stderr=subprocess.DEVNULL, start_new_session=True)
    assert gitsrv.stalled.wait(60), "the clone never reached the pack transfer"
    assert grun.mirrors() == [] and len(grun.leftovers()) == 1   # only a temp dir so far
    os.killpg(proc.pid, signal.SIGKILL)   # the whole process group: pkgcache and its git
    proc.wait()
    gitsrv.release.set()
    assert grun.mirrors() == []           # nothing that looks like a finished mirror
    # Offline there is nothing to serve (the half mirror is not trusted) ...
    r = grun("git", "clone", "--offline", url, str(tmp_path / "c0"))
    assert r.returncode == 1 and not (tmp_path / "c0").exists()
    # ... and online the next clone rebuilds it cleanly and sweeps the leftovers.
    r = grun("git", "clone", url, str(tmp_path / "c2"))
    assert r.returncode == 0, r.stderr
    assert_independent_clone(tmp_path / "c2", url)
    (mirror,) = grun.mirrors()
    assert is_valid_mirror(mirror) and grun.leftovers() == []
    git(["--git-dir", str(mirror), "fsck", "--no-dangling"])


def test_unfinished_mirror_with_sentinel_is_rebuilt(gitsrv: GitServer, grun: GitRunner,
                                                    tmp_path: Path) -> None:
    make_repo(gitsrv.root, "s.git")
    url = gitsrv.url("s.git")
    assert grun("git", "clone", url, str(tmp_path / "c1")).returncode == 0
    (mirror,) = grun.mirrors()
    (mirror / SENTINEL).write_text("crashed\n")
    shutil.rmtree(mirror / "refs")
    r = grun("git", "clone", url, str(tmp_path / "c2"))
    assert r.returncode == 0, r.stderr
    assert "broken mirror" in r.stderr
    assert is_valid_mirror(mirror) and not (mirror / SENTINEL).exists()
    assert_independent_clone(tmp_path / "c2", url)


def test_clone_works_after_the_mirror_is_deleted(gitsrv: GitServer, grun: GitRunner,
                                                 tmp_path: Path) -> None:
    make_repo(gitsrv.root, "d.git")
    url = gitsrv.url("d.git")
    assert grun("git", "clone", url, str(tmp_path / "c1")).returncode == 0
    shutil.rmtree(grun.bucket)            # e.g. `pkgcache clear` or eviction
    # The existing clone is independent of the mirror ...
    assert_independent_clone(tmp_path / "c1", url)
    assert git(["-C", str(tmp_path / "c1"), "log", "--oneline"]).strip()
    # ... and a new clone rebuilds the mirror.
    r = grun("git", "clone", url, str(tmp_path / "c2"))
    assert r.returncode == 0, r.stderr
    assert_independent_clone(tmp_path / "c2", url)
    assert len(grun.mirrors()) == 1


def test_mirrors_count_in_stats(gitsrv: GitServer, grun: GitRunner, tmp_path: Path) -> None:
    make_repo(gitsrv.root, "st.git", files=2, size=50_000)
    assert grun("git", "clone", gitsrv.url("st.git"), str(tmp_path / "c")).returncode == 0
    stats = json.loads(grun("stats", "--json").stdout)
    assert stats["bucket_bytes"] > 100_000


def test_clone_args_branch_and_depth(gitsrv: GitServer, grun: GitRunner,
                                     tmp_path: Path) -> None:
    make_repo(gitsrv.root, "br.git")
    work = gitsrv.root / "br.git-work"
    git(["-C", str(work), "checkout", "-q", "-b", "dev"])
    dev = add_commit(gitsrv.root, "br.git", "on dev").strip()
    git(["-C", str(work), "push", "-q", "origin", "dev"])
    url = gitsrv.url("br.git")
    r = grun("git", "clone", url, str(tmp_path / "c1"), "--branch", "dev")
    assert r.returncode == 0, r.stderr
    assert head(tmp_path / "c1") == dev
    r = grun("git", "clone", "--offline", url, str(tmp_path / "c2"), "-b", "dev", "--depth", "1")
    assert r.returncode == 0, r.stderr
    assert head(tmp_path / "c2") == dev
    assert git(["-C", str(tmp_path / "c2"), "rev-list", "--count", "HEAD"]).strip() == "1"


def test_errors_and_exit_codes(gitsrv: GitServer, grun: GitRunner, tmp_path: Path) -> None:
    url = gitsrv.url("missing.git")
    r = grun("git", "clone", "--offline", url, str(tmp_path / "x"))
    assert r.returncode == 1 and r.stderr.startswith("pkgcache: git clone: offline")
    r = grun("git", "clone", url, str(tmp_path / "x"))
    assert r.returncode == 5 and not (tmp_path / "x").exists()
    assert grun.mirrors() == [] and grun.leftovers() == []
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "f").write_text("x")
    make_repo(gitsrv.root, "ok.git")
    r = grun("git", "clone", gitsrv.url("ok.git"), str(tmp_path / "full"))
    assert r.returncode == 2 and "not an empty directory" in r.stderr


def test_mirror_names_hide_credentials() -> None:
    name = mirror_name("https://user:s3cret@example.com/org/repo.git")
    assert "s3cret" not in name and "user" not in name
    assert name.startswith("example_com_org_repo_git-") and "/" not in name
    assert mirror_name("https://example.com/x/") == mirror_name("https://example.com/x")
    assert mirror_name("https://example.com/../x") != mirror_name("https://example.com/x")


def test_concurrent_clones_build_the_mirror_once(gitsrv: GitServer, grun: GitRunner,
                                                 tmp_path: Path) -> None:
    make_repo(gitsrv.root, "cc.git", files=4, size=150_000)
    url = gitsrv.url("cc.git")
    procs = [grun.popen("git", "clone", url, str(tmp_path / f"c{i}"), stdout=subprocess.DEVNULL,
                        stderr=subprocess.PIPE) for i in range(3)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    for i in range(3):
        assert_independent_clone(tmp_path / f"c{i}", url)
    assert sent(gitsrv) < 1.3 * 600_000    # the objects crossed the network once
    assert len(grun.mirrors()) == 1 and grun.leftovers() == []


def test_update_killed_half_way_keeps_the_old_mirror(gitsrv: GitServer, grun: GitRunner,
                                                     tmp_path: Path) -> None:
    make_repo(gitsrv.root, "u.git")
    url = gitsrv.url("u.git")
    assert grun("git", "clone", url, str(tmp_path / "c1")).returncode == 0
    old = upstream_head(gitsrv, "u.git")
    work = gitsrv.root / "u.git-work"
    (work / "blob.bin").write_bytes(os.urandom(400_000))
    new = add_commit(gitsrv.root, "u.git", "big change")
    gitsrv.stall_after = 50_000
    proc = grun.popen("git", "update", url, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                      start_new_session=True)
    assert gitsrv.stalled.wait(60)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    gitsrv.release.set()
    (mirror,) = grun.mirrors()
    assert is_valid_mirror(mirror)
    assert git(["--git-dir", str(mirror), "rev-parse", "main"]).strip() == old
    r = grun("git", "clone", "--offline", url, str(tmp_path / "c2"))
    assert r.returncode == 0 and head(tmp_path / "c2") == old
    assert grun("git", "update").returncode == 0
    assert git(["--git-dir", str(mirror), "rev-parse", "main"]).strip() == new
    assert list((mirror / "objects" / "pack").glob("tmp_*")) == []
    git(["--git-dir", str(mirror), "fsck", "--no-dangling"])
