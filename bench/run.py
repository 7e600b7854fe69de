#!/usr/bin/env python3
"""pkgcache benchmarks, one command: core, apt (with apt-cacher-ng) and pip/uv in one run.

    sudo .venv/bin/python bench/run.py [--quick] [--only core,apt,pip] [--out docs/results]
    (or, from the checkout's root: sudo .venv/bin/python -m bench.run ...)

Prints one table, writes OUT/latest.json and OUT/latest.png (default OUT: bench/results).
Every figure is the median of repeated runs with min/max; every ratio is between medians of the
same run. Needs root (throwaway apt roots), mmdebstrap, the Debian archive and PyPI. Installs
Debian's apt-cacher-ng if missing, and matplotlib (bench-only) into /var/tmp/pkgcache-bench-plot
from PyPI if the running Python lacks it.

apt scenarios (same package set, fresh root each, interleaved per round; only `apt-get install`
is timed; bytes = every byte received from upstream during the install, counted by a relay on
127.0.0.1 that apt, the hooks and apt-cacher-ng all go through):
  A cold, no hooks | H cold, pkgcache hooks, empty cache | S warm, seeded by pkgcache (cache filled
  by one untimed install before the rounds) | B the same debs copied into archives beforehand (the
  limit) | N warm through apt-cacher-ng (primed by one untimed install before the rounds).
Every round runs the scenarios in a rotated order (a Latin square); every table gives the
per-round ratios beside the ratio of medians. A failed run or section is recorded and listed
under the table; the table and the JSON are written even then (exit 1).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # `python bench/run.py`: import the checkout as `-m bench.run` does
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from bench.lib.report import machine, markdown, plot, print_table, targets
from bench.lib.setup import REPO

BENCH = REPO / "bench"


def main() -> int:
    """Run the chosen scenarios, print the table, write JSON and the chart."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1 round/run each, smaller core file")
    ap.add_argument("--only", default="core,apt,pip", help="comma list of core, apt, pip")
    ap.add_argument("--rounds", type=int, default=None, help="apt rounds (default 3, quick 1)")
    ap.add_argument("--runs", type=int, default=None, help="pip timed runs (default 3, quick 1)")
    ap.add_argument("--core-reps", type=int, default=None, help="core repetitions (default 3, quick 1)")
    ap.add_argument("--core-size-mb", type=int, default=None, help="core file (default 256, quick 64)")
    ap.add_argument("--apt-packages", help="apt package set, space-separated (default: the bench's)")
    ap.add_argument("--pip-requirements", metavar="FILE", help="pip set (default: the bench's)")
    ap.add_argument("--no-uv", action="store_true", help="skip the uv scenarios")
    ap.add_argument("--apt-base", metavar="TAR", help="a bookworm root tarball to use instead of "
                    "WORKDIR/apt/base.tar (made by mmdebstrap when missing)")
    ap.add_argument("--no-chart", action="store_true", help="skip the chart (no matplotlib)")
    ap.add_argument("--out", default=str(BENCH / "results"), help="directory for latest.json/.png")
    ap.add_argument("--workdir", default="/var/tmp/pkgcache-bench", help="kept between runs "
                    "(mmdebstrap base tarball); work dirs below it are recreated")
    ap.add_argument("--markdown", metavar="JSON", help="only print a results JSON as Markdown")
    args = ap.parse_args()
    if args.markdown:
        print(markdown(json.loads(Path(args.markdown).read_text())), end="")
        return 0
    only = set(args.only.split(","))
    if "apt" in only and os.geteuid() != 0:
        print("apt scenarios need root (mounts, chrooted maintainer scripts)", file=sys.stderr)
        return 2
    rounds = args.rounds or (1 if args.quick else 3)
    runs = args.runs or (1 if args.quick else 3)
    reps = args.core_reps or (1 if args.quick else 3)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    res: dict = {"command": " ".join([sys.executable, *sys.argv]),
                 "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                 "quick": args.quick, "machine": machine(),
                 "git": subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                                       capture_output=True, text=True).stdout.strip()}
    from bench.scenarios import apt_install, core, pip_install

    def section(name: str, run) -> None:  # type: ignore[no-untyped-def]
        """Run one section; a failure is recorded in its place and the run goes on."""
        try:
            res[name] = run()
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - the table and JSON still come
            print(f"{name} FAILED: {str(exc).strip()[-500:]}", flush=True)
            res[name] = {"error": str(exc).strip()[-2000:] or type(exc).__name__}

    try:
        if "core" in only:
            section("core", lambda: core.collect(reps, args.core_size_mb or (64 if args.quick else 256)))
        if "apt" in only:
            section("apt", lambda: apt_install.collect(
                rounds, work / "apt", args.apt_packages.split() if args.apt_packages else None,
                Path(args.apt_base) if args.apt_base else None))
        if "pip" in only:
            pw = work / "pip"
            shutil.rmtree(pw, ignore_errors=True)
            pw.mkdir(parents=True)
            req = (Path(args.pip_requirements).read_text() if args.pip_requirements
                   else pip_install.REQUIREMENTS)
            section("pip", lambda: pip_install.collect(runs, pw, req, uv=not args.no_uv))
            shutil.rmtree(pw, ignore_errors=True)
    finally:  # even when interrupted: the table and the JSON of what ran
        res["seconds"] = time.monotonic() - t0
        res["targets"] = targets(res)
        print()
        res["table"] = print_table(res)
        jp = out / "latest.json"
        jp.write_text(json.dumps(res, indent=1) + "\n")
        print(f"\nwrote {jp}", flush=True)
    chart = "skipped" if args.no_chart else plot(jp, out / "latest.png")
    print(f"chart: {chart}; total {res['seconds']:.0f} s", flush=True)
    failed = any(not v for t in res["targets"] if (v := t["met"]) is not None) or any(
        res[k].get("error") or res[k].get("errors") for k in ("core", "apt", "pip") if k in res)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
