"""Running pip and uv for the target interpreter, and reading their failures."""

from __future__ import annotations

import json
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


# `python -c _BOOT FD`: pip's imports (the slow part of its start) while the driver still
# works, then the arguments from FD (JSON; none: exit 0) and pip run as `python -m pip ARGS`
# runs it: the package imported with the working directory first on sys.path, which pip's
# __main__ then drops before anything else is imported (so the boot drops it there too), and
# __main__ run by runpy. If pip cannot be imported, `python -m pip ARGS` itself is exec'd.
_BOOT = """
import os, sys
fd = int(sys.argv.pop())
try:
    import pip
except BaseException:
    pip = None
if sys.path and sys.path[0] in ("", os.getcwd()):
    sys.path.pop(0)
if pip is not None:
    try:
        import pip._internal.commands.install
    except BaseException:
        pass
data = b""
while True:
    chunk = os.read(fd, 1 << 16)
    if not chunk:
        break
    data += chunk
os.close(fd)
if not data:
    sys.exit(0)
import json
argv = json.loads(data)
if pip is None:
    os.execv(sys.executable, [sys.executable, "-m", "pip", *argv])
import runpy
sys.argv[1:] = argv
runpy.run_module("pip", run_name="__main__", alter_sys=True)
"""


class Prestarted:
    """``python -m pip`` of the target started ahead: its imports run while the driver still
    works; go() hands it its arguments (pip then runs exactly as if started then), abandon()
    ends it unused (so does the driver's exit: the pipe closes)."""

    def __init__(self, python: str, env: dict[str, str]) -> None:
        self.python = python
        self.env = dict(env)
        r, self._w = os.pipe()
        try:
            self.proc: subprocess.Popen[str] | None = subprocess.Popen(
                [python, "-c", _BOOT, str(r)], env=self.env, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace",
                pass_fds=(r,))
        except OSError:
            self.proc = None
            os.close(self._w)
            self._w = -1
        finally:
            os.close(r)

    def go(self, cmd: list[str], env: dict[str, str]) -> subprocess.Popen[str] | None:
        """The started pip, given cmd's arguments, if cmd is ``python -m pip ...`` for its
        interpreter with its environment; else None (abandoned: start cmd anew)."""
        proc, w = self.proc, self._w
        self.proc, self._w = None, -1
        if proc is None or w < 0 or cmd[:3] != [self.python, "-m", "pip"] or env != self.env \
                or proc.poll() is not None:
            _end(proc, w)
            return None
        try:
            data = json.dumps(cmd[3:]).encode()
            while data:
                data = data[os.write(w, data):]
        except OSError:
            _end(proc, -1)
            return None
        finally:
            os.close(w)
        return proc

    def abandon(self) -> None:
        """End it unused."""
        proc, w = self.proc, self._w
        self.proc, self._w = None, -1
        _end(proc, w)


def _end(proc: subprocess.Popen[str] | None, w: int) -> None:
    """Close the argument pipe (the boot script then exits) and reap the process."""
    if w >= 0:
        os.close(w)
    if proc is None:
        return
    try:
        proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()


def run_streaming(cmd: list[str], env: dict[str, str],
                  drop: str | Callable[[str], bool],
                  started: Prestarted | None = None) -> Result:
    """Run a tool with its stdout shown live except lines starting with drop (or for which
    drop(line) is true); capture stderr. started: pip started ahead for cmd (used if it fits)."""
    import threading

    proc = started.go(cmd, env) if started is not None else None
    if proc is None:
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


def last_error(stderr: str) -> str:
    """The most telling line of a tool's error output."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    for ln in reversed(lines):
        if ln.startswith(("ERROR:", "error:", "×")):
            return ln
    return lines[-1] if lines else "no error output"
