#!/usr/bin/env python3
"""apt benchmark on real Debian packages (needs root, mmdebstrap and the Debian archive).

Not a test. Every run installs the same package set (>= 30 packages after dependencies) into a
fresh throwaway root made from one mmdebstrap tarball. The host's apt-get and dpkg drive the
root (APT_CONFIG with Dir::* pointing into it, dpkg --root, maintainer scripts chrooted by dpkg),
so pkgcache's hooks run on the host from this checkout. Scenarios, interleaved per round:

  A  cold install, no hooks                           (baseline)
  H  cold install with pkgcache's hooks, empty cache  (target H/A <= 1.05)
  S  warm re-provision: fresh root, hooks on, cache filled by H (target S/B <= 1.10,
     0 bytes of .debs downloaded)
  B  fresh root, the same debs copied into archives beforehand, no hooks

Usage (from the checkout):
    sudo .venv/bin/python -m bench.scenarios.apt_install [--rounds 3] [--workdir /var/tmp/pkgcache-bench]
Prints a table of medians and the ratios; exit 1 if a target is missed.
"""

from __future__ import annotations

import argparse
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
from bench.lib.setup import PY, REPO
from bench.lib.stats import stats

PKGS = "nginx postgresql-15 python3 python3-venv git curl ca-certificates".split()
SUITE = "bookworm"
SNIPPET = REPO / "hooks" / "apt" / "data" / "05pkgcache"


def sh(*cmd: str, **kw: object) -> subprocess.CompletedProcess[str]:
    """Run cmd, output captured; raise if it fails."""
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw)  # type: ignore[call-overload]


class Root:
    """A throwaway root extracted from the base tarball, with /proc and /dev bound in."""

    def __init__(self, work: Path, base_tar: Path, name: str, cache_dir: Path) -> None:
        self.dir = work / name
        if self.dir.exists():
            shutil.rmtree(self.dir)
        self.dir.mkdir(parents=True)
        sh("tar", "-C", str(self.dir), "-xf", str(base_tar))
        for d in ("proc", "dev"):
            (self.dir / d).mkdir(exist_ok=True)
        sh("mount", "--bind", "/proc", str(self.dir / "proc"))
        sh("mount", "--rbind", "/dev", str(self.dir / "dev"))
        sh("mount", "--make-rslave", str(self.dir / "dev"))
        shutil.copy("/etc/resolv.conf", self.dir / "etc" / "resolv.conf")
        prc = self.dir / "usr/sbin/policy-rc.d"
        prc.write_text("#!/bin/sh\nexit 101\n")
        prc.chmod(0o755)
        r = self.dir
        self.conf = work / f"{name}.apt.conf"
        self.conf.write_text(
            f'Dir::Etc "{r}/etc/apt";\nDir::State "{r}/var/lib/apt";\n'
            f'Dir::State::status "{r}/var/lib/dpkg/status";\nDir::Cache "{r}/var/cache/apt";\n'
            f'Dir::Log "{r}/var/log/apt";\nDPkg::Options {{ "--root={r}"; '
            f'"--log={r}/var/log/dpkg.log"; }};\nAPT::Sandbox::User "root";\n'
            'APT::Get::Assume-Yes "true";\nAPT::Install-Recommends "false";\n')
        self.wrapper = work / f"{name}.pkgcache"
        self.hook_log = work / f"{name}.hooks.log"
        self.hook_log.unlink(missing_ok=True)
        self.wrapper.write_text(
            f'#!/bin/sh\nt0=$(date +%s.%N)\n'
            f'PYTHONPATH="{REPO}" "{PY}" -m hooks.cli --cache-dir "{cache_dir}" "$@"\nrc=$?\n'
            f'echo "$t0 $(date +%s.%N) $*" >> "{self.hook_log}"\nexit $rc\n')
        self.wrapper.chmod(0o755)
        self.env = dict(os.environ, APT_CONFIG=str(self.conf), DEBIAN_FRONTEND="noninteractive",
                        LC_ALL="C", PKGCACHE_CONFIG=str(work / "pkgcache.yaml"))

    @property
    def archives(self) -> Path:
        """The root's apt archives directory."""
        return self.dir / "var/cache/apt/archives"

    def hooks_on(self) -> None:
        """Install pkgcache's apt snippet (this checkout's hooks) into the root."""
        text = SNIPPET.read_text().replace("/usr/bin/pkgcache", str(self.wrapper))
        (self.dir / "etc/apt/apt.conf.d/05pkgcache").write_text(text)

    def apt(self, *args: str) -> tuple[float, str]:
        """Run apt-get; (wall seconds, output). self.pre_dpkg: seconds until dpkg's first unpack."""
        t0 = time.perf_counter()
        self.pre_dpkg = float("nan")
        proc = subprocess.Popen(["apt-get", *args], env=self.env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        lines = []
        assert proc.stdout is not None
        for line in proc.stdout:
            if self.pre_dpkg != self.pre_dpkg and line.startswith("Selecting previously unselected"):
                self.pre_dpkg = time.perf_counter() - t0
            lines.append(line)
        rc = proc.wait()
        dt = time.perf_counter() - t0
        out = "".join(lines)
        if rc != 0:
            raise SystemExit(f"apt-get {' '.join(args)} failed:\n{out[-3000:]}")
        return dt, out

    def hook_seconds(self) -> float:
        """Wall time of every pkgcache hook process so far (then forget them)."""
        if not self.hook_log.exists():
            return 0.0
        total = sum(float(b) - float(a) for a, b, *_ in
                    (ln.split() for ln in self.hook_log.read_text().splitlines()))
        self.hook_log.unlink()
        return total

    def close(self) -> None:
        """Unmount and remove the root."""
        subprocess.run(["umount", "-R", str(self.dir / "dev")], capture_output=True)
        subprocess.run(["umount", str(self.dir / "proc")], capture_output=True)
        with open("/proc/self/mounts") as f:
            busy = [ln.split()[1] for ln in f if ln.split()[1].startswith(str(self.dir) + "/")]
        if busy:  # never rm -rf through a bind mount of the host's /dev or /proc
            raise SystemExit(f"still mounted, not removing {self.dir}: {busy}")
        shutil.rmtree(self.dir, ignore_errors=True)


def downloaded(out: str) -> tuple[int, str]:
    """(.debs apt fetched, apt's 'Need to get' figure) from its output."""
    gets = len(re.findall(r"^Get:\d+ .*\.deb|^Get:\d+ \S+ \S+ \S+ \S+ \S+ \S+ \[", out, re.M))
    need = re.search(r"^Need to get (\S+ \S+?)(/| of)", out, re.M)
    return gets, need.group(1) if need else "?"


def prepare(work: Path) -> Path:
    """work with an enabled pkgcache config and the mmdebstrap base tarball (made once)."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "pkgcache.yaml").write_text("performance:\n  cache:\n    enabled: true\n")
    base = work / "base.tar"
    if not base.exists():
        print(f"mmdebstrap --variant=apt {SUITE} -> {base}", flush=True)
        sh("mmdebstrap", "--variant=apt", SUITE, str(base))
    return base


def main() -> int:
    """Run the rounds and print the table; exit 1 if a target is missed."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--order", default="AHSB", help="scenarios and their order in a round (S needs H)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root (mount, chrooted maintainer scripts)", file=sys.stderr)
        return 2
    work = Path(args.workdir or tempfile.mkdtemp(prefix="pkgcache-apt-bench-", dir="/var/tmp"))
    base = prepare(work)
    debs = work / "debs"
    times: dict[str, list[float]] = {k: [] for k in "AHSB"}
    pre: dict[str, list[float]] = {k: [] for k in "AHSB"}
    hook_s: dict[str, list[float]] = {"harvest": [], "seed": []}
    notes: dict[str, str] = {}
    npkgs = 0
    for rnd in range(args.rounds):
        cache_dir = work / f"cache-{rnd}"
        shutil.rmtree(cache_dir, ignore_errors=True)
        for scen in args.order:
            root = Root(work, base, f"root-{scen}", cache_dir)
            try:
                if scen in "HS":
                    root.hooks_on()
                root.apt("update")
                if scen == "B":
                    if not debs.is_dir():
                        raise SystemExit("scenario B needs the debs of an earlier A run")
                    for f in debs.glob("*.deb"):
                        shutil.copy(f, root.archives / f.name)
                subprocess.run(["sync"])
                root.hook_seconds()
                dt, out = root.apt("install", *PKGS)
                hooks_wall = root.hook_seconds()
                times[scen].append(dt)
                pre[scen].append(root.pre_dpkg)
                state = cache_dir / "apt" / "status.json"
                if scen in "HS" and state.exists():
                    import json

                    st = json.loads(state.read_text())
                    for what in ("harvest", "seed"):
                        if st.get(what):
                            hook_s[what].append(st[what]["seconds"])
                gets, need = downloaded(out)
                npkgs = max(npkgs, len(re.findall(r"^Setting up ", out, re.M)))
                notes[scen] = f"debs fetched {gets}, Need to get {need}"
                if scen == "A" and rnd == 0:
                    shutil.rmtree(debs, ignore_errors=True)
                    debs.mkdir()
                    for f in root.archives.glob("*.deb"):
                        shutil.copy(f, debs / f.name)
                print(f"round {rnd + 1} {scen}: {dt:6.2f} s, before dpkg {root.pre_dpkg:5.2f} s, "
                      f"hook processes {hooks_wall:5.2f} s ({notes[scen]})", flush=True)
            finally:
                root.close()
    return summarize(times, pre, hook_s, notes, npkgs, args.rounds)


def summarize(times: dict[str, list[float]], pre: dict[str, list[float]],
              hook_s: dict[str, list[float]], notes: dict[str, str], npkgs: int,
              rounds: int) -> int:
    """Print the medians and the targets; 0 if every target is met."""
    med = {k: statistics.median(v) if v else float("nan") for k, v in times.items()}
    print(f"\n{npkgs} packages set up per install; medians over {rounds} rounds:")
    for k, label in (("A", "cold, no hooks"), ("H", "cold, hooks on"),
                     ("S", "warm, seeded by pkgcache"), ("B", "warm, debs pre-copied")):
        if not times[k]:
            continue
        print(f"  {k} {label:<26} {med[k]:6.2f} s  (min {min(times[k]):.2f}, "
              f"max {max(times[k]):.2f}; before dpkg {statistics.median(pre[k]):.2f} s; {notes[k]})")
    for what, vals in hook_s.items():
        if vals:
            print(f"  last {what} inside its hook: median {statistics.median(vals):.3f} s (n={len(vals)})")
    ha, sb = med["H"] / med["A"], med["S"] / med["B"]
    s_gets = downloaded_ok = "fetched 0," in notes.get("S", "")
    print(f"  H/A = {ha:.3f} (target <= 1.05)   S/B = {sb:.3f} (target <= 1.10)   "
          f"warm run downloaded no .deb: {s_gets}")
    return 0 if ha <= 1.05 and sb <= 1.10 and downloaded_ok and npkgs >= 30 else 1


def collect(rounds: int, work: Path) -> dict:
    """Scenarios A H S B N, `rounds` rounds, through one counting proxy."""
    version = acng.ensure_installed()
    base = prepare(work)
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
        root = Root(work, base, f"root-{scen}", cache_dir)
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
            wall, out = root.apt("install", *PKGS)
            time.sleep(0.2)  # let the relay threads account the last bytes
            rec[scen]["bytes"].append(proxy.total)
            rec[scen]["wall"].append(wall)
            rec[scen]["pre_dpkg"].append(root.pre_dpkg)
            rec[scen]["hook_seconds"].append(root.hook_seconds())
            gets, _need = downloaded(out)
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
    res = {"packages": npkgs, "package_set": PKGS, "suite": SUITE,
           "rounds": rounds, "apt_cacher_ng": version, "labels": names,
           "bytes_method": "bytes relayed by a counting proxy on 127.0.0.1 (headers included); "
                           "apt-cacher-ng's own upstream also goes through it",
           "scenarios": {k: {m: stats(v) for m, v in d.items()} for k, d in rec.items()}}
    return res

if __name__ == "__main__":
    sys.exit(main())
