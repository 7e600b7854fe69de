"""Running as someone else: a real unprivileged account (useradd; commands run with setpriv) and
uid 65534, and a world-readable copy of the code for them.

The checkout may sit where other users cannot read it (a clone inside a 0700 ``mktemp -d``, or
root's home), and its venv's python with it. Commands run as another user therefore import a copy
of ``cache_core`` and ``hooks`` made once per session under /var/tmp (0755 directories, 0644
files) and run on the system's ``/usr/bin/python3``, which has pkgcache's run-time dependencies
from Debian.
"""

from __future__ import annotations

import atexit
import functools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support import REPO

NOBODY = 65534
USER_PY = "/usr/bin/python3"
"""The interpreter other users run (the venv under the checkout may be unreadable to them)."""
CODE = ("cache_core", "hooks", "debian/config.yaml")


@functools.cache
def readable_tree() -> Path:
    """A world-readable copy of this checkout's code, made once per session, removed at exit."""
    base = Path(tempfile.mkdtemp(prefix="pkgcache-tree-", dir="/var/tmp"))
    atexit.register(shutil.rmtree, base, True)
    for rel in CODE:
        src, dest = REPO / rel, base / rel
        if src.is_dir():
            shutil.copytree(src, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, dest)
    for dirpath, _dirs, filenames in os.walk(base):
        os.chmod(dirpath, 0o755)
        for name in filenames:
            os.chmod(os.path.join(dirpath, name), 0o644)
    return base


def public_tmpdir(prefix: str) -> Iterator[Path]:
    """A root-owned 0755 directory under /var/tmp every local user can traverse (as /var/cache
    is), unlike pytest's tmp_path under the 0700 /tmp/pytest-of-root; removed afterwards."""
    d = Path(tempfile.mkdtemp(prefix=prefix, dir="/var/tmp"))
    os.chmod(d, 0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def setpriv(uid: int, gid: int, *cmd: str) -> list[str]:
    """cmd as uid/gid without supplementary groups."""
    return ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--", *cmd]


def pkgcache_as(uid: int, args: Sequence[str], env: dict[str, str], **kw: Any,
                ) -> subprocess.CompletedProcess[str]:
    """This checkout's pkgcache ARGS as uid (its group: the same number), from the readable copy;
    env is the whole environment (PYTHONPATH is set to the copy)."""
    env = dict(env, PYTHONPATH=str(readable_tree()))
    cmd = setpriv(uid, uid, USER_PY, "-m", "hooks.cli", *args)
    return subprocess.run(cmd, env=env, capture_output=True, text=True, **kw)


@dataclass
class User:
    """A real local account without privileges."""

    name: str
    uid: int
    gid: int
    home: Path

    def argv(self, *cmd: str) -> list[str]:
        """cmd run as this user (no supplementary groups, its own HOME)."""
        return setpriv(self.uid, self.gid, "env", f"HOME={self.home}", f"USER={self.name}", *cmd)

    def run(self, *cmd: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        """Run cmd as this user, output captured (from its home: the checkout may be private)."""
        kw.setdefault("cwd", self.home)
        return subprocess.run(self.argv(*cmd), capture_output=True, text=True, timeout=120, **kw)

    def popen(self, *cmd: str, **kw: Any) -> subprocess.Popen[str]:
        """Start cmd as this user."""
        kw.setdefault("cwd", self.home)
        return subprocess.Popen(self.argv(*cmd), text=True, **kw)

    def python(self, code: str, *args: str, background: bool = False,
               **kw: Any) -> subprocess.CompletedProcess[str] | subprocess.Popen[str]:
        """Run a Python script as this user (the script is written into its home)."""
        script = self.home / f"script-{abs(hash(code)) % 10**8}.py"
        script.write_text(code)
        os.chown(script, self.uid, self.gid)
        cmd = (USER_PY, str(script), *args)
        return self.popen(*cmd, **kw) if background else self.run(*cmd, **kw)

    def dir(self, name: str) -> Path:
        """A fresh directory owned by the user in its home."""
        d = self.home / name
        if d.exists():
            shutil.rmtree(d)
        d.mkdir()
        os.chown(d, self.uid, self.gid)
        return d


def make_user() -> Iterator[User]:
    """A throwaway unprivileged account (useradd -m), removed afterwards (for a fixture)."""
    name = f"pkgsec{os.getpid() % 100000}"
    res = subprocess.run(["useradd", "-m", "-s", "/bin/sh", "-U", name], capture_output=True,
                         text=True)
    if res.returncode != 0:
        pytest.skip(f"useradd failed: {res.stderr.strip()}")
    pw = pwd.getpwnam(name)
    try:
        home = Path(pw.pw_dir)
        os.chmod(home, 0o755)
        yield User(name, pw.pw_uid, pw.pw_gid, home)
    finally:
        subprocess.run(["pkill", "-KILL", "-u", name], capture_output=True)
        subprocess.run(["userdel", "-r", "-f", name], capture_output=True)
