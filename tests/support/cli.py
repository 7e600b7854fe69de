"""The one runner for this checkout's ``pkgcache`` CLI (``python -m hooks.cli``) as a child."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tests.support import PY, REPO
from tests.support.env import child_env, clean_env


def argv(*args: str, cache_dir: Path | str | None = None) -> list[str]:
    """The command line: ``PY -m hooks.cli [--cache-dir DIR] ARGS``."""
    pre = ["--cache-dir", str(cache_dir)] if cache_dir is not None else []
    return [PY, "-m", "hooks.cli", *pre, *args]


def run_cli(*args: str, cache_dir: Path | str | None = None, env: Mapping[str, str] | None = None,
            base: Mapping[str, str] | None = None, text: bool = True, timeout: float = 300,
            check: bool = False, **kw: Any) -> subprocess.CompletedProcess[Any]:
    """Run pkgcache ARGS and capture its output. The environment is ``base`` (default: this
    process's) with ``env`` on top and the checkout on PYTHONPATH."""
    return subprocess.run(argv(*args, cache_dir=cache_dir), capture_output=True, text=text,
                          env=child_env(base, env), timeout=timeout, check=check, **kw)


def popen_cli(*args: str, cache_dir: Path | str | None = None,
              env: Mapping[str, str] | None = None, base: Mapping[str, str] | None = None,
              **kw: Any) -> subprocess.Popen[Any]:
    """Start pkgcache ARGS (same environment rules as run_cli)."""
    return subprocess.Popen(argv(*args, cache_dir=cache_dir), env=child_env(base, env), **kw)


class Runner:
    """``pkgcache --cache-dir <tmp>/cache ARGS`` as a real child in a clean environment (no
    proxies, no PKGCACHE_* from outside, an empty config in tmp), from the checkout's root.
    Output is bytes unless ``text``."""

    text = False

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.cache_dir = tmp / "cache"

    def env(self) -> dict[str, str]:
        """The child's environment."""
        return clean_env(self.tmp)

    def cmd(self, *args: str) -> list[str]:
        """The command line for args."""
        return argv(*args, cache_dir=self.cache_dir)

    def __call__(self, *args: str, env: Mapping[str, str] | None = None, timeout: float = 120,
                 cwd: Path | None = None) -> subprocess.CompletedProcess[Any]:
        return run_cli(*args, cache_dir=self.cache_dir, base=env or self.env(), text=self.text,
                       cwd=cwd or REPO, timeout=timeout)

    def popen(self, *args: str, **kw: Any) -> subprocess.Popen[Any]:
        """Start pkgcache args (for tests that kill or race it)."""
        return popen_cli(*args, cache_dir=self.cache_dir, base=self.env(), cwd=REPO, **kw)


# What `pkgcache ARGS` imported, run in a fresh interpreter the way the console script runs it.
_PROBE = """import json, sys
sys.path.insert(0, {repo!r})
before = set(sys.modules)
from hooks.cli import main
try:
    code = main({args!r})
except SystemExit as exc:
    code = exc.code
sys.stdout.flush()
sys.stderr.write("\\nMODULES " + json.dumps([code, sorted(set(sys.modules) - before)]) + "\\n")
"""


def probe_imports(*args: str, env: Mapping[str, str] | None = None,
                  timeout: float = 60) -> tuple[object, set[str], str]:
    """(exit code, modules loaded beyond the interpreter's start-up, stderr) of pkgcache ARGS."""
    proc = subprocess.run([sys.executable, "-c", _PROBE.format(repo=str(REPO), args=list(args))],
                          capture_output=True, text=True, env=dict(os.environ, **(env or {})),
                          timeout=timeout)
    line = [x for x in proc.stderr.splitlines() if x.startswith("MODULES ")]
    assert line, proc.stderr
    code, mods = json.loads(line[-1].removeprefix("MODULES "))
    return code, set(mods), proc.stderr


def pip_installed(base: Path) -> Path:
    """This checkout pip-installed (not editable) into a new venv under base, as a user without
    the .deb installs it; the venv's ``pkgcache`` executable."""
    venv = base / "venv"
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--system-site-packages", str(venv)],
                   check=True, capture_output=True)
    src = base / "src"  # a copy: setuptools writes build/ into the tree it installs from
    files = subprocess.run(["git", "ls-files", "-z", "--", "pyproject.toml", "README.md",
                            "cache_core", "hooks"], cwd=REPO, capture_output=True,
                           check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_bytes((REPO / name).read_bytes())
    res = subprocess.run([str(venv / "bin/pip"), "install", "-q", "--no-deps", "--no-index",
                          "--no-build-isolation", str(src)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return venv / "bin/pkgcache"
