"""Smoke runs of the benches (issue 24): each scenario, --quick on a tiny set, ends with its table
and a valid JSON, also when a run fails. The numbers are not checked here (speed targets live in
bench/); the fleet bench's own tests are in tests/fleet_bench."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench import run as bench_run
from tests.support import REPO


def _bench(tmp_path: Path, *args: str, timeout: float = 600) -> tuple[subprocess.CompletedProcess[str], dict]:
    """`python -m bench.run --quick --no-chart ARGS` into tmp_path; (process, its JSON)."""
    out = tmp_path / "out"
    p = subprocess.run([sys.executable, "-m", "bench.run", "--quick", "--no-chart", "--out", str(out),
                        "--workdir", str(tmp_path / "work"), *args], capture_output=True, text=True,
                       cwd=REPO, timeout=timeout)
    assert p.returncode in (0, 1), p.stdout[-3000:] + p.stderr[-3000:]
    res = json.loads((out / "latest.json").read_text())
    tail = p.stdout.rstrip().splitlines()
    assert tail[-2].startswith("wrote ") and tail[-1].startswith("chart: skipped"), tail[-5:]
    assert res["table"] in p.stdout and "target (ratio of medians)" in res["table"]
    return p, res


def _no_failures(section: dict, scenarios: list[str]) -> None:
    assert section.get("errors") == [], section.get("errors")
    for k in scenarios:
        assert section["scenarios"][k]["wall"]["n"] == 1, k


def test_a_failed_section_still_ends_with_table_and_json(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from bench.scenarios import core

    def boom(*a: object) -> dict:
        raise SystemExit("bench.scenarios.core failed:\nTraceback ... OSError: disk full")

    monkeypatch.setattr(core, "collect", boom)
    monkeypatch.setattr(sys, "argv", ["run.py", "--quick", "--only", "core", "--no-chart", "--out",
                                      str(tmp_path), "--workdir", str(tmp_path / "w")])
    assert bench_run.main() == 1
    out = capsys.readouterr().out
    res = json.loads((tmp_path / "latest.json").read_text())
    assert "disk full" in res["core"]["error"] and res["targets"] == []
    assert "core  FAILED" in out and "FAILED core: bench.scenarios.core failed:" in out


@pytest.mark.slow
def test_core_quick(tmp_path: Path) -> None:
    _, res = _bench(tmp_path, "--only", "core", "--core-size-mb", "4")
    m = res["core"]["metrics"]
    assert m["verified_get_vs_file_digest"]["n"] == 1 and m["lookups_per_s_100000"]["median"] > 0
    t = {x["target"]: x for x in res["targets"]}
    assert len(t["verified get / hashlib.file_digest"]["per_run"]) == 1


@pytest.mark.slow
@pytest.mark.network
def test_pip_quick(tmp_path: Path) -> None:
    req = tmp_path / "req.txt"
    req.write_text("six\n")
    _, res = _bench(tmp_path, "--only", "pip", "--pip-requirements", str(req))
    p = res["pip"]
    names = [k for k in p["scenarios"]]
    assert {"pip-cold", "pip-warm", "wheelhouse", "pkgcache-online", "pkgcache-pip"} <= set(names)
    _no_failures(p, names)
    assert p["orders"] == [" ".join(names)]  # round 1: row 0 of the Latin square
    # the warm pip is warm: nothing from upstream, at most a revalidation of the one index page
    warm = p["scenarios"]["pip-warm"]
    assert warm["bytes"]["max"] == 0 and warm["requests"] <= 1
    t = {x["target"]: x for x in res["targets"]}
    limit = t["pkgcache pip backend offline / wheelhouse --no-index"]
    assert limit["limit"] == 1.05 and len(limit["per_run"]) == 1 and limit["per_run"][0] > 0
    if "uv-offline" in names:  # uv installed: its peers, and the closest design beside them
        assert {"pkgcache-uv", "uv-wheelhouse"} <= set(names)
        closest = t["uv --find-links wheelhouse (no pkgcache) / uv --offline"]
        assert closest["limit"] is None and closest["per_run"][0] > 0


@pytest.mark.slow
@pytest.mark.network
@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("mmdebstrap"),
                    reason="needs root and mmdebstrap")
def test_apt_quick(tmp_path: Path) -> None:
    from tests.deb.debroot import base_tarball  # the tests' bookworm root (built once a day)

    _, res = _bench(tmp_path, "--only", "apt", "--apt-packages", "hello", "--apt-base",
                    str(base_tarball()), timeout=900)
    a = res["apt"]
    _no_failures(a, ["A", "H", "S", "B", "N", "P", "F"])
    assert a["orders"] == ["AHSBN"]
    t = {x["target"]: x for x in res["targets"]}
    assert len(t["warm apt S / apt-cacher-ng warm N"]["per_run"]) == 1
    assert a["scenarios"]["S"]["debs_fetched"]["max"] == 0  # seeded by pkgcache: nothing fetched


ROOT_NGINX = os.geteuid() == 0 and Path("/usr/sbin/nginx").exists()


@pytest.mark.slow
@pytest.mark.parametrize("module, args, needs_root", [
    ("startup", ["--runs", "1"], False),
    ("remote_get", ["--size-mb", "1", "--reps", "1", "--no-s3", "--objects", "3"], True),
    ("apt_fleet", ["--packages", "3", "--reps", "1"], True),
])
def test_the_other_scenarios_quick(tmp_path: Path, module: str, args: list[str],
                                   needs_root: bool) -> None:
    # each runs on its own, prints its table and writes a valid JSON
    if needs_root and not ROOT_NGINX:
        pytest.skip("needs root and nginx")
    out = tmp_path / "out.json"
    p = subprocess.run([sys.executable, "-m", f"bench.scenarios.{module}", *args, "--json", str(out)],
                       capture_output=True, text=True, cwd=REPO, timeout=600)
    assert p.returncode in (0, 1), p.stdout[-2000:] + p.stderr[-2000:]
    assert json.loads(out.read_text()) and p.stdout.strip(), p.stdout[-2000:]


@pytest.mark.slow
@pytest.mark.network
@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("mmdebstrap") or not ROOT_NGINX,
                    reason="needs root, mmdebstrap and nginx")
def test_fleet_quick(tmp_path: Path) -> None:
    # `python -m bench.scenarios.fleet --quick`: one run of every scenario on tiny sets (hello;
    # six), the peers primed, unpaced; it ends with its table and a JSON with nothing failed
    from bench.scenarios import fleet

    out = tmp_path / "out"
    p = subprocess.run([sys.executable, "-m", "bench.scenarios.fleet", "--quick", "--no-chart",
                        "--out", str(out), "--internet-rate", "0", "--prefix",
                        f"pkgcsmk{os.getpid() % 100000}",
                        "--workdir", "/var/tmp/pkgcache-fleet-smoke"],  # the base image, kept 24 h
                       capture_output=True, text=True, cwd=REPO, timeout=1500)
    assert p.returncode in (0, 1), p.stdout[-3000:] + p.stderr[-3000:]
    res = json.loads((out / "fleet.json").read_text())
    assert res["table"] in p.stdout and p.stdout.rstrip().splitlines()[-1].startswith("chart: skipped")
    assert fleet.failures(res) == [], fleet.failures(res)
    assert (res["apt_set"], res["pip_set"], res["orders"]) == (
        ["hello"], ["six"],
        [["cold", "fleet", "fleetwin", "poisoned", "linkdown", "stopped", "acng", "limit",
          "devpi"]])
    assert {k: v["runs"] for k, v in res["summary"].items()} == {k: 1 for k in fleet.SCENARIOS}
    assert all(v["same_as_cold"] for v in res["summary"].values())
    # the peers' servers are clean and the peers served them (primed: nothing from the internet)
    r = res["results"]
    # devpi may revalidate with the files host (CI run 6 counted 24 bytes); six's wheel is 11 kB
    assert r["acng"][0]["debs_internet"] < 100_000 and r["devpi"][0]["wheels_internet"] < 1_000
    assert r["acng"][0]["wheels_internet"] > 0 and "install_s" not in r["devpi"][0]
    assert r["acng"][0]["remote_hits"] is None and r["devpi"][0]["remote_hits"] is None
    # the limit: acng's update, the install with every deb already there (none downloaded)
    assert r["limit"][0]["debs_internet"] < 100_000 and "pip_s" not in r["limit"][0]
    assert r["limit"][0]["install_lan"] < 100_000
    # cold3: internet bytes per server and in all, against this run's one cold server
    c3 = r["cold3"][0]
    assert len(c3["internet_by_server"]) == 3 and all(b > 0 for b in c3["internet_by_server"])
    assert sum(c3["internet_by_server"]) <= c3["internet_total"]
    assert c3["internet_vs_cold"] == pytest.approx(c3["internet_total"] / c3["cold_internet"])
    assert c3["all_wall_s"] >= max(c3["server_total_s"]) * 0.9
    assert "cold3 run 1: 3 servers at once: all done in" in res["table"]
    t = {x["target"]: x for x in res["targets"]}
    for name in ("fleet pip step / the best pip peer", "cold3: internet bytes of all servers"):
        found = [v for k, v in t.items() if k.startswith(name)]
        assert found and len(found[0]["per_run"]) == 1 and found[0]["per_run"][0] > 0, name
