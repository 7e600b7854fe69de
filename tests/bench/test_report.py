"""bench/lib/report.py: targets as ratios of medians with their per-round (paired) ratios, and
failed runs and sections listed in the table (pure logic, no bench run)."""

from __future__ import annotations

import pytest

from bench.lib.report import print_table, table_rows, targets
from bench.lib.stats import latin, paired, stats


def _pip(per_round: dict[str, list[float | None]], errors: list[str] | None = None) -> dict:
    return {"per_round": per_round, "errors": errors or [],
            "scenarios": {k: {"wall": stats(v), "bytes": stats([0] * len(v)), "requests": 0}
                          for k, v in per_round.items()}}


def test_pip_target_is_against_the_wheelhouse_with_paired_ratios() -> None:
    res = {"pip": _pip({"wheelhouse": [1.0, 2.0, 1.0], "pkgcache-pip": [1.1, 1.0, 1.2],
                        "pip-warm": [0.5, 0.5, 0.5], "pkgcache-online": [1.0, 1.0, 1.0],
                        "uv-offline": [0.1, 0.1, 0.1], "pkgcache-uv": [0.1, 0.2, None]})}
    t = {x["target"]: x for x in targets(res)}
    wh = t["pkgcache pip backend offline / wheelhouse --no-index"]
    assert wh["value"] == pytest.approx(1.1 / 1.0) and wh["met"] is False and wh["limit"] == 1.05
    assert wh["per_run"] == pytest.approx([1.1, 0.5, 1.2])
    uv = t["pkgcache uv backend offline / uv --offline"]
    assert uv["per_run"][:2] == pytest.approx([1.0, 2.0]) and uv["per_run"][2] is None
    online = t["pkgcache online / warm pip (HTTP cache filled)"]
    assert online["met"] is None and online["value"] == pytest.approx(2.0)  # reported, no verdict


def test_failed_runs_and_sections_are_in_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    res = {"pip": _pip({"wheelhouse": [1.0], "pkgcache-pip": [None]},
                       ["pkgcache-pip: failed (1): pkgcache pip install ..."]),
           "apt": {"error": "mmdebstrap: cannot reach the archive"}}
    res["targets"] = targets(res)
    rows = table_rows(res)
    assert ["apt", "FAILED", "-", "-", "-", "mmdebstrap: cannot reach the archive"] in rows
    assert [r[2] for r in rows if r[1] == "pkgcache-pip (s)"] == ["FAILED"]
    text = print_table(res)
    assert "FAILED pip pkgcache-pip: failed (1)" in text
    assert "FAILED apt: mmdebstrap: cannot reach the archive" in text


def test_rotation_and_pairing() -> None:
    names = ["A", "H", "S", "B", "N"]
    rows = [latin(names, r) for r in range(5)]
    assert ["".join(r) for r in rows] == ["AHSBN", "HSBNA", "SBNAH", "BNAHS", "NAHSB"]
    assert paired([2.0, None, 3.0], [1.0, 1.0, 0.0]) == [2.0, None, None]
