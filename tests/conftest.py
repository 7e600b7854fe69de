"""Shared fixtures: a fresh cache directory and a helper to run the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test reads the machine's pkgcache config or cache."""
    monkeypatch.setenv("PKGCACHE_CONFIG", str(tmp_path / "no-such-config.yaml"))
    monkeypatch.delenv("PKGCACHE_DIR", raising=False)
    monkeypatch.delenv("PKGCACHE_DISABLE", raising=False)
    state = tmp_path / "state"  # trust memos (seed plan, fetch digests): never the host's
    monkeypatch.setenv("PKGCACHE_STATE_DIR", str(state))
    os.chmod(tmp_path, 0o755)
    cfg = tmp_path / "no-such-config.yaml"
    cfg.write_text("performance:\n  cache:\n    enabled: true\n")


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    """A path for a cache that does not exist yet."""
    return tmp_path / "cache"


def run_cli(*args: str, env: dict[str, str] | None = None, check: bool = False,
            **kw: object) -> subprocess.CompletedProcess[str]:
    """Run ``python -m hooks.cli ARGS`` and capture its output."""
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = str(REPO)
    if env:
        full_env.update(env)
    return subprocess.run([sys.executable, "-m", "hooks.cli", *args], capture_output=True,
                          text=True, env=full_env, check=check, **kw)  # type: ignore[call-overload]
