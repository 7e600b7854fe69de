"""Seed: put cached .debs into apt's archives dir, each verified against the SHA256 of the
current index record (apt itself only compares sizes, so this is the integrity gate).

Opening apt's cache costs 0.2-1.4 s, so the result of the index look-up is memoised in a seed
plan (`seedplan.json`) keyed by a fingerprint of apt's lists, sources and pinning: a hook run with
unchanged indexes never opens apt's cache. The plan decides which bytes may reach dpkg, so it
lives in a root-only local state dir (aptenv.trust_dir, /var/lib/pkgcache), never in the cache,
which anyone sharing it could edit.
"""

from __future__ import annotations

import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .aptenv import AptLockBusy, AptPaths, archives_lock, installed_names, read_trusted, write_trusted
from .naming import KEY_PREFIX, archive_name, is_safe_name, key_for, parse_archive_name

PLAN_FILE = "seedplan.json"


@dataclass(frozen=True)
class Want:
    """A deb apt would use, with what the index says about it."""

    fname: str
    sha256: str
    size: int


@dataclass
class SeedReport:
    """What one seed run did."""

    placed: int = 0
    present: int = 0
    bytes_placed: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    opened_index: bool = False
    planned_only: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"time": time.time(), "placed": self.placed, "present": self.present,
                "bytes": self.bytes_placed, "rejected": len(self.rejected),
                "missing": len(self.missing), "opened_index": self.opened_index,
                "planned_only": self.planned_only,
                "seconds": round(self.seconds, 3)}


def _digest_hex(digest: str) -> str:
    return digest.split(":", 1)[1] if digest.startswith("sha256:") else digest


class IndexView:
    """apt's package cache opened read-only through python-apt (no locks taken)."""

    def __init__(self, apt_pkg: Any) -> None:
        self.apt_pkg = apt_pkg
        self.cache = apt_pkg.Cache(None)  # None: no progress output
        self.depcache = apt_pkg.DepCache(self.cache)
        self.records = apt_pkg.PackageRecords(self.cache)
        self.native = apt_pkg.config.find("APT::Architecture")

    def _pkg(self, name: str, arch: str | None = None) -> Any:
        arch = self.native if arch in (None, "", "all") else arch
        try:
            return self.cache[(name, arch)]
        except KeyError:
            return None

    def record(self, ver: Any) -> Want | None:
        """The index SHA256 and size of a downloadable version, or None."""
        for pkgfile, idx in ver.file_list:
            if pkgfile.not_source:
                continue
            if not self.records.lookup((pkgfile, idx)):
                continue
            h = self.records.hashes.find("SHA256")
            if h is not None and h.hashvalue:
                name = archive_name(ver.parent_pkg.name, ver.ver_str, ver.arch)
                return Want(name, h.hashvalue.lower(), int(ver.size))
        return None

    def candidate(self, fname: str) -> Want | None:
        """The index record for fname if it is its package's current candidate."""
        parsed = parse_archive_name(fname)
        if parsed is None:
            return None
        name, version, arch = parsed
        pkg = self._pkg(name, arch)
        if pkg is None:
            return None
        cand = self.depcache.get_candidate_ver(pkg)
        if cand is None or cand.ver_str != version or cand.arch != arch:
            return None
        want = self.record(cand)
        return want if want is not None and want.fname == fname else None

    def find_version(self, name: str, version: str, arch: str) -> Want | None:
        """The index record for any downloadable name/version/arch (used by import)."""
        pkg = self._pkg(name, arch)
        if pkg is None:
            return None
        for ver in pkg.version_list:
            if ver.ver_str == version and ver.arch == arch:
                return self.record(ver)
        return None

    def install_plan(self, specs: list[str]) -> tuple[list[Want], list[str]]:
        """The debs `apt-get install SPECS` would need (deps resolved), and unknown specs."""
        unknown: list[str] = []
        with self.apt_pkg.ActionGroup(self.depcache):
            for spec in specs:
                name, _, version = spec.partition("=")
                name, _, arch = name.partition(":")
                pkg = self._pkg(name, arch or None)
                if pkg is None:
                    unknown.append(spec)
                    continue
                if version:
                    ver = next((v for v in pkg.version_list if v.ver_str == version), None)
                    if ver is None:
                        unknown.append(spec)
                        continue
                    self.depcache.set_candidate_ver(pkg, ver)
                self.depcache.mark_install(pkg, True, True)
        wants = []
        for pkg in self.cache.packages:
            if self.depcache.marked_install(pkg) or self.depcache.marked_upgrade(pkg) \
                    or self.depcache.marked_downgrade(pkg):
                ver = self.depcache.get_candidate_ver(pkg)
                want = self.record(ver) if ver is not None else None
                if want is not None:
                    wants.append(want)
        return wants, unknown


def _present(path: Path, size: int) -> bool:
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and st.st_size == size


def place(cache: Any, archives: Path, want: Want, *, verify_present: bool) -> tuple[str, str]:
    """Put one verified deb at archives/<fname> (temp + rename). Returns (result, reason)."""
    from cache_core import sha256_file

    if not is_safe_name(want.fname):
        return "rejected", "unsafe file name"
    dest = archives / want.fname
    if _present(dest, want.size):
        if not verify_present:
            return "present", ""
        try:
            if sha256_file(str(dest))[0] == want.sha256:
                return "present", ""
        except OSError:
            pass
    reason = "not cached"
    keys = []
    entry = cache.lookup(key_for(want.fname))
    if entry is not None:
        if _digest_hex(entry.digest) == want.sha256:
            keys.append(entry.key)
        else:
            reason = "cached copy differs from the index SHA256"
    keys.append("sha256:" + want.sha256)
    for key in keys:
        if cache.materialize_key(key, str(dest), mode="auto", sha256=want.sha256):
            return "placed", ""
    return ("rejected" if reason != "not cached" else "missing"), reason


_NO_DEBS = {"remove", "purge", "autoremove", "autopurge", "clean", "autoclean", "auto-clean",
            "check", "markauto", "unmarkauto", "update", "changelog", "source", "build-dep"}
_UPGRADES = {"upgrade", "dist-upgrade", "full-upgrade"}
_ARG_OPTS = {"-o", "-c", "-t", "-a", "--option", "--config-file", "--target-release",
             "--default-release", "--host-architecture", "--build-profiles", "-P"}


def apt_invocation(max_depth: int = 8) -> tuple[str, list[str]] | None:
    """(sub-command, its non-option arguments) of the apt/apt-get that runs this hook."""
    pid = os.getppid()
    try:
        for _ in range(max_depth):
            if pid <= 1:
                return None
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = [a.decode("utf-8", "replace") for a in f.read().split(b"\0") if a]
            if argv and os.path.basename(argv[0]) in ("apt-get", "apt"):
                words: list[str] = []
                args = iter(argv[1:])
                for a in args:
                    if a in _ARG_OPTS:
                        next(args, None)
                    elif a == "--":
                        words.extend(args)
                    elif not a.startswith("-"):
                        words.append(a)
                return (words[0], words[1:]) if words else None
            with open(f"/proc/{pid}/stat") as f:
                pid = int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def apt_command() -> str | None:
    """The sub-command (install, upgrade, remove, ...) of the apt running this hook."""
    inv = apt_invocation()
    return inv[0] if inv else None


def _exact_specs(cache: Any, paths: AptPaths) -> list[str] | None:
    """For `apt-get install NAMES` with a cache on another file system (every seed is a copy):
    the names, so only what they need is copied. None: seed every candidate (hardlinks are free)."""
    inv = apt_invocation()
    if not inv or inv[0] not in ("install", "reinstall") or not inv[1]:
        return None
    try:
        if _same_fs(cache, paths):
            return None
    except OSError:
        return None
    specs = []
    for word in inv[1]:
        if word.endswith((".deb", "-", "+")) or "/" in word or any(c in word for c in "*?[^$"):
            return None  # local files, removals, releases, patterns: keep the general plan
        specs.append(word)
    return specs


def _plan_all(cache: Any, paths: AptPaths, apt_pkg: Any, *, hook: bool, narrow: bool,
              rep: SeedReport) -> list[Want]:
    """Every cached deb that is a current candidate and not installed (memoised index look-ups).

    From the pre-install hook, apt's own sub-command narrows it: nothing for remove/purge/...,
    only newer versions of installed packages for upgrade/dist-upgrade."""
    command = apt_command() if narrow else None
    if command in _NO_DEBS:
        return []
    cached = {e.key[len(KEY_PREFIX):]: e for e in cache.keys(KEY_PREFIX)}
    cached = {f: e for f, e in cached.items() if is_safe_name(f)}
    installed = installed_names(paths.status)
    need = [f for f in sorted(cached) if f not in installed]
    if command in _UPGRADES:
        have = {f.split("_", 1)[0] for f in installed}
        need = [f for f in need if f.split("_", 1)[0] in have]
    if hook:  # apt's own (size) check will accept these; don't even open the index
        need = [f for f in need if not _present(paths.archives / f, cached[f].size)]
    if not need:
        return []
    fp = paths.index_fingerprint()
    plan = read_trusted(paths, PLAN_FILE)
    entries: dict[str, Any] = plan.get("entries", {}) if plan.get("fingerprint") == fp else {}
    if any(f not in entries for f in need):
        view = IndexView(apt_pkg)
        rep.opened_index = True
        for f in cached:
            if f not in entries:
                w = view.candidate(f)
                entries[f] = [w.sha256, w.size] if w else None
        try:
            write_trusted(paths, PLAN_FILE, {"fingerprint": fp, "entries": entries})
        except OSError:
            pass
    wants = []
    for f in need:
        e = entries.get(f)
        if isinstance(e, list) and len(e) == 2:
            wants.append(Want(f, str(e[0]), int(e[1])))
    return wants


def _cheap_need(cache: Any, paths: AptPaths) -> list[str]:
    """Cached debs that are not installed and not in archives (no index needed)."""
    installed = installed_names(paths.status)
    return [e.key[len(KEY_PREFIX):] for e in cache.keys(KEY_PREFIX)
            if e.key[len(KEY_PREFIX):] not in installed
            and not _present(paths.archives / e.key[len(KEY_PREFIX):], e.size)]


def _lock_holder_is_ancestor(archives: Path) -> bool:
    """True when apt's archives lock is held by one of our ancestors (we run inside its hook)."""
    try:
        ino = os.stat(archives / "lock").st_ino
        holders = set()
        with open("/proc/locks") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 6 and parts[1] in ("POSIX", "OFDLCK"):
                    if parts[5].rsplit(":", 1)[-1] == str(ino):
                        holders.add(int(parts[4]))
        pid = os.getppid()
        for _ in range(16):
            if pid in holders:
                return True
            if pid <= 1:
                return False
            with open(f"/proc/{pid}/stat") as f:
                pid = int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return False
    return False


def _same_fs(cache: Any, paths: AptPaths) -> bool:
    """Seeding here is a hard link (free), not a copy."""
    try:
        return os.stat(cache.root).st_dev == os.stat(paths.archives).st_dev
    except OSError:
        return False


def seed(cache: Any, specs: list[str] | None = None, *, hook: bool = False, narrow: bool = False,
         links_only: bool = False, lock_timeout: float = 60.0,
         apt_pkg: Any | None = None) -> SeedReport:
    """Seed archives with verified cached debs: all current candidates, or what SPECS need.

    hook: trust files already in place by size (apt does too); narrow: let the sub-command of
    the apt running this hook (install, upgrade, remove) narrow what is seeded; links_only: only
    refresh the plan when seeding would mean copying (cache on another file system)."""
    from .aptenv import apt_pkg_module

    t0 = time.monotonic()
    rep = SeedReport()
    apt_pkg = apt_pkg or apt_pkg_module()
    paths = AptPaths.load(apt_pkg)
    if not specs and narrow:
        specs = _exact_specs(cache, paths)
        if specs and not _cheap_need(cache, paths):
            specs = None  # nothing cached is missing: the general plan returns at once
    if specs:
        view = IndexView(apt_pkg)
        rep.opened_index = True
        wants, rep.unknown = view.install_plan(specs)
        if hook:  # only what is cached and not yet in place (by size, as apt checks)
            cached = {e.key[len(KEY_PREFIX):] for e in cache.keys(KEY_PREFIX)}
            wants = [w for w in wants if w.fname in cached
                     and not _present(paths.archives / w.fname, w.size)]
    else:
        wants = _plan_all(cache, paths, apt_pkg, hook=hook, narrow=narrow, rep=rep)
    if wants and links_only and not _same_fs(cache, paths):
        rep.planned_only = len(wants)  # copies would be wasted if something wipes archives next
        wants = []
    if wants:
        verify = not hook
        try:
            with archives_lock(paths.archives, 0):
                _place_all(cache, paths.archives, wants, rep, verify_present=verify)
        except AptLockBusy:
            if _lock_holder_is_ancestor(paths.archives):
                # We run inside a hook of the apt that holds the lock; it is not using archives
                # now, and waiting for it would deadlock.
                _place_all(cache, paths.archives, wants, rep, verify_present=verify)
            else:
                with archives_lock(paths.archives, lock_timeout):
                    _place_all(cache, paths.archives, wants, rep, verify_present=verify)
    rep.seconds = time.monotonic() - t0
    return rep


def _place_all(cache: Any, archives: Path, wants: list[Want], rep: SeedReport,
               *, verify_present: bool) -> None:
    for want in wants:
        result, reason = place(cache, archives, want, verify_present=verify_present)
        if result == "placed":
            rep.placed += 1
            rep.bytes_placed += want.size
        elif result == "present":
            rep.present += 1
        elif result == "missing":
            rep.missing.append(want.fname)
        else:
            rep.rejected.append((want.fname, reason))
