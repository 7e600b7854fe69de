#!/usr/bin/env python3
"""`apt-get update`, warm, origin up (issue 24: with the method / without pkgcache <= 1.10x).

Not a test. Three servers of the apt fleet world (tests/support/fleet.py: the real apt-get and
gpgv, a signed repository on 127.0.0.1, nginx WebDAV as the remote), each updated twice before
the rounds (lists in place, cache filled): without pkgcache, with pkgcache's download method,
with the method and the hooks (as the .deb installs them: the system's python3 runs the
hooks). Each round updates every server once, in a rotated order; wall time and CPU time
(apt-get and all its children) per update, the ratio of medians and the per-round ratios
against the server without pkgcache.

    sudo .venv/bin/python -m bench.scenarios.apt_update [--rounds 9] [--packages 300]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tests.support.fleet import GpgKey, Server, SignedRepo, start_server
from tests.support.remote import Nginx, write_keypair

SCENARIOS = ("none", "method", "method+hooks")


def timed(server: Server) -> tuple[float, float]:
    """(wall, CPU) seconds of one `apt-get update` on server."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    server.apt("update", check=True)
    wall = time.perf_counter() - t
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def main() -> int:
    """Run the rounds and print the table."""
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--packages", type=int, default=300)
    args = ap.parse_args()
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)  # as on a server: the hooks' .pyc are kept
    base = Path(tempfile.mkdtemp(prefix="pkgcache-apt-update-", dir="/var/tmp"))
    key = GpgKey("bench-update")
    ng = Nginx(base / "nginx")
    try:
        repo = SignedRepo(base / "repo")
        repo.key = key
        repo.path.mkdir()
        for i in range(args.packages):
            repo.add(f"p{i:04d}", "1.0", size=2000, seed=i)
        repo.publish()
        origin = start_server(repo.path)
        sk = base / "signing.key"
        rem = [{"url": ng.url(), "mode": "rw", "signing_key_file": str(sk),
                "trusted_public_keys": [write_keypair(sk, "bench-update-1")]}]
        servers = {}
        for scen in SCENARIOS:
            s = Server(base / scen, origin.base, key, rem if scen != "none" else [],
                       method=scen != "none")
            if scen == "method+hooks":
                s.install_snippet()
                s.write_installed_cli(base)  # as the .deb installs it (not the venv)
            if scen != "none":  # the private state dir, as on a server where a hook has run
                (s.root / "var/lib/pkgcache").mkdir(mode=0o700, exist_ok=True)
            for _ in range(2):  # warm: lists in place, the cache filled
                s.apt("update", check=True)
            servers[scen] = s
        res: dict[str, dict[str, list[float]]] = {k: {"wall": [], "cpu": []} for k in SCENARIOS}
        for rnd in range(args.rounds):
            k = rnd % len(SCENARIOS)
            for scen in SCENARIOS[k:] + SCENARIOS[:k]:
                wall, cpu = timed(servers[scen])
                res[scen]["wall"].append(wall)
                res[scen]["cpu"].append(cpu)
        none = res["none"]
        print(f"apt-get update, warm, origin up: {args.packages} packages, {args.rounds} rounds; "
              f"load {os.getloadavg()[0]:.1f}")
        for scen in SCENARIOS:
            d = res[scen]
            per = " ".join(f"{a / b:.2f}" for a, b in zip(d["wall"], none["wall"], strict=True))
            print(f"{scen:<13} wall {statistics.median(d['wall']):.3f} s "
                  f"({statistics.median(d['wall']) / statistics.median(none['wall']):.2f}x; "
                  f"per round {per})  CPU {statistics.median(d['cpu']):.3f} s "
                  f"({statistics.median(d['cpu']) / statistics.median(none['cpu']):.2f}x)")
        origin.stop()
    finally:
        ng.stop()
        key.close()
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
