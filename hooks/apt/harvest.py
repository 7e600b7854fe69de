"""Harvest: store the .debs apt is about to install (DPkg::Pre-Install-Pkgs, protocol v3).

The info stream starts with `VERSION 3`, then apt's whole configuration (it can hold proxy
credentials: it is read and dropped here, never kept, logged or stored), a blank line, then one
action line per package. Only action lines that name a .deb are used.
"""

from __future__ import annotations

import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .naming import archive_name, is_safe_name, key_for, parse_archive_name

MAX_INFO_BYTES = 64 << 20  # a runaway stream is not read further


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
    import io

    return parse_info(io.StringIO(b"".join(chunks).decode("utf-8", "surrogateescape")))


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


def _same_inode(cache: Any, digest: str, st: os.stat_result) -> bool:
    try:
        obj = os.lstat(cache.object_path(digest))
    except Exception:  # noqa: BLE001 - any doubt: hash it the slow way
        return False
    return (obj.st_dev, obj.st_ino, obj.st_size) == (st.st_dev, st.st_ino, st.st_size)


def store(cache: Any, path: str, fname: str, *, link: bool = True,
          sha256: str | None = None) -> tuple[str, int]:
    """Put one deb under deb:<fname>. Returns ("stored"|"already"|"failed", size)."""
    st = _regular(path)
    if st is None or not is_safe_name(fname):
        return "skipped", 0
    key = key_for(fname)
    entry = cache.lookup(key)
    if entry is not None and _same_inode(cache, entry.digest, st):
        return "already", st.st_size  # seeded by hardlink from this very object: nothing to do
    parsed = parse_archive_name(fname)
    meta = {"package": parsed[0], "version": parsed[1], "arch": parsed[2]} if parsed else None
    digest = cache.put(key, path, sha256=sha256, kind="deb", meta=meta, link=link)
    if digest is None:
        return "failed", 0
    if entry is not None and entry.digest == digest:
        return "already", st.st_size
    return "stored", st.st_size


def harvest(cache: Any, actions: list[Action]) -> HarvestReport:
    """Store every .deb named by the actions (hardlink when on the same fs, else copy)."""
    t0 = time.monotonic()
    rep = HarvestReport()
    done: set[str] = set()
    for action in actions:
        fname = _file_name(action)
        if fname in done:
            continue
        done.add(fname)
        rep.seen += 1
        result, size = store(cache, action.path, fname)
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


def sweep(cache: Any, archives: Path) -> HarvestReport:
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
    return harvest(cache, actions)
