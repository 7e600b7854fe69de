#!/usr/bin/env python3
"""Benchmark: pkgcache's own start-up, the part of every apt hook and every pip/uv install.

One run measures (median of --runs, commands interleaved so load changes hit all alike):
  python3 -c pass              the interpreter alone (the floor)
  pkgcache --version           as the Debian package runs it (/usr/bin/python3 -I, code in a
                               private directory), and as a venv's console script beside that
                               venv's own `python -c pass`
  pkgcache --help              the top-level help (no driver imported)
  pkgcache apt hook sweep      what apt runs (cache disabled in its config: the hook's own cost)
and, with --uv (needs PyPI once to fill the caches, then runs under `unshare -n` if possible):
  pkgcache pip install --installer uv   warm cache, the pip bench set (bench/scenarios/pip_install.py)
  uv pip install --offline              warm uv cache, the same set
Targets: pkgcache --version and --help <= 2x python3 -c pass (issues 12, 24; the ratio of medians
and the per-round ratios); pkgcache uv <= 1.2x uv --offline (per-round ratios too). Rounds run in a
rotated order.
Each line also lists the heavy modules the command imported (sqlite3, yaml, drivers).

Usage (from the checkout):
    .venv/bin/python -m bench.scenarios.startup [--runs 15] [--uv] [--uv-runs 5]
                                                [--uv-before DIR] [--repo DIR] [--json F]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.lib.setup import REPO
from bench.lib.stats import fmt_runs, latin, paired

SYSTEM_PYTHON = "/usr/bin/python3"
HEAVY = ("sqlite3", "yaml", "argparse", "ssl", "urllib.request", "packaging", "hooks.apt",
         "hooks.pip", "hooks.fetch", "hooks.git", "hooks.remote", "cache_core.api")
WRAPPER = """import sys
sys.path.insert(0, {repo!r})
from hooks.cli import main
sys.exit(main())
"""
PROBE = """import sys
sys.argv = ["pkgcache", *{args!r}]
sys.path.insert(0, {repo!r})
from hooks.cli import main
try:
    main()
except SystemExit:
    pass
heavy = [m for m in {heavy!r} if m in sys.modules]
sys.stderr.write("\\nHEAVY " + " ".join(heavy) + "\\n")
"""


def timed(cmd: list[str], env: dict[str, str]) -> float:
    """Wall seconds of one command (its output discarded; it must succeed)."""
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]!r}")
    return dt


def heavy_imports(python: str, args: list[str], env: dict[str, str], repo: Path) -> list[str]:
    """The HEAVY modules loaded by ``pkgcache ARGS`` (run in-process by a probe script)."""
    proc = subprocess.run([python, "-c", PROBE.format(args=args, repo=str(repo), heavy=HEAVY)],
                          env=env, capture_output=True, text=True)
    for line in proc.stderr.splitlines():
        if line.startswith("HEAVY"):
            return line.split()[1:]
    return ["?"]


def interleaved(cmds: dict[str, list[str]], env: dict[str, str], runs: int) -> dict[str, list[float]]:
    """Each command once per round, in a rotated order (a Latin square), `runs` rounds (one
    untimed warm-up round first)."""
    for cmd in cmds.values():
        timed(cmd, env)
    out: dict[str, list[float]] = {name: [] for name in cmds}
    for r in range(runs):
        for name in latin(list(cmds), r):
            out[name].append(timed(cmds[name], env))
    return out


def startup(runs: int, work: Path, repo: Path) -> dict[str, dict]:
    """The start-up scenarios, for the checkout at repo."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PKGCACHE_", "PYTHON"))}
    cache = work / "cache"
    conf = work / "off.yaml"
    conf.write_text("performance:\n  cache:\n    enabled: false\n")
    wrapper = work / "pkgcache"
    wrapper.write_text(WRAPPER.format(repo=str(repo)))
    deb = [SYSTEM_PYTHON, "-I", str(wrapper)]
    subprocess.run([SYSTEM_PYTHON, "-m", "compileall", "-q", str(repo / "hooks"),
                    str(repo / "cache_core")], check=False, capture_output=True)  # as installed
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    cmds = {"python3 -c pass": [SYSTEM_PYTHON, "-c", "pass"],
            "pkgcache --version": [*deb, "--version"],
            "pkgcache --help": [*deb, "--help"],
            "pkgcache apt hook sweep": [*deb, "--config", str(conf), "--cache-dir", str(cache),
                                        "apt", "hook", "sweep"]}
    venv_bin = Path(sys.executable).parent
    if (venv_bin / "pkgcache").is_file() and sys.prefix != sys.base_prefix and repo == REPO:
        cmds["venv python -c pass"] = [sys.executable, "-c", "pass"]
        cmds["venv pkgcache --version"] = [str(venv_bin / "pkgcache"), "--version"]
    times = interleaved(cmds, env, runs)
    results: dict[str, dict] = {}
    for name, ts in times.items():
        args = cmds[name][3:] if cmds[name][:3] == deb else []
        heavy = heavy_imports(SYSTEM_PYTHON, args, env, repo) if args else []
        results[name] = {"median": statistics.median(ts), "runs": ts, "imports": heavy}
        print(f"{name:26s} median {statistics.median(ts) * 1000:7.1f} ms   "
              f"heavy imports: {' '.join(heavy) or '-'}", flush=True)
    base = results["python3 -c pass"]
    for name, key in (("pkgcache --version", "ratio_version_vs_python"),
                      ("pkgcache --help", "ratio_help_vs_python")):
        ratio = results[name]["median"] / base["median"]
        per = paired(results[name]["runs"], base["runs"])
        results[key] = {"value": ratio, "per_run": per}
        print(f"{name} / python3 -c pass = {ratio:.2f}  (target <= 2; per round {fmt_runs(per)})")
    if "venv python -c pass" in results:
        vr = results["venv pkgcache --version"]["median"] / results["venv python -c pass"]["median"]
        results["ratio_venv_version_vs_python"] = {"value": vr}
        print(f"venv: pkgcache --version / python -c pass = {vr:.2f}")
    return results


def uv_scenarios(runs: int, work: Path, index: str, repo: Path,
                 before: Path | None = None) -> dict[str, dict]:
    """pkgcache's uv backend vs uv --offline on the pip bench set (bench/scenarios/pip_install.py).
    pkgcache runs as the Debian package runs it: /usr/bin/python3 -I, byte-compiled code.
    before: another checkout (e.g. main), timed in the same rounds on the same cache."""
    from bench.scenarios import pip_install as pip_bench

    bench = pip_bench.Bench(work, runs, index)
    if bench.uv is None:
        print("uv not installed: uv scenarios skipped")
        return {}
    cache_dir = work / "pkgcache-uv"
    pk_env = {k: v for k, v in pip_bench.clean_env().items() if k != "PYTHONDONTWRITEBYTECODE"}
    # its own trust record: the machine's /var/lib/pkgcache is shared with other caches, whose
    # runs drop the stamps of digests they do not hold (then every run here would re-hash)
    pk_env["PKGCACHE_STATE_DIR"] = str(work / "state")
    # the system python does not see the bench's venv: uv is found on PATH, as on a server
    pk_env["PATH"] = f"{Path(bench.uv).parent}{os.pathsep}{pk_env.get('PATH', '')}"
    wrappers = {"pkgcache-uv": work / "pkgcache"}
    if before is not None:
        wrappers["pkgcache-uv-before"] = work / "pkgcache-before"
    for name, wrapper in wrappers.items():
        code = before if name.endswith("-before") and before is not None else repo
        wrapper.write_text(WRAPPER.format(repo=str(code)))
        subprocess.run([SYSTEM_PYTHON, "-m", "compileall", "-q", str(code / "hooks"),
                        str(code / "cache_core")], check=False, capture_output=True)
    uv_env = pip_bench.clean_env(UV_CACHE_DIR=str(work / "uv-cache"))

    def pk(v: Path, name: str = "pkgcache-uv") -> list[str]:
        return [SYSTEM_PYTHON, "-I", str(wrappers[name]), "--cache-dir", str(cache_dir), "pip", "install",
                "--python", str(v / "bin" / "python"), "--installer", "uv", "-q",
                "-i", index, "-r", str(bench.req)]

    def uv(v: Path, online: bool) -> list[str]:
        return [bench.uv, "pip", "install", "-q", "--python", str(v / "bin" / "python"),
                *(["--index-url", index] if online else ["--offline"]), "-r", str(bench.req)]

    bench.timed(pk(bench.venv()), pk_env)       # fill pkgcache's cache
    for name in wrappers:  # and the warm path's memo (a first run with the network gone)
        bench.timed(bench.netns + pk(bench.venv(), name), pk_env)
    bench.timed(uv(bench.venv(), True), uv_env)       # fill uv's cache
    times: dict[str, list[float]] = {name: [] for name in [*wrappers, "uv-offline"]}
    for r in range(runs):  # interleaved in a rotated order, fresh venvs (venv creation not timed)
        for name in latin(list(times), r):
            if name == "uv-offline":
                times[name].append(bench.timed(bench.netns + uv(bench.venv(), False), uv_env))
            else:
                times[name].append(bench.timed(bench.netns + pk(bench.venv(), name), pk_env))
    net = "none (unshare -n)" if bench.netns else "allowed"
    out: dict[str, dict] = {name: {"median": statistics.median(ts), "runs": ts, "network": net}
                            for name, ts in times.items()}
    for name, r in out.items():
        print(f"{name:26s} median {r['median']:6.3f} s   runs "
              + " ".join(f"{t:.3f}" for t in r["runs"]) + f"   network: {net}", flush=True)
    ratio = out["pkgcache-uv"]["median"] / out["uv-offline"]["median"]
    per = paired(times["pkgcache-uv"], times["uv-offline"])
    out["ratio_pkgcache_uv_vs_uv_offline"] = {"value": ratio, "per_run": per}
    print(f"pkgcache-uv / uv-offline = {ratio:.2f}  (target <= 1.2; per round {fmt_runs(per)})")
    if before is not None:
        was = out["pkgcache-uv-before"]["median"] / out["uv-offline"]["median"]
        out["ratio_before_vs_uv_offline"] = {"value": was}
        print(f"pkgcache-uv-before / uv-offline = {was:.2f}  ({before})")
    return out


def main() -> int:
    """Parse options and run the scenarios."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--uv", action="store_true", help="also pkgcache's uv backend vs uv --offline")
    ap.add_argument("--uv-runs", type=int, default=5)
    ap.add_argument("--index", default="https://pypi.org/simple")
    ap.add_argument("--work", help="work directory (default: a temporary one, removed)")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--uv-before", metavar="DIR",
                    help="also time this checkout's uv backend in the same rounds (before/after)")
    ap.add_argument("--repo", default=str(REPO),
                    help="the checkout whose start-up is measured (e.g. an older one, for 'before')")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="pkgcache-startup-") as tmp:
        work = Path(a.work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        results = startup(a.runs, work, Path(a.repo).resolve())
        if a.uv:
            results.update(uv_scenarios(a.uv_runs, work, a.index, Path(a.repo).resolve(),
                                        Path(a.uv_before).resolve() if a.uv_before else None))
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
