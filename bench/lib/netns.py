#!/usr/bin/python3
"""A fleet on one machine: a store namespace and N server namespaces (fleet demo and bench).

Not part of pkgcache. Layout (all names start with PREFIX, so two labs never meet):

    PREFIX-store   bridge br0 10.77.0.1/24; nginx WebDAV (or apt-cacher-ng, moto) listens here
    PREFIX-s1..sN  eth0 10.77.0.1N/24 on that bridge, NO default route; 127.0.0.1:3128 is a
                   forwarder (scripts/unixfwd.py) to the counting relay's Unix socket in the root
                   namespace: the servers' only way to the Debian archive and PyPI

The LAN is shaped with tbf on both ends of each veth (this kernel has no netem). The bridge never
lives in the root namespace (which has the default route). Only addresses inside these namespaces
and 127.0.0.1 are ever traffic targets. Stdlib only: the demo runs it with the system python3.

CLI (the demo): netns.py up|down|lan-bytes|link --prefix P --work DIR ...
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

UNIXFWD = Path(__file__).resolve().parents[2] / "scripts" / "unixfwd.py"  # run as a script by the demo
SUBNET = "10.77.0"
STORE_IP = f"{SUBNET}.1"
STORE_PORT = 8080
PROXY_PORT = 3128


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run `ip ARGS` (one clear error on failure)."""
    p = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and p.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {p.stderr.strip()}")
    return p


def alive(pid: int) -> bool:
    """Whether pid is a live process (a zombie waiting for its reaper counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def server_ip(i: int) -> str:
    """Address of server i (1-based)."""
    return f"{SUBNET}.{10 + i}"


class Lab:
    """The namespaces, their links and the processes this lab started (killed by pid on down)."""

    def __init__(self, prefix: str, work: Path, servers: int = 2) -> None:
        if not prefix.replace("-", "").isalnum() or len(prefix) > 20:
            raise ValueError(f"bad namespace prefix {prefix!r}")
        self.prefix = prefix
        self.work = work
        self.servers = servers
        self.store_ns = f"{prefix}-store"
        self.pidfile = work / f"{prefix}.pids"

    def ns(self, i: int) -> str:
        """Namespace name of server i (1-based)."""
        return f"{self.prefix}-s{i}"

    def exec_prefix(self, i: int | None) -> list[str]:
        """argv prefix running a command in server i (None: the store)."""
        return ["ip", "netns", "exec", self.store_ns if i is None else self.ns(i)]

    # ---------------------------------------------------------------------------- life cycle
    def up(self, relay_sock: Path | dict[int, Path] | None = None, lan_rate: str = "800mbit") -> None:
        """Create the store and server namespaces, shape the LAN, start the forwarders (to one
        relay socket, or to each server's own: {i: path}, to count bytes per server)."""
        self.down()
        self.work.mkdir(parents=True, exist_ok=True)
        ip("netns", "add", self.store_ns)
        st = ["-n", self.store_ns]
        ip(*st, "link", "set", "lo", "up")
        ip(*st, "link", "add", "br0", "type", "bridge")
        ip(*st, "addr", "add", f"{STORE_IP}/24", "dev", "br0")
        ip(*st, "link", "set", "br0", "up")
        for i in range(1, self.servers + 1):
            ns = self.ns(i)
            ip("netns", "add", ns)
            ip("-n", ns, "link", "set", "lo", "up")
            ip("-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", f"v{i}",
               "netns", self.store_ns)
            ip("-n", ns, "addr", "add", f"{server_ip(i)}/24", "dev", "eth0")
            ip("-n", ns, "link", "set", "eth0", "up")
            ip(*st, "link", "set", f"v{i}", "master", "br0")
            ip(*st, "link", "set", f"v{i}", "up")
            if lan_rate:
                for where, dev in ((ns, "eth0"), (self.store_ns, f"v{i}")):
                    subprocess.run(["ip", "netns", "exec", where, "tc", "qdisc", "add", "dev", dev,
                                    "root", "tbf", "rate", lan_rate, "burst", "1mb", "latency",
                                    "50ms"], check=True, capture_output=True)
            sock = relay_sock.get(i) if isinstance(relay_sock, dict) else relay_sock
            if sock is not None:
                self.spawn(i, [sys.executable, str(UNIXFWD), "--listen",
                               f"127.0.0.1:{PROXY_PORT}", "--unix", str(sock)],
                           port=PROXY_PORT)

    def spawn(self, i: int | None, argv: list[str], port: int | None = None,
              log: Path | None = None, host: str = "127.0.0.1", wait: float = 20) -> int:
        """Start a long-running process in server i (None: the store); wait up to `wait` s for
        PORT; record its pid."""
        out = open(log, "ab") if log else subprocess.DEVNULL
        proc = subprocess.Popen([*self.exec_prefix(i), *argv], stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
        if log:
            out.close()  # type: ignore[union-attr]
        with open(self.pidfile, "a") as f:
            f.write(f"{proc.pid}\n")
        if port is not None:
            deadline = time.monotonic() + wait
            probe = (f"import socket; socket.create_connection(('{host}', {port}), timeout=1)")
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"{argv[0]} exited {proc.returncode} in the lab")
                if subprocess.run([*self.exec_prefix(i), sys.executable, "-c", probe],
                                  capture_output=True).returncode == 0:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{argv[0]} did not listen on {host}:{port} within {wait:.0f} s")
                time.sleep(0.1)
        return proc.pid

    def kill(self, pid: int) -> None:
        """End one process this lab started (TERM, then KILL after 2 s)."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if not alive(pid):
                return
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                return
            for _ in range(40):
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass
                if not alive(pid):
                    return
                time.sleep(0.05)

    def namespaces(self) -> list[str]:
        """This lab's namespaces that exist now."""
        out = ip("netns", "list", check=False).stdout
        names = [ln.split()[0] for ln in out.splitlines() if ln.strip()]
        return [n for n in names if n == self.store_ns or
                (n.startswith(f"{self.prefix}-s") and n[len(self.prefix) + 2:].isdigit())]

    def down(self) -> None:
        """Kill what this lab started and every process left in its namespaces; delete them."""
        if self.pidfile.exists():
            for ln in self.pidfile.read_text().split():
                if ln.isdigit():
                    self.kill(int(ln))
            self.pidfile.unlink()
        for ns in self.namespaces():
            for pid in ip("netns", "pids", ns, check=False).stdout.split():
                if pid.isdigit():
                    self.kill(int(pid))
            ip("netns", "del", ns, check=False)

    # ------------------------------------------------------------------------------ measuring
    def lan_bytes(self, i: int) -> int:
        """Bytes received + sent on server i's LAN interface so far."""
        out = ip("-n", self.ns(i), "-s", "-j", "link", "show", "dev", "eth0").stdout
        st = json.loads(out)[0]["stats64"]
        return int(st["rx"]["bytes"]) + int(st["tx"]["bytes"])

    def link(self, i: int, up: bool) -> None:
        """Take server i's link to the store down (packets vanish: timeouts) or up again."""
        ip("-n", self.store_ns, "link", "set", f"v{i}", "up" if up else "down")
        ip("-n", self.ns(i), "link", "set", "eth0", "up")


# -------------------------------------------------------------------------------------- stores
def nginx_conf(base: Path, listen: str) -> Path:
    """An nginx WebDAV store at http://LISTEN/store/ with its files under BASE/www/store, with
    COPY as the README's fleet section asks (members take leases with it: coalescing)."""
    (base / "www" / "store").mkdir(parents=True, exist_ok=True)
    (base / "tmp").mkdir(exist_ok=True)
    conf = base / "nginx.conf"
    conf.write_text(f"""
user root root;
worker_processes 1;
pid {base}/nginx.pid;
error_log {base}/error.log;
events {{ worker_connections 256; }}
http {{
    access_log {base}/access.log;
    client_body_temp_path {base}/tmp;
    proxy_temp_path {base}/tmp; fastcgi_temp_path {base}/tmp;
    uwsgi_temp_path {base}/tmp; scgi_temp_path {base}/tmp;
    client_max_body_size 0;
    server {{
        listen {listen};
        root {base}/www;
        location /store/ {{ dav_methods PUT DELETE COPY; create_full_put_path on; }}
    }}
}}
""")
    return conf


def start_nginx(lab: Lab, base: Path) -> tuple[int, str]:
    """nginx WebDAV in the store namespace; (pid, store URL)."""
    if not Path("/usr/sbin/nginx").exists():
        subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", "nginx-light"],
                       check=True, capture_output=True,
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    conf = nginx_conf(base, f"{STORE_IP}:{STORE_PORT}")
    pid = lab.spawn(None, ["/usr/sbin/nginx", "-c", str(conf), "-p", str(base), "-g", "daemon off;"],
                    port=STORE_PORT, host=STORE_IP)
    return pid, f"http://{STORE_IP}:{STORE_PORT}/store"


def main() -> int:
    """The CLI (used by scripts/demo.sh)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("action", choices=["up", "down", "lan-bytes", "link"])
    ap.add_argument("--prefix", required=True)
    ap.add_argument("--work", required=True, type=Path)
    ap.add_argument("--servers", type=int, default=2)
    ap.add_argument("--relay", type=Path, help="up: the counting relay's Unix socket")
    ap.add_argument("--lan-rate", default="800mbit", help="up: tbf rate of each LAN link ('' = none)")
    ap.add_argument("--nginx", type=Path, metavar="DIR", help="up: run an nginx WebDAV store from DIR")
    ap.add_argument("--server", type=int, default=1, help="lan-bytes/link: which server")
    ap.add_argument("--state", choices=["up", "down"], default="up", help="link: new state")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("netns.py: needs root (ip netns)", file=sys.stderr)
        return 2
    lab = Lab(args.prefix, args.work, args.servers)
    try:
        if args.action == "up":
            lab.up(args.relay, args.lan_rate)
            if args.nginx:
                print(start_nginx(lab, args.nginx)[1])
        elif args.action == "down":
            lab.down()
        elif args.action == "lan-bytes":
            print(lab.lan_bytes(args.server))
        else:
            lab.link(args.server, args.state == "up")
    except (RuntimeError, ValueError, subprocess.CalledProcessError, OSError) as exc:
        print(f"netns.py: {exc}", file=sys.stderr)
        if args.action == "up":
            lab.down()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
