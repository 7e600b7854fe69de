"""Running pip and uv for the target interpreter, and reading their failures."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .target import Target

if TYPE_CHECKING:
    from packaging.requirements import Requirement


@dataclass
class Result:
    """Exit code and captured output of one tool run."""

    rc: int
    stdout: str = ""
    stderr: str = ""


def tool_env(tool_cache: Path | None) -> dict[str, str]:
    """The environment for pip/uv: their own caches under ours so builds leak nowhere else."""
    env = dict(os.environ)
    if tool_cache is not None:
        env["PIP_CACHE_DIR"] = str(tool_cache / "pip")
        env["UV_CACHE_DIR"] = str(tool_cache / "uv")
    env.setdefault("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    return env


def pip_cmd(target: Target | None, python: str) -> list[str]:
    """How to run pip for the target: its own pip, or ours with ``--python``."""
    if target is None or target.has_pip():
        return [python, "-m", "pip"]
    return [sys.executable, "-m", "pip", "--python", python]


def uv_bin() -> str | None:
    """The uv executable, if installed (module ``uv`` or on PATH)."""
    try:
        import uv  # type: ignore[import-not-found]

        path = uv.find_uv_bin()
        if path and os.access(path, os.X_OK):
            return str(path)
    except Exception:  # noqa: BLE001 - uv is optional; any failure means "not available"
        pass
    return shutil.which("uv")


def run(cmd: list[str], env: dict[str, str], *, capture_stdout: bool = True,
        timeout: float | None = None) -> Result:
    """Run a tool; stderr is always captured (replayed by the caller), stdout optionally."""
    proc = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE if capture_stdout else None,
                          stderr=subprocess.PIPE, text=True, errors="replace",
                          timeout=timeout, check=False)
    return Result(proc.returncode, proc.stdout or "", proc.stderr or "")


def run_streaming(cmd: list[str], env: dict[str, str],
                  drop: str | Callable[[str], bool]) -> Result:
    """Run a tool with its stdout shown live except lines starting with drop (or for which
    drop(line) is true); capture stderr."""
    import threading

    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, errors="replace")
    err: list[str] = []
    assert proc.stderr is not None
    stderr = proc.stderr
    reader = threading.Thread(target=lambda: err.append(stderr.read()), daemon=True)
    reader.start()
    assert proc.stdout is not None
    skip = drop if callable(drop) else (lambda line: line.startswith(drop))
    for line in proc.stdout:
        if not skip(line):
            sys.stdout.write(line)
            sys.stdout.flush()
    rc = proc.wait()
    reader.join()
    return Result(rc, "", "".join(err))


def replay(text: str) -> None:
    """Print a tool's captured stderr as it was."""
    if text:
        sys.stderr.write(text if text.endswith("\n") else text + "\n")
        sys.stderr.flush()


# -- reading failures ------------------------------------------------------------------------
_NO_MATCH = re.compile(r"No matching distribution found for ([^\s(]+)")
_NO_VERSION = re.compile(r"satisfies the requirement ([^\s(]+)")
_UV_MISSING = re.compile(r"Because ([A-Za-z0-9._-]+)[^\n]* (?:was not found|there is no version"
                         r"|there are no versions|has no wheels|is not available)")
_RETRY = ("No matching distribution found", "Could not find a version that satisfies",
          "ResolutionImpossible", "conflicting dependencies", "DO NOT MATCH THE HASHES",
          "No solution found when resolving", "not found in the provided package locations",
          "Hash mismatch", "does not match the hash", "requires a different Python")
_NETWORK = ("NewConnectionError", "Failed to establish a new connection", "Max retries exceeded",
            "ConnectionError", "Connection refused", "Network is unreachable",
            "Temporary failure in name resolution", "timed out", "Failed to fetch",
            "error sending request", "dns error")


def missing_requirement(stderr: str) -> Requirement | None:
    """The requirement pip/uv could not satisfy, from their error text."""
    from packaging.requirements import InvalidRequirement, Requirement  # slow import: errors only

    for rx in (_NO_MATCH, _NO_VERSION, _UV_MISSING):
        m = rx.search(stderr)
        if m:
            try:
                return Requirement(m.group(1).strip("'\""))
            except InvalidRequirement:
                continue
    return None


def is_retryable(stderr: str) -> bool:
    """True if a failed offline attempt may succeed after resolving online."""
    return any(s in stderr for s in _RETRY)


def is_network_error(stderr: str) -> bool:
    """True if the tool failed to reach an index."""
    return any(s in stderr for s in _NETWORK)


def network_cause(stderr: str) -> str:
    """The network failure pip/uv reported, in a few words ("connection refused")."""
    low = stderr.lower()
    for cause in ("connection refused", "network is unreachable", "timed out",
                  "temporary failure in name resolution", "certificate verify failed",
                  "cannot connect to proxy", "tunnel connection failed"):
        if cause in low:
            return cause
    return "the index could not be reached"


def last_error(stderr: str) -> str:
    """The most telling line of a tool's error output."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    for ln in reversed(lines):
        if ln.startswith(("ERROR:", "error:", "×")):
            return ln
    return lines[-1] if lines else "no error output"
