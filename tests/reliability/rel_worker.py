"""One of many processes harvesting .debs, seeding archives dirs, putting wheels and reading
wheel views on overlapping keys through the drivers' own functions (run as a subprocess).

Some .deb names exist in two versions with different bytes (a republished package): a seed that
asks for one digest must get exactly that content or nothing. Prints a JSON summary.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import sys
from pathlib import Path

from cache_core import PackageCache
from hooks.apt.harvest import store as harvest_store
from hooks.apt.seed import Want, place
from hooks.pip.store import WheelStore


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main(cache_dir: str, seed: int, ops: int, src: str, scratch: str, cap: int) -> dict:
    rng = random.Random(seed)
    debs = sorted(Path(src, "debs").glob("*/*.deb"))       # debs/<variant>/<name>.deb
    wheels = sorted(Path(src, "wheels").glob("*.whl"))
    good = {p.name: (sha(p), p.stat().st_size) for p in debs if p.parent.name == "a"}
    digests = {sha(p) for p in debs} | {sha(p) for p in wheels}
    work = Path(scratch) / str(os.getpid())
    archives = work / "archives"
    archives.mkdir(parents=True)
    cache = PackageCache(cache_dir, max_size_bytes=cap)
    ws = WheelStore(cache)
    out = {"harvest": 0, "seed_placed": 0, "seed_miss": 0, "wheel_put": 0, "view_read": 0,
           "gc": 0, "bad": 0, "failed": 0, "failed_harvest": 0, "wheel_evicted": 0}
    for i in range(ops):
        op = rng.random()
        if op < 0.3:
            deb = rng.choice(debs)
            mine = work / f"{i}-{deb.name}"  # apt's own downloaded file, never rewritten
            shutil.copyfile(deb, mine)
            result, _ = harvest_store(cache, str(mine), deb.name, link=True)
            out["harvest"] += 1
            out["failed_harvest"] += result not in ("stored", "already")
            mine.unlink()  # apt-get clean
        elif op < 0.55:
            fname = rng.choice(sorted(good))
            digest, size = good[fname]
            result, _ = place(cache, archives, Want(fname, digest, size), verify_present=True)
            if result == "placed":
                out["seed_placed"] += 1
                out["bad"] += sha(archives / fname) != digest
                (archives / fname).unlink()
            else:
                out["seed_miss"] += 1
        elif op < 0.8:
            whl = rng.choice(wheels)
            mine = work / f"{i}-dl"
            mine.mkdir()
            path = Path(shutil.copy(whl, mine))
            meta = {"filename": whl.name, "name": whl.name.split("-")[0], "version": "1.0",
                    "requires_python": None, "yanked": False}
            out["wheel_put"] += 1
            if ws.add(f"wheel:{whl.name}", str(path), sha(whl), meta) is None:
                # stored, then evicted by another process's gc before its view was made: fine
                # under a cap (the driver falls back to plain pip); never without one
                out["wheel_evicted" if cap else "failed"] += 1
            shutil.rmtree(mine)
        elif op < 0.97:
            for entry in cache.keys("wheel:"):
                try:
                    view = ws.view(entry, entry.key[len("wheel:"):])
                    data = view.read_bytes() if view is not None else None
                except FileNotFoundError:
                    continue  # evicted meanwhile: a miss
                if data is not None:
                    out["view_read"] += 1
                    got = hashlib.sha256(data).hexdigest()
                    out["bad"] += got != entry.digest or got not in digests
        else:
            cache.gc()
            out["gc"] += 1
    cache.close()
    shutil.rmtree(work)
    return out


if __name__ == "__main__":
    a = sys.argv[1:]
    print(json.dumps(main(a[0], int(a[1]), int(a[2]), a[3], a[4], int(a[5]))))
