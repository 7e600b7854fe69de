"""Smoke run of bench/scenarios/apt_update.py (issue 24's `apt-get update` target): one round on
a tiny repository ends with its three rows. The numbers are not checked (speed targets live in
bench/)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support import REPO

pytestmark = pytest.mark.slow


def test_the_update_bench_ends_with_its_rows() -> None:
    p = subprocess.run([sys.executable, "-m", "bench.scenarios.apt_update", "--rounds", "1",
                        "--packages", "3"], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    lines = p.stdout.strip().splitlines()
    assert lines[-4].startswith("apt-get update, warm, origin up: 3 packages, 1 rounds"), lines
    for row, scen in zip(lines[-3:], ("none", "method", "method+hooks"), strict=True):
        assert row.split()[0] == scen and "per round" in row and "CPU" in row, row
