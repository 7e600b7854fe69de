"""The helper runs as root: the caller's environment must not choose the code it imports."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support import REPO


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
