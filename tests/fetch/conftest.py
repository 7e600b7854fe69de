"""Fixtures for the fetch tests: a real HTTP server on 127.0.0.1 and a runner for `pkgcache`."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from fetch_server import FetchServer  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY",
              "ALL_PROXY", "NO_PROXY")


@pytest.fixture
def server() -> Iterator[FetchServer]:
    srv = FetchServer().start()
    try:
        yield srv
    finally:
        srv.stop()


def clean_env(tmp: Path, **extra: str) -> dict[str, str]:
    """Environment for a pkgcache child: empty config, no proxies, repo importable."""
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARS
           and not k.startswith("PKGCACHE_")}
    cfg = tmp / "config.yaml"
    if not cfg.exists():
        cfg.write_text("")
    env["PKGCACHE_CONFIG"] = str(cfg)
    env["PYTHONPATH"] = str(REPO)
    env.update(extra)
    return env


class Runner:
    """Runs `pkgcache --cache-dir <tmp>/cache fetch ...` as a real child process."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.cache_dir = tmp / "cache"

    def cmd(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "hooks.cli", "--cache-dir", str(self.cache_dir), *args]

    def __call__(self, *args: str, env: dict[str, str] | None = None,
                 timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(self.cmd(*args), cwd=REPO, env=env or clean_env(self.tmp),
                              capture_output=True, timeout=timeout)

    def popen(self, *args: str, **kw: object) -> subprocess.Popen[bytes]:
        return subprocess.Popen(self.cmd(*args), cwd=REPO, env=clean_env(self.tmp), **kw)


@pytest.fixture
def run(tmp_path: Path) -> Runner:
    return Runner(tmp_path)
