"""Throwaway Debian 12 roots built with mmdebstrap, and the .deb under test.

A root is a directory extracted from a tarball that mmdebstrap made from the Debian archive.
The tarball is kept under /var/tmp for a day so repeated local runs skip the ~30 s bootstrap;
CI starts from a fresh machine and builds it once. Commands run inside the root through
``unshare --mount --pid --fork --mount-proc chroot``: the /proc mount lives in a private mount
namespace and disappears with the command, so nothing is left mounted on the host.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import signal
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
        self.init: subprocess.Popen[bytes] | None = None
        self.init_pid = 0  # pid 1 of the booted root's pid namespace (see boot)

    @classmethod
    def create(cls, path: Path, tarball: Path | None = None) -> DebRoot:
        """Extract the base tarball (or another) into path (which must not exist yet)."""
        path.mkdir(mode=0o755)
        subprocess.run(["tar", "-C", str(path), "-xf", str(tarball or base_tarball())], check=True)
        shutil.copy("/etc/resolv.conf", path / "etc/resolv.conf")
        return cls(path)

    def boot(self, netns: str | None = None) -> None:
        """Make the root a running machine: a pid-1 process in its own pid and mount namespaces
        (and network namespace netns), which every later ``run`` joins, so that processes a
        command leaves running (pkgcache's detached uploader) outlive it, as on a server."""
        net = ["ip", "netns", "exec", netns] if netns else []
        self.init = subprocess.Popen(
            [*net, "unshare", "--mount", "--pid", "--fork", f"--mount-proc={self.path}/proc",
             "chroot", str(self.path), "sleep", "infinity"],
            env=ROOT_ENV, stdin=subprocess.DEVNULL, start_new_session=True)
        children = Path(f"/proc/{self.init.pid}/task/{self.init.pid}/children")
        for _ in range(200):
            pids = children.read_text().split() if children.exists() else []
            if pids:
                self.init_pid = int(pids[0])
                return
            time.sleep(0.02)
        raise RuntimeError(f"{self.path}: init did not start")

    def halt(self) -> None:
        """End the booted root's pid 1 (and with it every process in the root)."""
        if self.init is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.init_pid, signal.SIGKILL)
        try:
            self.init.wait(10)
        except subprocess.TimeoutExpired:
            self.init.kill()
            self.init.wait()
        self.init = None

    def run(self, script: str, *, check: bool = True,
            timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """Run a /bin/sh script as root inside the root; stdout+stderr together in .stdout."""
        if self.init is not None:
            cmd = ["nsenter", "-t", str(self.init_pid), "-m", "-p", "-n", "-r", "-w",
                   "/bin/sh", "-ec", script]
        else:
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
