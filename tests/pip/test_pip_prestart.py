"""pip started ahead (runner.Prestarted, the fleet run: pip's imports while the driver reads
the fleet): given its arguments it answers exactly as ``python -m pip`` started then would;
abandoned, it ends at once and says nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from hooks.pip import runner

PY = sys.executable


def _plain(args: list[str], cwd: str) -> tuple[int, str, str]:
    p = subprocess.run([PY, "-m", "pip", *args], env=dict(os.environ), capture_output=True,
                       text=True, cwd=cwd)
    return p.returncode, p.stdout, p.stderr


def _ahead(args: list[str], cwd: str) -> tuple[int, str, str]:
    env = dict(os.environ)
    old = os.getcwd()
    os.chdir(cwd)
    try:
        pre = runner.Prestarted(PY, env)
    finally:
        os.chdir(old)
    time.sleep(0.2)  # (its imports meanwhile)
    proc = pre.go([PY, "-m", "pip", *args], env)
    assert proc is not None
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out, err


def test_pip_started_ahead_answers_as_pip_started_then(tmp_path) -> None:
    for args in (["--version"], ["install", "--no-index", "--find-links", str(tmp_path),
                                 "no-such-project-pkgcache"], ["install", "--help"]):
        assert _ahead(args, str(tmp_path)) == _plain(args, str(tmp_path)), args


def test_nothing_is_imported_from_the_working_directory(tmp_path) -> None:
    """As with ``python -m pip``: a ``pip`` directory in the working directory is pip for
    both (Python's own rule for -m), so the answer stays the same either way."""
    (tmp_path / "json.py").write_text("raise SystemExit('planted json imported')\n")
    assert _ahead(["--version"], str(tmp_path)) == _plain(["--version"], str(tmp_path))


def test_an_abandoned_pip_ends_at_once_and_says_nothing() -> None:
    env = dict(os.environ)
    pre = runner.Prestarted(PY, env)
    proc = pre.proc
    assert proc is not None
    started = time.monotonic()
    pre.abandon()
    assert proc.returncode == 0 and time.monotonic() - started < 10


def test_another_command_or_environment_is_not_given_to_it() -> None:
    env = dict(os.environ)
    pre = runner.Prestarted(PY, env)
    assert pre.go([PY, "-m", "pip", "--version"], {**env, "PIP_X": "1"}) is None
    assert pre.go([PY, "-m", "pip", "--version"], env) is None  # used up: once only
    pre = runner.Prestarted(PY, env)
    assert pre.go(["/bin/true"], env) is None
