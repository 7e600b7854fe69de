"""hooks/apt/runwarn.py: one warning line per apt run, shared by the hooks and the method."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from hooks.apt import invocation, runwarn


class _Inv:
    def __init__(self, pid: int) -> None:
        self.pid = pid


def _as_run_of(monkeypatch: pytest.MonkeyPatch, pid: int | None) -> None:
    monkeypatch.setattr(invocation, "current", lambda: None if pid is None else _Inv(pid))


def test_the_first_process_of_an_apt_run_warns_the_others_do_not(tmp_path: Path, monkeypatch):
    run_dir = tmp_path / "run"
    _as_run_of(monkeypatch, os.getpid())
    assert runwarn.first_of_run(str(run_dir)) is True
    assert runwarn.first_of_run(str(run_dir)) is False        # the method, the next hook
    assert os.stat(run_dir).st_mode & 0o777 == 0o700
    child = subprocess.Popen(["sleep", "30"])
    try:
        _as_run_of(monkeypatch, child.pid)                     # the next apt run
        assert runwarn.first_of_run(str(run_dir)) is True
    finally:
        child.kill()
        child.wait()
    _as_run_of(monkeypatch, os.getpid())
    assert runwarn.first_of_run(str(run_dir)) is False
    assert len(os.listdir(run_dir)) == 1                       # the ended run's marker is gone


def test_a_warning_is_never_lost_when_the_run_cannot_be_told(tmp_path: Path, monkeypatch):
    _as_run_of(monkeypatch, None)                              # python-apt, no apt above us
    assert runwarn.first_of_run(str(tmp_path / "a")) is True
    assert runwarn.first_of_run(str(tmp_path / "a")) is True
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    os.chmod(shared, 0o777)                                    # others could plant markers
    _as_run_of(monkeypatch, os.getpid())
    assert runwarn.first_of_run(str(shared)) is True
    assert runwarn.first_of_run(str(shared)) is True
    (tmp_path / "file").write_text("")
    assert runwarn.first_of_run(str(tmp_path / "file")) is True
