"""Seed: put cached .debs into apt's archives dir, each verified against the SHA256 of the
current index record (apt itself only compares sizes, so this is the integrity gate).

What an install needs is apt's own answer: the request of the apt running the pre-install hook
(or `pkgcache apt seed SPECS`) is replayed with `--print-uris` into an empty archives dir, which
lists every deb with its index SHA256. The general plan (every cached candidate, used after
`apt-get update`) memoises its index look-ups in a seed plan keyed by a fingerprint of apt's
lists, sources and pinning. Every deb pkgcache placed is remembered by stat stamp
(`placed.json`) and removed once it no longer matches the current index record.

Both memos decide which bytes may reach dpkg, so they live in a root-only local state dir
(cache_core.memo_path: /var/lib/pkgcache), never in the cache, which anyone sharing it could edit.
"""

from __future__ import annotations

import os
import re
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .aptenv import (
    AptLockBusy,
    AptPaths,
    archives_lock,
    installed_names,
    read_trusted,
    source_uris,
    trusted_file,
    write_trusted,
)
from .fastseed import NO_DEBS, lock_holder_is_ancestor
from .naming import KEY_PREFIX, archive_name, is_safe_name, key_for, parse_archive_name

if TYPE_CHECKING:
    from cache_core import PackageCache

PLAN_FILE = "seedplan.json"
PLACED_FILE = "apt-seed-placed"  # fastseed.load_placed's format
LEGACY_PLACED = "placed.json"  # pkgcache <= 0.2's record: read until the first save
MAX_CONFIG_BYTES = 16 << 20


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
    removed: list[str] = field(default_factory=list)
    opened_index: bool = False
    followed_request: bool = False
    in_process: bool = False  # the request's debs came from the depcache here, not a replay
    remembered: bool = False  # ... from the answer to the same request_key (no cache opened)
    planned_only: int = 0
    from_remote: int = 0
    bytes_remote: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """The report as recorded in the apt state (and printed by --json)."""
        return {"time": time.time(), "placed": self.placed, "present": self.present,
                "bytes": self.bytes_placed, "rejected": len(self.rejected),
                "missing": len(self.missing), "removed": len(self.removed),
                "opened_index": self.opened_index, "followed_request": self.followed_request,
                "in_process": self.in_process, "remembered": self.remembered,
                "planned_only": self.planned_only, "from_remote": self.from_remote,
                "bytes_remote": self.bytes_remote,
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

    def package(self, name: str, arch: str | None = None) -> Any:
        """The package name:arch (native arch by default), or None."""
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
        pkg = self.package(name, arch)
        if pkg is None:
            return None
        cand = self.depcache.get_candidate_ver(pkg)
        if cand is None or cand.ver_str != version or cand.arch != arch:
            return None
        want = self.record(cand)
        return want if want is not None and want.fname == fname else None

    def find_version(self, name: str, version: str, arch: str) -> Want | None:
        """The index record for any downloadable name/version/arch (used by import)."""
        pkg = self.package(name, arch)
        if pkg is None:
            return None
        for ver in pkg.version_list:
            if ver.ver_str == version and ver.arch == arch:
                return self.record(ver)
        return None


def _present(path: Path, size: int) -> bool:
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and st.st_size == size


def place(cache: PackageCache, archives: Path, want: Want, *, verify_present: bool) -> tuple[str, str]:
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
        # a copy: a hard link would move the object's ctime whenever apt's copy goes (apt
        # clean, a new root), and the next run would hash it again instead of trusting its stamp
        if cache.materialize_key(key, str(dest), mode="copy", sha256=want.sha256):
            return "placed", ""
    return ("rejected" if reason != "not cached" else "missing"), reason


_NO_DEBS = NO_DEBS
_UPGRADES = {"upgrade", "dist-upgrade", "full-upgrade"}
REPLAY_TIMEOUT = 45.0


# -- what this apt request needs, in apt's own words ---------------------------------------------
def replay_uris(binary: str, args: list[str], cwd: str | None = None,
                timeout: float = REPLAY_TIMEOUT) -> tuple[list[Want] | None, list[str]]:
    """What `BINARY ARGS` would fetch into an empty archives dir: apt's own answer, from
    `--print-uris` (no locks taken, nothing changed) with SHA256 forced.

    Returns (wants, apt's `E:` lines); wants is None if apt refused the request."""
    import subprocess
    import tempfile

    from .invocation import REPLAY_ENV

    with tempfile.TemporaryDirectory(prefix="pkgcache-uris-") as empty:
        os.mkdir(os.path.join(empty, "partial"))
        quiet = os.path.join(empty, "no-hooks.conf")  # no install hook (ours or others') runs
        with open(quiet, "w") as f:
            f.write("#clear APT::Install::Pre-Invoke;\n#clear APT::Install::Post-Invoke-Success;\n")
        cmd = [binary, "-c", quiet, "--print-uris", "-qq", "-o", "Acquire::ForceHash=SHA256",
               "-o", f"Dir::Cache::archives={empty}/", *args]
        env = dict(os.environ, LC_ALL="C")
        env[REPLAY_ENV] = "1"  # its own hooks stand aside (and it is a --print-uris run anyway)
        try:
            res = subprocess.run(cmd, cwd=cwd or "/", env=env, stdin=subprocess.DEVNULL,
                                 capture_output=True, text=True, timeout=timeout,
                                 errors="surrogateescape")
        except (OSError, subprocess.TimeoutExpired) as exc:
            return None, [f"E: {binary}: {exc}"]
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("E: ")]
    if res.returncode != 0:
        return None, errors or [f"E: {os.path.basename(binary)} exited {res.returncode}"]
    wants = []
    for line in res.stdout.splitlines():
        parts = line.rsplit(" ", 3)  # 'URI' archive-name size SHA256:hex
        if len(parts) != 4 or not parts[0].startswith("'"):
            continue
        _uri, fname, size, digest = parts
        if digest.startswith("SHA256:") and size.isdigit() and is_safe_name(fname):
            wants.append(Want(fname, digest[7:].lower(), int(size)))
    return wants, errors


# -- the same answer in-process, for the plain forms (no second apt-get, no second cache build) -----
# apt-get options that change nothing about which debs an install fetches; -o/-c are applied to
# apt_pkg's configuration before the cache opens (invocation.apply_config), as apt-get reads them.
_INPROC_FLAGS = {"-y", "--yes", "--assume-yes", "-q", "--quiet", "-V", "--verbose-versions",
                 "-d", "--download-only", "--no-install-recommends", "--install-recommends",
                 "--no-install-suggests", "--install-suggests", "--reinstall", "-o", "--option",
                 "-c", "--config-file", "--purge", "--auto-remove", "--autoremove"}
_INPROC_FLAG_CONFIG = {"--no-install-recommends": ("APT::Install-Recommends", "false"),
                       "--install-recommends": ("APT::Install-Recommends", "true"),
                       "--no-install-suggests": ("APT::Install-Suggests", "false"),
                       "--install-suggests": ("APT::Install-Suggests", "true")}
# apt-get's own switches (not the depcache's): set, they change what apt-get asks for.
_INPROC_UNSAFE_KEYS = ("APT::Get::Upgrade-Allow-New", "APT::Get::Only-Upgrade",
                       "APT::Get::Fix-Broken", "APT::Get::Fix-Policy-Broken", "APT::Get::No-Upgrade",
                       "APT::Get::Upgrade", "APT::Get::Show-Upgraded-Only", "APT::Get::List-Cleanup-Only")
_PLAIN_NAME = re.compile(r"[a-z0-9][a-z0-9.+-]*[a-z0-9.]\Z")


def request_in_process(inv: Any, apt_pkg: Any) -> list[Want] | None:
    """What `inv` would fetch, from python-apt's depcache in this process (apt's own resolver:
    MarkInstall with auto-install, APT::Upgrade for upgrades), for apt-get `install`/`reinstall`
    of plain package names and argument-less `upgrade`/`dist-upgrade`/`full-upgrade`, with only
    options that change no download. None: anything else (apt's answer is then replayed).

    apply_config(inv) must have run (the -o/-c options). Only a hint: apt still checks every
    deb against its index, and a deb this misses is fetched as without pkgcache."""
    reinstall = _in_process_form(inv, apt_pkg)
    if reinstall is None:
        return None
    view = IndexView(apt_pkg)
    dep = view.depcache
    if dep.broken_count:
        return None  # a broken system: apt-get's fix-up is its own
    with apt_pkg.ActionGroup(dep):
        again = _mark(view, inv.command, inv.words[1:], reinstall)
    if again is None:
        return None
    if dep.broken_count or (dep.del_count and inv.command not in _UPGRADES):
        return None  # apt-get's problem resolver would run: its answer, replayed
    starts = [view.package(n) for n in inv.words[1:]] if inv.command not in _UPGRADES else []
    wants = []
    for pkg in _changed(view, starts, again):
        ver = dep.get_candidate_ver(pkg)
        want = view.record(ver) if ver is not None else None
        if want is None:
            return None  # not downloadable (a local-only version): apt-get's error, replayed
        wants.append(want)
    return sorted(wants, key=lambda w: w.fname)


def _changed(view: IndexView, starts: list[Any], again: set[int]) -> list[Any]:
    """The packages the marks install, upgrade, downgrade or reinstall. From the requested
    packages along every dependency (apt only marks what a marked package's dependencies
    reach: depends, recommends, provides, and upgrades for breaks/conflicts) when that finds
    apt's own count of them; else every package in the cache."""
    dep = view.depcache

    def moving(pkg: Any) -> bool:
        return not dep.marked_keep(pkg) and not dep.marked_delete(pkg)

    asked = {p.id for p in starts}
    found: dict[int, Any] = {}
    todo = list(starts)
    seen: set[int] = set()
    while todo:
        pkg = todo.pop()
        if pkg.id in seen:
            continue
        seen.add(pkg.id)
        if not (moving(pkg) or pkg.id in again or pkg.id in asked):
            continue
        found[pkg.id] = pkg
        ver = dep.get_candidate_ver(pkg)
        for groups in (ver.depends_list.values() if ver is not None else ()):
            for group in groups:
                for d in group:
                    todo.extend(t.parent_pkg for t in d.all_targets())
    changed = [p for p in found.values() if moving(p) or p.id in again]
    if starts and sum(1 for p in changed if moving(p)) == dep.inst_count:
        return changed
    return [p for p in view.cache.packages if moving(p) or p.id in again]


def _in_process_form(inv: Any, apt_pkg: Any) -> bool | None:
    """None unless inv is a form request_in_process answers; else whether it reinstalls. Sets
    the configuration its install flags stand for (--no-install-recommends, ...)."""
    if os.path.basename(inv.exe) != "apt-get" or inv.command is None:
        return None  # `apt` has its own defaults (Upgrade-Allow-New, ...): replayed
    names = inv.words[1:]
    if inv.command in _UPGRADES:
        if names:
            return None
    elif inv.command not in ("install", "reinstall") or not names:
        return None
    if not all(_PLAIN_NAME.match(n) for n in names):
        return None  # =version, /release, globs, ./local.deb, name- / name+ actions: replayed
    if any(opt not in _INPROC_FLAGS for opt, _ in inv.options):
        return None  # -t, -a, -P, --allow-downgrades, ...: replayed
    cfg = apt_pkg.config
    for opt, _ in inv.options:
        if opt in _INPROC_FLAG_CONFIG:
            cfg.set(*_INPROC_FLAG_CONFIG[opt])
    if any(cfg.find_b(k, False) for k in _INPROC_UNSAFE_KEYS):
        return None
    return (inv.command == "reinstall" or any(o == "--reinstall" for o, _ in inv.options)
            or cfg.find_b("APT::Get::ReInstall", False))


def _mark(view: IndexView, command: str, names: list[str], reinstall: bool) -> set[int] | None:
    """apt-get's marks for the command (inside an ActionGroup): the ids of the packages set to
    be reinstalled, or None if not answerable here."""
    dep = view.depcache
    if command in _UPGRADES:
        return set() if dep.upgrade(command != "upgrade") else None
    pkgs = [view.package(name) for name in names]
    if any(pkg is None or dep.get_candidate_ver(pkg) is None for pkg in pkgs):
        return None  # virtual, foreign-only, unknown: apt decides (and says)
    again = {p.id for p in pkgs if reinstall and p.current_ver is not None}
    if any(p.current_ver.id != dep.get_candidate_ver(p).id for p in pkgs if p.id in again):
        return None  # --reinstall of an upgradable package
    for pkg in pkgs:  # apt-get: every name first, then their dependencies
        if pkg.id in again:
            dep.set_reinstall(pkg, True)
        else:
            dep.mark_install(pkg, False, True)
    for pkg in pkgs:
        if pkg.id not in again:
            dep.mark_install(pkg, True, True)
    return again


# -- debs pkgcache placed: remembered by stat stamp, re-checked before apt uses them --------------
def _stamp(st: os.stat_result) -> list[int]:
    from .fastseed import stamp_of

    return stamp_of(st)


def load_placed(paths: AptPaths) -> dict[str, list[Any]]:
    """fname -> [sha256, ino, size, mtime_ns] of each deb pkgcache put into archives (the
    record of an older pkgcache, LEGACY_PLACED, until this one writes its own)."""
    from .fastseed import load_placed as load

    path = trusted_file(paths, PLACED_FILE)
    if path is not None and not path.exists():
        data = read_trusted(paths, LEGACY_PLACED).get("debs", {})
        return {k: v for k, v in data.items() if isinstance(v, list) and len(v) == 4}
    return load(str(path) if path else None)


def save_placed(paths: AptPaths, placed: dict[str, list[Any]]) -> None:
    """Remember which debs seeding placed (best effort)."""
    from .fastseed import save_placed as save

    path = trusted_file(paths, PLACED_FILE)
    save(str(path) if path else None, placed)


def _matches(cache: PackageCache, path: Path, want: Want, placed: dict[str, list[Any]]) -> bool:
    """Is the file at path exactly the index's deb? Cheap when pkgcache placed it (stat stamp)
    or it is a hard link of the verified object; otherwise hashed."""
    from cache_core import sha256_file

    try:
        st = os.lstat(path)
    except OSError:
        return False
    if not stat.S_ISREG(st.st_mode) or st.st_size != want.size:
        return False
    rec = placed.get(want.fname)
    if rec is not None and rec[1:] == _stamp(st):
        return rec[0] == want.sha256
    if cache.same_object(f"sha256:{want.sha256}", str(path)):
        return True  # a hard link of the verified object (else, or in doubt: hash it)
    try:
        return sha256_file(str(path), follow=False)[0] == want.sha256
    except OSError:
        return False


def drop_stale(cache: PackageCache, archives: Path, wants: list[Want], placed: dict[str, list[Any]],
               rep: SeedReport) -> None:
    """Remove each deb of this install that sits in archives with bytes other than the index's
    (apt would take it by size): apt then downloads, or pkgcache places, the right one."""
    for want in wants:
        path = archives / want.fname
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode) or st.st_size != want.size:
            continue  # apt itself drops a wrong-size file; place() replaces a symlink
        if not _matches(cache, path, want, placed):
            _unlink(path, rep, placed)


def check_placed(archives: Path, placed: dict[str, list[Any]], entries: dict[str, Any],
                 rep: SeedReport) -> None:
    """Every deb pkgcache placed that no longer matches the current index record goes."""
    for fname, rec in list(placed.items()):
        path = archives / fname
        try:
            st = os.lstat(path)
        except OSError:
            placed.pop(fname, None)
            continue
        if not stat.S_ISREG(st.st_mode) or rec[1:] != _stamp(st):
            placed.pop(fname, None)  # replaced since (apt downloaded it): not ours any more
            continue
        if fname not in entries:
            continue
        e = entries[fname]
        if not (isinstance(e, list) and e and e[0] == rec[0]):
            _unlink(path, rep, placed)


def _unlink(path: Path, rep: SeedReport, placed: dict[str, list[Any]]) -> None:
    try:
        os.unlink(path)
        rep.removed.append(path.name)
    except FileNotFoundError:
        pass
    placed.pop(path.name, None)


# -- the general plan: every cached candidate (memoised index look-ups) ---------------------------
def plan_entries(cache: PackageCache, paths: AptPaths, apt_pkg: Any, names: list[str], rep: SeedReport,
                 *, open_index: bool = True) -> dict[str, Any]:
    """fname -> [sha256, size] if fname is its package's current candidate, else None; for the
    given names, memoised by the index fingerprint. open_index=False: only what the memo has."""
    fp = paths.index_fingerprint()
    plan = read_trusted(paths, PLAN_FILE)
    entries: dict[str, Any] = plan.get("entries", {}) if plan.get("fingerprint") == fp else {}
    todo = [f for f in names if f not in entries and is_safe_name(f)]
    if todo and open_index:
        view = IndexView(apt_pkg)
        rep.opened_index = True
        for f in todo:
            w = view.candidate(f)
            entries[f] = [w.sha256, w.size] if w else None
        try:
            write_trusted(paths, PLAN_FILE, {"fingerprint": fp, "entries": entries})
        except OSError:
            pass
    return entries


def _plan_all(cache: PackageCache, paths: AptPaths, apt_pkg: Any, *, hook: bool, command: str | None,
              placed: dict[str, list[Any]], rep: SeedReport) -> list[Want]:
    """Every cached deb that is a current candidate and not installed; placed debs that no longer
    match the index are removed on the way. command (apt's sub-command) narrows it: nothing for
    remove/purge/..., only newer versions of installed packages for upgrade/dist-upgrade."""
    cached = {e.key[len(KEY_PREFIX):]: e for e in cache.keys(KEY_PREFIX)}
    cached = {f: e for f, e in cached.items() if is_safe_name(f)}
    installed = installed_names(paths.status)
    need = [f for f in sorted(cached) if f not in installed]
    if command in _UPGRADES:
        have = {f.split("_", 1)[0] for f in installed}
        need = [f for f in need if f.split("_", 1)[0] in have]
    if command in _NO_DEBS:
        need = []
    if hook:  # apt's own (size) check will accept these; don't even open the index
        need = [f for f in need if not _present(paths.archives / f, cached[f].size)]
    if not need and not placed:
        return []
    entries = plan_entries(cache, paths, apt_pkg, sorted(set(cached) | set(placed)), rep)
    check_placed(paths.archives, placed, entries, rep)
    wants = []
    for f in need:
        e = entries.get(f)
        if isinstance(e, list) and len(e) == 2:
            wants.append(Want(f, str(e[0]), int(e[1])))
    return wants


def _follow_request(cache: PackageCache, specs: list[str] | None, narrow: bool, inv: Any,
                    apt_pkg: Any, paths: AptPaths, placed: dict[str, list[Any]], rep: SeedReport,
                    target_release: str | None) -> tuple[list[Want] | None, list[Want]]:
    """(what to place, or None for the general plan; the request's whole answer) for specs or,
    narrow, the request of the apt running this hook (seed)."""
    request: tuple[str, list[str], str | None] | None = None
    if specs:
        bad = [s for s in specs if s.startswith("-")]
        if bad:
            raise ValueError(f"{bad[0]}: not a package (options go before the names)")
        args = ["install", *(["-t", target_release] if target_release else []), *specs]
        request = ("apt-get", args, os.getcwd())
    if narrow and not specs:
        if inv is not None and inv.command in _NO_DEBS:
            return [], []
        if inv is not None and inv.command:
            request = (inv.exe, inv.argv[1:], inv.cwd)
            if not (cache.keys(KEY_PREFIX) or placed or cache.remote is not None):
                # an empty cache (a first, cold install): nothing to place, but the answer is
                # found and remembered beside the download, for the re-provisions to come
                _remember_later(request, inv, apt_pkg, paths, str(cache.root))
                return [], []
    if request is None:
        return None, []
    got, errors = _remembered_wants(request, inv if not specs else None, apt_pkg, paths, rep,
                                    cache)
    if got is None and specs:
        rep.unknown = errors
        got = []
    if got is None:
        return None, []
    rep.followed_request = True
    drop_stale(cache, paths.archives, got, placed, rep)
    return got, got


# -- the entry point -------------------------------------------------------------------------------
def seed(cache: PackageCache, specs: list[str] | None = None, *, hook: bool = False, narrow: bool = False,
         plan_only: bool = False, lock_timeout: float = 60.0, target_release: str | None = None,
         apt_pkg: Any | None = None) -> SeedReport:
    """Seed archives with verified cached debs: all current candidates, or what a request needs.

    specs: seed what `apt-get install SPECS` would fetch (apt itself resolves them: name=ver,
    name/release, globs, ./local.deb, with -t target_release). narrow (pre-install hook): follow
    the request of the apt running this hook. hook: files already in place are trusted once
    checked by stamp; plan_only (after `apt-get update`): refresh the plan and drop stale placed
    debs, place nothing (a deb in archives changes what `apt-get --print-uris` reports)."""
    from . import invocation
    from .aptenv import apt_pkg_module

    t0 = time.monotonic()
    rep = SeedReport()
    apt_pkg = apt_pkg or apt_pkg_module()
    inv = invocation.current() if narrow else None
    if inv is not None:
        invocation.apply_config(inv, apt_pkg)
    paths = AptPaths.load(apt_pkg)
    placed = load_placed(paths)
    before = dict(placed)
    wants, asked = _follow_request(cache, specs, narrow, inv, apt_pkg, paths, placed, rep,
                                   target_release)
    if wants is None and narrow and not specs:
        # the hook could not tell what this apt will fetch (no apt found through /proc, the
        # replay failed): nothing is placed (every cached candidate would change what apt
        # reports); the method still serves what apt downloads
        wants = []
    if wants is None:
        wants = _plan_all(cache, paths, apt_pkg, hook=hook, command=inv.command if inv else None,
                          placed=placed,
                          rep=rep)
    if hook:  # in place and checked: nothing to do for those
        wants = [w for w in wants if not _present(paths.archives / w.fname, w.size)]
    if wants and plan_only:
        rep.planned_only = len(wants)  # placed by the pre-install seed, for that install only
        wants = []
    if wants:
        _place_locked(cache, paths.archives, wants, rep, placed, lock_timeout=lock_timeout,
                      verify_present=not hook and not rep.followed_request)
    if placed != before:
        save_placed(paths, placed)
    if narrow and inv is not None and not plan_only and not specs:
        _note_run(inv.pid, paths.archives, str(cache.root),
                  asked if rep.followed_request else [], placed)
    rep.seconds = time.monotonic() - t0
    return rep


def _note_run(pid: int, archives: Path, cache_root: str, wants: list[Want],
              placed: dict[str, list[Any]]) -> None:
    """The run note for this apt run's harvest (fastseed.harvest_is_done): the debs of this
    request in archives as the seed placed them (by their stamp) whose object the cache holds
    (the size cap may have taken it since). The harvest ends without opening the cache when
    each deb apt installs is one of these or one pkgcache's method stored or placed."""
    from cache_core import stamps

    from .fastseed import write_run_note

    good = {}
    for want in wants:
        rec = placed.get(want.fname)
        try:
            st = os.lstat(archives / want.fname)
        except OSError:
            continue
        if rec is not None and rec[0] == want.sha256 and rec[1:] == _stamp(st) \
                and stat.S_ISREG(st.st_mode) and stamps.holds(cache_root, want.sha256, want.size):
            good[want.fname] = _stamp(st)
    write_run_note(pid, str(archives), cache_root, good)


def method_serves(cache: PackageCache) -> str:
    """"all" when the config sets apt_front_only, apt downloads through pkgcache's method, the
    local store is the only tier and the front serves every deb (front_coverage): the
    pre-install seed has nothing to compute (with a remote, the seed still brings the set in,
    in parallel); "placed": so, but debs an earlier seed placed are still recorded (the seed
    checks them and places nothing); "" otherwise, the default."""
    if cache.remote is not None or cache.config is None \
            or cache.config.option("apt_front_only") is not True:
        return ""  # the default: debs placed before apt's download phase ("Need to get 0 B")
    return front_coverage()


def front_serves_all() -> bool:
    """The pre-install shortcut's test: front_coverage() == "all"."""
    return front_coverage() == "all"


def front_coverage() -> str:
    """"all": pkgcache's method is apt's http and https method, every source is http:// or
    https:// (the front serves no other transport: tor+http, ftp, file, cdrom, mirror+, ...)
    and no deb placed by an earlier seed is still in archives (it may need the seed's
    drop_stale); "placed": all but that; "". Cheap: apt's configuration, the sources files and
    a stat per recorded placement (records of files gone or replaced are dropped)."""
    from .fleet import method_status

    if not method_status().get("active"):
        return ""
    import apt_pkg  # configured by method_status

    uris = source_uris(apt_pkg.config)
    if uris is None or not all(u.lower().startswith(("http://", "https://")) for u in uris):
        return ""
    paths = AptPaths.load(apt_pkg)
    placed = load_placed(paths)
    if not placed:
        return "all"
    kept = {}
    for fname, rec in placed.items():
        try:
            st = os.lstat(paths.archives / fname)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and rec[1:] == _stamp(st):
            kept[fname] = rec
    if kept != placed:
        save_placed(paths, kept)
    return "placed" if kept else "all"


# -- apt's answer to a request, remembered: a warm re-provision opens no package cache ------------
def request_key(request: tuple[str, list[str], str | None], apt_pkg: Any, paths: AptPaths) -> str:
    """What decides apt's answer to request, as one digest (fastseed.digest of fastseed.base and
    request_inputs): its command line and working directory, apt's configuration files, the
    Release files' bytes and the name and size of every lists file a Release file of its
    prefix lists (apt checked it against that), the bytes of every other lists file (a flat
    repository without a Release file) and of every argument that is a file (``./local.deb``),
    dpkg's status, extended states and architectures, the machine id (phased updates), the
    pinning and sources files, this code. Content, not stat: a fresh root made from the same
    image, updated from the same mirror, has the key of the one before it. ValueError: a
    configuration this cannot pin (``#include``)."""
    from .fastseed import base, digest

    return digest(base(*request), *request_inputs(request, apt_pkg, paths))


def request_inputs(request: tuple[str, list[str], str | None], apt_pkg: Any, paths: AptPaths
                   ) -> tuple[list[str], list[str], str]:
    """(files, dirs, lists dir) whose bytes decide apt's answer to request (request_key). The
    configuration is pinned by its files (apt's own defaults by dpkg's status: a new apt is a
    new status); ValueError if one includes another file (``#include``)."""
    from .fastseed import code_files
    from .invocation import parse_args

    cfg = apt_pkg.config
    _exe, args, cwd = request
    words, options = parse_args(args)
    conf = [os.environ.get("APT_CONFIG", ""), cfg.find_file("Dir::Etc::main"), "/etc/apt/apt.conf"]
    conf += [v if os.path.isabs(v) else os.path.join(cwd or "/", v)
             for o, v in options if o in ("-c", "--config-file") and v]
    conf_dirs = [str(paths.parts), "/etc/apt/apt.conf.d"]
    for path in [*conf, *(os.path.join(d, n) for d in conf_dirs if os.path.isdir(d)
                          for n in os.listdir(d))]:
        try:
            with open(path, "rb") as f:
                if b"#include" in f.read(MAX_CONFIG_BYTES):
                    raise ValueError(f"{path}: #include")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            continue
    files = [*conf, str(paths.status), os.path.join(os.path.dirname(str(paths.status)), "arch"),
             cfg.find_file("Dir::State::extended_states"),
             cfg.find_file("Dir::Etc::machine-id") or "/etc/machine-id",  # phased updates
             *code_files()]
    dirs = list(conf_dirs)
    for base in paths.watch:  # sources and pinning: files, or directories of them
        (dirs if os.path.isdir(base) else files).append(base)
    for arg in words:  # a deb on the command line: its Depends decide too
        path = os.path.join(cwd or "/", arg)
        if os.path.isfile(path):
            files.append(path)
    return (list(dict.fromkeys(f for f in files if f)), list(dict.fromkeys(d for d in dirs if d)),
            str(paths.lists))


def _remembered_wants(request: tuple[str, list[str], str | None], inv: Any, apt_pkg: Any,
                      paths: AptPaths, rep: SeedReport, cache: PackageCache
                      ) -> tuple[list[Want] | None, list[str]]:
    """The request's debs as the last run with the same request_key found them (no package
    cache opened), else _request_wants, remembered (fastseed's memo: the next run with this key
    needs no python-apt at all). Only a hint, as before: every deb placed is the store's
    object with the SHA-256 recorded from the index, and apt checks what it uses."""
    from . import fastseed

    try:
        base = fastseed.base(*request)
        files, dirs, lists = request_inputs(request, apt_pkg, paths)
        key = fastseed.digest(base, files, dirs, lists)
    except Exception:  # noqa: BLE001 - no memo: apt's answer as before
        return _request_wants(request, inv, apt_pkg, rep)
    placed = trusted_file(paths, PLACED_FILE)
    answer = fastseed.Answer(key, base, time.time(), str(paths.archives), str(cache.root),
                             str(placed or ""), files, dirs, lists, [])
    for got in fastseed.read_memo():
        if got.key == key:
            rep.remembered = True
            if (got.archives, got.cache, got.placed) != (answer.archives, answer.cache,
                                                         answer.placed):
                answer.wants = got.wants
                fastseed.remember(answer)
            return [Want(*w) for w in got.wants], []
    wants, errors = _request_wants(request, inv, apt_pkg, rep)
    if wants is not None and not errors:
        answer.wants = [(w.fname, w.sha256, w.size) for w in wants]
        fastseed.remember(answer)
    return wants, errors


def _request_wants(request: tuple[str, list[str], str | None], inv: Any, apt_pkg: Any,
                   rep: SeedReport) -> tuple[list[Want] | None, list[str]]:
    """The request's debs: in-process when inv's form allows, else apt's replayed answer."""
    if inv is not None:
        got = request_in_process(inv, apt_pkg)
        if got is not None:
            rep.in_process = True
            return got, []
    return replay_uris(*request)


REMEMBER_LIMIT = 60  # seconds the cold run's child may take


def _remember_later(request: tuple[str, list[str], str | None], inv: Any, apt_pkg: Any,
                    paths: AptPaths, cache_root: str) -> None:
    """A cold install: apt's answer to its request (in-process forms only: no replay) found by
    a child apt does not wait for (at a low priority, beside apt's download: the install
    waits for nothing), remembered only if what the key reads did not change meanwhile (dpkg
    may start). The child has no stdin, stdout or stderr, uses no SQLite, ends by os._exit."""
    try:
        pid = os.fork()
    except OSError:
        return
    if pid:
        return
    try:
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.setsid()
        import signal

        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        signal.alarm(REMEMBER_LIMIT)
        os.nice(10)
        _remember_answer(request, inv, apt_pkg, paths, cache_root)
    finally:
        os._exit(0)


def _remember_answer(request: tuple[str, list[str], str | None], inv: Any, apt_pkg: Any,
                     paths: AptPaths, cache_root: str) -> bool:
    """_remember_later's work: True if an answer was remembered."""
    from . import fastseed

    base = fastseed.base(*request)
    files, dirs, lists = request_inputs(request, apt_pkg, paths)
    key = fastseed.digest(base, files, dirs, lists)
    if any(a.key == key for a in fastseed.read_memo()):
        return False
    wants = request_in_process(inv, apt_pkg)
    if wants is None or fastseed.digest(base, files, dirs, lists) != key:
        return False  # not a form found in-process; or dpkg (or anyone) changed an input
    placed = trusted_file(paths, PLACED_FILE)
    return fastseed.remember(fastseed.Answer(
        key, base, time.time(), str(paths.archives), cache_root, str(placed or ""), files,
        dirs, lists, [(w.fname, w.sha256, w.size) for w in wants]))


def _place_locked(cache: PackageCache, archives: Path, wants: list[Want], rep: SeedReport,
                  placed: dict[str, list[Any]], *, lock_timeout: float, verify_present: bool) -> None:
    """_place_all under apt's archives lock (waited for up to lock_timeout; not taken when the
    apt holding it runs us as its hook)."""
    try:
        with archives_lock(archives, 0):
            _place_all(cache, archives, wants, rep, placed, verify_present=verify_present)
    except AptLockBusy:
        if lock_holder_is_ancestor(str(archives)):
            # We run inside a hook of the apt that holds the lock; it is not using archives
            # now, and waiting for it would deadlock.
            _place_all(cache, archives, wants, rep, placed, verify_present=verify_present)
        else:
            with archives_lock(archives, lock_timeout):
                _place_all(cache, archives, wants, rep, placed, verify_present=verify_present)


def _place_all(cache: PackageCache, archives: Path, wants: list[Want], rep: SeedReport,
               placed: dict[str, list[Any]], *, verify_present: bool) -> None:
    from .fleet import prefetch  # the fleet first, in parallel

    n, size = prefetch(cache, [w for w in wants if not _present(archives / w.fname, w.size)])
    rep.from_remote += n
    rep.bytes_remote += size
    for want in wants:
        result, reason = place(cache, archives, want, verify_present=verify_present)
        if result == "placed":
            rep.placed += 1
            rep.bytes_placed += want.size
            try:
                placed[want.fname] = [want.sha256, *_stamp(os.lstat(archives / want.fname))]
            except OSError:
                pass
        elif result == "present":
            rep.present += 1
        elif result == "missing":
            rep.missing.append(want.fname)
        else:
            rep.rejected.append((want.fname, reason))
