"""Throwaway Debian 12 roots built with mmdebstrap, and the .deb under test.

A root is a directory extracted from a tarball that mmdebstrap made from the Debian archive.
The tarball is kept under /var/tmp for a day so repeated local runs skip the ~30 s bootstrap;
CI starts from a fresh machine and builds it once. Commands run inside the root through
``unshare --mount --pid --fork --mount-proc chroot``: the /proc mount lives in a private mount
namespace and disappears with the command, so nothing is left mounted on the host.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import time
from pathlib import Path

from tests.support import REPO

TARBALL_DIR = Path("/var/tmp/pkgcache-test")
TARBALL_MAX_AGE = 24 * 3600
SUITE = "bookworm"
# pkgcache's run-time dependencies are part of the base root, so installing and purging the
# .deb must leave the root's file list exactly as it was.
INCLUDE = ("python3", "python3-apt", "python3-yaml", "python3-packaging", "python3-cryptography",
           "ca-certificates")
# A clean environment for everything run inside the root (no host pip/pyenv settings).
ROOT_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
    "DEBIAN_FRONTEND": "noninteractive",
}
HOST_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LANG": "C.UTF-8"}

# Paths that apt and dpkg rewrite on every run whatever is installed: left out of the
# before/after file-list comparison.
BOOKKEEPING = (
    "proc/", "tmp/", "run/", "dev/",
    "var/lib/apt/", "var/lib/dpkg/", "var/cache/apt/", "var/cache/debconf/",
    "var/cache/ldconfig/", "var/log/", "etc/ld.so.cache",
)


def cached_tarball(name: str, options: list[str]) -> Path:
    """TARBALL_DIR/<name>-<tag>.tar made by ``mmdebstrap OPTIONS SUITE`` or reused for a day;
    built once per machine even when several test processes (pytest-xdist) ask at once."""
    tag = hashlib.sha256(repr((SUITE, options)).encode()).hexdigest()[:12]
    tarball = TARBALL_DIR / f"{name}-{tag}.tar"
    TARBALL_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(TARBALL_DIR / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the others wait here and then reuse the tarball
        if tarball.exists() and time.time() - tarball.stat().st_mtime < TARBALL_MAX_AGE:
            return tarball
        tmp = tarball.with_suffix(".tmp.tar")
        subprocess.run(["mmdebstrap", "--quiet", "--mode=root", *options, SUITE, str(tmp)],
                       check=True, env=HOST_ENV, stdin=subprocess.DEVNULL)
        os.replace(tmp, tarball)
    return tarball


def base_tarball() -> Path:
    """A bookworm root tarball (variant apt + INCLUDE), built by mmdebstrap or reused."""
    return cached_tarball(SUITE, ["--variant=apt", "--include=" + ",".join(INCLUDE)])


class DebRoot:
    """A Debian root directory to run commands in."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def create(cls, path: Path) -> DebRoot:
        """Extract the base tarball into path (which must not exist yet)."""
        path.mkdir(mode=0o755)
        subprocess.run(["tar", "-C", str(path), "-xf", str(base_tarball())], check=True)
        shutil.copy("/etc/resolv.conf", path / "etc/resolv.conf")
        return cls(path)

    def run(self, script: str, *, check: bool = True,
            timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """Run a /bin/sh script as root inside the root; stdout+stderr together in .stdout."""
        cmd = ["unshare", "--mount", "--pid", "--fork", f"--mount-proc={self.path}/proc",
               "chroot", str(self.path), "/bin/sh", "-ec", script]
        proc = subprocess.run(cmd, env=ROOT_ENV, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"in root: {script!r} exited {proc.returncode}:\n{proc.stdout[-4000:]}")
        return proc

    def copy_in(self, src: Path, dest: str) -> str:
        """Copy a host file into the root; return its path as seen inside."""
        target = self.path / dest.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, target)
        return dest

    def file_list(self) -> set[str]:
        """Every path in the root (type-tagged), bookkeeping paths left out."""
        out: set[str] = set()
        for dirpath, dirnames, filenames in os.walk(self.path):
            rel_dir = os.path.relpath(dirpath, self.path)
            rel_dir = "" if rel_dir == "." else rel_dir + "/"
            if any(rel_dir.startswith(b) for b in BOOKKEEPING if b.endswith("/")):
                dirnames[:] = []
                continue
            for name in dirnames:
                rel = rel_dir + name + "/"
                if not any(rel == b for b in BOOKKEEPING):
                    out.add(rel)
            for name in filenames:
                rel = rel_dir + name
                if rel not in BOOKKEEPING:
                    out.add(rel)
        return out


def build_deb(outdir: Path) -> Path:
    """Build the pkgcache .deb from this checkout (scripts/build-deb.sh) into outdir."""
    proc = subprocess.run(["sh", str(REPO / "scripts/build-deb.sh"), str(outdir)], env=HOST_ENV,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"build-deb.sh failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    deb = Path(proc.stdout.strip().splitlines()[-1])
    assert deb.is_file(), deb
    return deb
