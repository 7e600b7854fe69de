#!/usr/bin/env python3
"""apt on the fleet (issue 14): bytes from the origin and wall time of `apt-get update` on a
rebuilt server (empty lists, repository unchanged) and of the install after it, with the real
apt-get/gpgv against a signed local repository on 127.0.0.1 and nginx WebDAV as the remote.

Scenarios: origin (no pkgcache), pkgcache-local (the server's own cache is warm), pkgcache-fleet
(empty local cache, the remote has everything), archives (the debs already in apt's archives,
no pkgcache). Run as root in the test venv:
    .venv/bin/python -m bench.scenarios.apt_fleet [--packages 300] [--reps 3] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.lib.setup import manual_uploads
from tests.support.fleet import GpgKey, Server, SignedRepo, served_bytes, start_server
from tests.support.remote import Nginx, write_keypair


def run(server: Server, *args: str) -> float:
    """Seconds of one apt-get ARGS on server (must succeed)."""
    t = time.perf_counter()
    server.apt(*args, check=True)
    return time.perf_counter() - t


def main() -> int:
    """Run the scenarios and print their table."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--packages", type=int, default=300)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--json", metavar="OUT")
    args = ap.parse_args()
    manual_uploads()
    base = Path(tempfile.mkdtemp(prefix="aptfleet-bench-", dir="/var/tmp"))
    key = GpgKey("bench")
    ng = Nginx(base / "nginx")
    try:
        repo = SignedRepo(base / "repo")
        repo.key = key
        repo.path.mkdir()
        for i in range(args.packages):
            repo.add(f"p{i:04d}", "1.0", size=20000, seed=i)
        repo.publish()
        origin = start_server(repo.path)
        sk = base / "signing.key"
        public = write_keypair(sk, "bench-1")
        rem = [{"url": ng.url(), "mode": "rw", "signing_key_file": str(sk),
                "trusted_public_keys": [public]}]
        install = [f"p{i:04d}" for i in range(0, args.packages, max(1, args.packages // 20))]

        # Server A fills its cache and the remote.
        a = Server(base / "a", origin.base, key, rem)
        a.apt("update", check=True)
        a.apt("install", "--download-only", *install, check=True)
        a.drain()

        results: dict[str, dict[str, float]] = {}
        for scen in ("origin", "pkgcache-local", "pkgcache-fleet", "archives"):
            upd, ins, sent_u, sent_i = [], [], [], []
            for rep in range(args.reps):
                name = f"{scen}-{rep}"
                if scen == "pkgcache-local":
                    s = Server(base / name, origin.base, key, rem)
                    shutil.rmtree(s.cache_dir, ignore_errors=True)
                    shutil.copytree(a.cache_dir, s.cache_dir, symlinks=True)
                else:
                    s = Server(base / name, origin.base, key, rem if scen.startswith("pkg") else [],
                               method=scen.startswith("pkg"))
                if scen == "archives":
                    for deb in (a.archives).glob("*.deb"):
                        shutil.copy2(deb, s.archives / deb.name)
                origin.reset()
                upd.append(run(s, "update"))
                sent_u.append(served_bytes(repo.path, origin.requests))
                origin.reset()
                ins.append(run(s, "install", "--download-only", *install))
                sent_i.append(served_bytes(repo.path, origin.requests))
                shutil.rmtree(base / name, ignore_errors=True)
            results[scen] = {"update_s": statistics.median(upd),
                             "update_origin_bytes": statistics.median(sent_u),
                             "install_s": statistics.median(ins),
                             "install_origin_bytes": statistics.median(sent_i)}
        index = sum((repo.path / n).stat().st_size for n in ("InRelease", "Packages"))
        debs = sum(p.stat().st_size for p in a.archives.glob("*.deb"))
        out = {"packages_in_repo": args.packages, "installed": len(install),
               "index_bytes": index, "deb_bytes": debs, "reps": args.reps, "results": results}
        print(f"repo: {args.packages} packages, InRelease+Packages {index} B; "
              f"install {len(install)} debs, {debs} B; median of {args.reps}")
        print(f"{'scenario':<16}{'update s':>10}{'origin B':>12}{'install s':>11}{'origin B':>12}")
        for scen, r in results.items():
            print(f"{scen:<16}{r['update_s']:>10.2f}{r['update_origin_bytes']:>12.0f}"
                  f"{r['install_s']:>11.2f}{r['install_origin_bytes']:>12.0f}")
        if args.json:
            Path(args.json).write_text(json.dumps(out, indent=1))
        origin.stop()
    finally:
        ng.stop()
        key.close()
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
