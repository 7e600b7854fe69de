"""8 processes harvest .debs, seed archives dirs, put wheels and read wheel views on overlapping
keys (the drivers' own functions), with eviction under a small cap: no process fails, nobody
ever reads a wrong file, and `pkgcache verify` is clean afterwards."""

from __future__ import annotations

import json
import os
import random
import subprocess
from pathlib import Path

import pytest

from tests.reliability.rel_lab import aptlab, assert_verify_clean, pipfx, stats
from tests.support import PY, REPO

PROCS = 8
OPS = 120
HERE = Path(__file__).resolve().parent


def make_sources(src: Path) -> None:
    """6 .deb names, 2 of them in two variants (same name, other bytes); 4 wheels."""
    rng = random.Random(1)
    for variant in ("a", "b"):
        (src / "debs" / variant).mkdir(parents=True)
    for n in range(6):
        name = f"pkg{n}_1.0-1_all.deb"
        (src / "debs" / "a" / name).write_bytes(rng.randbytes(rng.randint(20_000, 200_000)))
        if n < 2:
            (src / "debs" / "b" / name).write_bytes(rng.randbytes(rng.randint(20_000, 200_000)))
    (src / "wheels").mkdir()
    for n in range(4):
        pipfx.make_wheel(src / "wheels", f"w{n}", "1.0")


@pytest.mark.parametrize("cap", [0, 600_000])
def test_eight_processes_overlapping_keys(tmp_path: Path, cap: int) -> None:
    assert aptlab  # the same lab modules as the end-to-end tests
    src = tmp_path / "src"
    make_sources(src)
    cache_dir = tmp_path / "pkgcache"
    env = dict(os.environ, PYTHONPATH=f"{REPO}:{HERE}")
    procs = [subprocess.Popen([PY, str(HERE / "rel_worker.py"), str(cache_dir), str(seed),
                               str(OPS), str(src), str(tmp_path / "scratch"), str(cap)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for seed in range(PROCS)]
    totals: dict[str, int] = {}
    for p in procs:
        out, err = p.communicate(timeout=240)
        assert p.returncode == 0, err
        assert "Traceback" not in err and "warning" not in err, err
        for k, v in json.loads(out).items():
            totals[k] = totals.get(k, 0) + v
    print(f"cap={cap}: {totals}")
    assert totals["bad"] == 0 and totals["failed"] == 0 and totals["failed_harvest"] == 0, totals
    assert totals["seed_placed"] > 50 and totals["view_read"] > 100 and totals["harvest"] > 100
    assert_verify_clean(cache_dir)
    assert stats(cache_dir)["corrupt_detected"] == 0
