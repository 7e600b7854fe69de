"""`pkgcache git clone` on the fleet: server A's mirror travels as a signed bundle; server B
clones with the origin stopped (equal to A's mirror) and, with the origin up and one new commit,
transfers only the new objects from it."""

from __future__ import annotations

import os
from pathlib import Path

from tests.support.cli import run_cli
from tests.support.git import add_commit, git, make_repo


def _env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return {"HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1", "LC_ALL": "C"}


def _clone(fleet, name: str, url: str, dest: Path, *extra: str):
    return run_cli("--config", fleet.config(name), "git", "clone", *extra, url, str(dest),
                   env=_env(fleet.tmp))


def _refs(git_dir: Path) -> dict[str, str]:
    out = git(["--git-dir", str(git_dir), "for-each-ref", "--format=%(objectname) %(refname)",
               "refs/heads", "refs/tags"])
    return {r: sha for sha, r in (ln.split() for ln in out.splitlines())}


def _mirror(fleet, name: str) -> Path:
    (m,) = [p for p in (fleet.tmp / name / "git-v1").iterdir() if not p.name.startswith(".")]
    return m


def _publish(fleet, gitsrv, tmp_path):
    make_repo(gitsrv.root, "proj", files=4, size=300_000)
    url = gitsrv.url("proj")
    r = _clone(fleet, "a", url, tmp_path / "a-clone")
    assert r.returncode == 0, r.stderr
    r = run_cli("--config", fleet.config("a"), "remote", "push")
    assert r.returncode == 0 and "uploaded 1" in r.stdout, r.stdout + r.stderr
    return url


def test_origin_stopped_b_clones_what_a_mirrored(fleet, gitsrv, tmp_path):
    url = _publish(fleet, gitsrv, tmp_path)
    a_refs = _refs(_mirror(fleet, "a"))
    gitsrv.stop()
    fleet.b.close()
    r = _clone(fleet, "b", url, tmp_path / "b-clone")
    assert r.returncode == 0, r.stderr
    assert _refs(_mirror(fleet, "b")) == a_refs
    head = git(["-C", str(tmp_path / "b-clone"), "rev-parse", "HEAD"]).strip()
    assert head == a_refs["refs/heads/main"]
    assert git(["-C", str(tmp_path / "b-clone"), "remote", "get-url", "origin"]).strip() == url
    assert git(["-C", str(tmp_path / "b-clone"), "fsck", "--strict"]) is not None
    assert len([ln for ln in r.stderr.splitlines() if "pkgcache" in ln]) <= 1
    # --offline works the same way on a third member
    fleet.member("c").close()
    r = _clone(fleet, "c", url, tmp_path / "c-clone", "--offline")
    assert r.returncode == 0, r.stderr
    assert _refs(_mirror(fleet, "c")) == a_refs


def test_origin_up_b_transfers_only_the_new_objects(fleet, gitsrv, tmp_path):
    url = _publish(fleet, gitsrv, tmp_path)
    new = add_commit(gitsrv.root, "proj", "one new commit")
    fleet.b.close()
    before = len(gitsrv.hits)
    r = _clone(fleet, "b", url, tmp_path / "b-clone")
    assert r.returncode == 0 and "pkgcache" not in r.stderr, r.stderr  # git's own lines only
    b_bytes = sum(h.sent for h in gitsrv.hits[before:] if h.path.endswith("git-upload-pack"))
    assert git(["-C", str(tmp_path / "b-clone"), "rev-parse", "HEAD"]).strip() == new
    assert _refs(_mirror(fleet, "b"))["refs/heads/main"] == new
    # a member without the fleet transfers the whole repository (1.2 MB of random content)
    plain = fleet._make("plain", [])
    plain.close()
    before = len(gitsrv.hits)
    r = _clone(fleet, "plain", url, tmp_path / "p-clone")
    assert r.returncode == 0, r.stderr
    p_bytes = sum(h.sent for h in gitsrv.hits[before:] if h.path.endswith("git-upload-pack"))
    assert p_bytes > 1_000_000
    print(f"upload-pack bytes: fleet member {b_bytes}, plain {p_bytes}")
    assert b_bytes < 20_000, (b_bytes, p_bytes)


def test_an_untrusted_bundle_is_ignored(fleet, gitsrv, tmp_path):
    from cache_core.storage.remote.records import generate_keypair

    url = _publish(fleet, gitsrv, tmp_path)
    gitsrv.stop()
    _, other = generate_keypair("someone-else")
    fleet.member("c", trusted_public_keys=[other]).close()
    r = _clone(fleet, "c", url, tmp_path / "c-clone")
    assert r.returncode == 5 and not (tmp_path / "c-clone" / ".git").exists()


def test_remote_pull_git_then_offline_clone_with_a_progress_bar_on_a_terminal(
        fleet, gitsrv, tmp_path):
    import pty
    import subprocess

    from tests.support import PY, REPO

    url = _publish(fleet, gitsrv, tmp_path)
    a_refs = _refs(_mirror(fleet, "a"))
    gitsrv.stop()
    fleet.b.close()
    master, slave = pty.openpty()
    env = dict(os.environ, PYTHONPATH=str(REPO), **_env(tmp_path))
    proc = subprocess.run([PY, "-m", "hooks.cli", "--config", fleet.config("b"),
                           "remote", "pull", "--git", url], stderr=slave, stdout=subprocess.PIPE,
                          text=True, env=env, timeout=120)
    os.close(slave)
    shown = os.read(master, 65536).decode(errors="replace")
    os.close(master)
    assert proc.returncode == 0 and "git: pulled 1, not found 0" in proc.stdout, shown
    assert "[" + "#" * 30 + "] 1/1" in shown
    r = _clone(fleet, "b", url, tmp_path / "b-clone", "--offline")
    assert r.returncode == 0, r.stderr
    assert _refs(_mirror(fleet, "b")) == a_refs
    # not a terminal: no bar
    fleet.member("c").close()
    r = run_cli("--config", fleet.config("c"), "remote", "pull", "--git", url, env=_env(tmp_path))
    assert r.returncode == 0 and "#" not in r.stderr, r.stderr


def test_a_trust_unsigned_remote_never_seeds_a_mirror(fleet, gitsrv, tmp_path):
    """A bundle record accepted only because the remote says ``trust: unsigned`` (no trusted
    key verified it) never becomes this machine's mirror: with the origin down, no clone."""
    url = _publish(fleet, gitsrv, tmp_path)
    gitsrv.stop()
    fleet.member("u", trust="unsigned", trusted_public_keys=[]).close()
    r = _clone(fleet, "u", url, tmp_path / "u-clone")
    assert r.returncode == 5 and not (tmp_path / "u-clone" / ".git").exists(), r.stderr


def test_a_repository_behind_credentials_never_leaves_the_machine(fleet, gitsrv, tmp_path):
    """As with downloads: what A cloned with credentials in its URL is not pushed to the store,
    so B, without them and with the origin down, gets no clone of it (the control:
    test_origin_stopped_b_clones_what_a_mirrored)."""
    make_repo(gitsrv.root, "priv", files=2)
    url = gitsrv.url("priv")
    r = _clone(fleet, "a", url.replace("://", "://deploy:s3cret@", 1), tmp_path / "a-clone")
    assert r.returncode == 0, r.stderr
    r = run_cli("--config", fleet.config("a"), "remote", "push")
    assert r.returncode == 0 and "uploaded 0" in r.stdout, r.stdout + r.stderr
    gitsrv.stop()
    fleet.b.close()
    r = _clone(fleet, "b", url, tmp_path / "b-clone")
    assert r.returncode == 5 and not (tmp_path / "b-clone" / ".git").exists(), r.stderr
    assert "s3cret" not in r.stderr
