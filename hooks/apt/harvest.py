"""Harvest: store the .debs apt is about to install (DPkg::Pre-Install-Pkgs, protocol v3).

The info stream starts with `VERSION 3`, then apt's whole configuration (it can hold proxy
credentials: it is read and dropped here, never kept, logged or stored), a blank line, then one
action line per package. Only action lines that name a .deb are used.

Which debs are kept, and how: a deb in apt's own archives dir (root's, writable by nobody else;
apt checked it against the signed index when it downloaded it) is stored, hard-linked when the
core's ownership invariant allows. Any other path (`apt-get install ./tool.deb`, a file a local
user owns) is stored only if its bytes match the SHA256 of an index record for that exact
name/version/arch, and then as a copy read through one descriptor: a local deb that no index
vouches for never gets a `deb:` name, so it can never be seeded as the real package.
"""

from __future__ import annotations

import os
import stat
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from .fastseed import MAX_INFO_BYTES
from .naming import archive_name, is_safe_name, key_for, parse_archive_name

if TYPE_CHECKING:
    from cache_core import PackageCache


@dataclass(frozen=True)
class Action:
    """One package line of the hook protocol (v3 fields; v1/v2 leave some empty)."""

    name: str
    version: str
    arch: str
    path: str


@dataclass
class HarvestReport:
    """What one harvest did."""

    seen: int = 0
    stored: int = 0
    already: int = 0
    bytes_stored: int = 0
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """The report as recorded in the apt state (and printed by --json)."""
        return {"time": time.time(), "seen": self.seen, "stored": self.stored,
                "already": self.already, "bytes": self.bytes_stored,
                "skipped": len(self.skipped), "failed": len(self.failed),
                "seconds": round(self.seconds, 3)}


def parse_info(stream: IO[str]) -> list[Action]:
    """Parse a Pre-Install-Pkgs info stream (v1, v2 or v3). Config lines are discarded unread."""
    first = stream.readline(4096)
    if not first.startswith("VERSION "):
        lines = [first] + stream.readlines()
        return [Action("", "", "", ln.strip()) for ln in lines if ln.strip().endswith(".deb")]
    try:
        version = int(first.split()[1])
    except (IndexError, ValueError):
        version = 2
    # Skip the configuration section without keeping it.
    for line in stream:
        if line in ("\n", "\r\n", ""):
            break
    actions = []
    for line in stream:
        parts = line.rstrip("\n").split(" ")
        if version >= 3 and len(parts) >= 9:
            name, newver, newarch, path = parts[0], parts[5], parts[6], " ".join(parts[8:])
        elif len(parts) >= 5:
            name, newver, newarch, path = parts[0], parts[3], "", " ".join(parts[4:])
        else:
            continue
        if path.endswith(".deb"):
            actions.append(Action(name, newver, newarch, path))
    return actions


def read_info_fd(fd: int) -> list[Action]:
    """Read the whole info stream from fd (so apt never blocks on it), then parse it."""
    chunks, total = [], 0
    with os.fdopen(fd, "rb", closefd=True) as f:
        while True:
            buf = f.read(1 << 16)
            if not buf:
                break
            total += len(buf)
            if total <= MAX_INFO_BYTES:
                chunks.append(buf)
    return parse_info_bytes(b"".join(chunks))


def parse_info_bytes(raw: bytes) -> list[Action]:
    """parse_info of a stream read already."""
    import io

    return parse_info(io.StringIO(raw.decode("utf-8", "surrogateescape")))


def _file_name(action: Action) -> str:
    if action.name and action.version and action.arch:
        return archive_name(action.name, action.version, action.arch)
    return os.path.basename(action.path)


def _regular(path: str) -> os.stat_result | None:
    """lstat: a regular file (never a symlink), or None."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return st if stat.S_ISREG(st.st_mode) else None


def _hash(path: str) -> str | None:
    """SHA-256 of the regular file at path (never through a link), or None."""
    from cache_core import sha256_file

    try:
        return sha256_file(path, follow=False)[0]
    except OSError:
        return None


def _same_inode(cache: PackageCache, digest: str, path: str) -> bool:
    """Is path the cached object itself (a hard link pkgcache made)? Any doubt: hash it."""
    return bool(cache.same_object(f"sha256:{digest}", path))


def store(cache: PackageCache, path: str, fname: str, *, link: bool = True,
          sha256: str | None = None) -> tuple[str, int]:
    """Put one deb under deb:<fname>. Returns ("stored"|"already"|"failed"|"skipped", size)."""
    st = _regular(path)
    if st is None or not is_safe_name(fname):
        return "skipped", 0
    if sha256 is not None:
        return _store_verified(cache, path, fname, sha256)
    key = key_for(fname)
    entry = cache.lookup(key)
    if entry is not None and _same_inode(cache, entry.digest, path):
        return "already", st.st_size  # seeded by hardlink from this very object: nothing to do
    copy = cache.placed_copy(path) if entry is not None else None
    if entry is not None and copy is not None and copy[0] == entry.digest and cache.exists(key):
        if copy[1]:
            cache.count_hit(key)  # the method's front placed this copy of the object
        return "already", st.st_size  # placed from, or stored from, the object: no hashing
    if entry is not None and entry.size == st.st_size and cache.exists(key) \
            and _hash(path) == entry.digest:
        # the cached deb already: the object is left as it is (re-linking it to this file
        # would tie its stat stamp to archives, which apt and docker-clean empty)
        return "already", st.st_size
    parsed = parse_archive_name(fname)
    meta = {"package": parsed[0], "version": parsed[1], "arch": parsed[2]} if parsed else None
    digest = cache.put(key, path, sha256=sha256, kind="deb", meta=meta, link=link)
    if digest is None:
        return "failed", 0
    if entry is not None and entry.digest == digest:
        return "already", st.st_size
    return "stored", st.st_size


def _store_verified(cache: PackageCache, path: str, fname: str, sha256: str) -> tuple[str, int]:
    """A deb from outside apt's archives, read through one O_NOFOLLOW|O_NONBLOCK descriptor (a
    symlink or FIFO swapped in is refused) and hashed once: by the store's copy, which keeps it
    only if it is the index's deb (or, when the cache has that deb already, by a plain hash)."""
    from cache_core import DigestMismatch, open_regular, sha256_fd

    try:
        fd, st = open_regular(path)
    except Exception:  # noqa: BLE001 - a symlink, FIFO or vanished file: not ours to keep
        return "skipped", 0
    try:
        entry = cache.lookup(key_for(fname))
        if entry is not None and entry.digest == sha256.lower() and cache.exists(entry.key):
            same = sha256_fd(fd)[0] == entry.digest
            return ("already", st.st_size) if same else ("skipped", 0)
        parsed = parse_archive_name(fname)
        meta = {"package": parsed[0], "version": parsed[1], "arch": parsed[2]} if parsed else None
        try:
            got = cache.put(key_for(fname), fd, sha256=sha256, kind="deb", meta=meta,
                            on_mismatch="raise")
        except DigestMismatch:
            return "skipped", 0  # not the index's bytes: never stored under its deb: name
    finally:
        os.close(fd)
    return ("stored", st.st_size) if got else ("failed", 0)


def archives_dir() -> Path | None:
    """apt's Dir::Cache::archives (python-apt, else `apt-config`; APT_CONFIG honoured)."""
    try:
        from .aptenv import AptPaths

        return AptPaths.load().archives
    except ImportError:
        pass
    try:
        out = subprocess.run(["apt-config", "shell", "A", "Dir::Cache::archives/d"],
                             capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    value = out.strip().removeprefix("A=").strip("'")
    return Path(value) if value.startswith("/") else None


def in_archives(path: str, archives: Path | None) -> bool:
    """True if path names a file directly in apt's archives dir, and that dir is root's (or
    ours) and writable by nobody else."""
    if archives is None:
        return False
    parent = os.path.dirname(os.path.abspath(path))
    if parent != os.path.abspath(archives):
        return False
    try:
        st = os.lstat(parent)
    except OSError:
        return False
    return (stat.S_ISDIR(st.st_mode) and st.st_uid in (0, os.geteuid())
            and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH))


def index_sha256(action: Action) -> str | None:
    """The SHA256 of apt's index record for the action's name/version/arch, or None."""
    from .aptenv import apt_pkg_module
    from .seed import IndexView

    name, version, arch = action.name, action.version, action.arch
    if not (name and version and arch):
        parsed = parse_archive_name(os.path.basename(action.path))
        if parsed is None:
            return None
        name, version, arch = parsed
    view = _VIEW[0] if _VIEW else None
    if view is None:
        view = IndexView(apt_pkg_module())
        _VIEW.append(view)
    want = view.find_version(name, version, arch)
    return want.sha256 if want is not None else None


_VIEW: list[Any] = []


def harvest(cache: PackageCache, actions: list[Action], *, archives: Path | None = None,
            lookup: Callable[[Action], str | None] | None = None) -> HarvestReport:
    """Store the .debs named by the actions: those in apt's archives dir as they are (hardlink
    when the core allows), any other only when it matches its index record (lookup)."""
    t0 = time.monotonic()
    rep = HarvestReport()
    done: set[str] = set()
    for action in actions:
        try:
            fname = _file_name(action)
        except (UnicodeError, ValueError):  # e.g. a non-UTF-8 action line: skip that one only
            rep.seen += 1
            rep.skipped.append(repr(action.path)[:80])
            continue
        if fname in done:
            continue
        done.add(fname)
        rep.seen += 1
        if in_archives(action.path, archives):
            result, size = store(cache, action.path, fname)
            if result == "stored":  # apt downloaded it (a seeded deb is "already"): a miss
                cache.count_miss(key_for(fname))
        else:
            try:
                sha = lookup(action) if lookup is not None else None
            except ImportError:
                sha = None
            if sha is None:
                rep.skipped.append(fname)
                continue
            result, size = store(cache, action.path, fname, link=False, sha256=sha)
        if result == "stored":
            rep.stored += 1
            rep.bytes_stored += size
        elif result == "already":
            rep.already += 1
        elif result == "skipped":
            rep.skipped.append(fname)
        else:
            rep.failed.append(fname)
    rep.seconds = time.monotonic() - t0
    return rep


def sweep(cache: PackageCache, archives: Path) -> HarvestReport:
    """Fallback: store every archive-named .deb found in the archives dir that is not cached yet."""
    actions = []
    for entry in sorted(os.scandir(archives), key=lambda e: e.name):
        if not entry.name.endswith(".deb") or not is_safe_name(entry.name):
            continue
        if not entry.is_file(follow_symlinks=False):
            continue
        cached = cache.lookup(key_for(entry.name))
        if cached is not None and cached.size == entry.stat(follow_symlinks=False).st_size:
            continue
        parsed = parse_archive_name(entry.name)
        assert parsed is not None
        actions.append(Action(parsed[0], parsed[1], parsed[2], entry.path))
    return harvest(cache, actions, archives=archives)
