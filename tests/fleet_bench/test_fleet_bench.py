"""The fleet bench's pure logic (summary, targets, table) and its namespace lab (issue 16).

The bench itself (bench/scenarios/fleet.py) is not run here: it provisions real servers for
tens of minutes. The lab test builds 2 server namespaces and a store, moves bytes across the
shaped LAN and through the counting relay, and checks that nothing is left behind.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.scenarios import fleet
from tests.support import REPO

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
           "acng": [_rec(50), _rec(48), _rec(44)],
           "stopped": [_rec(62.5), _rec(63), _rec(61)],
           "linkdown": [_rec(65), _rec(66), _rec(64)],
           "poisoned": [_rec(45, remote_mismatches=1), _rec(44, remote_mismatches=1),
                        _rec(46, remote_mismatches=2)]}
    res.update(over)
    return res


def _met(results: dict) -> dict[str, object]:
    return {t["target"]: t["met"] for t in fleet.targets(fleet.summarize(results), results)}


def test_summary_is_median_min_max_of_each_measure() -> None:
    s = fleet.summarize(_results())
    assert s["cold"]["total_s"] == {"median": 62, "min": 60, "max": 64, "n": 3}
    assert s["fleet"]["apt_s"]["median"] == 2.0 + 31.0
    assert s["poisoned"]["remote_mismatches"]["min"] == 1


def test_targets_met_and_missed() -> None:
    met = _met(_results())
    assert met["fleet: bytes of debs + wheels from the internet (max)"] is True
    assert met["fleet / apt-cacher-ng primed: apt-get update + install time"] is True  # 33/40
    assert met["fleet / apt-cacher-ng primed: the same, worst run"] is True  # 34/36 in run 3
    assert met["stopped: total time - cold total time (s)"] is True  # 62 - 62
    assert met["linkdown: total time - cold total time (s)"] is False  # 65 - 62 = 3 s
    assert met["poisoned: mismatch detected in every run (min mismatches)"] is True
    # one wheel from the internet in one run; fleet slower than acng; a different result
    bad = _results(fleet=[_rec(40), _rec(50, wheels_internet=1), _rec(60, same_as_cold=False)],
                   poisoned=[_rec(45, remote_mismatches=0), _rec(45, remote_mismatches=1)])
    met = _met(bad)
    assert met["fleet: bytes of debs + wheels from the internet (max)"] is False
    assert met["fleet / apt-cacher-ng primed: apt-get update + install time"] is False
    assert met["fleet: same result as cold"] is False
    assert met["poisoned: mismatch detected in every run (min mismatches)"] is False
    # the median meets the target, one run does not: the per-run ratios say so
    one_bad = _results(fleet=[_rec(40), _rec(41), _rec(60)])
    met = _met(one_bad)
    assert met["fleet / apt-cacher-ng primed: apt-get update + install time"] is True
    assert met["fleet / apt-cacher-ng primed: the same, worst run"] is False


def test_the_limit_row_says_whether_the_target_is_within_reach() -> None:
    # limit: apt-cacher-ng's update, the debs already in archives: its ratio to acng bounds
    # what any cache can reach; per-run ratios beside it, and the fleet against the limit
    lim = [_rec(46, pip_s=None), _rec(45, pip_s=None), _rec(42, pip_s=None)]
    res = _results(limit=lim)
    t = {x["target"]: x for x in fleet.targets(fleet.summarize(res), res)}
    name = next(k for k in t if k.startswith("limit (debs there) / apt-cacher-ng"))
    assert t[name]["value"] == pytest.approx(37 / 40) and t[name]["met"] is False  # > 0.90
    assert t[name]["per_run"] == pytest.approx([38 / 42, 37 / 40, 34 / 36])
    assert t["fleet / limit: update + install (reported)"]["value"] == pytest.approx(33 / 37)
    assert t["limit: same result as cold"]["met"] is True
    rows = [r[0].split(":")[0] for r in fleet.table_rows(fleet.summarize(res))]
    assert rows.index("limit") == rows.index("acng") + 1
    assert "limit" in fleet.ROTATED  # rotated with the other peers


def test_unmeasured_scenarios_give_no_verdict() -> None:
    res = _results()
    del res["acng"]
    targets = {t["target"]: t for t in fleet.targets(fleet.summarize(res), res)}
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
    assert "NOT met" in fleet.render({**res, "targets": fleet.targets(res["summary"], _results())})


def test_per_run_ratios_pair_the_runs_and_skip_a_failed_one() -> None:
    res = _results(acng=[_rec(50), {"failed": "RuntimeError: boom"}, _rec(44)])
    t = {x["target"]: x for x in fleet.targets(fleet.summarize(res), res)}
    runs = t["fleet / apt-cacher-ng primed: apt-get update + install time"]["per_run"]
    assert runs[0] == pytest.approx(32 / 42) and runs[1] is None
    assert runs[2] == pytest.approx(33 / 36)
    summary = fleet.summarize(res)
    assert summary["acng"]["runs"] == 2 and summary["acng"]["failed"] == ["RuntimeError: boom"]
    text = fleet.render({"summary": summary, "targets": fleet.targets(summary, res), "results": res})
    assert "FAILED acng run 2: RuntimeError: boom" in text
    assert "per run 0.76 - 0.92" in text


def test_fleet_pip_is_compared_with_each_pip_peer_and_the_best() -> None:
    # plain pip 10 s, devpi 6 s (the best), the fleet 8 s: slower than the best peer
    res = _results(devpi=[{"pip_s": 6.0, "pip_internet": 40, "wheels_internet": 0,
                           "pages_internet": 40, "same_as_cold": True, "total_s": 6.0}] * 3)
    res["acng"] = [_rec(50, pip_s=10.0), _rec(48, pip_s=10.0), _rec(44, pip_s=12.0)]
    res["fleet"] = [_rec(40, pip_s=8.0), _rec(42, pip_s=5.0), _rec(41, pip_s=8.0)]
    t = {x["target"]: x for x in fleet.targets(fleet.summarize(res), res)}
    best = t["fleet pip step / the best pip peer (devpi)"]
    assert best["value"] == pytest.approx(8 / 6) and best["met"] is False
    assert best["per_run"] == pytest.approx([8 / 6, 5 / 6, 8 / 6])
    plain = t["fleet pip step / plain pip (acng server)"]
    assert plain["met"] is True and plain["per_run"] == pytest.approx([0.8, 0.5, 8 / 12])
    assert t["devpi: same result as cold"]["met"] is True
    rows = fleet.table_rows(fleet.summarize(res))
    devpi_row = next(r for r in rows if r[0].startswith("devpi:"))
    assert devpi_row[1:3] == ["-", "-"] and devpi_row[3] == "6.00"  # no apt steps; pip s


def test_pages_and_cold_files_targets() -> None:
    res = _results()
    res["fleet"] = [_rec(40, pages_internet=1.5e6), _rec(40, pages_internet=2.5e6), _rec(40)]
    res["acng"] = [_rec(50, wheels_internet=4e7)] * 3
    t = {x["target"]: x for x in fleet.targets(fleet.summarize(res), res)}
    pages = t["fleet: pip index pages from the internet (max, MB)"]
    assert pages["value"] == pytest.approx(2.5) and pages["met"] is False
    files = t["cold pip: files from the internet / plain pip's"]
    assert files["value"] == pytest.approx(1.0) and files["met"] is True
    assert files["per_run"] == pytest.approx([1.0, 1.0, 1.0])


def _cold3(total: float, wall: float, cold_total: float = 62.0, cold_inet: float = 1.7e8) -> dict:
    return {"update_s": 3.0, "install_s": 60.0, "pip_s": 20.0, "total_s": 83.0, "all_wall_s": wall,
            "internet_total": total, "internet_by_server": [total * 0.8, total * 0.1, total * 0.1],
            "server_total_s": [80.0, 83.0, 85.0], "wheels_internet": 3e7, "same_as_cold": True,
            "servers": [], "lan_total": 0, "cold_internet": cold_inet, "cold_total_s": cold_total,
            "internet_vs_cold": total / cold_inet, "wall_vs_cold": wall / cold_total}


def test_cold3_is_against_this_runs_one_cold_server() -> None:
    res = _results(cold3=[_cold3(1.8e8, 90.0), _cold3(5.1e8, 250.0), {"failed": "RuntimeError: x"}])
    summary = fleet.summarize(res)
    t = {x["target"]: x for x in fleet.targets(summary, res)}
    b = t["cold3: internet bytes of all servers / one cold server's"]
    assert b["per_run"] == pytest.approx([1.8 / 1.7, 5.1 / 1.7])
    assert b["value"] == pytest.approx((1.8 / 1.7 + 5.1 / 1.7) / 2) and b["met"] is False
    w = t["cold3: wall time for all servers / one cold server's (reported)"]
    assert w["met"] is None and w["per_run"] == pytest.approx([90 / 62, 250 / 62])
    text = fleet.render({"summary": summary, "targets": list(t.values()), "results": res})
    assert ("cold3 run 1: 3 servers at once: all done in 90.0 s (one cold server 62.0 s: 1.45x); "
            "internet 180.0 MB in all (per server 144.0 / 18.0 / 18.0 MB; one cold server "
            "170.0 MB: 1.06x)") in text
    assert "cold3 run 3: FAILED RuntimeError: x" in text
    assert "FAILED cold3 run 3: RuntimeError: x" in text
    md = fleet.markdown({"summary": summary, "targets": list(t.values()), "results": res,
                         "started": "now", "seconds": 60, "runs": 3, "machine": {},
                         "internet_rate": 1e7, "lan_rate": "800mbit", "packages": 73,
                         "pip_set": ["six"], "command": "x"})
    assert "- cold3 run 2: 3 servers at once: all done in 250.0 s" in md


def test_relay_counts_bytes_per_server(tmp_path: Path) -> None:
    # each server's forwarder has its own socket: bytes are counted per server and per host
    import socket

    origin = tmp_path / "origin"
    origin.mkdir()
    (origin / "blob").write_bytes(os.urandom(150_000))
    web = subprocess.Popen([sys.executable, "-m", "http.server", "-b", "127.0.0.1", "0", "-d",
                            str(origin)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    relay = fleet.Relay(tmp_path / "relay.sock", rate=0, servers=2)
    port = 0
    try:
        port = int(web.stdout.readline().split(" port ")[1].split()[0])
        fleet.countproxy.ALLOWED_PORTS.add(port)

        def get(sock_path: Path) -> int:
            with socket.socket(socket.AF_UNIX) as c:
                c.connect(str(sock_path))
                c.sendall(f"GET http://127.0.0.1:{port}/blob HTTP/1.0\r\n\r\n".encode())
                n = 0
                while chunk := c.recv(65536):
                    n += len(chunk)
                return n
        relay.reset()
        got = get(relay.paths[1]) + get(relay.paths[1]) + get(relay.path)
        by = relay.per_server()
        assert by.get(1, 0) >= 300_000 and by.get(2, 0) == 0 and 150_000 <= by.get(0, 0) < 300_000
        assert sum(relay.snapshot().values()) == got == sum(by.values())
    finally:
        relay.close()
        web.terminate()
        web.wait()
        fleet.countproxy.ALLOWED_PORTS.discard(port)
    assert not list(tmp_path.glob("*.sock"))


def test_every_scenario_takes_every_position_in_the_rotation() -> None:
    names = ["fleet", "poisoned", "linkdown", "stopped", "acng"]
    rows = [fleet.latin(names, r) for r in range(len(names))]
    assert all(sorted(row) == sorted(names) for row in rows)
    for pos in range(len(names)):
        assert sorted(row[pos] for row in rows) == sorted(names), pos
    assert fleet.latin(names, len(names)) == rows[0]


def test_main_ends_with_table_and_json_when_the_setup_fails(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # a fault before any run (here the lab) still gives the table, the JSON and exit 1
    class Broken(fleet.FleetBench):
        def __init__(self, work: Path, *a: object) -> None:
            self.results = {s: [] for s in fleet.SCENARIOS}
            self.orders = []
            self.lab = self
            self.relay = self
            self.path = work / "relay.sock"
            self.paths = {}

        def up(self, *a: object) -> None:
            raise RuntimeError("no namespaces here")

        def close(self) -> None:
            self.closed = True

    monkeypatch.setattr(fleet, "FleetBench", Broken)
    monkeypatch.setattr(fleet.os, "geteuid", lambda: 0)
    monkeypatch.setattr(fleet, "plot", lambda j, p: "skipped")
    monkeypatch.setattr(sys, "argv", ["fleet", "--quick", "--out", str(tmp_path / "out"),
                                      "--workdir", str(tmp_path / "work")])
    assert fleet.main() == 1
    out = capsys.readouterr().out
    res = json.loads((tmp_path / "out" / "fleet.json").read_text())
    assert res["error"] == "RuntimeError: no namespaces here"
    assert "FAILED bench: RuntimeError: no namespaces here" in out and res["table"] in out
    assert out.rstrip().splitlines()[-1].startswith("chart: skipped")


def test_sigterm_mid_run_still_ends_with_table_and_json(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # the bench stopped with SIGTERM during a run: what ran is in the table and the JSON
    import signal

    class Stopped(fleet.FleetBench):
        def __init__(self, work: Path, *a: object) -> None:
            self.results = {s: [] for s in fleet.SCENARIOS}
            self.results["cold"].append(_rec(60))
            self.orders = [["cold"]]
            self.lab = self.relay = self
            self.paths: dict = {}

        def up(self, *a: object) -> None:
            pass

        def image(self) -> Path:
            return Path("/nonexistent")

        def prime(self, peer: str) -> None:
            pass

        def run_once(self, r: int, only: set[str]) -> None:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
            raise AssertionError("SIGTERM did not stop the run")

        def close(self) -> None:
            pass

    monkeypatch.setattr(fleet, "FleetBench", Stopped)
    monkeypatch.setattr(fleet.os, "geteuid", lambda: 0)
    monkeypatch.setattr(fleet, "plot", lambda j, p: "skipped")
    monkeypatch.setattr(sys, "argv", ["fleet", "--quick", "--out", str(tmp_path / "out"),
                                      "--workdir", str(tmp_path / "work")])
    before = signal.getsignal(signal.SIGTERM)
    assert fleet.main() == 1
    assert signal.getsignal(signal.SIGTERM) == before
    out = capsys.readouterr().out
    res = json.loads((tmp_path / "out" / "fleet.json").read_text())
    assert res["error"] == "KeyboardInterrupt: SIGTERM" and res["summary"]["cold"]["runs"] == 1
    assert res["table"] in out and "FAILED bench: KeyboardInterrupt: SIGTERM" in out


def test_module_runs_as_the_readme_documents(tmp_path: Path) -> None:
    # `python -m bench.scenarios.fleet` from the checkout: --markdown and --chart of a results JSON
    res = {"summary": fleet.summarize(_results()), "results": _results(), "started": "now",
           "seconds": 60, "runs": 3, "machine": {}, "internet_rate": 1e7, "lan_rate": "800mbit",
           "packages": 73, "pip_set": ["six"], "command": "x"}
    res["targets"] = fleet.targets(res["summary"], res["results"])
    jp = tmp_path / "fleet.json"
    jp.write_text(json.dumps(res))
    r = subprocess.run([sys.executable, "-m", "bench.scenarios.fleet", "--markdown", str(jp)],
                       capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stderr
    assert "| fleet / apt-cacher-ng primed: apt-get update + install time | 0.82 |" in r.stdout
    has_mpl = any(subprocess.run([p, "-c", "import matplotlib"], capture_output=True).returncode == 0
                  for p in (sys.executable, str(fleet.PLOT_VENV / "bin/python")) if Path(p).exists())
    if not has_mpl:
        pytest.skip("no matplotlib here (the chart installs it from PyPI)")
    r = subprocess.run([sys.executable, "-m", "bench.scenarios.fleet", "--chart", str(jp), "--out",
                        str(tmp_path)], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0 and (tmp_path / "fleet.png").stat().st_size > 0, r.stdout + r.stderr


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
