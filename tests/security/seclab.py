"""Helpers and fixtures for the security tests (conftest.py re-exports the fixtures): a real
unprivileged local user (useradd; commands run as it with setpriv), root's pkgcache CLI, the apt
lab (real apt-get/dpkg in a sandbox root, a repo on 127.0.0.1) and the fetch server. Everything
here needs root."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO / "tests" / "apt"))
sys.path.insert(0, str(REPO / "tests" / "fetch"))
from aptlab import CountingServer, Repo, Sandbox, build_deb  # noqa: E402
from fetch_server import FetchServer  # noqa: E402

PY = str(REPO / ".venv" / "bin" / "python") if (REPO / ".venv/bin/python").exists() else sys.executable


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    tools = ("useradd", "userdel", "setpriv", "apt-get", "dpkg-deb", "apt-ftparchive")
    missing = [t for t in tools if shutil.which(t) is None]
    if os.geteuid() != 0 or missing:
        why = f"needs root and {', '.join(missing) or 'useradd/setpriv'}"
        for item in items:
            if "tests/security/" in str(item.fspath):
                item.add_marker(pytest.mark.skip(reason=why))


@dataclass
class User:
    """A real local account without privileges."""

    name: str
    uid: int
    gid: int
    home: Path

    def argv(self, *cmd: str) -> list[str]:
        """cmd run as this user (no supplementary groups, its own HOME)."""
        return ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--clear-groups",
                "--", "env", f"HOME={self.home}", f"USER={self.name}", *cmd]

    def run(self, *cmd: str, **kw: object) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(*cmd), capture_output=True, text=True, timeout=120,
                              **kw)  # type: ignore[call-overload]

    def popen(self, *cmd: str, **kw: object) -> subprocess.Popen[str]:
        return subprocess.Popen(self.argv(*cmd), text=True, **kw)  # type: ignore[call-overload]

    def python(self, code: str, *args: str, background: bool = False,
               **kw: object) -> subprocess.CompletedProcess[str] | subprocess.Popen[str]:
        """Run a Python script as this user (the script is written into its home)."""
        script = self.home / f"script-{abs(hash(code)) % 10**8}.py"
        script.write_text(code)
        os.chown(script, self.uid, self.gid)
        cmd = ("/usr/bin/python3", str(script), *args)
        return self.popen(*cmd, **kw) if background else self.run(*cmd, **kw)


@pytest.fixture(scope="session")
def user() -> Iterator[User]:
    """A throwaway unprivileged account (useradd -m), removed afterwards."""
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


@pytest.fixture
def public_dir() -> Iterator[Path]:
    """A root-owned 0755 directory every local user can traverse (as /var/cache is), unlike
    pytest's tmp_path under the 0700 /tmp/pytest-of-root."""
    import tempfile

    d = Path(tempfile.mkdtemp(prefix="pkgcache-sec-", dir="/var/tmp"))
    os.chmod(d, 0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def user_dir(user: User, name: str) -> Path:
    """A fresh directory owned by the user in its home."""
    d = user.home / name
    if d.exists():
        shutil.rmtree(d)
    d.mkdir()
    os.chown(d, user.uid, user.gid)
    return d


def cli(*args: str, env: dict[str, str] | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Root's `pkgcache` (this checkout) with the test's environment."""
    full = dict(os.environ, PYTHONPATH=str(REPO))
    full.update(env or {})
    return subprocess.run([PY, "-m", "hooks.cli", *args], capture_output=True, text=True,
                          env=full, timeout=timeout)


@dataclass
class Lab:
    """A repo served on 127.0.0.1 + a sandbox root where the real apt-get runs with the hooks."""

    repo: Repo
    server: CountingServer
    sb: Sandbox
    cache_dir: Path

    def cache(self):
        from cache_core import PackageCache

        return PackageCache(str(self.cache_dir))


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    repo = Repo(tmp_path / "repo")
    repo.path.mkdir()
    repo.add("alpha", "1.0-1", size=30000)
    repo.publish()
    server = CountingServer(repo.path)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    cache_dir = tmp_path / "pkgcache"
    sb = Sandbox(tmp_path / "sb", server.url, cache_dir)
    sb.install_snippet()
    try:
        yield Lab(repo, server, sb, cache_dir)
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def fetch_server() -> Iterator[FetchServer]:
    srv = FetchServer().start()
    try:
        yield srv
    finally:
        srv.stop()


__all__ = ["Lab", "User", "build_deb", "cli", "user_dir"]
