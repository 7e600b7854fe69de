"""`pkgcache apt import/enable/disable/status` against the sandbox (real apt indexes)."""

from __future__ import annotations

import json
import os
import shutil

ALPHA = "alpha_1.0-1_all.deb"
BETA = "beta_2%3a1.0-1_amd64.deb"


def test_import_matches_against_index_and_says_why_not(lab, tmp_path) -> None:
    lab.sb.apt("update", check=True)
    old = tmp_path / "old-archives"
    old.mkdir()
    shutil.copy(lab.repo.debs["alpha"], old / ALPHA)
    shutil.copy(lab.repo.debs["beta"], old / "beta-renamed.deb")  # any file name is fine
    bad = bytearray(lab.repo.debs["gamma"].read_bytes())
    bad[-100] ^= 1
    (old / "gamma_0.5_all.deb").write_bytes(bytes(bad))  # same size, wrong bytes
    (old / "junk.deb").write_bytes(b"not a deb")
    (old / "link.deb").symlink_to(lab.repo.debs["gamma"])
    os.mkfifo(old / "fifo.deb")  # opened non-blocking, once: never a hang, never followed
    res = lab.sb.pkgcache("apt", "import", str(old), "--json")
    assert res.returncode == 1, res.stderr  # some files did not match
    rows = {r["file"]: r for r in json.loads(res.stdout)}
    assert rows[ALPHA]["result"] == "imported"
    assert rows["beta-renamed.deb"]["result"] == "imported"
    assert rows["beta-renamed.deb"]["reason"] == BETA
    assert rows["gamma_0.5_all.deb"] == {"file": "gamma_0.5_all.deb", "result": "unmatched",
                                         "reason": "SHA256 differs from the index"}
    assert rows["junk.deb"]["result"] == "unmatched"
    assert rows["link.deb"]["result"] == "skipped"
    assert rows["fifo.deb"]["result"] == "skipped"
    keys = sorted(e.key for e in lab.cache().keys("deb:"))
    assert keys == ["deb:" + ALPHA, "deb:" + BETA]
    # imported debs serve the next install: nothing downloaded
    lab.server.reset()
    res = lab.sb.apt("install", "alpha", check=True)
    assert lab.server.deb_requests() == []
    assert "Need to get 0 B" in res.stdout
    # a second import of the good files is a no-op
    res = lab.sb.pkgcache("apt", "import", str(old))
    assert "imported 0, already cached 2" in res.stdout


def test_enable_disable_status(lab) -> None:
    snippet = lab.sb.parts / "05pkgcache"
    snippet.unlink()
    st = json.loads(lab.sb.pkgcache("apt", "status", "--json").stdout)
    assert st["active"] is False and st["snippet_installed"] is False
    res = lab.sb.pkgcache("apt", "enable", "--command", str(lab.sb.pkgcache_bin),
                          "--method-dir", str(lab.sb.base / "methods"))  # never the host's
    assert res.returncode == 0, res.stderr
    assert snippet.read_text() == lab.sb.snippet_text()
    st = json.loads(lab.sb.pkgcache("apt", "status", "--json").stdout)
    assert st["active"] is True
    lab.sb.apt("update", check=True)
    lab.sb.apt("install", "gamma", check=True)
    res = lab.sb.pkgcache("apt", "status")
    assert res.returncode == 0
    assert "hooks        active" in res.stdout
    assert "cached debs  1" in res.stdout
    assert "last harvest 20" in res.stdout and "1 new" in res.stdout
    res = lab.sb.pkgcache("apt", "disable")
    assert res.returncode == 0 and not snippet.exists()
    assert "NOT active" in lab.sb.pkgcache("apt", "status").stdout
    # hooks off: apt no longer harvests
    lab.sb.apt("install", "alpha", check=True)
    assert len(lab.cache().keys("deb:")) == 1
    res = lab.sb.pkgcache("apt", "disable")
    assert res.returncode == 0 and "already disabled" in res.stdout


def test_enable_rejects_unsafe_command(lab) -> None:
    res = lab.sb.pkgcache("apt", "enable", "--command", "/tmp/x; rm -rf /")
    assert res.returncode == 2
    assert not (lab.sb.parts / "05pkgcache").read_text().count("rm -rf")


def test_sweep_harvests_download_only_debs(lab) -> None:
    lab.sb.apt("update", check=True)
    lab.sb.apt("install", "--download-only", "alpha", check=True)  # no DPkg hooks run
    assert lab.cache().keys("deb:") == []
    res = lab.sb.pkgcache("apt", "hook", "sweep")
    assert res.returncode == 0 and res.stderr == "" and res.stdout == ""
    assert sorted(e.key for e in lab.cache().keys("deb:")) == ["deb:" + ALPHA, "deb:" + BETA]


def test_fast_hook_entry(lab) -> None:
    """hooks.cli.apthook.hook_main: what /usr/bin/pkgcache can dispatch `apt hook` to directly."""
    import subprocess

    from tests.support import PY, REPO

    lab.sb.apt("update", check=True)
    lab.sb.apt("install", "--download-only", "alpha", check=True)
    code = "import sys; from hooks.cli.apthook import hook_main; sys.exit(hook_main(sys.argv[1:]))"
    env = dict(lab.sb.env(), PYTHONPATH=str(REPO))
    run = lambda *a: subprocess.run([PY, "-c", code, *a], env=env,  # noqa: E731
                                    capture_output=True, text=True, timeout=60)
    res = run("--cache-dir", str(lab.cache_dir), "apt", "hook", "sweep")
    assert (res.returncode, res.stdout, res.stderr) == (0, "", "")
    assert len(lab.cache().keys("deb:")) == 2
    res = run("--bogus", "apt", "hook", "sweep")
    assert res.returncode == 0 and res.stderr.startswith("pkgcache: warning: apt hook skipped")


def test_seed_waits_boundedly_for_a_foreign_archives_lock(lab) -> None:
    """A lock held by a process that is not our ancestor (a concurrent apt) is waited for, up to
    --lock-timeout; one held by an ancestor (the apt running us as a hook) is not."""
    import subprocess
    import sys

    lab.sb.apt("update", check=True)
    lab.sb.apt("install", "gamma", check=True)
    lab.sb.apt("purge", "gamma", check=True)
    lab.sb.apt("clean", check=True)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import fcntl, os, sys, time\n"
         "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
         "fcntl.lockf(fd, fcntl.LOCK_EX)\nprint('locked', flush=True)\ntime.sleep(60)\n",
         str(lab.sb.archives / "lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        res = lab.sb.pkgcache("apt", "seed", "--lock-timeout", "0.5")
        assert res.returncode == 4 and "held by another process" in res.stderr
        assert lab.sb.debs_in_archives() == []
    finally:
        holder.kill()
        holder.wait()
    res = lab.sb.pkgcache("apt", "seed")
    assert res.returncode == 0 and lab.sb.debs_in_archives() == ["gamma_0.5_all.deb"]
