"""Benchmark helpers: apt-cacher-ng on 127.0.0.1 with its own cache, and a byte-counting proxy.

Not a test and not part of pkgcache. `Acng` starts Debian's apt-cacher-ng (installed with
apt-get if missing) with a private config, cache and log dir, listening only on 127.0.0.1, and
optionally sending its own upstream traffic through another proxy (the counting one), so the
bytes it fetches from the Debian archive are measured exactly. `CountingProxy` runs
scripts/countproxy.py's relay in a thread of this process and counts every byte received from
upstream (HTTP headers and bodies, TLS records for CONNECT tunnels).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

from scripts import countproxy  # the demo's relay, scripts/countproxy.py (a program there)

ACNG = "/usr/sbin/apt-cacher-ng"


def free_port(first: int = 3142) -> int:
    """A free TCP port on 127.0.0.1 below 32768.

    apt-cacher-ng 3.7.4 fails to bind ports >= 32768 ("Error resolving address for binding"),
    so the kernel's ephemeral range (bind to port 0) cannot be used for it.
    """
    for port in range(first, 32768):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below 32768")


class CountingProxy:
    """countproxy's relay in a background thread; .total / .reset() for per-step byte counts."""

    def __init__(self) -> None:
        # below 32768: apt-cacher-ng uses it as its upstream proxy (see free_port)
        self.server = countproxy.Server(("127.0.0.1", free_port(21000)), countproxy.Handler)
        self.port = int(self.server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def total(self) -> int:
        """Bytes relayed since the last reset."""
        with countproxy.COUNTER.lock:
            return countproxy.COUNTER.total

    def reset(self) -> None:
        """Start counting from zero."""
        with countproxy.COUNTER.lock:
            countproxy.COUNTER.total = 0

    def close(self) -> None:
        """Stop the relay."""
        self.server.shutdown()
        self.server.server_close()


def ensure_installed() -> str:
    """apt-cacher-ng's version, installing Debian's package first if needed (root only).

    The package's postinst cannot start a daemon here when policy-rc.d denies it; if it did, the
    stock daemon (0.0.0.0:3142) is not the one we use and is left alone.
    """
    if not os.path.exists(ACNG):
        subprocess.run(["apt-get", "install", "-y", "-q", "apt-cacher-ng"], check=True,
                       capture_output=True, env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    out = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "apt-cacher-ng"],
                         capture_output=True, text=True)
    return out.stdout.strip() or "?"


class Acng:
    """A private apt-cacher-ng daemon: start() primes nothing, stop() ends only this process."""

    def __init__(self, work: Path, upstream_proxy: str | None = None) -> None:
        self.work = work
        self.conf = work / "acng-conf"
        self.cache = work / "acng-cache"
        self.logs = work / "acng-log"
        self.upstream_proxy = upstream_proxy
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def configure(self) -> None:
        """Copy /etc/apt-cacher-ng; deb.debian.org as the Debian backend; optional upstream proxy."""
        shutil.rmtree(self.conf, ignore_errors=True)
        shutil.copytree("/etc/apt-cacher-ng", self.conf)
        # the stock backend (ftp.debian.org) does not resolve on every network
        (self.conf / "backends_debian").write_text("http://deb.debian.org/debian/\n")
        if self.upstream_proxy:
            with open(self.conf / "acng.conf", "a") as f:
                f.write(f"\nProxy: {self.upstream_proxy}\n")
        for d in (self.cache, self.logs):
            d.mkdir(parents=True, exist_ok=True)

    def clear_cache(self) -> None:
        """Empty apt-cacher-ng's cache (a cold start)."""
        shutil.rmtree(self.cache, ignore_errors=True)
        self.cache.mkdir(parents=True)

    def start(self) -> None:
        """Start the daemon on 127.0.0.1 and wait for its port."""
        self.configure()
        log = open(self.work / "acng.stdout", "ab")
        self.proc = subprocess.Popen(
            [ACNG, "-c", str(self.conf), "ForeGround=1", "BindAddress=127.0.0.1",
             f"Port={self.port}", f"CacheDir={self.cache}", f"LogDir={self.logs}",
             f"SocketPath={self.work / 'acng.sock'}", f"PidFile={self.work / 'acng.pid'}"],
            stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"apt-cacher-ng exited {self.proc.returncode}; see {self.work}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("apt-cacher-ng did not listen within 20 s")

    def stop(self) -> None:
        """Stop the daemon."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
