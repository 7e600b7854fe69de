"""Against the real PyPI (marked network): a wheel and an sdist-only project, then offline."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.cli import argv
from tests.support.env import child_env


def _netns() -> list[str]:
    if shutil.which("unshare") and subprocess.run(["unshare", "-n", "true"],
                                                  capture_output=True).returncode == 0:
        return ["unshare", "-n"]
    return []


@pytest.mark.network
def test_pip_network_pypi_then_offline(tmp_path: Path, make_venv) -> None:
    netns = _netns()
    if not netns:
        pytest.skip("cannot make a network namespace here (unshare -n)")
    env = child_env()
    base = argv("pip", "install", "-q", "-i", "https://pypi.org/simple", cache_dir=tmp_path / "c")
    reqs = ["six==1.16.0", "docopt==0.6.2"]  # a universal wheel; an sdist-only project
    v1 = make_venv()
    out = subprocess.run([*base, "--python", str(v1 / "bin" / "python"), *reqs],
                         capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr
    # No network at all now: the cache alone must do.
    v2 = make_venv()
    out = subprocess.run([*netns, *base, "--python", str(v2 / "bin" / "python"), *reqs],
                         capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""
    check = subprocess.run([str(v2 / "bin" / "python"), "-c", "import six, docopt"],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
