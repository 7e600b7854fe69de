#!/usr/bin/env python3
"""pkgcache benchmarks, one command: core, apt (with apt-cacher-ng) and pip/uv in one run.

    sudo .venv/bin/python bench/run.py [--quick] [--only core,apt,pip] [--out docs/results]

Prints one table, writes OUT/latest.json and OUT/latest.png (default OUT: bench/results).
Every figure is the median of repeated runs with min/max; every ratio is between medians of the
same run. Needs root (throwaway apt roots), mmdebstrap, the Debian archive and PyPI. Installs
Debian's apt-cacher-ng if missing, and matplotlib (bench-only) into /var/tmp/pkgcache-bench-plot
from PyPI if the running Python lacks it.

apt scenarios (same package set, fresh root each, interleaved per round; only `apt-get install`
is timed; bytes = every byte received from upstream during the install, counted by a relay on
127.0.0.1 that apt, the hooks and apt-cacher-ng all go through):
  A cold, no hooks | H cold, pkgcache hooks, empty cache | S warm, seeded by pkgcache (cache from
  H) | B the same debs copied into archives beforehand (the limit) | N warm through apt-cacher-ng
  (primed by one untimed-for-the-ratio install before the rounds).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))
import acng  # noqa: E402

PLOT_VENV = Path("/var/tmp/pkgcache-bench-plot")


def stats(values: list[float]) -> dict[str, object]:
    """median/min/max of a list (NaN-free), plus the values themselves."""
    vals = [v for v in values if v == v]
    if not vals:
        return {"median": None, "min": None, "max": None, "n": 0, "runs": []}
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals),
            "n": len(vals), "runs": vals}


def machine() -> dict[str, str]:
    """What this ran on."""
    def cmd(*a: str) -> str:
        try:
            return subprocess.run(a, capture_output=True, text=True).stdout.strip()
        except OSError:
            return "?"
    mem = re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text())
    cpu = re.search(r"model name\s*:\s*(.*)", Path("/proc/cpuinfo").read_text())
    src = cmd("findmnt", "-no", "SOURCE,FSTYPE", "-T", "/var/tmp")
    dev = src.split()[0] if src else ""
    size = cmd("lsblk", "-dno", "SIZE", re.sub(r"\d+$", "", dev)) if dev.startswith("/dev/") else ""
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu.group(1) if cpu else "?",
        "ram_gib": f"{int(mem.group(1)) / 2**20:.1f}" if mem else "?",
        "disk": f"{src} {size}".strip() + " (/var/tmp: work dirs, caches, roots)",
        "kernel": platform.release(),
        "debian": Path("/etc/debian_version").read_text().strip(),
        "python": platform.python_version(),
        "apt": cmd("dpkg-query", "-W", "-f", "${Version}", "apt"),
        "dpkg": cmd("dpkg-query", "-W", "-f", "${Version}", "dpkg"),
    }


# ----------------------------------------------------------------------------------------- core
def run_core(reps: int, size_mb: int) -> dict:
    """bench/core_bench.py `reps` times (each a fresh work dir), collected per metric."""
    runs: list[dict] = []
    for i in range(reps):
        with tempfile.NamedTemporaryFile(suffix=".json") as tf:
            p = subprocess.run([sys.executable, str(BENCH / "core_bench.py"), "--size-mb",
                                str(size_mb), "--json", tf.name], capture_output=True, text=True)
            if p.returncode != 0:
                raise SystemExit(f"core_bench failed:\n{p.stdout[-2000:]}{p.stderr[-3000:]}")
            runs.append(json.loads(Path(tf.name).read_text()))
        print(f"core rep {i + 1}/{reps}: verified get {runs[-1]['verified_get_mb_s']:.0f} MB/s, "
              f"raw sha256 {runs[-1]['raw_sha256_mb_s']:.0f} MB/s, "
              f"lookups@100k {runs[-1]['lookups_per_s_100000']:.0f}/s", flush=True)
    metrics = {k: stats([r[k] for r in runs]) for k in runs[0] if k != "size_mb"}
    metrics["put_vs_raw_copy"] = stats([r["put_mb_s"] / r["raw_copy_mb_s"] for r in runs])
    metrics["hit_path_vs_os_link"] = stats([r["hit_path_ms"] / r["raw_os_link_ms"] for r in runs])
    return {"size_mb": size_mb, "reps": reps, "metrics": metrics}


# ------------------------------------------------------------------------------------------ apt
def run_apt(rounds: int, work: Path) -> dict:
    """Scenarios A H S B N, `rounds` rounds, through one counting proxy."""
    import apt_bench

    version = acng.ensure_installed()
    work.mkdir(parents=True, exist_ok=True)
    (work / "pkgcache.yaml").write_text("performance:\n  cache:\n    enabled: true\n")
    base = work / "base.tar"
    if not base.exists():
        print(f"mmdebstrap --variant=apt {apt_bench.SUITE} -> {base}", flush=True)
        apt_bench.sh("mmdebstrap", "--variant=apt", apt_bench.SUITE, str(base))
    proxy = acng.CountingProxy()
    cacher = acng.Acng(work, upstream_proxy=proxy.url)
    cacher.start()
    debs = work / "debs"
    names = {"A": "cold, no hooks", "H": "cold, pkgcache hooks", "S": "warm, seeded by pkgcache",
             "B": "debs already in archives", "N": "warm, through apt-cacher-ng",
             "P": "apt-cacher-ng priming (cold)"}
    rec: dict[str, dict[str, list[float]]] = {
        k: {"wall": [], "pre_dpkg": [], "bytes": [], "update_bytes": [], "debs_fetched": [],
              "hook_seconds": []}
        for k in names}
    npkgs = 0

    def one(scen: str, cache_dir: Path) -> None:
        nonlocal npkgs
        root = apt_bench.Root(work, base, f"root-{scen}", cache_dir)
        try:
            via = cacher.url if scen in "NP" else proxy.url
            with open(root.conf, "a") as f:
                f.write(f'Acquire::http::Proxy "{via}";\n')
            # anything the hooks fetch themselves is counted too
            root.env.update(http_proxy=proxy.url, https_proxy=proxy.url,
                            HTTP_PROXY=proxy.url, HTTPS_PROXY=proxy.url)
            if scen in "HS":
                root.hooks_on()
            proxy.reset()
            root.apt("update")
            rec[scen]["update_bytes"].append(proxy.total)
            root.hook_seconds()  # forget the post-update hook
            if scen == "B":
                for f in debs.glob("*.deb"):
                    shutil.copy(f, root.archives / f.name)
            subprocess.run(["sync"])
            proxy.reset()
            wall, out = root.apt("install", *apt_bench.PKGS)
            time.sleep(0.2)  # let the relay threads account the last bytes
            rec[scen]["bytes"].append(proxy.total)
            rec[scen]["wall"].append(wall)
            rec[scen]["pre_dpkg"].append(root.pre_dpkg)
            rec[scen]["hook_seconds"].append(root.hook_seconds())
            gets, _need = apt_bench.downloaded(out)
            rec[scen]["debs_fetched"].append(gets)
            npkgs = max(npkgs, len(re.findall(r"^Setting up ", out, re.M)))
            if scen == "A" and not any(debs.glob("*.deb")):
                debs.mkdir(exist_ok=True)
                for f in root.archives.glob("*.deb"):
                    shutil.copy(f, debs / f.name)
            print(f"  apt {scen} {names[scen]:<30} {wall:6.2f} s  before dpkg {root.pre_dpkg:5.2f} s"
                  f"  upstream {rec[scen]['bytes'][-1] / 1e6:7.2f} MB  debs fetched {gets}",
                  flush=True)
        finally:
            root.close()

    try:
        shutil.rmtree(debs, ignore_errors=True)
        cacher.clear_cache()
        print("apt: priming apt-cacher-ng with one install", flush=True)
        one("P", work / "cache-unused")
        for rnd in range(rounds):
            print(f"apt round {rnd + 1}/{rounds}", flush=True)
            cache_dir = work / f"cache-{rnd}"
            shutil.rmtree(cache_dir, ignore_errors=True)
            for scen in "AHSBN":
                one(scen, cache_dir)
    finally:
        cacher.stop()
        proxy.close()
    res = {"packages": npkgs, "package_set": apt_bench.PKGS, "suite": apt_bench.SUITE,
           "rounds": rounds, "apt_cacher_ng": version, "labels": names,
           "bytes_method": "bytes relayed by a counting proxy on 127.0.0.1 (headers included); "
                           "apt-cacher-ng's own upstream also goes through it",
           "scenarios": {k: {m: stats(v) for m, v in d.items()} for k, d in rec.items()}}
    return res


# ------------------------------------------------------------------------------------------ pip
def run_pip(runs: int, work: Path) -> dict:
    """bench/pip_bench.py's scenarios plus a plain wheelhouse, bytes and requests per scenario."""
    import pip_bench

    proxy = acng.CountingProxy()
    saved = {k: os.environ.get(k) for k in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY")}
    os.environ.update(http_proxy=proxy.url, https_proxy=proxy.url, HTTP_PROXY=proxy.url,
                      HTTPS_PROXY=proxy.url)

    class Run(pip_bench.Bench):
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
            env = pip_bench.clean_env(PIP_CACHE_DIR=str(cache))
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
            env = pip_bench.clean_env(PIP_CACHE_DIR=str(pip_cache))
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
        bench = Run()
        print(f"pip: runs per scenario {runs}, network namespace for offline runs: "
              f"{'yes' if bench.netns else 'no'}", flush=True)
        bench.run()
        bench.extra()
    finally:
        proxy.close()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    r = bench.results
    out: dict = {"distributions": r.get("distributions", {}).get("count"),
                 "requirements": pip_bench.REQUIREMENTS.split(), "runs": runs,
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


# -------------------------------------------------------------------------------------- summary
def ratio(a: dict | None, b: dict | None) -> float | None:
    if not a or not b or a.get("median") in (None, 0) or b.get("median") in (None, 0):
        return None
    return a["median"] / b["median"]


def targets(res: dict) -> list[dict]:
    """The issue's targets, evaluated on this run."""
    t: list[dict] = []

    def add(name: str, value: float | None, op: str, limit: float) -> None:
        ok = None if value is None else (value <= limit if op == "<=" else value >= limit)
        t.append({"target": name, "value": value, "op": op, "limit": limit, "met": ok})

    if "apt" in res:
        s = res["apt"]["scenarios"]
        add("warm apt S / debs-in-archives B", ratio(s["S"]["wall"], s["B"]["wall"]), "<=", 1.10)
        add("warm apt S / apt-cacher-ng warm N", ratio(s["S"]["wall"], s["N"]["wall"]), "<=", 0.90)
        add("warm apt S: max bytes from upstream (install)", s["S"]["bytes"]["max"], "<=", 0)
        add("harvest hook H / cold A", ratio(s["H"]["wall"], s["A"]["wall"]), "<=", 1.05)
    if "pip" in res:
        s = res["pip"]["scenarios"]
        add("pkgcache pip backend / pip warm cache",
            ratio(s.get("pkgcache-pip", {}).get("wall"), s.get("pip-warm", {}).get("wall")), "<=", 0.8)
        add("pkgcache uv backend / uv warm --offline",
            ratio(s.get("pkgcache-uv", {}).get("wall"), s.get("uv-offline", {}).get("wall")), "<=", 1.5)
    if "core" in res:
        m = res["core"]["metrics"]
        add("verified get / raw hashlib", m["verified_get_vs_hashlib"]["median"], ">=", 0.75)
        add("lookups/s at 100k entries", m["lookups_per_s_100000"]["median"], ">=", 20000)
    return t


def fmt(v: float | None, unit: str = "") -> str:
    if v is None:
        return "-"
    if unit == "MB":
        return f"{v / 1e6:.2f}"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.3f}" if abs(v) < 10 else f"{v:.2f}"


def table_rows(res: dict) -> list[list[str]]:
    """[section, measure, median, min, max, extra] rows."""
    rows: list[list[str]] = []
    if "apt" in res:
        a = res["apt"]
        for k in "AHSBNP":
            s = a["scenarios"][k]
            if not s["wall"]["n"]:
                continue
            rows.append(["apt", f"{k} {a['labels'][k]} (s)", fmt(s["wall"]["median"]),
                         fmt(s["wall"]["min"]), fmt(s["wall"]["max"]),
                         f"before dpkg {fmt(s['pre_dpkg']['median'])} s; hooks "
                         f"{fmt(s.get('hook_seconds', {}).get('median'))} s; upstream "
                         f"{fmt(s['bytes']['median'], 'MB')} MB (max {fmt(s['bytes']['max'], 'MB')});"
                         f" update {fmt(s['update_bytes']['median'], 'MB')} MB; n={s['wall']['n']}"])
    if "pip" in res:
        p = res["pip"]
        for k in ("pip-cold", "pip-warm", "pkgcache-pip", "pkgcache-uv", "uv-offline", "wheelhouse"):
            s = p["scenarios"].get(k)
            if not s:
                continue
            req = s["requests"]
            rows.append(["pip", f"{k} (s)", fmt(s["wall"]["median"]), fmt(s["wall"]["min"]),
                         fmt(s["wall"]["max"]),
                         f"requests {'?' if req is None else req}; upstream "
                         f"{fmt(s['bytes']['median'], 'MB')} MB; n={s['wall']['n']}"])
    if "core" in res:
        m = res["core"]["metrics"]
        for key, label in (("raw_sha256_mb_s", "raw hashlib sha256 (MB/s)"),
                           ("verified_get_mb_s", "verified get (MB/s)"),
                           ("verified_get_vs_hashlib", "verified get / raw hashlib"),
                           ("raw_copy_mb_s", "raw copyfile (MB/s)"),
                           ("put_mb_s", "put: hash+copy+fsync (MB/s)"),
                           ("put_vs_raw_copy", "put / raw copyfile"),
                           ("raw_os_link_ms", "raw os.link (ms)"),
                           ("hit_path_ms", "hit path: lookup+size+link (ms)"),
                           ("hit_path_vs_os_link", "hit path / raw os.link"),
                           ("verified_materialize_1mb_ms", "verified materialize 1 MB (ms)"),
                           ("lookups_per_s_1000", "lookups/s at 1k entries"),
                           ("lookups_per_s_100000", "lookups/s at 100k entries"),
                           ("exists_per_s_1000", "exists (lookup+lstat)/s at 1k"),
                           ("exists_per_s_100000", "exists (lookup+lstat)/s at 100k")):
            s = m.get(key)
            if s:
                rows.append(["core", label, fmt(s["median"]), fmt(s["min"]), fmt(s["max"]),
                             f"n={s['n']}"])
    return rows


def print_table(res: dict) -> str:
    lines = [f"{'':5} {'measure':<40} {'median':>9} {'min':>9} {'max':>9}  notes"]
    for r in table_rows(res):
        lines.append(f"{r[0]:5} {r[1]:<40} {r[2]:>9} {r[3]:>9} {r[4]:>9}  {r[5]}")
    lines.append("")
    lines.append(f"{'target':<50} {'value':>10}  {'limit':<10} met")
    for t in res["targets"]:
        met = "?" if t["met"] is None else ("yes" if t["met"] else "NO")
        lines.append(f"{t['target']:<50} {fmt(t['value']):>10}  {t['op']} {fmt(t['limit']):<7} {met}")
    text = "\n".join(lines)
    print(text, flush=True)
    return text


def markdown(res: dict) -> str:
    """The results as Markdown (machine, command, table, targets) for the README's Results section."""
    m = res["machine"]
    out = [f"Run {res['started']} at commit {res.get('git', '?')}, {res['seconds'] / 60:.0f} min"
           f"{' (--quick)' if res.get('quick') else ''}.", "",
           f"- Machine: {m['nproc']} vCPUs ({m['cpu']}), {m['ram_gib']} GiB RAM, disk {m['disk']}",
           f"- Kernel {m['kernel']}, Debian {m['debian']}, Python {m['python']}, apt {m['apt']}, "
           f"dpkg {m['dpkg']}" + (f", apt-cacher-ng {res['apt']['apt_cacher_ng']}"
                                  if "apt" in res else ""),
           f"- Command: `{res['command']}`", "",
           "| | measure | median | min | max | notes |", "|---|---|---:|---:|---:|---|"]
    out += [f"| {' | '.join(r)} |" for r in table_rows(res)]
    out += ["", "| target | this run | limit | met |", "|---|---:|---|---|"]
    for t in res["targets"]:
        met = "?" if t["met"] is None else ("yes" if t["met"] else "**no**")
        out.append(f"| {t['target']} | {fmt(t['value'])} | {t['op']} {fmt(t['limit'])} | {met} |")
    return "\n".join(out) + "\n"


def plot(json_path: Path, png: Path) -> str:
    """Render the chart with a Python that has matplotlib (installing a bench-only venv if needed)."""
    py = sys.executable
    if subprocess.run([py, "-c", "import matplotlib"], capture_output=True).returncode != 0:
        py = str(PLOT_VENV / "bin" / "python")
        if subprocess.run([py, "-c", "import matplotlib"], capture_output=True).returncode != 0:
            print(f"installing matplotlib (bench only) into {PLOT_VENV}", flush=True)
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(PLOT_VENV)], check=True,
                           env=dict(os.environ, VIRTUAL_ENV=""))
            env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
            env["PIP_CONFIG_FILE"] = os.devnull
            subprocess.run([py, "-m", "pip", "install", "-q", "matplotlib"], check=True, env=env)
    p = subprocess.run([py, str(BENCH / "plot.py"), str(json_path), str(png)],
                       capture_output=True, text=True)
    if p.returncode != 0:
        return f"chart failed: {p.stderr.strip()[-500:]}"
    return str(png)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1 round/run each, smaller core file")
    ap.add_argument("--only", default="core,apt,pip", help="comma list of core, apt, pip")
    ap.add_argument("--rounds", type=int, default=None, help="apt rounds (default 3, quick 1)")
    ap.add_argument("--runs", type=int, default=None, help="pip timed runs (default 3, quick 1)")
    ap.add_argument("--core-reps", type=int, default=None, help="core repetitions (default 3, quick 1)")
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
    if "core" in only:
        res["core"] = run_core(reps, 64 if args.quick else 256)
    if "apt" in only:
        res["apt"] = run_apt(rounds, work / "apt")
    if "pip" in only:
        pw = work / "pip"
        shutil.rmtree(pw, ignore_errors=True)
        pw.mkdir(parents=True)
        res["pip"] = run_pip(runs, pw)
        shutil.rmtree(pw, ignore_errors=True)
    res["seconds"] = time.monotonic() - t0
    res["targets"] = targets(res)
    print()
    res["table"] = print_table(res)
    jp = out / "latest.json"
    jp.write_text(json.dumps(res, indent=1) + "\n")
    print(f"\nwrote {jp}; chart: {plot(jp, out / 'latest.png')}; total {res['seconds']:.0f} s")
    return 0 if all(t["met"] for t in res["targets"]) else 1


if __name__ == "__main__":
    sys.exit(main())
