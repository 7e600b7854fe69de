#!/usr/bin/env python3
"""Fleet benchmark (issue 16), one command: N servers in network namespaces on a shaped LAN,
the internet behind a paced counting relay, pkgcache's fleet tier beside apt-cacher-ng.

    sudo .venv/bin/python -m bench.scenarios.fleet [--runs 3 | --quick] [--out docs/results]

--quick: 1 run on tiny sets (apt: hello; pip: six) unless --apt-packages/--pip-requirements say.

Real parts only: mmdebstrap roots with the pkgcache .deb built from this checkout, real apt-get
/dpkg and pip in chroots run by `ip netns exec`, nginx WebDAV and apt-cacher-ng in a store
namespace, tbf on the LAN (bench/lib/netns.py). The servers' only way to the Debian archive and
PyPI is scripts/countproxy.py on a Unix socket in the root namespace (one socket per server and
one for the store namespace), paced to --internet-rate (10 MB/s, all of them together) and
counting every byte, per upstream host and per server.

Each provisioning of a fresh root (one server image per invocation: the mmdebstrap base plus the
.deb, empty apt lists): `apt-get update`, `apt-get install` of the apt bench's set, then
`pkgcache pip install` of the pip bench's set into a new venv — each timed; bytes from the
internet per step; bytes over the LAN (the server's interface counters); the result (`dpkg-query`
and `pip freeze`) compared with the cold install of the same run. Scenarios, per run:

  cold      server 1, empty cache, empty store (then `pkgcache remote push` fills the store)
  fleet     server 2, empty cache, through the fleet (the store filled by server 1)
  fleetwin  server 2 as fleet, with the fleet setting pip_page_max_age: 600 (off by default):
            pages server 1 signed less than 600 s ago are used without asking the index
  poisoned  server 2 as fleet, one object of the store (the largest) replaced by other bytes
  linkdown  server 2 as fleet, the store's link down (connect timeouts)
  stopped   server 2 as fleet, the store's nginx stopped (connection refused)
  acng      server 2 from the same image without pkgcache (never installed: no apt snippet, no
            method), apt through apt-cacher-ng in the store namespace, primed by server 1 (one
            untimed install before the first run); plain pip over the same link (pip peer 1)
  devpi     server 2 from the clean image, pip only: through devpi-server's PyPI mirror in the
            store namespace (bench/lib/devpi.py, from PyPI into its own venv), primed by server
            1 like apt-cacher-ng (pip peer 2)
  limit     server 2 from the clean image, apt only: `apt-get update` through apt-cacher-ng (as
            acng), then the install with the same debs already in /var/cache/apt/archives
            (copied in untimed from acng's priming server): what any cache could reach at best
  cold3     servers 1-3 cold at the same time, empty store, the default background uploader;
            internet bytes per server and in all, the wall time for all three, each against
            this run's one cold server

Each run starts with cold (it fills the store); the other scenarios follow in a rotated order, row
r of a Latin square, so no peer always runs right after cold (the poisoned object and a stopped
store are restored after their scenario); cold3 (it needs an empty store) ends the run. The fleet's
pip step is compared with each pip peer and with the best of them (lowest median). Ratios come
with their per-run (paired) values. A failed scenario (or a peer's failed priming) is recorded in
its place and listed under the table; the table and the JSON are written even when a run or the
setup fails or the bench gets SIGTERM (exit 1).

Writes OUT/fleet.json and OUT/fleet.png, prints a table and the issue's targets (met / not met).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from bench.lib import acng, devpi, netns
from bench.lib.report import PLOT_VENV, machine
from bench.lib.setup import REPO
from bench.lib.stats import fmt_runs, latin, paired
from scripts import countproxy

SUITE = "bookworm"
BASE_PKGS = ("python3,python3-venv,python3-apt,python3-yaml,python3-packaging,"
             "python3-cryptography,ca-certificates")
ACNG_PORT = 3142
PIP_FILES_HOST = "files.pythonhosted.org"
SCENARIOS = ("cold", "fleet", "fleetwin", "poisoned", "linkdown", "stopped", "acng", "limit",
             "devpi", "cold3")
ROTATED = ("fleet", "fleetwin", "poisoned", "linkdown", "stopped", "acng", "limit", "devpi")
PAGE_WINDOW = 600  # s: fleetwin's pip_page_max_age (pypi.org's own max-age for its pages)
PIP_PEERS = {"acng": "plain pip", "devpi": "pip through devpi-server"}
TINY_APT, TINY_PIP = ["hello"], "six\n"  # --quick
COLD3_WALL_BEFORE = 240.0  # s, cold3's wall time at 684bf7e (docs/results/fleet.json, #23)
LABELS = {"cold": "server 1 cold (empty cache, empty store)",
          "fleet": "server 2 through the fleet",
          "fleetwin": f"server 2 through the fleet, pip_page_max_age {PAGE_WINDOW} s (a setting)",
          "poisoned": "server 2, one store object replaced",
          "linkdown": "server 2, store link down (timeouts)",
          "stopped": "server 2, store stopped (refused)",
          "acng": "server 2 through apt-cacher-ng (primed), plain pip",
          "limit": "server 2 clean, apt only: update via apt-cacher-ng, debs already there",
          "devpi": "server 2 clean, pip only, through devpi-server (primed)",
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


def pip_part(result: str | None) -> str:
    """The pip freeze part of a server's result."""
    return (result or "").partition("-- pip freeze")[2]


def apt_part(result: str | None) -> str:
    """The dpkg part of a server's result (every package, version and status)."""
    return (result or "").partition("-- pip freeze")[0]


# ------------------------------------------------------------------------------------- the relay
_CLIENT = threading.local()  # which socket a relay thread serves (0: the store namespace)


class ServerCounter(countproxy.Counter):
    """countproxy's counter, also per server (the socket the connection came in on)."""

    def __init__(self) -> None:
        super().__init__()
        self.by_server: dict[int, int] = {}

    def add(self, n: int, host: str = "") -> None:
        """Count n bytes from host for the calling thread's server."""
        super().add(n, host)
        i = getattr(_CLIENT, "server", 0)
        with self.lock:
            self.by_server[i] = self.by_server.get(i, 0) + n

    def reset(self) -> None:
        """Start from zero."""
        super().reset()
        with self.lock:
            self.by_server = {}


def _handler(i: int) -> type[countproxy.Handler]:
    """countproxy's handler, its thread marked as serving server i."""
    class Tagged(countproxy.Handler):
        def handle(self) -> None:
            _CLIENT.server = i
            super().handle()
    return Tagged


class Relay:
    """countproxy's relay in this process on Unix sockets (path: the store namespace's; paths[i]:
    server i's), paced all together, counting per upstream host and per server."""

    def __init__(self, path: Path, rate: float, servers: int = 0) -> None:
        countproxy.PACER.rate = rate
        countproxy.COUNTER = self.counter = ServerCounter()
        self.path = path
        self.paths = {i: path.with_name(f"{path.stem}-s{i}.sock") for i in range(1, servers + 1)}
        self.servers = []
        for i, p in [(0, path), *self.paths.items()]:
            p.unlink(missing_ok=True)
            srv = countproxy.UnixServer(str(p), _handler(i))
            threading.Thread(target=srv.serve_forever, daemon=True).start()
            self.servers.append(srv)

    def reset(self) -> None:
        """Start counting from zero."""
        self.counter.reset()

    def snapshot(self) -> dict[str, int]:
        """Bytes from upstream per host since the last reset (after the last relayed bytes)."""
        time.sleep(0.2)
        with self.counter.lock:
            return dict(self.counter.by_host)

    def per_server(self) -> dict[int, int]:
        """Bytes from upstream per server since the last reset (0: the store namespace)."""
        time.sleep(0.2)
        with self.counter.lock:
            return dict(self.counter.by_server)

    def close(self) -> None:
        """Stop serving; remove the sockets."""
        for srv in self.servers:
            srv.shutdown()
            srv.server_close()
        for p in [self.path, *self.paths.values()]:
            p.unlink(missing_ok=True)


# ------------------------------------------------------------------------------------ the servers
INNER = ('mount -t devpts -o newinstance,ptmxmode=0666 devpts "$0/dev/pts" 2>/dev/null || true\n'
         'exec chroot "$0" env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin '
         'HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive @UPLOAD@'
         f'http_proxy=http://127.0.0.1:{netns.PROXY_PORT} https_proxy=http://127.0.0.1:{netns.PROXY_PORT} '
         f'no_proxy={netns.STORE_IP} '  # the store is on the LAN, the relay is the way out only
         '/bin/sh -ec "$1"')
MANUAL = "PKGCACHE_REMOTE_UPLOAD=manual "  # the bench pushes (cold) and times it on its own


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
        self.upload = MANUAL

    def run(self, script: str, check: bool = True) -> tuple[float, str]:
        """Run script in the root (in the server's namespace); (wall seconds, output)."""
        pre = self.lab.exec_prefix(self.i) if self.lab else []
        argv = [*pre, "unshare", "--mount", "--pid", "--fork", f"--mount-proc={self.root}/proc",
                "/bin/sh", "-c", INNER.replace("@UPLOAD@", self.upload), str(self.root), script]
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
        if not self.mode.startswith("fleet"):
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
        self.relay = Relay(work / "relay.sock", internet_rate, servers)
        self.apt = apt or apt_set()
        self.req = req or pip_set()
        self.nginx_pid: int | None = None
        self.acng_pid: int | None = None
        self.store_proxy = False
        self.devpi = devpi.Devpi(work)
        self.versions: dict[str, str] = {}
        self.limit_debs = work / "limit-debs"  # kept from acng's priming install (limit)
        self.prime_failed: dict[str, str] = {}  # a peer whose priming failed: its runs fail
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

    def start_store_proxy(self) -> None:
        """The store namespace's way to the internet: a forwarder to the relay (once)."""
        if not self.store_proxy:
            self.lab.spawn(None, [sys.executable, str(netns.UNIXFWD), "--listen",
                                  f"127.0.0.1:{netns.PROXY_PORT}", "--unix", str(self.relay.path)],
                           port=netns.PROXY_PORT)
            self.store_proxy = True

    def start_acng(self) -> None:
        """apt-cacher-ng in the store namespace, its upstream the relay (via a forwarder)."""
        self.versions["apt-cacher-ng"] = acng.ensure_installed()
        a = acng.Acng(self.work / "acng", upstream_proxy=f"http://127.0.0.1:{netns.PROXY_PORT}")
        a.work.mkdir(parents=True, exist_ok=True)
        a.configure()
        a.clear_cache()
        self.start_store_proxy()
        self.acng_pid = self.lab.spawn(
            None, [acng.ACNG, "-c", str(a.conf), "ForeGround=1", f"BindAddress={netns.STORE_IP}",
                   f"Port={ACNG_PORT}", f"CacheDir={a.cache}", f"LogDir={a.logs}",
                   f"SocketPath={a.work / 'acng.sock'}", f"PidFile={a.work / 'acng.pid'}"],
            port=ACNG_PORT, host=netns.STORE_IP, log=a.work / "acng.stdout")

    def start_devpi(self) -> None:
        """devpi-server (a new, empty mirror) in the store namespace, PyPI through the relay."""
        self.versions["devpi-server"] = self.devpi.ensure_installed()
        self.devpi.init()
        self.start_store_proxy()
        self.lab.spawn(None, self.devpi.argv(netns.STORE_IP, devpi.PORT,
                                             f"http://127.0.0.1:{netns.PROXY_PORT}"),
                       port=devpi.PORT, host=netns.STORE_IP, log=self.work / "devpi.log", wait=180)

    def warm_devpi(self) -> None:
        """devpi's first page takes long (it loads PyPI's project list; pip's 15 s timeout
        expires, then devpi says the project does not exist): ask for one first, untimed."""
        first = self.req.split()[0].split("=")[0].split("<")[0].split(">")[0].split("[")[0]
        url = devpi.index_url(netns.STORE_IP) + first.lower() + "/"
        # devpi answers 404 while its project list is still loading: ask until it knows the
        # project (10 min at most)
        sh(*self.lab.exec_prefix(None), sys.executable, "-c",
           "import time, urllib.error, urllib.request\n"
           "end = time.monotonic() + 600\n"
           "while True:\n"
           "    try:\n"
           f"        urllib.request.urlopen({url!r}, timeout=900).read()\n"
           "        break\n"
           "    except urllib.error.HTTPError:\n"
           "        if time.monotonic() > end:\n"
           "            raise\n"
           "        time.sleep(5)\n")

    # -- one provisioning
    def server(self, i: int, name: str, mode: str) -> Server:
        """A fresh server i; mode: fleet (pkgcache, remote rw, signed), acng, limit or devpi (the
        clean image: no pkgcache file at all; acng: apt through apt-cacher-ng, plain pip; limit:
        apt through apt-cacher-ng; devpi: pip through devpi-server)."""
        if mode.startswith("fleet"):
            s = Server(self.lab, i, self.image_path, self.work / "roots" / name)
            s.configure(f"    remote:\n      - url: {self.store_url}\n        mode: rw\n"
                        "        signing_key_file: /etc/pkgcache/fleet.key\n"
                        f"        trusted_public_keys: [\"{self.public}\"]\n"
                        + (f"        pip_page_max_age: {PAGE_WINDOW}\n" if mode == "fleetwin"
                           else ""))
        else:
            s = Server(self.lab, i, self.clean_image, self.work / "roots" / name)
            if mode in ("acng", "limit"):
                (s.root / "etc/apt/apt.conf.d/01acng").write_text(
                    f'Acquire::http::Proxy "http://{netns.STORE_IP}:{ACNG_PORT}";\n')
        s.mode = mode
        return s

    def pip_command(self, mode: str) -> str:
        """The pip step of a server in this mode (a new venv, then the set)."""
        if mode.startswith("fleet"):
            cmd = "pkgcache pip install --python /opt/app -r /root/requirements.txt"
        elif mode == "devpi":
            host = netns.STORE_IP
            cmd = (f"NO_PROXY={host} no_proxy={host} /opt/app/bin/pip install -q -i "
                   f"{devpi.index_url(host)} --trusted-host {host} -r /root/requirements.txt")
        else:
            cmd = "/opt/app/bin/pip install -q -r /root/requirements.txt"
        return "python3 -m venv /opt/app && " + cmd

    def provision(self, s: Server, *, pip: bool = True, apt: bool = True,
                  count: bool = True, before_install: Callable[[Server], None] | None = None
                  ) -> dict:
        """update, install, pip on server s; per step wall time, internet and LAN bytes;
        before_install: called untimed between the update and the install."""
        rec: dict = {"server": s.i}
        steps = [("update", "apt-get update"),
                 ("install", f"apt-get install -y --no-install-recommends {' '.join(self.apt)}")
                 ] if apt else []
        if pip:
            steps.append(("pip", self.pip_command(s.mode)))
        for step, script in steps:
            if step == "install" and before_install is not None:
                before_install(s)
            os.sync()  # untimed: the dirty pages of the scenario before (cold's 300 MB install)
            # are written back now, not during this step (they slowed whichever came next)
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
                    rec["pages_internet"] = rec["pip_internet"] - rec["wheels_internet"]
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
        if s.mode == "devpi":  # pip only: the same pip freeze as cold
            rec["same_as_cold"] = pip_part(res) == pip_part(self.cold_result)
        elif s.mode == "limit":  # apt only: the same packages as cold
            rec["same_as_cold"] = apt_part(res) == apt_part(self.cold_result)
        else:
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
        """Replace the start of the store's largest .deb (else its largest object: one the member
        surely asks for, not an index it may never read) with other bytes; (its path, the
        original bytes: restore() puts them back for the scenarios after it)."""
        objs = sorted((p for p in self.store_cas.iterdir() if p.is_file()),
                      key=lambda p: p.stat().st_size, reverse=True)

        def is_deb(p: Path) -> bool:
            with open(p, "rb") as f:
                return f.read(8) == b"!<arch>\n"
        victim = next((p for p in objs if is_deb(p)), objs[0])
        with open(victim, "r+b") as f:
            orig = f.read(1 << 20)
            f.seek(0)
            f.write(os.urandom(len(orig)))
        return victim, orig

    def prime(self, peer: str) -> None:
        """Start a peer (acng, devpi) and fill it with one untimed provisioning of server 1
        through it (acng: update + install; devpi: pip); a failure is recorded, the peer's runs
        then fail and the bench goes on."""
        try:
            (self.start_acng if peer == "acng" else self.start_devpi)()
            print(f"  priming {peer}: server 1 through it (untimed)", flush=True)
            if peer == "devpi":
                self.warm_devpi()
            s = self.server(1, f"{peer}-prime", peer)
            try:
                self.provision(s, pip=peer == "devpi", apt=peer == "acng", count=False)
                if peer == "acng":  # the limit's debs: what apt itself kept, under apt's names
                    self.keep_debs(s)
            finally:
                shutil.copy(s.log, self.logdir / s.log.name)
                s.close()
        except Exception as exc:  # noqa: BLE001 - recorded in the peer's runs
            self.prime_failed[peer] = f"priming failed: {type(exc).__name__}: {str(exc).strip()[-600:]}"
            print(f"  {peer:<9} {self.prime_failed[peer][-300:]}", flush=True)

    def keep_debs(self, s: Server) -> None:
        """Keep the debs apt left in server s's archives (acng's priming install) for limit."""
        self.limit_debs = self.work / "limit-debs"
        shutil.rmtree(self.limit_debs, ignore_errors=True)
        self.limit_debs.mkdir()
        for deb in (s.root / "var/cache/apt/archives").glob("*.deb"):
            shutil.copy2(deb, self.limit_debs / deb.name)

    def place_debs(self, s: Server) -> None:
        """Put the kept debs into server s's archives, as apt would have left them (untimed)."""
        debs = sorted(self.limit_debs.glob("*.deb"))
        if not debs:
            raise RuntimeError("limit: acng's priming install left no debs in archives")
        for deb in debs:
            shutil.copy2(deb, s.root / "var/cache/apt/archives" / deb.name)

    def scenario(self, scen: str) -> dict:
        """One provisioning of server 2 for scen (the store filled by this run's cold)."""
        if scen in self.prime_failed or (scen == "limit" and "acng" in self.prime_failed):
            raise RuntimeError(self.prime_failed.get(scen) or self.prime_failed["acng"])
        if scen == "acng":
            return self.one("acng", 2, "acng")
        if scen == "limit":  # apt-cacher-ng's update, then the install with every deb there
            return self.one("limit", 2, "limit", pip=False, before_install=self.place_debs)
        if scen == "devpi":
            return self.one("devpi", 2, "devpi", apt=False)
        if scen == "fleetwin":  # the fleet with pages used while younger than PAGE_WINDOW
            return self.one("fleetwin", 2, "fleetwin")
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
        order = latin([s for s in ROTATED if s in scenarios], r)
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
        """Servers 1-N cold at the same time, an empty store, the default (background) uploader:
        the wall time until the last is provisioned, internet bytes per server and in all, each
        against this run's one cold server; medians over the servers for the steps."""
        self.start_nginx()
        srv = [self.server(i, f"cold3-s{i}", "fleet") for i in range(1, self.n + 1)]
        for s in srv:
            s.upload = ""  # as a member is configured: it uploads what it got
        out: list[dict] = [{} for _ in srv]
        ends = [0.0] * len(srv)
        errors: list[BaseException] = []

        def go(k: int) -> None:
            try:
                out[k] = self.provision(srv[k], count=False)
                ends[k] = time.perf_counter()
            except BaseException as exc:  # noqa: BLE001 - reported after the join
                errors.append(exc)
        try:
            self.relay.reset()
            t0 = time.perf_counter()
            threads = [threading.Thread(target=go, args=(k,)) for k in range(len(srv))]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            hosts, by_server = self.relay.snapshot(), self.relay.per_server()
            if errors:
                raise errors[0]
            out = [self.finish(s, o) for s, o in zip(srv, out, strict=True)]
        finally:
            for s in srv:
                shutil.copy(s.log, self.logdir / s.log.name)
                s.close()
            self.stop_nginx()
        wall = max(ends) - t0
        agg: dict = {k: statistics.median(o[k] for o in out) for k in
                     ("update_s", "install_s", "pip_s", "total_s")}
        agg.update(all_wall_s=wall, internet_total=sum(hosts.values()),
                   internet_by_server=[by_server.get(s.i, 0) for s in srv],
                   server_total_s=[o["total_s"] for o in out],
                   wheels_internet=hosts.get(PIP_FILES_HOST, 0),
                   same_as_cold=all(o["same_as_cold"] for o in out), servers=out,
                   lan_total=sum(o.get(f"{k}_lan", 0) for o in out for k in STEPS))
        cold = (self.results["cold"] or [{}])[-1]  # this run's one cold server
        if "total_s" in cold:
            agg["cold_internet"] = sum(cold.get(f"{k}_internet", 0) for k in STEPS)
            agg["cold_total_s"] = cold["total_s"]
            agg["internet_vs_cold"] = agg["internet_total"] / agg["cold_internet"]
            agg["wall_vs_cold"] = wall / cold["total_s"]
        print(f"  cold3     {cold3_line(agg)}", flush=True)
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


def cold3_line(r: dict) -> str:
    """One cold3 run in words: the wall time and internet bytes, against one cold server."""
    def mb(v: float) -> str:
        return f"{v / 1e6:.1f}"
    n = len(r.get("internet_by_server") or []) or len(r.get("servers") or [])
    line = f"{n} servers at once: all done in {r['all_wall_s']:.1f} s"
    if r.get("cold_total_s"):
        line += f" (one cold server {r['cold_total_s']:.1f} s: {r['wall_vs_cold']:.2f}x)"
    line += (f"; internet {mb(r['internet_total'])} MB in all (per server "
             f"{' / '.join(mb(v) for v in r.get('internet_by_server') or [])} MB")
    if r.get("cold_internet"):
        line += f"; one cold server {mb(r['cold_internet'])} MB: {r['internet_vs_cold']:.2f}x"
    return line + f"), wheels {mb(r.get('wheels_internet', 0))} MB; same as cold: " \
                  f"{fmt(r.get('same_as_cold'))}"


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
        lim = med(summary, "limit", "apt_s")
        if lim and b:  # the true limit: no cache can make the install cheaper than this
            add("limit (debs there) / apt-cacher-ng: update + install (> 0.90: the fleet "
                "target is out of any cache's reach)", lim / b, "<= 0.90", lim / b <= 0.90,
                per_run(results, "limit", "acng"))
        if lim and a:
            add("fleet / limit: update + install (reported)", a / lim, "-", None,
                per_run(results, "fleet", "limit"))
        pages = fl.get("pages_internet", {}).get("max")
        add("fleet: pip index pages from the internet (max, MB)",
            None if pages is None else pages / 1e6, "<= 2.0", None if pages is None else pages <= 2e6)
        pa = med(summary, "fleet", "pip_s")
        peers = {p: med(summary, p, "pip_s") for p in PIP_PEERS}
        for peer, name in PIP_PEERS.items():
            pb = peers[peer]
            pr = pa / pb if pa and pb else None
            add(f"fleet pip step / {name} ({peer} server)", pr, "<= 1.0",
                None if pr is None else pr <= 1.0, per_run(results, "fleet", peer, "pip_s"))
        measured = {p: v for p, v in peers.items() if v}
        best = min(measured, key=lambda p: measured[p], default=None)
        br = pa / measured[best] if pa and best else None
        add(f"fleet pip step / the best pip peer ({best or '-'})", br, "<= 1.0",
            None if br is None else br <= 1.0,
            per_run(results, "fleet", best, "pip_s") if best else [])
        add("fleet: same result as cold", fl["same_as_cold"], "yes", fl["same_as_cold"])
    fw = summary.get("fleetwin")
    if fw and fw.get("runs"):
        pages = fw.get("pages_internet", {}).get("max")
        add(f"fleetwin (pip_page_max_age {PAGE_WINDOW} s): pip index pages from the internet "
            "(max, MB)", None if pages is None else pages / 1e6, "<= 2.0",
            None if pages is None else pages <= 2e6)
        pa = med(summary, "fleetwin", "pip_s")
        peers = {p: med(summary, p, "pip_s") for p in PIP_PEERS}
        measured = {p: v for p, v in peers.items() if v}
        for peer in measured:
            pr = pa / measured[peer] if pa else None
            add(f"fleetwin pip step / {PIP_PEERS[peer]} ({peer} server)", pr, "<= 1.0",
                None if pr is None else pr <= 1.0, per_run(results, "fleetwin", peer, "pip_s"))
        add("fleetwin: same result as cold", fw["same_as_cold"], "yes", fw["same_as_cold"])
    cw, pw = med(summary, "cold", "wheels_internet"), med(summary, "acng", "wheels_internet")
    if cw is not None and pw:
        add("cold pip: files from the internet / plain pip's", cw / pw, "<= 1.02", cw / pw <= 1.02,
            per_run(results, "cold", "acng", "wheels_internet"))
    c3 = summary.get("cold3")
    if c3 and c3.get("runs"):
        recs = [r for r in results.get("cold3", []) if "failed" not in r]
        v = med(summary, "cold3", "internet_vs_cold")
        add("cold3: internet bytes of all servers / one cold server's", v, "<= 1.15",
            None if v is None else v <= 1.15, [r.get("internet_vs_cold") for r in recs])
        w = med(summary, "cold3", "wall_vs_cold")
        add("cold3: wall time for all servers / one cold server's (reported)", w, "-", None,
            [r.get("wall_vs_cold") for r in recs])
        a = med(summary, "cold3", "all_wall_s")
        add(f"cold3: wall time for all servers (s), before #23: {COLD3_WALL_BEFORE:.0f} s", a,
            f"<= {COLD3_WALL_BEFORE:.0f}", None if a is None else a <= COLD3_WALL_BEFORE,
            [r.get("all_wall_s") for r in recs])
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
    for peer in (*PIP_PEERS, "limit"):
        if summary.get(peer, {}).get("runs"):
            add(f"{peer}: same result as cold", summary[peer]["same_as_cold"], "yes",
                summary[peer]["same_as_cold"])
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
           ("pages MB", "pages_internet", "MB"), ("wheels MB", "wheels_internet", "MB"),
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
            if scen == "cold3" and key in ("update_internet", "debs_internet", "pages_internet"):
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
                 " pages MB = pip's step less the files host; cold3: internet of all servers"
                 " together, in the index column)")
    lines += cold3_lines(res)
    lines.append("")
    for t in res["targets"]:
        met = "?" if t["met"] is None else ("met" if t["met"] else "NOT met")
        lines.append(f"{t['target']:<62} {fmt(t['value']):>8}  {t['limit']:<8} {met:<8}"
                     + (f" per run {fmt_runs(t['per_run'])}" if t.get("per_run") else ""))
    lines += [f"FAILED {f}" for f in failures(res)]
    return "\n".join(lines)


def cold3_lines(res: dict) -> list[str]:
    """cold3 run by run, each against its run's one cold server."""
    recs = res.get("results", {}).get("cold3") or []
    return [f"cold3 run {k + 1}: " + (f"FAILED {r['failed'][-200:]}" if "failed" in r else cold3_line(r))
            for k, r in enumerate(recs)]


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
           f"- Peers: {', '.join(f'{k} {v}' for k, v in (res.get('versions') or {}).items()) or '-'};"
           f" load average at the start {res.get('load_start', '?')}, at the end {res.get('load_end', '?')}",
           f"- Command: `{res['command']}`", "",
           "| scenario | " + " | ".join(c[0] for c in COLUMNS) + " | same as cold |",
           "|---|" + "---:|" * len(COLUMNS) + "---|"]
    out += [f"| {' | '.join(r)} |" for r in table_rows(res["summary"])]
    c3 = cold3_lines(res)
    out += ["", *[f"- {x}" for x in c3]] if c3 else []
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
    ap.add_argument("--quick", action="store_true", help="1 run, tiny sets (hello; six)")
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
    apt = (args.apt_packages.split() if args.apt_packages else
           list(TINY_APT) if args.quick else apt_set())
    req = (Path(args.pip_requirements).read_text() if args.pip_requirements else
           TINY_PIP if args.quick else pip_set())
    t0 = time.monotonic()
    res: dict = {"command": " ".join(["python -m bench.scenarios.fleet", *sys.argv[1:]]),
                 "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                 "machine": machine(), "runs": runs, "internet_rate": args.internet_rate,
                 "lan_rate": args.lan_rate, "pip_set": req.split(), "apt_set": apt,
                 "load_start": load(),
                 "git": subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                                       capture_output=True, text=True).stdout.strip()}
    b = FleetBench(work, args.servers, args.internet_rate, args.lan_rate, logdir, apt, req,
                   args.prefix)
    old_handler = signal.signal(signal.SIGTERM, interrupted)
    try:
        b.lab.up(b.relay.paths, args.lan_rate)
        print("building the server images (mmdebstrap base; + pkgcache .deb; clean)", flush=True)
        b.image_path = b.image()
        for peer in PIP_PEERS:
            if peer in only or (peer == "acng" and "limit" in only):  # limit updates through acng
                b.prime(peer)
        for r in range(runs):
            b.run_once(r, only)
    except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001 - the table and JSON still come
        res["error"] = f"{type(exc).__name__}: {str(exc).strip()[-1500:]}"
        print(f"fleet bench FAILED: {res['error'][-500:]}", flush=True)
    finally:
        b.close()
        jp = write_results(res, b, out, t0)
        signal.signal(signal.SIGTERM, old_handler)
    chart = "skipped" if args.no_chart else plot(jp, out / "fleet.png")
    print(f"chart: {chart}; total {res['seconds'] / 60:.1f} min")
    return 0 if all(t["met"] is not False for t in res["targets"]) and not failures(res) else 1


def load() -> str:
    """The load average (1, 5, 15 min): the machine is shared."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def interrupted(_sig: int, _frame: object) -> None:
    """SIGTERM: end like ^C (the table and the JSON are still written)."""
    raise KeyboardInterrupt("SIGTERM")


def write_results(res: dict, b: FleetBench, out: Path, t0: float) -> Path:
    """Summary, targets, the table (printed) and OUT/fleet.json from what ran; the JSON's path."""
    res["results"] = b.results
    res["orders"] = b.orders
    res["versions"] = getattr(b, "versions", {})
    res["load_end"] = load()
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
