#!/usr/bin/env python3
"""Fleet benchmark (issue 16), one command: N servers in network namespaces on a shaped LAN,
the internet behind a paced counting relay, pkgcache's fleet tier beside apt-cacher-ng.

    sudo .venv/bin/python -m bench.scenarios.fleet [--runs 3 | --quick] [--out docs/results]

Real parts only: mmdebstrap roots with the pkgcache .deb built from this checkout, real apt-get
/dpkg and pip in chroots run by `ip netns exec`, nginx WebDAV and apt-cacher-ng in a store
namespace, tbf on the LAN (bench/lib/netns.py). The servers' only way to the Debian archive and
PyPI is scripts/countproxy.py on a Unix socket in the root namespace, paced to --internet-rate
(10 MB/s) and counting every byte (per upstream host).

Each provisioning of a fresh root (one server image per invocation: the mmdebstrap base plus the
.deb, empty apt lists): `apt-get update`, `apt-get install` of the apt bench's set, then
`pkgcache pip install` of the pip bench's set into a new venv — each timed; bytes from the
internet per step; bytes over the LAN (the server's interface counters); the result (`dpkg-query`
and `pip freeze`) compared with the cold install of the same run. Scenarios, per run:

  cold      server 1, empty cache, empty store (then `pkgcache remote push` fills the store)
  fleet     server 2, empty cache, through the fleet (the store filled by server 1)
  poisoned  server 2 as fleet, one object of the store (the largest) replaced by other bytes
  linkdown  server 2 as fleet, the store's link down (connect timeouts)
  stopped   server 2 as fleet, the store's nginx stopped (connection refused)
  acng      server 2 from the same image without pkgcache (never installed: no apt snippet, no
            method), apt through apt-cacher-ng in the store namespace, primed by server 1 (one
            untimed install before the first run); plain pip
  cold3     servers 1-3 cold at the same time, empty store

Each run starts with cold (it fills the store); the other scenarios follow in a rotated order, row
r of a Latin square, so no peer always runs right after cold (the poisoned object and a stopped
store are restored after their scenario). Ratios come with their per-run (paired) values. A
failed scenario is recorded in its place and listed under the table; the table and the JSON are
written even when a run or the setup fails (exit 1).

Writes OUT/fleet.json and OUT/fleet.png, prints a table and the issue's targets (met / not met).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench.lib import acng, netns
from bench.lib.report import PLOT_VENV, machine
from bench.lib.setup import REPO
from bench.lib.stats import fmt_runs, latin, paired
from scripts import countproxy

SUITE = "bookworm"
BASE_PKGS = ("python3,python3-venv,python3-apt,python3-yaml,python3-packaging,"
             "python3-cryptography,ca-certificates")
ACNG_PORT = 3142
PIP_FILES_HOST = "files.pythonhosted.org"
SCENARIOS = ("cold", "fleet", "poisoned", "linkdown", "stopped", "acng", "cold3")
LABELS = {"cold": "server 1 cold (empty cache, empty store)",
          "fleet": "server 2 through the fleet",
          "poisoned": "server 2, one store object replaced",
          "linkdown": "server 2, store link down (timeouts)",
          "stopped": "server 2, store stopped (refused)",
          "acng": "server 2 through apt-cacher-ng (primed)",
          "cold3": "servers 1-3 cold at the same time"}
STEPS = ("update", "install", "pip")


def apt_set() -> list[str]:
    """The apt bench's package set."""
    from bench.scenarios import apt_install

    return list(apt_install.PKGS)


def pip_set() -> str:
    """The pip bench's requirement set."""
    from bench.scenarios import pip_install

    return pip_install.REQUIREMENTS


def sh(*cmd: str, **kw: object) -> subprocess.CompletedProcess[str]:
    """Run a host command; its output in the error if it fails."""
    p = subprocess.run(cmd, text=True, capture_output=True, **kw)  # type: ignore[call-overload]
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout[-2000:]}{p.stderr[-2000:]}")
    return p


# ------------------------------------------------------------------------------------- the relay
class Relay:
    """countproxy's relay on a Unix socket in this process: paced, counting per upstream host."""

    def __init__(self, path: Path, rate: float) -> None:
        path.unlink(missing_ok=True)
        countproxy.PACER.rate = rate
        self.server = countproxy.UnixServer(str(path), countproxy.Handler)
        self.path = path
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def reset(self) -> None:
        """Start counting from zero."""
        countproxy.COUNTER.reset()

    def snapshot(self) -> dict[str, int]:
        """Bytes from upstream per host since the last reset (after the last relayed bytes)."""
        time.sleep(0.2)
        with countproxy.COUNTER.lock:
            return dict(countproxy.COUNTER.by_host)

    def close(self) -> None:
        """Stop serving; remove the socket."""
        self.server.shutdown()
        self.server.server_close()
        self.path.unlink(missing_ok=True)


# ------------------------------------------------------------------------------------ the servers
INNER = ('mount -t devpts -o newinstance,ptmxmode=0666 devpts "$0/dev/pts" 2>/dev/null || true\n'
         'exec chroot "$0" env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin '
         'HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive PKGCACHE_REMOTE_UPLOAD=manual '
         f'http_proxy=http://127.0.0.1:{netns.PROXY_PORT} https_proxy=http://127.0.0.1:{netns.PROXY_PORT} '
         '/bin/sh -ec "$1"')


class Server:
    """A fresh root from the server image, provisioned inside server namespace i."""

    def __init__(self, lab: netns.Lab | None, i: int, image: Path, root: Path) -> None:
        self.lab, self.i, self.root = lab, i, root
        if root.exists():
            shutil.rmtree(root)
        root.mkdir(parents=True)
        sh("tar", "-C", str(root), "-xf", str(image))
        self.log = root.with_suffix(".log")
        self.log.unlink(missing_ok=True)
        self.mode = "fleet"

    def run(self, script: str, check: bool = True) -> tuple[float, str]:
        """Run script in the root (in the server's namespace); (wall seconds, output)."""
        pre = self.lab.exec_prefix(self.i) if self.lab else []
        argv = [*pre, "unshare", "--mount", "--pid", "--fork", f"--mount-proc={self.root}/proc",
                "/bin/sh", "-c", INNER, str(self.root), script]
        t = time.perf_counter()
        p = subprocess.run(argv, text=True, capture_output=True)
        wall = time.perf_counter() - t
        out = p.stdout + p.stderr
        with open(self.log, "a") as f:
            f.write(f"$ {script}\n{out}\n[rc {p.returncode}, {wall:.2f} s]\n")
        if check and p.returncode != 0:
            raise RuntimeError(f"server {self.i}: `{script}` failed ({p.returncode}); log {self.log}:\n"
                               f"{out[-2500:]}")
        return wall, out

    def configure(self, text: str) -> None:
        """Append to /etc/vps-configurator/config.yaml (under performance.cache)."""
        with open(self.root / "etc/vps-configurator/config.yaml", "a") as f:
            f.write(text)

    def stats(self) -> dict:
        """`pkgcache stats --json` of this server ({} without pkgcache)."""
        if self.mode != "fleet":
            return {}
        _, out = self.run("pkgcache stats --json", check=False)
        try:
            return json.loads(out[out.index("{"):])
        except ValueError:
            return {}

    def result(self) -> str:
        """What got installed: every package with its version and status, and pip freeze."""
        _, out = self.run("dpkg-query -W -f='${Package} ${Version} ${db:Status-Abbrev}\\n' | "
                          "grep -v '^pkgcache ' | sort; "
                          "echo '-- pip freeze'; /opt/app/bin/pip freeze --all | sort")
        return out

    def close(self) -> None:
        """Remove the root (nothing is mounted in it outside the unshared runs)."""
        shutil.rmtree(self.root, ignore_errors=True)


# ------------------------------------------------------------------------------------- the bench
class FleetBench:
    """Scenarios over one lab, one relay and one server image."""

    def __init__(self, work: Path, servers: int, internet_rate: float, lan_rate: str,
                 keep_log: Path, apt: list[str] | None = None, req: str | None = None,
                 prefix: str = "pkgcbench") -> None:
        self.work = work
        self.n = servers
        self.lan_rate = lan_rate
        self.logdir = keep_log
        self.lab = netns.Lab(prefix, work / "lab", servers)
        self.relay = Relay(work / "relay.sock", internet_rate)
        self.apt = apt or apt_set()
        self.req = req or pip_set()
        self.nginx_pid: int | None = None
        self.acng_pid: int | None = None
        self.results: dict[str, list[dict]] = {s: [] for s in SCENARIOS}
        self.orders: list[list[str]] = []
        self.cold_result: str | None = None

    # -- setup
    def image(self) -> Path:
        """The server image: the mmdebstrap base (kept 24 h) + the pkgcache .deb, empty lists."""
        base = self.work / f"base-{SUITE}.tar"
        if not base.exists() or time.time() - base.stat().st_mtime > 86400:
            print(f"mmdebstrap --variant=apt --include={BASE_PKGS} {SUITE}", flush=True)
            sh("mmdebstrap", "--quiet", "--mode=root", "--variant=apt", f"--include={BASE_PKGS}",
               SUITE, str(base.with_suffix(".tmp.tar")))  # mmdebstrap: format by extension
            os.replace(base.with_suffix(".tmp.tar"), base)
        build = self.work / "build"
        deb = sh("sh", str(REPO / "scripts" / "build-deb.sh"), str(build)).stdout.strip().splitlines()[-1]
        from cache_core.storage.remote.records import generate_keypair

        secret, self.public = generate_keypair("bench-fleet")
        img_root = self.work / "image-root"
        srv = Server(None, 0, base, img_root)
        shutil.copy(deb, img_root / "tmp" / "pkgcache.deb")
        prc = img_root / "usr/sbin/policy-rc.d"
        prc.write_text("#!/bin/sh\nexit 101\n")
        prc.chmod(0o755)
        cas = sorted(Path("/usr/local/share/ca-certificates").glob("*.crt"))
        for c in cas:  # the host's extra CAs (a site or proxy CA), as the demo does
            shutil.copy(c, img_root / "usr/local/share/ca-certificates" / c.name)
        (img_root / "root/requirements.txt").write_text(self.req)
        srv.run(("update-ca-certificates >/dev/null 2>&1; " if cas else "") +
                "rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin")
        # the peers' servers: the same image without any pkgcache file (not installed at all)
        self.clean_image = self.work / "server-image-clean.tar"
        sh("tar", "-C", str(img_root), "--exclude=./tmp/pkgcache.deb", "-cf",
           str(self.clean_image), ".")
        srv.run("dpkg -i /tmp/pkgcache.deb >/dev/null; rm /tmp/pkgcache.deb; "
                "rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/vps-configurator; "
                "mkdir -p -m 0700 /etc/pkgcache")
        key = img_root / "etc/pkgcache/fleet.key"
        key.write_text(secret + "\n")
        key.chmod(0o600)
        image = self.work / "server-image.tar"
        sh("tar", "-C", str(img_root), "-cf", str(image), ".")
        srv.close()
        return image

    def start_nginx(self, keep: bool = False) -> None:
        """nginx WebDAV in the store namespace: a fresh, empty store (keep: the same store)."""
        store = self.work / "store"
        if not keep:
            shutil.rmtree(store, ignore_errors=True)
        self.nginx_pid, self.store_url = netns.start_nginx(self.lab, store)
        self.store_cas = store / "www" / "store" / "cas"

    def stop_nginx(self) -> None:
        """Stop the store (its clients then get connection refused)."""
        if self.nginx_pid:
            self.lab.kill(self.nginx_pid)
            self.nginx_pid = None

    def start_acng(self) -> None:
        """apt-cacher-ng in the store namespace, its upstream the relay (via a forwarder)."""
        acng.ensure_installed()
        a = acng.Acng(self.work / "acng", upstream_proxy=f"http://127.0.0.1:{netns.PROXY_PORT}")
        a.work.mkdir(parents=True, exist_ok=True)
        a.configure()
        a.clear_cache()
        self.lab.spawn(None, [sys.executable, str(netns.UNIXFWD), "--listen",
                              f"127.0.0.1:{netns.PROXY_PORT}", "--unix", str(self.relay.path)],
                       port=netns.PROXY_PORT)
        self.acng_pid = self.lab.spawn(
            None, [acng.ACNG, "-c", str(a.conf), "ForeGround=1", f"BindAddress={netns.STORE_IP}",
                   f"Port={ACNG_PORT}", f"CacheDir={a.cache}", f"LogDir={a.logs}",
                   f"SocketPath={a.work / 'acng.sock'}", f"PidFile={a.work / 'acng.pid'}"],
            port=ACNG_PORT, host=netns.STORE_IP, log=a.work / "acng.stdout")

    # -- one provisioning
    def server(self, i: int, name: str, mode: str) -> Server:
        """A fresh server i; mode: fleet (pkgcache, remote rw, signed) or acng (the clean image:
        no pkgcache file at all; apt through apt-cacher-ng, plain pip)."""
        if mode == "fleet":
            s = Server(self.lab, i, self.image_path, self.work / "roots" / name)
            s.configure(f"    remote:\n      - url: {self.store_url}\n        mode: rw\n"
                        "        signing_key_file: /etc/pkgcache/fleet.key\n"
                        f"        trusted_public_keys: [\"{self.public}\"]\n")
        else:
            s = Server(self.lab, i, self.clean_image, self.work / "roots" / name)
            (s.root / "etc/apt/apt.conf.d/01acng").write_text(
                f'Acquire::http::Proxy "http://{netns.STORE_IP}:{ACNG_PORT}";\n')
        s.mode = mode
        return s

    def provision(self, s: Server, *, pip: bool = True, count: bool = True) -> dict:
        """update, install, pip on server s; per step wall time, internet and LAN bytes."""
        rec: dict = {"server": s.i}
        steps = [("update", "apt-get update"),
                 ("install", f"apt-get install -y --no-install-recommends {' '.join(self.apt)}")]
        if pip:
            steps.append(("pip", "python3 -m venv /opt/app && " + (
                "pkgcache pip install --python /opt/app -r /root/requirements.txt"
                if s.mode == "fleet" else "/opt/app/bin/pip install -q -r /root/requirements.txt")))
        for step, script in steps:
            if count:
                self.relay.reset()
            lan0 = self.lab.lan_bytes(s.i)
            wall, out = s.run(script)
            rec[f"{step}_s"] = wall
            rec[f"{step}_lan"] = self.lab.lan_bytes(s.i) - lan0
            if count:
                hosts = self.relay.snapshot()
                rec[f"{step}_internet"] = sum(hosts.values())
                if step == "pip":
                    rec["wheels_internet"] = hosts.get(PIP_FILES_HOST, 0)
            if step == "install":
                rec["debs_internet"] = rec.get("install_internet")
                rec["packages"] = out.count("\nSetting up ")
        return rec

    def finish(self, s: Server, rec: dict) -> dict:
        """Add the remote counters, the result check and the total time to rec."""
        st = s.stats()
        rem = st.get("remote") or {}
        rec.update(remote_hits=rem.get("hits"), remote_mismatches=rem.get("mismatches"),
                   remote_timeouts=rem.get("timeouts"), remote_errors=rem.get("errors"),
                   remote_bytes_in=rem.get("bytes_in"))
        res = s.result()
        if self.cold_result is None:
            self.cold_result = res
        rec["same_as_cold"] = res == self.cold_result
        if not rec["same_as_cold"]:
            (self.logdir / f"diff-{s.root.name}.txt").write_text(res)
        rec["total_s"] = sum(rec.get(f"{k}_s", 0) for k in STEPS)
        return rec

    def show(self, scen: str, rec: dict) -> None:
        """One progress line."""
        def mb(v: object) -> str:
            return "-" if v is None else f"{float(v) / 1e6:.1f}"  # type: ignore[arg-type]
        print(f"  {scen:<9} update {rec.get('update_s', 0):5.1f} s  install {rec.get('install_s', 0):5.1f} s"
              f"  pip {rec.get('pip_s', 0):5.1f} s | internet upd {mb(rec.get('update_internet'))}"
              f" debs {mb(rec.get('debs_internet'))} pip {mb(rec.get('pip_internet'))}"
              f" (wheels {mb(rec.get('wheels_internet'))}) MB | LAN "
              f"{mb(sum(rec.get(f'{k}_lan', 0) for k in STEPS))} MB | same as cold: "
              f"{rec.get('same_as_cold')} | remote hits {rec.get('remote_hits')} mismatches "
              f"{rec.get('remote_mismatches')} timeouts {rec.get('remote_timeouts')}", flush=True)

    def one(self, scen: str, i: int, mode: str = "fleet", **kw: object) -> dict:
        """Provision a fresh server i for scenario scen (cold: then push to the store)."""
        s = self.server(i, f"{scen}-s{i}", mode)
        try:
            rec = self.finish(s, self.provision(s, **kw))  # type: ignore[arg-type]
            if scen == "cold":
                lan0 = self.lab.lan_bytes(i)
                rec["push_s"], _ = s.run("pkgcache remote push >/dev/null")
                rec["push_lan"] = self.lab.lan_bytes(i) - lan0
            self.show(scen, rec)
            return rec
        finally:
            shutil.copy(s.log, self.logdir / s.log.name)
            s.close()

    def poison(self) -> tuple[Path, bytes]:
        """Replace the start of the store's largest object with other bytes; (its path, the
        original bytes: restore() puts them back for the scenarios after it)."""
        victim = max((p for p in self.store_cas.iterdir() if p.is_file()), key=lambda p: p.stat().st_size)
        with open(victim, "r+b") as f:
            orig = f.read(1 << 20)
            f.seek(0)
            f.write(os.urandom(len(orig)))
        return victim, orig

    def prime_acng(self) -> None:
        """Start apt-cacher-ng and fill it with one untimed update + install of server 1."""
        self.start_acng()
        print("  priming apt-cacher-ng: server 1 apt-get update + install through it", flush=True)
        prime = self.server(1, "acng-prime", "acng")
        try:
            self.provision(prime, pip=False)
        finally:
            prime.close()

    def scenario(self, scen: str) -> dict:
        """One provisioning of server 2 for scen (the store filled by this run's cold)."""
        if scen == "acng":
            return self.one("acng", 2, "acng")
        undo = None
        if scen == "poisoned":
            victim, orig = self.poison()
            undo = lambda: victim.write_bytes(orig + victim.read_bytes()[len(orig):])  # noqa: E731
        if scen == "linkdown":
            self.lab.link(2, up=False)
            undo = lambda: self.lab.link(2, up=True)  # noqa: E731
        if scen == "stopped":
            self.stop_nginx()
            undo = lambda: self.start_nginx(keep=True)  # noqa: E731
        try:
            rec = self.one(scen, 2)
        finally:
            if undo:
                undo()
        if scen == "poisoned":
            rec["poisoned_object"] = victim.name
        return rec

    def run_once(self, r: int, scenarios: set[str]) -> None:
        """One run: cold (it fills the store), then the selected peers and fleet scenarios in
        row r of a Latin square; a failure is recorded in the scenario's place."""
        order = latin([s for s in ("fleet", "poisoned", "linkdown", "stopped", "acng")
                       if s in scenarios], r)
        print(f"run {r + 1}: cold, then {' '.join(order)}", flush=True)
        self.orders.append(["cold", *order])
        self.cold_result = None
        cold_failed = None
        try:
            self.start_nginx()
            self.results["cold"].append(self.one("cold", 1))
        except Exception as exc:  # noqa: BLE001 - recorded; the scenarios need the cold run
            cold_failed = self.failed("cold", exc)
        for scen in order:
            if cold_failed:
                self.results[scen].append({"failed": "cold failed in this run"})
                continue
            try:
                self.results[scen].append(self.scenario(scen))
            except Exception as exc:  # noqa: BLE001 - recorded, the run goes on
                self.failed(scen, exc)
        self.stop_nginx()
        if "cold3" in scenarios:
            try:
                self.results["cold3"].append(self.cold3())
            except Exception as exc:  # noqa: BLE001 - recorded
                self.failed("cold3", exc)

    def failed(self, scen: str, exc: BaseException) -> str:
        """Record a failed scenario run (the table lists it); the message."""
        msg = f"{type(exc).__name__}: {str(exc).strip()[-600:]}"
        self.results[scen].append({"failed": msg})
        print(f"  {scen:<9} FAILED: {msg[-300:]}", flush=True)
        return msg

    def cold3(self) -> dict:
        """Servers 1-N cold at the same time, an empty store; medians over the servers."""
        self.start_nginx()
        srv = [self.server(i, f"cold3-s{i}", "fleet") for i in range(1, self.n + 1)]
        out: list[dict] = [{} for _ in srv]
        errors: list[BaseException] = []
        self.relay.reset()

        def go(k: int) -> None:
            try:
                out[k] = self.finish(srv[k], self.provision(srv[k], count=False))
            except BaseException as exc:  # noqa: BLE001 - reported after the join
                errors.append(exc)
        t0 = time.perf_counter()
        threads = [threading.Thread(target=go, args=(k,)) for k in range(len(srv))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        hosts = self.relay.snapshot()
        for s in srv:
            shutil.copy(s.log, self.logdir / s.log.name)
            s.close()
        self.stop_nginx()
        if errors:
            raise errors[0]
        agg = {k: statistics.median(o[k] for o in out) for k in
               ("update_s", "install_s", "pip_s", "total_s")}
        agg.update(all_wall_s=wall, internet_total=sum(hosts.values()),
                   wheels_internet=hosts.get(PIP_FILES_HOST, 0),
                   same_as_cold=all(o["same_as_cold"] for o in out), servers=out,
                   lan_total=sum(o.get(f"{k}_lan", 0) for o in out for k in STEPS))
        print(f"  cold3     {len(srv)} servers at once: all done in {wall:.1f} s; median total "
              f"{agg['total_s']:.1f} s; internet {agg['internet_total'] / 1e6:.1f} MB in all; "
              f"same as cold: {agg['same_as_cold']}", flush=True)
        return agg

    def close(self) -> None:
        """Stop everything the bench started."""
        self.lab.down()
        self.relay.close()


# ------------------------------------------------------------------------------ summary, targets
def stats(vals: list[float | None]) -> dict:
    """median/min/max of the values that exist."""
    v = [x for x in vals if x is not None]
    if not v:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {"median": statistics.median(v), "min": min(v), "max": max(v), "n": len(v)}


def summarize(results: dict[str, list[dict]]) -> dict[str, dict]:
    """Per scenario: median/min/max of every numeric measure; all(same_as_cold)."""
    out: dict[str, dict] = {}
    for scen, all_recs in results.items():
        recs = [r for r in all_recs if "failed" not in r]
        if not all_recs:
            continue
        keys = sorted({k for r in recs for k, v in r.items()
                       if isinstance(v, (int, float)) and not isinstance(v, bool)})
        row = {k: stats([r.get(k) for r in recs]) for k in keys}
        row["apt_s"] = stats([r["update_s"] + r["install_s"] for r in recs
                              if r.get("update_s") is not None and r.get("install_s") is not None])
        row["same_as_cold"] = all(r.get("same_as_cold") for r in recs) if recs else None
        row["runs"] = len(recs)
        row["failed"] = [r["failed"] for r in all_recs if "failed" in r]
        out[scen] = row
    return out


def med(summary: dict, scen: str, key: str) -> float | None:
    """The median of a measure of a scenario (None if not measured)."""
    return summary.get(scen, {}).get(key, {}).get("median")


def per_run(results: dict[str, list[dict]], a: str, b: str, key: str = "apt_s") -> list[float | None]:
    """Paired ratios a/b of one measure, run by run (None where either failed)."""
    def vals(scen: str) -> list[float | None]:
        recs = results.get(scen) or []
        if key == "apt_s":
            return [r["update_s"] + r["install_s"] if "update_s" in r and "install_s" in r
                    else None for r in recs]
        return [r.get(key) for r in recs]
    return paired(vals(a), vals(b))


def targets(summary: dict, results: dict[str, list[dict]] | None = None) -> list[dict]:
    """The issue's targets on this run's medians (met None: not measured), with the per-run
    (paired) ratios where a target is a ratio."""
    t: list[dict] = []
    results = results or {}

    def add(name: str, value: float | bool | None, limit: str, ok: bool | None,
            runs: list[float | None] | None = None) -> None:
        t.append({"target": name, "value": value, "limit": limit, "met": ok, "per_run": runs or []})

    fl = summary.get("fleet")
    if fl:
        debs = fl.get("debs_internet", {}).get("max")
        wheels = fl.get("wheels_internet", {}).get("max")
        v = None if debs is None or wheels is None else debs + wheels
        add("fleet: bytes of debs + wheels from the internet (max)", v, "== 0",
            None if v is None else v == 0)
        a, b = med(summary, "fleet", "apt_s"), med(summary, "acng", "apt_s")
        r = a / b if a and b else None
        runs = per_run(results, "fleet", "acng")
        add("fleet / apt-cacher-ng primed: apt-get update + install time", r, "<= 0.90",
            None if r is None else r <= 0.90, runs)
        worst = max((x for x in runs if x is not None), default=None)
        add("fleet / apt-cacher-ng primed: the same, worst run", worst, "<= 1.0",
            None if worst is None else worst <= 1.0, runs)
        pa, pb = med(summary, "fleet", "pip_s"), med(summary, "acng", "pip_s")
        pr = pa / pb if pa and pb else None
        add("fleet pip step / plain pip on the peer's server", pr, "<= 1.0",
            None if pr is None else pr <= 1.0, per_run(results, "fleet", "acng", "pip_s"))
        add("fleet: same result as cold", fl["same_as_cold"], "yes", fl["same_as_cold"])
    cold = med(summary, "cold", "total_s")
    for scen in ("stopped", "linkdown"):
        s = summary.get(scen)
        if not s or cold is None:
            continue
        d = med(summary, scen, "total_s")
        extra = None if d is None else d - cold
        add(f"{scen}: total time - cold total time (s)", extra, "<= 2.0",
            None if extra is None else extra <= 2.0)
        add(f"{scen}: same result as cold", s["same_as_cold"], "yes", s["same_as_cold"])
    if "acng" in summary:
        add("acng: same result as cold", summary["acng"]["same_as_cold"], "yes",
            summary["acng"]["same_as_cold"])
    p = summary.get("poisoned")
    if p:
        mm = p.get("remote_mismatches", {}).get("min")
        add("poisoned: mismatch detected in every run (min mismatches)", mm, ">= 1",
            None if mm is None else mm >= 1)
        add("poisoned: same result as cold", p["same_as_cold"], "yes", p["same_as_cold"])
    return t


def fmt(v: object, unit: str = "") -> str:
    """A short form of a value (MB for bytes)."""
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "NO"
    f = float(v)  # type: ignore[arg-type]
    if unit == "MB":
        return f"{f / 1e6:.1f}"
    return f"{f:.1f}" if abs(f) >= 10 else f"{f:.2f}"


def cell(row: dict, key: str, unit: str = "") -> str:
    """'median (min-max)' of a measure."""
    s = row.get(key) or {}
    if not s.get("n"):
        return "-"
    if s["n"] == 1 or s["min"] == s["max"]:
        return fmt(s["median"], unit)
    return f"{fmt(s['median'], unit)} ({fmt(s['min'], unit)}–{fmt(s['max'], unit)})"


COLUMNS = (("update s", "update_s", ""), ("install s", "install_s", ""), ("pip s", "pip_s", ""),
           ("index MB", "update_internet", "MB"), ("debs MB", "debs_internet", "MB"),
           ("pip MB", "pip_internet", "MB"), ("wheels MB", "wheels_internet", "MB"),
           ("LAN MB", "lan", "MB"))


def table_rows(summary: dict) -> list[list[str]]:
    """[scenario, update, install, pip, internet index/debs/pip/wheels, LAN, same as cold]."""
    rows = []
    for scen in SCENARIOS:
        row = summary.get(scen)
        if not row:
            continue
        if not row.get("runs"):
            rows.append([f"{scen}: {LABELS[scen]}", *(["FAILED"] + ["-"] * (len(COLUMNS) - 1)), "-"])
            continue
        if "lan" not in row:
            row["lan"] = (row.get("lan_total") if scen == "cold3" else
                          stats([sum(v["median"] or 0 for k, v in row.items()
                                     if k in ("update_lan", "install_lan", "pip_lan"))]))
        cells = []
        for _, key, unit in COLUMNS:
            if scen == "cold3" and key in ("update_internet", "debs_internet", "pip_internet"):
                key = "internet_total" if key == "update_internet" else "-"
            cells.append(cell(row, key, unit))
        rows.append([f"{scen}: {LABELS[scen]}", *cells, fmt(row["same_as_cold"])])
    return rows


def render(res: dict) -> str:
    """The table and the targets as text."""
    head = ["scenario", *(c[0] for c in COLUMNS), "same as cold"]
    rows = table_rows(res["summary"])
    widths = [max(len(r[k]) for r in [head, *rows]) for k in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in [head, *rows]]
    lines.append("")
    lines.append("(internet: bytes through the relay, headers/TLS included; index MB = apt-get update;"
                 " cold3: internet of all 3 servers together, in the index column)")
    lines.append("")
    for t in res["targets"]:
        met = "?" if t["met"] is None else ("met" if t["met"] else "NOT met")
        lines.append(f"{t['target']:<62} {fmt(t['value']):>8}  {t['limit']:<8} {met:<8}"
                     + (f" per run {fmt_runs(t['per_run'])}" if t.get("per_run") else ""))
    lines += [f"FAILED {f}" for f in failures(res)]
    return "\n".join(lines)


def failures(res: dict) -> list[str]:
    """Every failed scenario run, and a failure outside them."""
    out = [f"{scen} run {k + 1}: {r['failed']}" for scen, recs in res.get("results", {}).items()
           for k, r in enumerate(recs) if "failed" in r]
    return out + ([f"bench: {res['error']}"] if res.get("error") else [])


def markdown(res: dict) -> str:
    """The Fleet table of docs/results.md."""
    m = res["machine"]
    out = [f"Run {res['started']} at commit {res.get('git', '?')}, {res['seconds'] / 60:.0f} min, "
           f"{res['runs']} run(s) per scenario (median, min–max).", "",
           f"- Machine: {m.get('nproc')} vCPUs ({m.get('cpu')}), {m.get('ram_gib')} GiB RAM; "
           f"kernel {m.get('kernel')}, Debian {m.get('debian')}",
           f"- Internet: the counting relay paced to {res['internet_rate'] / 1e6:.0f} MB/s; LAN: tbf "
           f"{res['lan_rate']} per link; {res['packages']} debs; pip set: "
           f"{' '.join(res['pip_set'])}",
           f"- Command: `{res['command']}`", "",
           "| scenario | " + " | ".join(c[0] for c in COLUMNS) + " | same as cold |",
           "|---|" + "---:|" * len(COLUMNS) + "---|"]
    out += [f"| {' | '.join(r)} |" for r in table_rows(res["summary"])]
    out += ["", "| target | this run | per run | limit | met |", "|---|---:|---|---|---|"]
    for t in res["targets"]:
        met = "?" if t["met"] is None else ("yes" if t["met"] else "**no**")
        out.append(f"| {t['target']} | {fmt(t['value'])} | {fmt_runs(t.get('per_run', []))} | "
                   f"{t['limit']} | {met} |")
    out += [f"- FAILED {f}" for f in failures(res)]
    return "\n".join(out) + "\n"


PLOT = r"""
import json, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
res = json.load(open(sys.argv[1]))
s = res["summary"]
names = [k for k in @SCENARIOS@ if k in s]
fig, (a1, a2) = plt.subplots(1, 2, figsize=(13, 4.8))
bottom = [0.0] * len(names)
for step in ("update_s", "install_s", "pip_s"):
    vals = [(s[n].get(step) or {}).get("median") or 0 for n in names]
    a1.bar(names, vals, bottom=bottom, label=step[:-2])
    bottom = [b + v for b, v in zip(bottom, vals)]
a1.set_ylabel("seconds (median)"); a1.set_title("wall time per provisioning"); a1.legend()
inet = [sum(((s[n].get(k) or {}).get("median") or 0) for k in
            ("update_internet", "install_internet", "pip_internet", "internet_total")) / 1e6
        for n in names]
lan = [((s[n].get("lan") or {}).get("median") or 0) / 1e6 for n in names]
x = range(len(names))
a2.bar([i - 0.2 for i in x], inet, width=0.4, label="from the internet")
a2.bar([i + 0.2 for i in x], lan, width=0.4, label="over the LAN")
a2.set_xticks(list(x)); a2.set_xticklabels(names)
a2.set_ylabel("MB (median)"); a2.set_title("bytes per provisioning (cold3: 3 servers)"); a2.legend()
fig.suptitle("pkgcache fleet: %s" % res["started"])
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=90)
"""


def plot(json_path: Path, png: Path) -> str:
    """The chart, with a Python that has matplotlib (bench/run.py's bench-only venv if needed)."""
    candidates = [sys.executable, str(PLOT_VENV / "bin" / "python"), "/usr/bin/python3"]
    py = next((c for c in candidates if Path(c).exists() and subprocess.run(
        [c, "-c", "import matplotlib"], capture_output=True).returncode == 0), None)
    if py is None:  # as bench/run.py does: a bench-only venv with matplotlib from PyPI
        py = str(PLOT_VENV / "bin" / "python")
        print(f"installing matplotlib (bench only) into {PLOT_VENV}", flush=True)
        subprocess.run(["/usr/bin/python3", "-m", "venv", "--clear", str(PLOT_VENV)], check=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
        env["PIP_CONFIG_FILE"] = os.devnull
        if subprocess.run([py, "-m", "pip", "install", "-q", "matplotlib"], env=env).returncode:
            return "chart skipped: matplotlib could not be installed"
    p = subprocess.run([py, "-c", PLOT.replace("@SCENARIOS@", repr(SCENARIOS)), str(json_path), str(png)],
                       capture_output=True, text=True)
    return str(png) if p.returncode == 0 else f"chart failed: {p.stderr.strip()[-400:]}"


def main() -> int:
    """Run the bench (or --markdown)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="1 run")
    ap.add_argument("--servers", type=int, default=3)
    ap.add_argument("--only", default=",".join(SCENARIOS), help="comma list of scenarios (cold always)")
    ap.add_argument("--internet-rate", type=float, default=10e6, help="bytes/s (default 10 MB/s)")
    ap.add_argument("--lan-rate", default="800mbit", help="tbf rate per LAN link (~100 MB/s)")
    ap.add_argument("--out", default=str(REPO / "bench" / "results"))
    ap.add_argument("--workdir", default="/var/tmp/pkgcache-fleet-bench")
    ap.add_argument("--markdown", metavar="JSON", help="only print a results JSON as Markdown")
    ap.add_argument("--chart", metavar="JSON", help="only draw OUT/fleet.png from a results JSON")
    ap.add_argument("--apt-packages", help="apt set, space-separated (default: the apt bench's)")
    ap.add_argument("--pip-requirements", metavar="FILE", help="pip set (default: the pip bench's)")
    ap.add_argument("--prefix", default="pkgcbench", help="names of the lab's namespaces")
    ap.add_argument("--no-chart", action="store_true", help="skip the chart (no matplotlib)")
    args = ap.parse_args()
    if args.chart:
        print(plot(Path(args.chart), Path(args.out) / "fleet.png"))
        return 0
    if args.markdown:
        print(markdown(json.loads(Path(args.markdown).read_text())), end="")
        return 0
    if os.geteuid() != 0:
        print("fleet.py: needs root (network namespaces, chroots)", file=sys.stderr)
        return 2
    runs = 1 if args.quick else args.runs
    only = set(args.only.split(","))
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    work.chmod(0o700)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    logdir = work / "logs"
    shutil.rmtree(logdir, ignore_errors=True)
    logdir.mkdir()
    apt = args.apt_packages.split() if args.apt_packages else apt_set()
    req = Path(args.pip_requirements).read_text() if args.pip_requirements else pip_set()
    t0 = time.monotonic()
    res: dict = {"command": " ".join(["python -m bench.scenarios.fleet", *sys.argv[1:]]),
                 "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                 "machine": machine(), "runs": runs, "internet_rate": args.internet_rate,
                 "lan_rate": args.lan_rate, "pip_set": req.split(), "apt_set": apt,
                 "git": subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                                       capture_output=True, text=True).stdout.strip()}
    b = FleetBench(work, args.servers, args.internet_rate, args.lan_rate, logdir, apt, req,
                   args.prefix)
    try:
        b.lab.up(b.relay.path, args.lan_rate)
        print("building the server images (mmdebstrap base; + pkgcache .deb; clean)", flush=True)
        b.image_path = b.image()
        if "acng" in only:
            b.prime_acng()
        for r in range(runs):
            b.run_once(r, only)
    except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001 - the table and JSON still come
        res["error"] = f"{type(exc).__name__}: {str(exc).strip()[-1500:]}"
        print(f"fleet bench FAILED: {res['error'][-500:]}", flush=True)
    finally:
        b.close()
        jp = write_results(res, b, out, t0)
    chart = "skipped" if args.no_chart else plot(jp, out / "fleet.png")
    print(f"chart: {chart}; total {res['seconds'] / 60:.1f} min")
    return 0 if all(t["met"] for t in res["targets"]) and not failures(res) else 1


def write_results(res: dict, b: FleetBench, out: Path, t0: float) -> Path:
    """Summary, targets, the table (printed) and OUT/fleet.json from what ran; the JSON's path."""
    res["results"] = b.results
    res["orders"] = b.orders
    cold = [r for r in b.results["cold"] if "failed" not in r]
    res["packages"] = statistics.median(r.get("packages", 0) for r in cold) if cold else 0
    res["seconds"] = time.monotonic() - t0
    res["summary"] = summarize(b.results)
    res["targets"] = targets(res["summary"], b.results)
    res["table"] = render(res)
    print("\n" + res["table"], flush=True)
    jp = out / "fleet.json"
    jp.write_text(json.dumps(res, indent=1) + "\n")
    print(f"\nwrote {jp}", flush=True)
    return jp


if __name__ == "__main__":
    sys.exit(main())
