#!/usr/bin/env python3
"""Benchmark: pkgcache pip install beside its real peers, on a realistic set from PyPI (not a test).

Each timed run installs the set into a fresh virtual environment (venv creation is not timed).
Scenarios, in a rotated order every round (a Latin square):
  pip-cold        pip install from PyPI, empty pip cache
  pip-warm        pip install, its HTTP cache filled with the same files (a loopback PEP 503 index
                  with pypi.org's cache headers, bench/lib/pyindex.py: the mirror reachable here
                  sends none, so pip could not be warm against it); requests = what it still asks
  wheelhouse      pip install --no-index --find-links of the same files (the limit)
  pkgcache-online pkgcache pip install, warm cache, index reachable
  pkgcache-pip    pkgcache pip install, warm cache, pip backend   (in a network namespace
  pkgcache-uv     pkgcache pip install, warm cache, uv backend     with no interfaces when
  uv-offline      uv pip install --offline, warm uv cache          `unshare -n` works)
  uv-wheelhouse   uv pip install --no-index --find-links of the wheelhouse, warm uv cache (the
                  closest design to pkgcache-uv without a pkgcache process in between)
pkgcache runs as the Debian package runs it (/usr/bin/python3 -I, byte-compiled code, uv found on
PATH). Every cache is filled by untimed runs before the rounds (pkgcache's also by one run with
the network gone, which leaves the warm path's memo). Targets: pkgcache-pip <= 1.05x wheelhouse;
pkgcache-uv <= 1.20x uv-offline (bench/lib/report.py), with the per-round ratios; uv-wheelhouse /
uv-offline is reported beside them. Also the per-run
cost of checking every cached file offered to pip/uv: trust-stamp vs full re-hash.

Usage (from the checkout):
    .venv/bin/python -m bench.scenarios.pip_install [--runs 3] [--requirements FILE] [--json out.json]
Needs PyPI, and uv (pip install uv) for the uv scenarios.
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
from typing import Any

from bench.lib import acng
from bench.lib.setup import REPO, proxied
from bench.lib.stats import stats
from bench.scenarios.startup import SYSTEM_PYTHON, WRAPPER

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

    def count_distributions(self, venv: Path) -> int:
        """How many distributions the set installs (checked against the >= 20 target)."""
        out = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "list", "--format=json",
                              "--exclude", "pip", "--exclude", "setuptools"],
                             capture_output=True, text=True, env=clean_env(), check=True)
        return len(json.loads(out.stdout))

    def verify_cost(self, cache_dir: Path, venv: Path) -> dict[str, dict]:
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
            print(f"verify {mode:11s} median {statistics.median(times) * 1000:7.1f} ms "
                  f"({n} files, {size / 1e6:.1f} MB)", flush=True)
        return {mode: {"seconds": stats(times), "files": n, "bytes": size}
                for mode, times in out.items()}


SCENARIOS = ("pip-cold", "pip-warm", "wheelhouse", "pkgcache-online", "pkgcache-pip", "pkgcache-uv",
             "uv-offline", "uv-wheelhouse")
OFFLINE = ("wheelhouse", "pkgcache-pip", "pkgcache-uv", "uv-offline", "uv-wheelhouse")


def main() -> int:
    """Parse options, run the rounds, print the table (bench/run.py's pip part on its own)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--work", help="work directory (default: a temporary one, removed)")
    ap.add_argument("--index", default="https://pypi.org/simple")
    ap.add_argument("--requirements", help="a requirements file (default: the bench's set)")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--no-uv", action="store_true", help="skip the uv scenarios")
    args = ap.parse_args()
    from bench.lib.report import print_table, targets

    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="pip-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    req = Path(args.requirements).read_text() if args.requirements else REQUIREMENTS
    try:
        res: dict = {"pip": collect(args.runs, work, req, args.index, uv=not args.no_uv)}
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    res["targets"] = targets(res)
    print()
    print_table(res)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1) + "\n")
    return 0 if all(t["met"] is not False for t in res["targets"]) and not res["pip"]["errors"] else 1


class LocalIndex:
    """The wheelhouse as a PEP 503 index on 127.0.0.1 with pypi.org's cache headers (the tests'
    IndexApp): the PyPI mirror reachable here sends none, so pip's HTTP cache cannot fill from
    it and a "warm" pip would download every file again (shared notes, pip.md §1.1)."""

    def __init__(self, wheelhouse: Path) -> None:
        from tests.support.http import HttpServer, IndexApp

        self.log: list[str] = []
        app = IndexApp(wheelhouse, {}, self.log)
        app.pypi_headers = True
        self.server = HttpServer(app).start()
        self.url = f"http://127.0.0.1:{self.server.port}/simple/"

    def reset(self) -> tuple[int, int]:
        """(requests, body bytes sent) since the last reset; counting starts again."""
        with self.server.lock:
            hits, self.server.hits[:] = list(self.server.hits), []
        n = len(self.log)
        self.log.clear()
        return n, sum(h.sent for h in hits)

    def close(self) -> None:
        """Stop serving."""
        self.server.stop()


class Rounds(Bench):
    """The scenarios of one collect(): the fills, then rounds in rotated order."""

    def __init__(self, work: Path, runs: int, index: str, requirements: str, uv: bool) -> None:
        super().__init__(work, runs, index)
        self.req.write_text(requirements)
        if not uv:
            self.uv = None
        self.names = [s for s in SCENARIOS if self.uv or "uv" not in s]
        self.rec: dict[str, dict[str, list]] = {k: {"wall": [], "bytes": [], "requests": []}
                                                for k in self.names}
        self.errors: list[str] = []
        self.proxy = acng.CountingProxy()
        self.local: Any = None  # the loopback index (pip-warm's)
        self.pip_cache, self.warm_cache = work / "pip-cache-cold", work / "pip-cache-warm"
        self.cache_dir, self.wh = work / "pkgcache", work / "wheelhouse"
        # its own trust record (the machine's /var/lib/pkgcache is shared with other caches)
        self.pk_env = clean_env(PKGCACHE_STATE_DIR=str(work / "state"))
        if self.uv:  # the system python does not see the bench's venv: uv on PATH, as on a server
            self.pk_env["PATH"] = f"{Path(self.uv).parent}{os.pathsep}{self.pk_env.get('PATH', '')}"
        self.pk_env.pop("PYTHONDONTWRITEBYTECODE", None)
        self.wrapper = work / "pkgcache-cli.py"  # (work / "pkgcache" is the cache)
        self.wrapper.write_text(WRAPPER.format(repo=str(REPO)))
        subprocess.run([SYSTEM_PYTHON, "-m", "compileall", "-q", str(REPO / "hooks"),
                        str(REPO / "cache_core")], check=False, capture_output=True)  # as installed

    def pip_cmd(self, v: Path, *extra: str) -> list[str]:
        """pip install of the set into venv v."""
        return [str(v / "bin" / "python"), "-m", "pip", "install", "-q", *extra, "-r", str(self.req)]

    def pk_cmd(self, v: Path, installer: str) -> list[str]:
        """pkgcache pip install of the set into venv v (as the Debian package runs it)."""
        return [SYSTEM_PYTHON, "-I", str(self.wrapper), "--cache-dir", str(self.cache_dir), "pip",
                "install", "--python", str(v / "bin" / "python"), "--installer", installer, "-q",
                "-i", self.index, "-r", str(self.req)]

    def uv_cmd(self, v: Path, offline: bool, wheelhouse: bool = False) -> list[str]:
        """uv pip install of the set into venv v (from the index, --offline, or the wheelhouse)."""
        source = (["--no-index", "--find-links", str(self.wh)] if wheelhouse else
                  ["--offline"] if offline else ["--index-url", self.index])
        return [str(self.uv), "pip", "install", "-q", "--python", str(v / "bin" / "python"),
                *source, "-r", str(self.req)]

    def command(self, name: str, v: Path) -> tuple[list[str], dict[str, str]]:
        """Scenario name's command line and environment for venv v."""
        if name == "pip-cold":
            shutil.rmtree(self.pip_cache, ignore_errors=True)
            return self.pip_cmd(v, "-i", self.index), clean_env(PIP_CACHE_DIR=str(self.pip_cache))
        if name == "pip-warm":
            return (self.pip_cmd(v, "-i", self.local.url, "--trusted-host", "127.0.0.1"),
                    clean_env(PIP_CACHE_DIR=str(self.warm_cache), NO_PROXY="127.0.0.1",
                              no_proxy="127.0.0.1"))
        if name == "wheelhouse":
            return self.pip_cmd(v, "--no-index", "--find-links", str(self.wh)), clean_env()
        if name.startswith("pkgcache-"):
            return self.pk_cmd(v, "uv" if name == "pkgcache-uv" else "pip"), self.pk_env
        if name == "uv-wheelhouse":
            return (self.uv_cmd(v, offline=True, wheelhouse=True),
                    clean_env(UV_CACHE_DIR=str(self.work / "uv-cache-wh")))
        return self.uv_cmd(v, offline=True), clean_env(UV_CACHE_DIR=str(self.work / "uv-cache"))

    def fail(self, what: str, exc: BaseException) -> None:
        """Record a failure (the table lists it) and say so."""
        self.errors.append(f"{what}: {str(exc).strip()[-600:]}")
        print(f"  pip {what} FAILED: {str(exc).strip()[-300:]}", flush=True)

    def run_one(self, name: str) -> None:
        """One timed run of scenario name in a fresh venv (None in its round if it fails)."""
        cmd, env = self.command(name, self.venv())
        if name in OFFLINE:
            cmd = self.netns + cmd
        self.proxy.reset()
        if self.local:
            self.local.reset()
        try:
            wall = self.timed(cmd, env)
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - recorded, the rounds go on
            self.fail(name, exc)
            for v in self.rec[name].values():
                v.append(None)
            return
        time.sleep(0.1)  # let the relay threads account the last bytes
        got = self.proxy.total
        asked = (self.local.reset()[0] if name == "pip-warm" else
                 0 if name in OFFLINE and self.netns else None)
        self.rec[name]["wall"].append(wall)
        self.rec[name]["bytes"].append(got)
        self.rec[name]["requests"].append(asked)
        print(f"  pip {name:16s} {wall:7.3f} s  upstream {got / 1e6:6.2f} MB  requests "
              f"{'-' if asked is None else asked}", flush=True)

    def fill(self, out: dict) -> None:
        """Untimed: every peer's cache filled with the same files; the set's facts into out."""

        def step(what: str, cmd: list[str], env: dict[str, str]) -> None:
            print(f"  pip fill: {what}", flush=True)
            self.timed(cmd, env)

        step("wheelhouse (pip wheel)", [sys.executable, "-m", "pip", "wheel", "-q", "-w",
                                        str(self.wh), "-i", self.index, "-r", str(self.req)],
             clean_env(PIP_CACHE_DIR=str(self.work / "pip-cache-wheel")))
        self.local = LocalIndex(self.wh)
        step("pip's HTTP cache (from the loopback index)", *self.command("pip-warm", self.venv()))
        step("pkgcache's cache (online)", self.pk_cmd(self.venv(), "pip"), self.pk_env)
        # warm as a re-provisioned server is: the first run with the network gone leaves the
        # memo the next ones replay (hooks/pip/fast.py)
        step("pkgcache's memo (pip, network gone)", self.netns + self.pk_cmd(self.venv(), "pip"),
             self.pk_env)
        if self.uv:
            step("pkgcache's uv cache", self.netns + self.pk_cmd(self.venv(), "uv"), self.pk_env)
            step("uv's cache", self.uv_cmd(self.venv(), offline=False),
                 clean_env(UV_CACHE_DIR=str(self.work / "uv-cache")))
            step("uv's cache for the wheelhouse", *self.command("uv-wheelhouse", self.venv()))
        v = self.venv()
        self.timed(self.pip_cmd(v, "--no-index", "--find-links", str(self.wh)), clean_env())
        out["distributions"] = self.count_distributions(v)
        out["pip-cold-requests"] = requests(self, self.index)
        # in this process, with the CLI runs' own trust record (else no file is vouched for)
        saved = os.environ.get("PKGCACHE_STATE_DIR")
        os.environ["PKGCACHE_STATE_DIR"] = self.pk_env["PKGCACHE_STATE_DIR"]
        try:
            out["verify"] = self.verify_cost(self.cache_dir, v)
        finally:
            if saved is None:
                os.environ.pop("PKGCACHE_STATE_DIR")
            else:
                os.environ["PKGCACHE_STATE_DIR"] = saved


def collect(runs: int, work: Path, requirements: str = REQUIREMENTS,
            index: str = "https://pypi.org/simple", uv: bool = True) -> dict:
    """The scenarios, `runs` rounds in rotated order (a Latin square); bytes from upstream (a
    counting relay) and requests per run. A failed run is recorded (None in its round, the error
    in "errors"); a failed fill skips the rounds."""
    from bench.lib.stats import latin

    b = Rounds(work, runs, index, requirements, uv)
    out: dict = {"requirements": requirements.split(), "runs": runs, "index": index,
                 "netns": bool(b.netns), "errors": b.errors, "orders": [],
                 "requests_method": "pip-cold: GET/HEAD lines in pip's --log of one extra untimed "
                                    "run; pip-warm: requests the loopback index answered in each "
                                    "timed run; offline scenarios run in `unshare -n`: 0",
                 "bytes_method": "bytes relayed by a counting proxy on 127.0.0.1 (HTTPS_PROXY; TLS "
                                 "records included), per timed run"}
    try:
        with proxied(b.proxy.url):
            print(f"pip: {runs} round(s), network namespace for offline runs: "
                  f"{'yes' if b.netns else 'no'}", flush=True)
            try:
                b.fill(out)
            except (Exception, SystemExit) as exc:  # noqa: BLE001 - no rounds without the fills
                b.fail("fill", exc)
                runs = 0
            for r in range(runs):
                order = latin(b.names, r)
                out["orders"].append(" ".join(order))
                print(f"pip round {r + 1}/{runs}: {' '.join(order)}", flush=True)
                for name in order:
                    b.run_one(name)
    finally:
        b.proxy.close()
        if b.local:
            b.local.close()
    out["per_round"] = {k: d["wall"] for k, d in b.rec.items()}
    out["scenarios"] = {k: {"wall": stats(d["wall"]), "bytes": stats(d["bytes"]),
                            "requests": _requests(k, d["requests"], out),
                            "network": "none (unshare -n)" if k in OFFLINE and b.netns
                            else "allowed"}
                        for k, d in b.rec.items()}
    return out


def _requests(name: str, per_run: list, out: dict) -> int | None:
    """The requests figure of a scenario (the median of its runs; pip-cold: the extra run's)."""
    if name == "pip-cold":
        return out.get("pip-cold-requests")
    vals = [v for v in per_run if v is not None]
    return int(statistics.median(vals)) if vals else None


def requests(bench: Bench, index: str) -> int:
    """HTTP requests one cold pip install makes (an extra, untimed run with pip's --log)."""
    v = bench.venv()
    log = bench.work / f"req{bench.n}.log"
    cache = bench.work / f"pip-cache-req{bench.n}"
    bench.timed([str(v / "bin/python"), "-m", "pip", "install", "-v", "--log", str(log),
                 "-i", index, "-r", str(bench.req)], clean_env(PIP_CACHE_DIR=str(cache)))
    return len(re.findall(r'"(GET|HEAD) \S+ HTTP/', log.read_text()))


if __name__ == "__main__":
    sys.exit(main())
