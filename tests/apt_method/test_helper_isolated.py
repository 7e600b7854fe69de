"""The helper runs as root: the caller's environment must not choose the code it imports."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support import REPO
from tests.support.env import clean_env


def test_the_helper_ignores_pythonpath_and_the_users_site(tmp_path: Path) -> None:
    evil = tmp_path / "evil"
    (evil / "hooks").mkdir(parents=True)
    marker = tmp_path / "ran"
    (evil / "hooks" / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    (evil / "socket.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    code = (f"import sys; sys.path.insert(0, {str(REPO)!r}); "
            "from hooks.apt.method import HelperClient; "
            "c = HelperClient.spawn(); c.sock.close(); c.proc.wait(timeout=30)")
    env = dict(os.environ, PYTHONPATH=str(evil), PYTHONUSERBASE=str(evil),
               PKGCACHE_STATE_DIR=str(tmp_path / "state"))
    subprocess.run([sys.executable, "-I", "-c", code], env=env, cwd=evil, check=True, timeout=60)
    assert not marker.exists(), "the helper imported code from the caller's PYTHONPATH"


def test_the_helper_outlives_a_terminals_ctrl_c(tmp_path: Path) -> None:
    """A Ctrl-C goes to apt's whole process group: apt handles it and the front relays the
    end; the helper (its harvests in hand) keeps serving until the front closes the socket."""
    cache = tmp_path / "cache"
    env = clean_env(tmp_path)
    Path(env["PKGCACHE_CONFIG"]).write_text(
        f"performance:\n  cache:\n    enabled: true\n    directory: {cache}\n")
    code = ("import os, signal, sys, time; sys.path.insert(0, sys.argv[1]); "
            "from hooks.apt.method import HelperClient; c = HelperClient.spawn(); "
            "ask = {'op': 'serve', 'sha256': '0' * 64, 'dest': sys.argv[2]}; "
            "print(sorted(c.call(ask))); os.kill(c.proc.pid, signal.SIGINT); time.sleep(0.3); "
            "print(sorted(c.call(ask))); c.sock.close(); print(c.proc.wait(timeout=30))")
    res = subprocess.run([sys.executable, "-I", "-c", code, str(REPO), str(tmp_path / "x.deb")],
                         env=env, capture_output=True, text=True, timeout=60)
    lines = res.stdout.splitlines()
    assert res.returncode == 0 and len(lines) == 3, res.stderr[-2000:]
    assert lines[0] == lines[1] and lines[2] == "0"  # the same answer after it; ended well
