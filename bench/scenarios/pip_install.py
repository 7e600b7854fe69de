#!/usr/bin/env python3
"""Benchmark: pkgcache pip install vs pip and uv, on a realistic set from PyPI (not a test).

One run measures, each into a fresh virtual environment (venv creation is not timed):
  pip-cold        pip install with an empty pip cache
  pip-warm        pip install with the pip cache from the cold runs
  pkgcache-online pkgcache pip install, warm cache, index reachable (unpinned: pip resolves
                  against the index, the cache's files are taken, nothing is downloaded)
  pkgcache-pip    pkgcache pip install, warm cache, pip backend   (in a network namespace
  pkgcache-uv     pkgcache pip install, warm cache, uv backend     with no interfaces when
  uv-offline      uv pip install --offline with a warm uv cache    `unshare -n` works: proof
                                                                  of 0 network requests)
Targets (issue #4): pkgcache-pip <= 0.8 x pip-warm; pkgcache-uv <= 1.5 x uv-offline.
Issue #10: pkgcache-online <= 0.8 x pip-warm; and the per-run cost of verifying every cached
file offered to pip/uv: trust-stamp (stat stamps unchanged) vs re-verify (full SHA-256 of each).

Usage (from the checkout):
    .venv/bin/python -m bench.scenarios.pip_install [--runs 3] [--work DIR] [--json out.json]
Needs network access to PyPI, and uv (pip install uv) for the uv scenarios.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.lib import acng
from bench.lib.setup import REPO, proxied
from bench.lib.stats import stats

# 8 wheel-shipping projects + docopt (sdist only): 23 distributions after dependencies.
REQUIREMENTS = """\
requests
PyYAML
numpy
cryptography
pydantic
rich
Jinja2
click
docopt
"""


def uv_bin() -> str | None:
    """uv from the running environment or PATH."""
    try:
        import uv  # type: ignore[import-not-found]

        return str(uv.find_uv_bin())
    except Exception:  # noqa: BLE001 - optional
        return shutil.which("uv")


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without the machine's pip/uv config (so runs are comparable)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PIP_", "UV_", "PKGCACHE_")) and k != "VIRTUAL_ENV"}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", UV_NO_CONFIG="1",
               PYTHONPATH=str(REPO))
    env.update(extra)
    return env


def netns_prefix() -> list[str]:
    """['unshare', '-n'] if a network namespace without interfaces can be made here."""
    try:
        if subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0:
            return ["unshare", "-n"]
    except OSError:
        pass
    return []


class Bench:
    """Runs the scenarios in one work directory."""

    def __init__(self, work: Path, runs: int, index: str) -> None:
        self.work = work
        self.runs = runs
        self.index = index
        self.req = work / "req.txt"
        self.req.write_text(REQUIREMENTS)
        self.n = 0
        self.netns = netns_prefix()
        self.uv = uv_bin()
        self.results: dict[str, dict] = {}

    def venv(self) -> Path:
        """A fresh venv with pip (what a provisioned server has)."""
        self.n += 1
        path = self.work / f"venv{self.n}"
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True,
                       capture_output=True)
        return path

    def timed(self, cmd: list[str], env: dict[str, str]) -> float:
        """Wall seconds of one command (which must succeed)."""
        t0 = time.perf_counter()
        out = subprocess.run(cmd, env=env, capture_output=True, text=True)
        dt = time.perf_counter() - t0
        if out.returncode != 0:
            raise SystemExit(f"failed ({out.returncode}): {' '.join(cmd)}\n{out.stderr[-3000:]}")
        return dt

    def scenario(self, name: str, make_cmd, env: dict[str, str], *, warmup: bool,
                 offline: bool = False, fresh_cache=None) -> None:
        """Time `runs` runs (after one untimed warm-up run if warmup)."""
        prefix = self.netns if offline else []
        if warmup:
            fill = self.timed(make_cmd(self.venv()), env)
            self.results[f"{name}-first-run"] = {"seconds": fill}
            print(f"{name:14s} first run (fills caches, not in the median): {fill:.2f} s", flush=True)
        times = []
        for _ in range(self.runs):
            if fresh_cache:
                fresh_cache()
            times.append(self.timed(prefix + make_cmd(self.venv()), env))
        self.results[name] = {"median": statistics.median(times), "runs": times,
                              "network": "none (unshare -n)" if prefix else "allowed"}
        print(f"{name:14s} median {statistics.median(times):6.2f} s   runs "
              + " ".join(f"{t:.2f}" for t in times) + f"   network: {self.results[name]['network']}",
              flush=True)

    def count_distributions(self, venv: Path) -> int:
        """How many distributions the set installs (checked against the >= 20 target)."""
        out = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "list", "--format=json",
                              "--exclude", "pip", "--exclude", "setuptools"],
                             capture_output=True, text=True, env=clean_env(), check=True)
        return len(json.loads(out.stdout))

    def run(self) -> None:
        """All scenarios, in order."""
        pip_cache = self.work / "pip-cache"

        def reset_pip_cache() -> None:
            shutil.rmtree(pip_cache, ignore_errors=True)

        pip_env = clean_env(PIP_CACHE_DIR=str(pip_cache))

        def pip_cmd(v: Path) -> list[str]:
            return [str(v / "bin" / "python"), "-m", "pip", "install", "-q", "-i", self.index,
                    "-r", str(self.req)]

        self.scenario("pip-cold", pip_cmd, pip_env, warmup=False, fresh_cache=reset_pip_cache)
        self.scenario("pip-warm", pip_cmd, pip_env, warmup=True)
        v = self.venv()
        self.timed(pip_cmd(v), pip_env)
        self.results["distributions"] = {"count": self.count_distributions(v)}
        print(f"distributions installed: {self.results['distributions']['count']}", flush=True)

        pk_env = clean_env()
        cache_dir = self.work / "pkgcache"

        def pk_cmd(installer: str):
            def make(v: Path) -> list[str]:
                return [sys.executable, "-m", "hooks.cli", "--cache-dir", str(cache_dir), "pip",
                        "install", "--python", str(v / "bin" / "python"), "--installer",
                        installer, "-q", "-i", self.index, "-r", str(self.req)]
            return make

        startup = [self.timed([sys.executable, "-m", "hooks.cli", "--version"], pk_env)
                   for _ in range(max(3, self.runs))]
        self.results["pkgcache-cli-startup"] = {"median": statistics.median(startup)}
        print(f"{'pkgcache --version':14s} median {statistics.median(startup):6.2f} s   "
              "(CLI start-up, part of every pkgcache run)", flush=True)
        self.scenario("pkgcache-online", pk_cmd("pip"), pk_env, warmup=True)
        self.verify_cost(cache_dir, v)
        self.scenario("pkgcache-pip", pk_cmd("pip"), pk_env, warmup=False, offline=True)
        if self.uv:
            self.scenario("pkgcache-uv", pk_cmd("uv"), pk_env, warmup=True, offline=True)
            uv_env = clean_env(UV_CACHE_DIR=str(self.work / "uv-cache"))

            def uv_cmd(offline: bool):
                def make(v: Path) -> list[str]:
                    return [self.uv, "pip", "install", "-q", "--python", str(v / "bin" / "python"),
                            *(["--offline"] if offline else ["--index-url", self.index]),
                            "-r", str(self.req)]
                return make

            self.timed(uv_cmd(False)(self.venv()), uv_env)  # fill uv's cache
            self.scenario("uv-offline", uv_cmd(True), uv_env, warmup=False, offline=True)
        else:
            print("uv not installed: uv scenarios skipped", flush=True)
        self.summary()

    def verify_cost(self, cache_dir: Path, venv: Path) -> None:
        """Per-run cost of checking every offered cached file: stat stamps vs full re-hash."""
        from cache_core import PackageCache
        from hooks.pip.store import WheelStore
        from hooks.pip.target import probe
        from hooks.pip.trust import Request

        cache = PackageCache(str(cache_dir))
        store = WheelStore(cache)
        target = probe(str(venv / "bin" / "python"))
        every = Request(frozenset(), frozenset(e.digest for e in cache.keys()))  # offer all
        out: dict[str, list[float]] = {"trust-stamp": [], "re-verify": []}
        n = 0
        for _ in range(max(5, self.runs)):
            for mode, rehash in (("re-verify", True), ("trust-stamp", False)):
                fresh = WheelStore(cache)  # a new run: stamps read from disk
                t0 = time.perf_counter()
                n = len(fresh.candidates(target, every, rehash=rehash))
                out[mode].append(time.perf_counter() - t0)
        size = sum(e.size for p in ("wheel:", "built:") for e in cache.keys(p))
        del store
        cache.close()
        for mode, times in out.items():
            self.results[f"verify-{mode}"] = {"median": statistics.median(times), "runs": times,
                                              "files": n, "bytes": size}
            print(f"verify {mode:11s} median {statistics.median(times) * 1000:7.1f} ms "
                  f"({n} files, {size / 1e6:.1f} MB)", flush=True)

    def summary(self) -> None:
        """The ratios the issues set targets for."""
        r = self.results
        if "pkgcache-online" in r and "pip-warm" in r:
            ratio = r["pkgcache-online"]["median"] / r["pip-warm"]["median"]
            r["ratio_pkgcache_online_vs_pip_warm"] = ratio
            print(f"pkgcache-online / pip-warm = {ratio:.2f}  (target <= 0.8)")
        if "pkgcache-pip" in r and "pip-warm" in r:
            ratio = r["pkgcache-pip"]["median"] / r["pip-warm"]["median"]
            r["ratio_pkgcache_pip_vs_pip_warm"] = ratio
            print(f"pkgcache-pip / pip-warm   = {ratio:.2f}  (target <= 0.8)")
        if "pkgcache-uv" in r and "uv-offline" in r:
            ratio = r["pkgcache-uv"]["median"] / r["uv-offline"]["median"]
            r["ratio_pkgcache_uv_vs_uv_offline"] = ratio
            print(f"pkgcache-uv / uv-offline  = {ratio:.2f}  (target <= 1.5)")


def main() -> int:
    """Parse options and run the benchmark."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--work", help="work directory (default: a temporary one, removed)")
    ap.add_argument("--index", default="https://pypi.org/simple")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--no-uv", action="store_true", help="skip the uv scenarios")
    args = ap.parse_args()
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="pip-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        bench = Bench(work, args.runs, args.index)
        if args.no_uv:
            bench.uv = None
        print(f"python {sys.version.split()[0]}, runs per scenario: {args.runs}, "
              f"network namespace for warm runs: {'yes' if bench.netns else 'no'}", flush=True)
        bench.run()
        if args.json:
            Path(args.json).write_text(json.dumps(bench.results, indent=2))
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    return 0


def collect(runs: int, work: Path) -> dict:
    """This bench's scenarios plus a plain wheelhouse, bytes and requests per scenario."""
    proxy = acng.CountingProxy()

    class Run(Bench):
        def __init__(self) -> None:
            super().__init__(work, runs, "https://pypi.org/simple")
            self.bytes_log: list[int] = []

        def timed(self, cmd: list[str], env: dict[str, str]) -> float:
            proxy.reset()
            t = super().timed(cmd, env)
            time.sleep(0.1)
            self.bytes_log.append(proxy.total)
            return t

        def scenario(self, name, make_cmd, env, **kw) -> None:  # type: ignore[no-untyped-def]
            self.bytes_log = []
            super().scenario(name, make_cmd, env, **kw)
            self.results[name]["bytes"] = self.bytes_log[-self.runs:]

        def requests(self, cache: Path) -> int:
            """HTTP requests one pip install makes with this pip cache (an extra, untimed run)."""
            v = self.venv()
            log = self.work / f"req{self.n}.log"
            env = clean_env(PIP_CACHE_DIR=str(cache))
            self.timed([str(v / "bin/python"), "-m", "pip", "install", "-v", "--log", str(log),
                        "-i", self.index, "-r", str(self.req)], env)
            return len(re.findall(r'"(GET|HEAD) \S+ HTTP/', log.read_text()))

        def extra(self) -> None:
            pip_cache = self.work / "pip-cache"
            self.results["pip-warm"]["requests"] = self.requests(pip_cache)
            cold_cache = self.work / "pip-cache-cold"
            shutil.rmtree(cold_cache, ignore_errors=True)
            self.results["pip-cold"]["requests"] = self.requests(cold_cache)
            wh = self.work / "wheelhouse"
            env = clean_env(PIP_CACHE_DIR=str(pip_cache))
            self.timed([sys.executable, "-m", "pip", "wheel", "-q", "-w", str(wh), "-i", self.index,
                        "-r", str(self.req)], env)

            def wh_cmd(v: Path) -> list[str]:
                return [str(v / "bin/python"), "-m", "pip", "install", "-q", "--no-index",
                        "--find-links", str(wh), "-r", str(self.req)]
            self.scenario("wheelhouse", wh_cmd, env, warmup=True, offline=True)
            offline = bool(self.netns)
            for k in ("pkgcache-pip", "pkgcache-uv", "uv-offline", "wheelhouse"):
                if k in self.results:
                    self.results[k]["requests"] = 0 if offline else None

    try:
        with proxied(proxy.url):
            bench = Run()
            print(f"pip: runs per scenario {runs}, network namespace for offline runs: "
                  f"{'yes' if bench.netns else 'no'}", flush=True)
            bench.run()
            bench.extra()
    finally:
        proxy.close()
    r = bench.results
    out: dict = {"distributions": r.get("distributions", {}).get("count"),
                 "requirements": REQUIREMENTS.split(), "runs": runs,
                 "index": "https://pypi.org/simple",
                 "requests_method": "pip-cold/pip-warm: urllib3 GET/HEAD lines in pip's --log of "
                                    "one extra untimed run; offline scenarios run in `unshare -n` "
                                    "(no network at all), so 0",
                 "bytes_method": "bytes relayed by a counting proxy on 127.0.0.1 (HTTPS_PROXY; "
                                 "TLS records included), per timed run",
                 "scenarios": {}}
    for k, v in r.items():
        if isinstance(v, dict) and "runs" in v:
            out["scenarios"][k] = {"wall": stats(v["runs"]), "bytes": stats(v.get("bytes", [])),
                                   "requests": v.get("requests"), "network": v.get("network")}
    return out

if __name__ == "__main__":
    sys.exit(main())
