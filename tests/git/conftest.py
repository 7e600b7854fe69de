"""Fixtures for the git tests: bare repositories served over git's smart HTTP on 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from git_server import GitHttpServer  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
_DROP = ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY",
         "ALL_PROXY", "NO_PROXY")


@pytest.fixture
def gitsrv(tmp_path: Path) -> Iterator[GitHttpServer]:
    root = tmp_path / "srv"
    root.mkdir()
    srv = GitHttpServer(root).start()
    try:
        yield srv
    finally:
        srv.stop()


def child_env(tmp: Path) -> dict[str, str]:
    """No proxies, no GIT_* or PKGCACHE_* leaking in, a private HOME, an empty config."""
    env = {k: v for k, v in os.environ.items() if k not in _DROP
           and not k.startswith(("GIT_", "PKGCACHE_"))}
    home = tmp / "home"
    home.mkdir(exist_ok=True)
    cfg = tmp / "config.yaml"
    if not cfg.exists():
        cfg.write_text("")
    env.update(HOME=str(home), GIT_CONFIG_NOSYSTEM="1", PKGCACHE_CONFIG=str(cfg),
               PYTHONPATH=str(REPO))
    return env


class GitRunner:
    """Runs `pkgcache --cache-dir <tmp>/cache git ...` as a real child process."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.cache_dir = tmp / "cache"
        self.bucket = self.cache_dir / "git-v1"

    def cmd(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "hooks.cli", "--cache-dir", str(self.cache_dir), *args]

    def __call__(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.cmd(*args), cwd=REPO, env=child_env(self.tmp), text=True,
                              capture_output=True, timeout=timeout)

    def popen(self, *args: str, **kw: object) -> subprocess.Popen[bytes]:
        return subprocess.Popen(self.cmd(*args), cwd=REPO, env=child_env(self.tmp), **kw)

    def mirrors(self) -> list[Path]:
        return sorted(p for p in self.bucket.iterdir() if not p.name.startswith(".")) \
            if self.bucket.exists() else []

    def leftovers(self) -> list[Path]:
        return sorted(p for p in self.bucket.iterdir() if p.name.startswith(".")) \
            if self.bucket.exists() else []


@pytest.fixture
def grun(tmp_path: Path) -> GitRunner:
    return GitRunner(tmp_path)
