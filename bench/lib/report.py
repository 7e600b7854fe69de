"""The benchmark report: the machine it ran on, the issue's targets, the table (text and
Markdown) and the chart (bench/lib/plot.py, run with a Python that has matplotlib)."""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
from pathlib import Path

from bench.lib.stats import fmt, fmt_runs, paired, ratio

ORDER_APT = ("A", "H", "S", "B", "N", "P", "F")
ORDER_PIP = ("pip-cold", "pip-warm", "wheelhouse", "pkgcache-online", "pkgcache-pip",
             "pkgcache-uv", "uv-offline", "uv-wheelhouse")

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


def _ok(section: dict | None) -> bool:
    """True when a section ran (it holds its scenarios, not only an error)."""
    return bool(section) and ("scenarios" in section or "metrics" in section)


def targets(res: dict) -> list[dict]:
    """The issue's targets on this run: the ratio of medians and the per-run (paired) ratios;
    limit None: a comparison reported beside the targets, with no verdict."""
    t: list[dict] = []

    def add(name: str, value: float | None, op: str, limit: float | None,
            runs: list[float | None] | None = None) -> None:
        ok = None if value is None or limit is None else (
            value <= limit if op == "<=" else value >= limit)
        t.append({"target": name, "value": value, "op": op, "limit": limit, "met": ok,
                  "per_run": runs or []})

    def vs(name: str, section: dict, a: str, b: str, limit: float | None, key: str = "wall") -> None:
        per = section.get("per_round" if key == "wall" else f"per_round_{key}", {})
        sc = section["scenarios"]
        if a not in sc or b not in sc:  # a scenario this run left out (--only): no verdict
            return
        add(name, ratio(sc.get(a, {}).get(key), sc.get(b, {}).get(key)), "<=", limit,
            paired(per.get(a, []), per.get(b, [])))

    if _ok(res.get("apt")):
        a = res["apt"]
        vs("warm apt S / debs in archives B: before dpkg", a, "S", "B", 1.10, "pre_dpkg")
        vs("warm apt S / debs in archives B: whole install", a, "S", "B", 1.02)
        vs("warm apt S / apt-cacher-ng warm N", a, "S", "N", 0.90)
        if "S" in a["scenarios"]:
            add("warm apt S: max bytes from upstream (install)",
                a["scenarios"]["S"]["bytes"]["max"], "<=", 0)
        vs("cold apt, hooks H / no hooks A", a, "H", "A", 1.05)
    if _ok(res.get("pip")):
        p = res["pip"]
        vs("pkgcache pip backend offline / wheelhouse --no-index", p, "pkgcache-pip", "wheelhouse",
           1.05)
        vs("pkgcache uv backend offline / uv --offline", p, "pkgcache-uv", "uv-offline", 1.20)
        vs("uv --find-links wheelhouse (no pkgcache) / uv --offline", p, "uv-wheelhouse",
           "uv-offline", None)
        vs("pkgcache online / warm pip (HTTP cache filled)", p, "pkgcache-online", "pip-warm", None)
    if _ok(res.get("core")):
        m = res["core"]["metrics"]
        add("verified get / hashlib.file_digest", m["verified_get_vs_file_digest"]["median"], ">=",
            0.75, m["verified_get_vs_file_digest"]["runs"])
        add("lookups/s at 100k entries", m["lookups_per_s_100000"]["median"], ">=", 20000,
            m["lookups_per_s_100000"]["runs"])
    return t


def _scenario_rows(section: str, res: dict, keys: list[str], notes) -> list[list[str]]:  # type: ignore[no-untyped-def]
    """One row per scenario that has runs; a scenario whose every run failed says so."""
    rows = []
    for k in keys:
        s = res["scenarios"].get(k)
        if not s:
            continue
        w = s["wall"]
        label = f"{k} {res['labels'][k]} (s)" if "labels" in res else f"{k} (s)"
        if not w["n"]:
            rows.append([section, label, "FAILED", "-", "-", "every run failed (see errors)"])
            continue
        rows.append([section, label, fmt(w["median"]), fmt(w["min"]), fmt(w["max"]), notes(s)])
    return rows


def table_rows(res: dict) -> list[list[str]]:
    """[section, measure, median, min, max, extra] rows (a failed section: one error row)."""
    rows: list[list[str]] = []
    for name in ("apt", "pip", "core"):
        sec = res.get(name)
        if sec and not _ok(sec):
            rows.append([name, "FAILED", "-", "-", "-", str(sec.get("error", "?"))[-200:]])
    if _ok(res.get("apt")):
        a = res["apt"]
        rows += _scenario_rows("apt", a, [*ORDER_APT], lambda s: (
            f"before dpkg {fmt(s['pre_dpkg']['median'])} s; hooks "
            f"{fmt(s.get('hook_seconds', {}).get('median'))} s; upstream "
            f"{fmt(s['bytes']['median'], 'MB')} MB (max {fmt(s['bytes']['max'], 'MB')});"
            f" update {fmt(s['update_bytes']['median'], 'MB')} MB; n={s['wall']['n']}"))
    if _ok(res.get("pip")):
        rows += _scenario_rows("pip", res["pip"], [*ORDER_PIP], lambda s: (
            f"requests {'?' if s.get('requests') is None else s['requests']}; upstream "
            f"{fmt(s['bytes']['median'], 'MB')} MB; n={s['wall']['n']}"))
        for mode, v in (res["pip"].get("verify") or {}).items():
            w = v["seconds"]
            rows.append(["pip", f"check cached files: {mode} (ms)", fmt(w["median"] * 1000),
                         fmt(w["min"] * 1000), fmt(w["max"] * 1000),
                         f"{v['files']} files, {fmt(v['bytes'], 'MB')} MB; n={w['n']}"])
    if _ok(res.get("core")):
        m = res["core"]["metrics"]
        for key, label in (("raw_sha256_mb_s", "hashlib.file_digest sha256 (MB/s)"),
                           ("verified_get_mb_s", "verified get (MB/s)"),
                           ("verified_get_vs_file_digest", "verified get / file_digest"),
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
    lines.append(f"{'target (ratio of medians)':<56} {'value':>10}  {'limit':<10} {'met':<4} per run")
    for t in res["targets"]:
        met = "?" if t["met"] is None else ("yes" if t["met"] else "NO")
        limit = "-" if t["limit"] is None else f"{t['op']} {fmt(t['limit'])}"
        lines.append(f"{t['target']:<56} {fmt(t['value']):>10}  {limit:<10} {met:<4} "
                     f"{fmt_runs(t.get('per_run', []))}")
    for err in _errors(res):
        lines.append(f"FAILED {err}")
    text = "\n".join(lines)
    print(text, flush=True)
    return text


def markdown(res: dict) -> str:
    """The results as Markdown (machine, command, table, targets) for docs/results.md."""
    m = res["machine"]
    out = [f"Run {res['started']} at commit {res.get('git', '?')}, {res['seconds'] / 60:.0f} min"
           f"{' (--quick)' if res.get('quick') else ''}.", "",
           f"- Machine: {m['nproc']} vCPUs ({m['cpu']}), {m['ram_gib']} GiB RAM, disk {m['disk']}",
           f"- Kernel {m['kernel']}, Debian {m['debian']}, Python {m['python']}, apt {m['apt']}, "
           f"dpkg {m['dpkg']}" + (f", apt-cacher-ng {res['apt']['apt_cacher_ng']}"
                                  if (res.get("apt") or {}).get("apt_cacher_ng") else ""),
           f"- Command: `{res['command']}`", "",
           "| | measure | median | min | max | notes |", "|---|---|---:|---:|---:|---|"]
    out += [f"| {' | '.join(r)} |" for r in table_rows(res)]
    out += ["", "| target | ratio of medians | per run | limit | met |", "|---|---:|---|---|---|"]
    for t in res["targets"]:
        met = "?" if t["met"] is None else ("yes" if t["met"] else "**no**")
        limit = "-" if t["limit"] is None else f"{t['op']} {fmt(t['limit'])}"
        out.append(f"| {t['target']} | {fmt(t['value'])} | {fmt_runs(t.get('per_run', []))} | "
                   f"{limit} | {met} |")
    out += [f"- FAILED {e}" for e in _errors(res)]
    return "\n".join(out) + "\n"


def _errors(res: dict) -> list[str]:
    """Every recorded failure: a section that did not run, or a run inside one."""
    out = []
    for name in ("core", "apt", "pip"):
        sec = res.get(name) or {}
        if sec.get("error"):
            out.append(f"{name}: {sec['error']}")
        out += [f"{name} {e}" for e in sec.get("errors", [])]
    return out


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
