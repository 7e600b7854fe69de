#!/usr/bin/env python3
"""apt benchmark on real Debian packages (needs root, mmdebstrap and the Debian archive).

Not a test. Every run installs the same package set (>= 30 packages after dependencies) into a
fresh throwaway root made from one mmdebstrap tarball. The host's apt-get and dpkg drive the
root (APT_CONFIG with Dir::* pointing into it, dpkg --root, maintainer scripts chrooted by dpkg),
so pkgcache's hooks run on the host from this checkout. Scenarios, in a rotated order every
round (a Latin square: each takes each position once in 5 rounds):

  A  cold install, no hooks                           (baseline)
  H  cold install with pkgcache's hooks and download method (as the .deb installs them), empty
     cache (target H/A <= 1.05)
  S  warm re-provision: fresh root, hooks and method on, cache filled by an untimed install
     before the rounds, in the same root path (target S/B <= 1.10, 0 bytes of .debs
     downloaded); the state dir (stamps, memos) is the host's, kept across roots as on a server
     re-provisioned in place
  B  fresh root, the same debs copied into archives beforehand, no hooks (the limit)
  N  warm through apt-cacher-ng, primed by an untimed install before the rounds (the peer)
Roots without hooks have no pkgcache file (apt reads only the root's own apt.conf.d).

Usage (from the checkout):
    sudo .venv/bin/python -m bench.scenarios.apt_install [--rounds 5] [--workdir DIR] [--packages P]
        [--only A,H]
--only: those scenarios alone (A,H: the cold hooks' cost, no apt-cacher-ng and no priming).
Prints the table (medians, min/max, per-round ratios); exit 1 if a target is missed.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.lib import acng
from bench.lib.setup import REPO
from bench.lib.stats import latin, stats

PKGS = "nginx postgresql-15 python3 python3-venv git curl ca-certificates".split()
SUITE = "bookworm"
SNIPPET = REPO / "hooks" / "apt" / "data" / "05pkgcache"
METHOD_SNIPPET = REPO / "hooks" / "apt" / "data" / "05pkgcache-method"


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
        # as the .deb's /usr/bin/pkgcache runs it: the system's Python, -I, the code first
        boot = f"import sys; sys.path.insert(0, {str(REPO)!r}); from hooks.cli import main; " \
               "sys.exit(main())"
        self.wrapper.write_text(
            f'#!/bin/sh\nt0=$(date +%s.%N)\n'
            f'/usr/bin/python3 -I -c "{boot}" "$@"\nrc=$?\n'
            f'echo "$t0 $(date +%s.%N) $*" >> "{self.hook_log}"\nexit $rc\n')
        self.wrapper.chmod(0o755)
        # the method: the .deb's debian/methods/http, on this checkout
        self.methods = work / f"{name}.methods"
        self.methods.mkdir(exist_ok=True)
        text = (REPO / "debian" / "methods" / "http").read_text().replace(
            "/usr/share/pkgcache", str(REPO))
        for scheme in ("http", "https"):
            m = self.methods / scheme
            m.write_text(text)
            m.chmod(0o755)
        # the hooks and the method find the cache as on a server: the config names it
        config = work / f"{name}.pkgcache.yaml"
        config.write_text(f"performance:\n  cache:\n    enabled: true\n"
                          f"    directory: {cache_dir}\n")
        self.env = dict(os.environ, APT_CONFIG=str(self.conf), DEBIAN_FRONTEND="noninteractive",
                        LC_ALL="C", PKGCACHE_CONFIG=str(config),
                        PKGCACHE_STATE_DIR=str(work / "state"))

    @property
    def archives(self) -> Path:
        """The root's apt archives directory."""
        return self.dir / "var/cache/apt/archives"

    def hooks_on(self) -> None:
        """Install pkgcache's apt snippets (this checkout's hooks and method, as the .deb does)
        into the root."""
        text = SNIPPET.read_text().replace("/usr/bin/pkgcache", str(self.wrapper))
        (self.dir / "etc/apt/apt.conf.d/05pkgcache").write_text(text)
        text = METHOD_SNIPPET.read_text().replace("/usr/lib/pkgcache/methods", str(self.methods))
        (self.dir / "etc/apt/apt.conf.d/05pkgcache-method").write_text(text)

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
        shutil.rmtree(self.methods, ignore_errors=True)


def downloaded(out: str) -> tuple[int, str]:
    """(.debs apt fetched, apt's 'Need to get' figure) from its output."""
    gets = len(re.findall(r"^Get:\d+ .*\.deb|^Get:\d+ \S+ \S+ \S+ \S+ \S+ \S+ \[", out, re.M))
    need = re.search(r"^Need to get (\S+ \S+?)(/| of)", out, re.M)
    return gets, need.group(1) if need else "?"


def prepare(work: Path, base: Path | None = None) -> Path:
    """work with an enabled pkgcache config; the base tarball (default: the mmdebstrap one in
    work, made once)."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "pkgcache.yaml").write_text("performance:\n  cache:\n    enabled: true\n")
    if base is not None:
        return base
    base = work / "base.tar"
    if not base.exists():
        print(f"mmdebstrap --variant=apt {SUITE} -> {base}", flush=True)
        sh("mmdebstrap", "--variant=apt", SUITE, str(base))
    return base


def main() -> int:
    """Run the rounds (bench/run.py's apt part) and print the table; exit 1 if a target is missed."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--packages", default=" ".join(PKGS), help="the package set (space-separated)")
    ap.add_argument("--only", default=",".join(ORDER),
                    help="the scenarios to run, comma-separated (default: all)")
    args = ap.parse_args()
    only = [x.strip().upper() for x in args.only.split(",") if x.strip()]
    if not only or any(x not in ORDER for x in only):
        print(f"--only: scenarios are {','.join(ORDER)}", file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("needs root (mount, chrooted maintainer scripts)", file=sys.stderr)
        return 2
    from bench.lib.report import print_table, targets

    work = Path(args.workdir or tempfile.mkdtemp(prefix="pkgcache-apt-bench-", dir="/var/tmp"))
    res: dict = {"apt": collect(args.rounds, work, args.packages.split(), only=only)}
    res["targets"] = targets(res)
    print()
    print_table(res)
    return 0 if all(t["met"] for t in res["targets"]) else 1


ORDER = ("A", "H", "S", "B", "N")
LABELS = {"A": "cold, no hooks", "H": "cold, pkgcache hooks", "S": "warm, seeded by pkgcache",
          "B": "debs already in archives", "N": "warm, through apt-cacher-ng",
          "P": "apt-cacher-ng priming (cold, untimed)", "F": "pkgcache priming (cold, untimed)"}


def collect(rounds: int, work: Path, pkgs: list[str] | None = None,
            base: Path | None = None, only: list[str] | None = None) -> dict:
    """Scenarios A H S B N (or those in only), `rounds` rounds in rotated order (a Latin
    square), through one counting proxy. Before the rounds, untimed: P primes apt-cacher-ng (N's
    server; B's debs are P's archives) and F fills pkgcache's cache (S's); H starts from an empty
    cache every round. A failed run is recorded (None in its round, the error in "errors") and
    the rounds go on."""
    pkgs = list(pkgs or PKGS)
    scens = _scenarios(only)
    base = prepare(work, base)
    proxy = acng.CountingProxy()
    version, cacher = _start_acng(work, proxy, any(s in scens for s in "BN"))
    debs = work / "debs"
    warm_cache = work / "cache-warm"
    rec: dict[str, dict[str, list]] = {
        k: {"wall": [], "pre_dpkg": [], "bytes": [], "update_bytes": [], "debs_fetched": [],
            "hook_seconds": []}
        for k in LABELS}
    errors: list[str] = []
    orders: list[str] = []
    npkgs = 0

    def one(scen: str, cache_dir: Path) -> None:
        try:
            got = install(scen, cache_dir)
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - recorded, the rounds go on
            errors.append(f"{scen}: {str(exc).strip()[-600:]}")
            print(f"  apt {scen} FAILED: {str(exc).strip()[-300:]}", flush=True)
            got = dict.fromkeys(rec[scen])
        for m, v in got.items():
            rec[scen][m].append(v)
        if got["wall"] is not None:
            print(f"  apt {scen} {LABELS[scen]:<30} {got['wall']:6.2f} s  before dpkg "
                  f"{got['pre_dpkg']:5.2f} s  upstream {got['bytes'] / 1e6:7.2f} MB  debs fetched "
                  f"{got['debs_fetched']}  hooks {got['hook_seconds']:.3f} s", flush=True)

    def install(scen: str, cache_dir: Path) -> dict:
        nonlocal npkgs
        # F primes S's cache in S's own root path: the server S re-provisions, as in place
        root = Root(work, base, f"root-{'S' if scen == 'F' else scen}", cache_dir)
        try:
            via = cacher.url if scen in "NP" and cacher is not None else proxy.url
            with open(root.conf, "a") as f:
                f.write(f'Acquire::http::Proxy "{via}";\n')
            # anything the hooks fetch themselves is counted too
            root.env.update(http_proxy=proxy.url, https_proxy=proxy.url,
                            HTTP_PROXY=proxy.url, HTTPS_PROXY=proxy.url)
            if scen in "HSF":
                root.hooks_on()
            proxy.reset()
            root.apt("update")
            update_bytes = proxy.total
            root.hook_seconds()  # forget the post-update hook
            if scen == "B":
                if not any(debs.glob("*.deb")):
                    raise RuntimeError("no debs from the priming run P to put into archives")
                for f in debs.glob("*.deb"):
                    shutil.copy(f, root.archives / f.name)
            subprocess.run(["sync"])
            proxy.reset()
            wall, out = root.apt("install", *pkgs)
            time.sleep(0.2)  # let the relay threads account the last bytes
            gets, _need = downloaded(out)
            npkgs = max(npkgs, len(re.findall(r"^Setting up ", out, re.M)))
            if scen == "P":
                shutil.rmtree(debs, ignore_errors=True)
                debs.mkdir()
                for f in root.archives.glob("*.deb"):
                    shutil.copy(f, debs / f.name)
            return {"wall": wall, "pre_dpkg": root.pre_dpkg, "bytes": proxy.total,
                    "update_bytes": update_bytes, "debs_fetched": gets,
                    "hook_seconds": root.hook_seconds()}
        finally:
            root.close()

    try:
        _prime(cacher, "S" in scens, lambda scen, cache: one(scen, cache), work, warm_cache)
        for rnd in range(rounds):
            order = latin(scens, rnd)
            orders.append("".join(order))
            print(f"apt round {rnd + 1}/{rounds}: order {''.join(order)}", flush=True)
            cache_dir = work / f"cache-{rnd}"
            shutil.rmtree(cache_dir, ignore_errors=True)
            for scen in order:
                one(scen, warm_cache if scen == "S" else cache_dir)
    finally:
        if cacher is not None:
            cacher.stop()
        proxy.close()
    return {"packages": npkgs, "package_set": pkgs, "suite": SUITE,
            "rounds": rounds, "orders": orders, "apt_cacher_ng": version, "labels": LABELS,
            "errors": errors,
            "bytes_method": "bytes relayed by a counting proxy on 127.0.0.1 (headers included); "
                            "apt-cacher-ng's own upstream also goes through it",
            "per_round": {k: d["wall"] for k, d in rec.items() if k in scens},
            "per_round_pre_dpkg": {k: d["pre_dpkg"] for k, d in rec.items() if k in scens},
            "scenarios": {k: {m: stats(v) for m, v in d.items()} for k, d in rec.items()
                          if d["wall"]}}


def _scenarios(only: list[str] | None) -> tuple[str, ...]:
    """The scenarios to run, in ORDER (all when only is None); ValueError if none."""
    scens = tuple(s for s in ORDER if only is None or s in only)
    if not scens:
        raise ValueError(f"no scenario to run (only: {only}; scenarios are {ORDER})")
    return scens


def _start_acng(work: Path, proxy: acng.CountingProxy, needed: bool
                ) -> tuple[str | None, acng.Acng | None]:
    """apt-cacher-ng (installed if missing) started behind the counting proxy, if a scenario
    needs it (N, or B's debs from its priming run): (its version, it)."""
    if not needed:
        return None, None
    version = acng.ensure_installed()
    cacher = acng.Acng(work, upstream_proxy=proxy.url)
    cacher.start()
    return version, cacher


def _prime(cacher: acng.Acng | None, warm: bool, one: Callable[[str, Path], None], work: Path,
           warm_cache: Path) -> None:
    """The untimed installs before the rounds: P primes apt-cacher-ng (when a scenario needs
    it), F fills pkgcache's warm cache (when S runs)."""
    shutil.rmtree(warm_cache, ignore_errors=True)
    if cacher is not None:
        cacher.clear_cache()
        print("apt: priming apt-cacher-ng (P) with one install", flush=True)
        one("P", work / "cache-unused")
    if warm:
        print("apt: priming pkgcache (F) with one install", flush=True)
        one("F", warm_cache)


if __name__ == "__main__":
    sys.exit(main())
