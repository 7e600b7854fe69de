"""SIGKILL at random points of the apt hooks (inside a real apt-get install) and of
`pkgcache pip install` while it fills the cache. apt-get and pip must behave as without the
cache, nothing corrupt is ever served or stored, and `pkgcache verify` is clean after --repair.
(The core's own put/eviction kills, 120 trials, are in tests/core/test_crash_concurrency.py.)"""

from __future__ import annotations

import os
import random
import signal
import subprocess
from pathlib import Path

import pytest

from cache_core import PackageCache
from tests.reliability.rel_lab import (
    AptWorld,
    PipWorld,
    assert_short_warnings,
    assert_verify_clean,
    cli,
    needs_root,
    pip_env,
    verify_report,
)
from tests.support import PY, REPO
from tests.support.cli import popen_cli

pytestmark = [needs_root, pytest.mark.slow]

HARVEST_KILLS = 30   # harvest hooks really killed mid-run (trials go on until that many landed)
SEED_KILLS = 5       # pre-install (seed) hooks really killed mid-run
MAX_TRIALS = 120
PIP_TRIALS = 10


def no_corrupt(cache_dir: Path) -> None:
    """A crash may leave temps or orphans, never a wrong object under its digest."""
    if not cache_dir.exists():
        return
    with PackageCache(str(cache_dir), strict=True) as c:
        report = c.verify(repair=False)
    assert report["corrupt"] == [], report


def killing_wrapper(world: AptWorld, control: Path, log: Path) -> None:
    """The sandbox's /usr/bin/pkgcache: `timeout -s KILL` the hook named in the control file
    (exit status 137 = killed, logged). --foreground: timeout kills only the hook and waits for
    it to be gone, as apt waits for its hooks. Without it timeout also kills its own process
    group, itself included, so the wrapper could return while a killed hook that was stuck in
    the kernel (a copy or fsync under load) still held apt's archives lock (CI stop 31).
    Processes the hook itself started are not killed with it (as with a kill -9 of its pid)."""
    world.sb.write_pkgcache_wrapper(
        f'read action delay < "{control}" || true\n'
        f'if [ "$3" = "$action" ]; then\n'
        f'  PYTHONPATH="{REPO}" timeout --foreground -s KILL "$delay" "{PY}" -m hooks.cli '
        f'--cache-dir "{world.cache_dir}" "$@"\n'
        f'  echo "$3 $?" >> "{log}"\n'
        f'else\n'
        f'  PYTHONPATH="{REPO}" "{PY}" -m hooks.cli --cache-dir "{world.cache_dir}" "$@"\n'
        f'fi\n')


def test_sigkill_apt_hooks_at_random_points(apt_world: AptWorld, tmp_path: Path) -> None:
    rng = random.Random(7)
    control = tmp_path / "kill-control"
    log = tmp_path / "kills.log"
    control.write_text("none 0\n")
    killing_wrapper(apt_world, control, log)
    digests = apt_world.deb_digests()

    def kills() -> dict[str, int]:
        runs = [ln.split() for ln in log.read_text().splitlines()] if log.exists() else []
        return {a: sum(1 for x, rc in runs if x == a and rc == "137")
                for a in ("harvest", "pre-install")}

    trial = 0
    # Upper bound of the random kill delay, per hook: it shrinks while armed kills come too late
    # (the hook had finished) and grows back when they land, so kills keep landing at random
    # points inside the hook however fast this machine runs it.
    upper = {"harvest": 0.45, "pre-install": 0.45}
    last = kills()
    action = "harvest"
    while trial < MAX_TRIALS:
        done = kills()
        if trial:
            landed = done[action] > last[action]
            upper[action] = (min(0.6, upper[action] * 1.15) if landed
                             else max(0.01, upper[action] * 0.7))
        last = done
        if done["harvest"] >= HARVEST_KILLS and done["pre-install"] >= SEED_KILLS:
            break
        action = "harvest" if done["harvest"] < HARVEST_KILLS else "pre-install"
        trial += 1
        delay = rng.uniform(0.005, upper[action])
        control.write_text(f"{action} {delay:.3f}\n")
        mode = rng.random()
        if mode < 0.4:  # a reprovisioned machine: nothing installed, archives empty
            apt_world.dpkg_purge()
            for p in apt_world.sb.archives.glob("*.deb"):
                p.unlink()
            args: tuple[str, ...] = ()
        else:
            if mode < 0.7:
                for p in apt_world.sb.archives.glob("*.deb"):
                    p.unlink()
            args = ("--reinstall",)
        res = apt_world.install(*args)
        assert res.returncode == 0, f"trial {trial}: {res.stdout}\n{res.stderr}"
        assert_short_warnings(res.stderr, 2)
        apt_world.assert_installed_right()
        apt_world.assert_archives_right()
        no_corrupt(apt_world.cache_dir)
    done = kills()
    print(f"apt: {trial} apt-get runs with an armed kill; hooks killed mid-run: {done}")
    assert done["harvest"] >= HARVEST_KILLS and done["pre-install"] >= SEED_KILLS, done

    control.write_text("none 0\n")
    verify_report(apt_world.cache_dir, repair=True)
    assert_verify_clean(apt_world.cache_dir)
    # The cache still works fully: one unkilled install harvests, the next downloads nothing.
    apt_world.reprovision()
    res = apt_world.install()
    assert res.returncode == 0 and assert_short_warnings(res.stderr, 0) == [], res.stderr
    with PackageCache(str(apt_world.cache_dir)) as c:
        cached = {e.key: e.digest for e in c.keys("deb:")}
    assert sorted(cached.values()) == sorted(digests.values()), cached
    apt_world.reprovision()
    res = apt_world.install()
    assert res.returncode == 0, res.stderr
    assert apt_world.server.deb_requests() == []
    apt_world.assert_installed_right()
    assert_verify_clean(apt_world.cache_dir)


def test_sigkill_pip_install_while_filling(pip_world: PipWorld, tmp_path: Path) -> None:
    rng = random.Random(11)
    cache_dir = tmp_path / "pkgcache"
    env = dict(pip_env(), PYTHONPATH=str(REPO))
    for trial in range(PIP_TRIALS):
        if trial % 2 == 0 and cache_dir.exists():
            with PackageCache(str(cache_dir), strict=True) as c:
                c.clear()  # so the next run fills the cache again
        venv = pip_world.venv()
        proc = popen_cli("pip", "install", "--python", str(venv / "bin" / "python"), "-i",
                         pip_world.index.url, "alpha", cache_dir=cache_dir, base=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
        try:
            proc.wait(timeout=rng.uniform(0.3, 4.0))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # pkgcache and the pip it runs, mid-flight
            proc.wait()
        no_corrupt(cache_dir)

    verify_report(cache_dir, repair=True)
    assert_verify_clean(cache_dir)
    venv = pip_world.venv()
    res = pip_world.install(cache_dir, venv)
    assert res.returncode == 0, res.stderr
    assert_short_warnings(res.stderr, 0)
    assert pip_world.versions(venv) == ("1.0", "1.0")
    # Filled for good: with the index gone the next install is served by the cache alone.
    pip_world.stop()
    venv = pip_world.venv()
    res = pip_world.install(cache_dir, venv, env=env)
    assert res.returncode == 0, res.stderr
    assert pip_world.versions(venv) == ("1.0", "1.0")
    assert_verify_clean(cache_dir)
    assert cli(cache_dir, "stats", "--json").returncode == 0
