"""``pkgcache remote pull --pip -r FILE | --apt PKG… | --git URL…``: pre-warm a cache from the
fleet (a golden image, a machine about to go offline), with a progress bar on a terminal.

- ``--pip``: the files a hash-locked requirements file names (``pipsha:`` records), else every
  file the fleet's signed listings hold for the named projects and their dependencies that the
  target interpreter can use (wheels, and wheels built for its fingerprint).
- ``--apt``: the .debs ``apt-get install --print-uris`` would download for the packages, by the
  SHA-256 of the signed Release chain (no record needed).
- ``--git``: a mirror per URL, seeded from the fleet's bundle and brought up to date from the
  origin when it is reachable.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, TextIO

from cache_core import warn

if TYPE_CHECKING:
    from cache_core import PackageCache


class Progress:
    """``[#####.....] 3/10 name`` on a terminal (stderr), nothing otherwise."""

    def __init__(self, total: int, stream: TextIO | None = None, width: int = 30) -> None:
        self.total, self.done, self.width = max(total, 0), 0, width
        self.stream = stream or sys.stderr
        try:
            self.on = self.stream.isatty()
        except (AttributeError, ValueError, OSError):
            self.on = False

    def step(self, label: str) -> None:
        """One item finished."""
        self.done += 1
        if not self.on:
            return
        fill = int(self.width * self.done / self.total) if self.total else self.width
        bar = "#" * fill + "." * (self.width - fill)
        self.stream.write(f"\r[{bar}] {self.done}/{self.total} {label[:40]:<40}")
        self.stream.flush()

    def close(self) -> None:
        """End the bar's line."""
        if self.on and self.done:
            self.stream.write("\n")
            self.stream.flush()


def _each(items: list[str], work: Callable[[str], bool]) -> tuple[int, list[str]]:
    """Run work on every item with a progress bar; (done, failed items)."""
    bar = Progress(len(items))
    failed: list[str] = []
    try:
        for item in items:
            if not work(item):
                failed.append(item)
            bar.step(item)
    finally:
        bar.close()
    return len(items) - len(failed), failed


# -- pip ---------------------------------------------------------------------------------------
def pull_pip(cache: PackageCache, req_files: list[str], python: str | None) -> tuple[int, list[str]]:
    """Take what the fleet holds for these requirements; (files taken, names not found)."""
    from hooks.pip import fleet
    from hooks.pip.store import WheelStore
    from hooks.pip.target import find_python, probe

    args: list[str] = []
    for f in req_files:
        args += ["-r", f]
    store = WheelStore(cache)
    target = probe(find_python(python), store.subdir("targets"))
    from hooks.pip.options import requirement_hashes

    hashes, names = requirement_hashes(args)
    if hashes:
        digests = list(dict.fromkeys(hashes))
        _, missing = _each(digests, lambda d: fleet.adopt_hashes(cache, store, target, [d]) > 0
                           or _held(cache, d))
        return len(digests) - len(missing), [f"sha256:{d}" for d in missing]
    taken = 0

    def one(name: str) -> bool:
        nonlocal taken
        n = fleet.adopt_projects(cache, store, target, [name])
        taken += n
        return n > 0 or bool(fleet.read_listing(cache, name))

    _, missing = _each(list(dict.fromkeys(names)), one)
    return taken, missing


def _held(cache: PackageCache, digest: str) -> bool:
    return any(e.digest == digest for p in ("wheel:", "sdist:") for e in cache.keys(p))


# -- apt ---------------------------------------------------------------------------------------
_URI = re.compile(r"^'([^']+)' (\S+) (\d+) ?(\S*)\s*$")


def apt_uris(packages: list[str], apt_options: Iterable[str] = ()) -> list[tuple[str, str, int]]:
    """(archive file name, sha256 or "", size) of what apt would download to install packages."""
    cmd = ["apt-get", "install", "--print-uris", "-qq", "--no-install-recommends",
           "-o", "Acquire::ForceHash=SHA256", *apt_options, "--", *packages]
    env = dict(os.environ, LC_ALL="C")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False,
                          stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        raise RuntimeError(lines[-1] if lines else "apt-get failed")
    out = []
    for line in proc.stdout.splitlines():
        m = _URI.match(line.strip())
        if m and m.group(2).endswith(".deb"):
            h = m.group(4)
            out.append((m.group(2), h[7:].lower() if h.startswith("SHA256:") else "",
                        int(m.group(3))))
    return out


def pull_apt(cache: PackageCache, packages: list[str], apt_options: Iterable[str] = ()
             ) -> tuple[int, list[str]]:
    """Take the .debs for packages from the fleet by their index SHA-256 and size (a store's
    body is read no further); (taken, missing)."""
    from hooks.apt.naming import KEY_PREFIX

    remote = cache.remote
    if remote is None:
        raise RuntimeError("no remote configured")
    wants = {name: (sha, size) for name, sha, size in apt_uris(packages, apt_options)}
    return _each(sorted(wants), lambda f: bool(wants[f][0]) and remote.get_object(
        wants[f][0], key=KEY_PREFIX + f, kind="deb", size=wants[f][1] or None) is not None)


# -- git ---------------------------------------------------------------------------------------
def pull_git(cache: PackageCache, urls: list[str]) -> tuple[int, list[str]]:
    """A mirror per URL: from the fleet's bundle, then the origin's difference when reachable."""
    from hooks.git.mirror import GitError, Mirrors

    mirrors = Mirrors(cache)

    def one(url: str) -> bool:
        try:
            with mirrors.locked(url):
                mirrors.ensure(url)
            return True
        except GitError as exc:
            warn(f"git: {exc}")
            return False

    return _each(urls, one)
