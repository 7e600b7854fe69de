"""The benchmark report: the machine it ran on, the issue's targets, the table (text and
Markdown) and the chart (bench/lib/plot.py, run with a Python that has matplotlib)."""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
from pathlib import Path

from bench.lib.stats import fmt, ratio

PLOT_VENV = Path("/var/tmp/pkgcache-bench-plot")


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
    """Print the table and the targets; return the text."""
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
        if (not os.path.exists(py)
                or subprocess.run([py, "-c", "import matplotlib"], capture_output=True).returncode):
            print(f"installing matplotlib (bench only) into {PLOT_VENV}", flush=True)
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(PLOT_VENV)], check=True,
                           env=dict(os.environ, VIRTUAL_ENV=""))
            env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
            env["PIP_CONFIG_FILE"] = os.devnull
            subprocess.run([py, "-m", "pip", "install", "-q", "matplotlib"], check=True, env=env)
    p = subprocess.run([py, str(Path(__file__).with_name("plot.py")), str(json_path), str(png)],
                       capture_output=True, text=True)
    if p.returncode != 0:
        return f"chart failed: {p.stderr.strip()[-500:]}"
    return str(png)
