"""The fleet bench's pure logic (summary, targets, table) and its namespace lab (issue 16).

The bench itself (bench/scenarios/fleet.py) is not run here: it provisions real servers for
tens of minutes. The lab test builds 2 server namespaces and a store, moves bytes across the
shaped LAN and through the counting relay, and checks that nothing is left behind.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.scenarios import fleet

netns = fleet.netns


def _rec(total: float, **kw: object) -> dict:
    r = {"update_s": 2.0, "install_s": total - 10.0, "pip_s": 8.0, "update_internet": 100,
         "debs_internet": 0, "install_internet": 0, "pip_internet": 50, "wheels_internet": 0,
         "update_lan": 10, "install_lan": 1000, "pip_lan": 500, "same_as_cold": True,
         "remote_mismatches": 0, "total_s": total}
    r.update(kw)
    return r


def _results(**over: list[dict]) -> dict[str, list[dict]]:
    res = {"cold": [_rec(60, debs_internet=9e7, install_internet=9e7, wheels_internet=4e7),
                    _rec(64, debs_internet=9e7, install_internet=9e7, wheels_internet=4e7),
                    _rec(62, debs_internet=9e7, install_internet=9e7, wheels_internet=4e7)],
           "fleet": [_rec(40), _rec(42), _rec(41)],
           "acng": [_rec(41), _rec(40), _rec(43)],
           "stopped": [_rec(62.5), _rec(63), _rec(61)],
           "linkdown": [_rec(65), _rec(66), _rec(64)],
           "poisoned": [_rec(45, remote_mismatches=1), _rec(44, remote_mismatches=1),
                        _rec(46, remote_mismatches=2)]}
    res.update(over)
    return res


def _met(results: dict) -> dict[str, object]:
    return {t["target"]: t["met"] for t in fleet.targets(fleet.summarize(results))}


def test_summary_is_median_min_max_of_each_measure() -> None:
    s = fleet.summarize(_results())
    assert s["cold"]["total_s"] == {"median": 62, "min": 60, "max": 64, "n": 3}
    assert s["fleet"]["apt_s"]["median"] == 2.0 + 31.0
    assert s["poisoned"]["remote_mismatches"]["min"] == 1


def test_targets_met_and_missed() -> None:
    met = _met(_results())
    assert met["fleet: bytes of debs + wheels from the internet (max)"] is True
    assert met["fleet / apt-cacher-ng primed: apt-get update + install time"] is True  # 33/33
    assert met["stopped: total time - cold total time (s)"] is True  # 62 - 62
    assert met["linkdown: total time - cold total time (s)"] is False  # 65 - 62 = 3 s
    assert met["poisoned: mismatch detected in every run (min mismatches)"] is True
    # one wheel from the internet in one run; fleet slower than acng by > 10 %; a different result
    bad = _results(fleet=[_rec(40), _rec(50, wheels_internet=1), _rec(60, same_as_cold=False)],
                   poisoned=[_rec(45, remote_mismatches=0), _rec(45, remote_mismatches=1)])
    met = _met(bad)
    assert met["fleet: bytes of debs + wheels from the internet (max)"] is False
    assert met["fleet / apt-cacher-ng primed: apt-get update + install time"] is False
    assert met["fleet: same result as cold"] is False
    assert met["poisoned: mismatch detected in every run (min mismatches)"] is False


def test_unmeasured_scenarios_give_no_verdict() -> None:
    res = _results()
    del res["acng"]
    targets = {t["target"]: t for t in fleet.targets(fleet.summarize(res))}
    t = targets["fleet / apt-cacher-ng primed: apt-get update + install time"]
    assert t["met"] is None and t["value"] is None


def test_table_has_one_row_per_scenario_with_ranges() -> None:
    res = {"summary": fleet.summarize(_results()), "targets": []}
    rows = fleet.table_rows(res["summary"])
    assert [r[0].split(":")[0] for r in rows] == ["cold", "fleet", "poisoned", "linkdown",
                                                   "stopped", "acng"]
    cold = rows[0]
    assert cold[2] == "52.0 (50.0–54.0)"  # install s
    assert cold[5] == "90.0"  # debs MB
    assert "NOT met" in fleet.render({**res, "targets": fleet.targets(res["summary"])})


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("ip") or not Path("/usr/sbin/nginx").exists(),
                    reason="needs root, iproute2 and nginx")
def test_lab_moves_bytes_across_and_leaves_nothing_behind(tmp_path: Path) -> None:
    prefix = f"pkgct{os.getpid() % 100000}"
    lab = netns.Lab(prefix, tmp_path / "lab", servers=2)
    relay = fleet.Relay(tmp_path / "relay.sock", rate=0)
    origin = tmp_path / "origin"
    origin.mkdir()
    (origin / "blob").write_bytes(os.urandom(300_000))
    web = subprocess.Popen([sys.executable, "-m", "http.server", "-b", "127.0.0.1", "0", "-d",
                            str(origin)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    port = 0
    try:
        line = web.stdout.readline()  # "Serving HTTP on 127.0.0.1 port N ..."
        port = int(line.split(" port ")[1].split()[0])
        fleet.countproxy.ALLOWED_PORTS.add(port)  # the relay passes only 80/443 otherwise
        lab.up(relay.path, "800mbit")
        _, url = netns.start_nginx(lab, tmp_path / "store")

        def curl(i: int, *args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([*lab.exec_prefix(i), "curl", "-sS", "-m", "5", *args],
                                  capture_output=True, text=True)
        blob = tmp_path / "blob"
        blob.write_bytes(os.urandom(200_000))
        lan0 = lab.lan_bytes(1)
        assert curl(1, "-T", str(blob), f"{url}/cas/x").returncode == 0
        assert lab.lan_bytes(1) - lan0 >= 200_000
        got = tmp_path / "got"
        assert curl(2, "-o", str(got), f"{url}/cas/x").returncode == 0
        assert got.read_bytes() == blob.read_bytes()
        # the internet only through the relay: counted, and no route around it
        relay.reset()
        assert curl(2, "-o", str(got), "-x", f"http://127.0.0.1:{netns.PROXY_PORT}",
                    f"http://127.0.0.1:{port}/blob").returncode == 0
        assert got.read_bytes() == (origin / "blob").read_bytes()
        assert sum(relay.snapshot().values()) >= 300_000
        assert curl(2, "-o", str(got), f"http://{netns.STORE_IP}:1/").returncode != 0
        assert "unreachable" in subprocess.run([*lab.exec_prefix(2), "ip", "route", "get",
                                                "192.0.2.1"], capture_output=True,
                                               text=True).stderr
        pids = [int(p) for p in (tmp_path / "lab" / f"{prefix}.pids").read_text().split()]
    finally:
        lab.down()
        relay.close()
        web.terminate()
        web.wait()
        fleet.countproxy.ALLOWED_PORTS.discard(port)
    assert lab.namespaces() == []
    time.sleep(0.1)
    assert [p for p in pids if netns.alive(p)] == []
    assert prefix not in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                        text=True).stdout
