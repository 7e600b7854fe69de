"""apt's lists join the fleet: after every `apt-get update` (the post-update hook) the Release
files apt verified and kept in its lists directory, and every index file there whose SHA-256 is
listed in them, are stored (and uploaded on a `rw` member). Only bytes apt accepted are stored:
the method never keeps a Release file it fetched (apt may refuse it after the method is done).

Index files are stored under their URL (so `pkgcache remote push --all` includes them) and
found by digest, as the method serves an ``Expected-SHA256`` request. apt keeps lists
decompressed (or recompressed, with Acquire::GzipIndexes), so what is stored is the file whose
digest the Release file lists: the uncompressed index (decompressed here when apt kept it
compressed) or, when apt kept the very compressed file the Release lists, that file. A member
asking for ``Packages.xz`` that the fleet does not hold falls back (apt's own CompressionTypes
fallback) to the uncompressed file. An index whose compressed form (listed in the same Release)
the cache already holds - the method kept what apt downloaded, from the origin or the fleet - is
not stored again uncompressed: apt asks for that form first, and it is served.

Freshness (state dir, ``releases.json``): the newest ``Date:`` seen per Release URL; an older
Release file is never stored, published or served. Each stored Release carries, in its signed
record's meta, when a member last had it confirmed by the origin (``confirmed``); the method's
offline fallback refuses a copy confirmed longer ago than ``apt_release_max_age_days``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cache_core import PackageCache

RELEASE_NAMES = ("InRelease", "Release", "Release.gpg")
STATE_FILE = "releases.json"
MAX_AGE_KEY = "apt_release_max_age_days"
MAX_AGE_DAYS = 7.0      # default; see docs/apt.md "apt on the fleet"
COMPRESSED = {".gz": "gzip", ".xz": "lzma", ".lzma": "lzma", ".bz2": "bz2", ".lz4": "helper",
              ".zst": "helper"}
APT_HELPER = "/usr/lib/apt/apt-helper"
MAX_RELEASE_BYTES = 64 << 20
_ENTRY = re.compile(r"^\s+([0-9a-fA-F]{64})\s+(\d+)\s+(\S+)\s*$")


@dataclass
class Release:
    """What pkgcache reads from a Release/InRelease file."""

    date: float | None
    valid_until: float | None
    entries: dict[str, tuple[str, int]]  # path in the repository -> (sha256, size)


def _when(value: str) -> float | None:
    try:
        return parsedate_to_datetime(value.strip()).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def parse_release(data: bytes) -> Release:
    """Date, Valid-Until and the SHA256 list of a (clear-signed) Release file."""
    text = data.decode("utf-8", "replace")
    date = until = None
    entries: dict[str, tuple[str, int]] = {}
    in_sha = False
    for line in text.splitlines():
        if line.startswith("-----BEGIN PGP SIGNATURE"):
            break
        if line[:1] in (" ", "\t"):
            if in_sha:
                m = _ENTRY.match(line)
                if m:
                    entries[m.group(3)] = (m.group(1).lower(), int(m.group(2)))
            continue
        in_sha = line.rstrip() == "SHA256:"
        if line.startswith("Date:") and date is None:
            date = _when(line[5:])
        elif line.startswith("Valid-Until:") and until is None:
            until = _when(line[12:])
    return Release(date, until, entries)


def meta_base(uri: str, dist: str) -> str:
    """The URL prefix of a source's Release files and indexes (apt's MetaIndexURI)."""
    if not uri.endswith("/"):
        uri += "/"
    if dist == "/":
        return uri
    if dist.endswith("/"):
        return uri + dist
    return f"{uri}dists/{dist}/"


def sources(apt_pkg: Any) -> list[str]:
    """The URL prefix of every http(s) source in apt's sources (deduplicated, in order)."""
    sl = apt_pkg.SourceList()
    sl.read_main_list()
    out: list[str] = []
    for mi in sl.list:
        base = meta_base(str(mi.uri), str(mi.dist))
        if base.startswith(("http://", "https://")) and base not in out:
            out.append(base)
    return out


# -- the trusted freshness memo ------------------------------------------------------------------
def load_state(paths: Any) -> dict[str, Any]:
    """{"newest": {key: date}, "fallback": {key: time}} from the root-only state dir."""
    from .aptenv import read_trusted

    state = read_trusted(paths, STATE_FILE)
    for part in ("newest", "fallback"):
        if not isinstance(state.get(part), dict):
            state[part] = {}
    return state


def save_state(paths: Any, state: dict[str, Any]) -> None:
    """Write the memo back (best effort: without a state dir there is no memory)."""
    from .aptenv import write_trusted

    try:
        write_trusted(paths, STATE_FILE, state)
    except OSError:
        pass


def max_age(cache: PackageCache) -> float:
    """The fallback's maximum age in seconds (config ``apt_release_max_age_days``)."""
    cfg = cache.config
    days = cfg.option(MAX_AGE_KEY) if cfg is not None else None
    if not isinstance(days, (int, float)) or isinstance(days, bool) or days < 0:
        days = MAX_AGE_DAYS
    return float(days) * 86400.0


def fallback_refusal(data: bytes, key: str, meta: dict[str, Any] | None, state: dict[str, Any],
                     limit: float, now: float | None = None) -> str | None:
    """Why the cached Release file `data` (for key) must not be served offline, or None.

    Refused: older (Date) than the newest this machine has seen for key, or last confirmed by
    an origin longer than limit seconds ago (Release.gpg: by its record's confirmation alone)."""
    now = time.time() if now is None else now
    rel = parse_release(data) if not key.endswith(".gpg") else Release(None, None, {})
    newest = state.get("newest", {}).get(key)
    if rel.date is not None and isinstance(newest, (int, float)) and rel.date < newest:
        return "older than the one this machine has seen"
    confirmed = (meta or {}).get("confirmed")
    if not isinstance(confirmed, (int, float)) or isinstance(confirmed, bool):
        confirmed = rel.date
    if confirmed is None:
        return "no date"
    if now - float(confirmed) > limit:
        return f"last confirmed {int((now - float(confirmed)) // 86400)} days ago"
    return None


# -- the post-update import ----------------------------------------------------------------------
@dataclass
class ListsReport:
    """What one import did."""

    releases: int = 0
    indexes: int = 0
    bytes: int = 0
    older: list[str] = field(default_factory=list)
    unmatched: int = 0

    def as_dict(self) -> dict[str, Any]:
        """For the apt state (`pkgcache apt status`)."""
        return {"time": time.time(), "releases": self.releases, "indexes": self.indexes,
                "bytes": self.bytes, "older": len(self.older), "unmatched": self.unmatched}


def _read_small(path: Path) -> bytes | None:
    from cache_core import open_regular

    try:
        fd, st = open_regular(str(path))
    except (OSError, Exception):  # noqa: BLE001 - absent, a symlink, not a file: skip
        return None
    try:
        if st.st_size > MAX_RELEASE_BYTES:
            return None
        with os.fdopen(os.dup(fd), "rb") as fh:
            return fh.read(MAX_RELEASE_BYTES + 1)
    finally:
        os.close(fd)


def _decompress(src: Path, ext: str, out: Path) -> bool:
    """src (compressed with ext) decompressed into out; False if it cannot be."""
    import bz2
    import gzip
    import lzma

    how = COMPRESSED[ext]
    try:
        if how == "helper":
            with open(out, "wb") as fh:
                res = subprocess.run([APT_HELPER, "cat-file", str(src)], stdout=fh,
                                     stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                                     timeout=60)
            return res.returncode == 0
        opener = {"gzip": gzip.open, "lzma": lzma.open, "bz2": bz2.open}[how]
        with opener(src, "rb") as fin, open(out, "wb") as fout:  # type: ignore[operator]
            shutil.copyfileobj(fin, fout, 1 << 20)
        return True
    except (OSError, EOFError, ValueError, lzma.LZMAError, subprocess.SubprocessError):
        return False


def _store_index(cache: PackageCache, key: str, path: Path, sha: str, ext: str, rep: ListsReport) -> bool:
    """Store the lists file at path under key (its URL) if its bytes (or, compressed, its
    content) have digest sha. The URL key puts it in `pkgcache remote push --all`; the method
    serves it by digest."""
    import tempfile

    try:
        if not ext:
            return _put(cache, key, str(path), sha, rep, link=False)
        fd, tmp = tempfile.mkstemp(dir=cache.bucket("apt-lists"), prefix=".lists-")
        os.close(fd)
        try:
            if not _decompress(path, ext, Path(tmp)):
                return False
            return _put(cache, key, tmp, sha, rep, link=True)
        finally:
            try:
                os.unlink(tmp)
            except OSError:
                pass
    except OSError:
        return False


def _put(cache: PackageCache, key: str, src: str, sha: str, rep: ListsReport, *, link: bool) -> bool:
    """Store src if its bytes have digest sha (checked by the store's one hashing copy)."""
    from cache_core import DigestMismatch

    try:
        if cache.put(key, src, sha256=sha, kind="apt-index", link=link,
                     on_mismatch="raise") is None:
            return False
    except DigestMismatch:
        return False
    rep.indexes += 1
    try:
        rep.bytes += os.stat(cache.local_path(key) or src).st_size
    except OSError:
        pass
    return True


def import_lists(cache: PackageCache, apt_pkg: Any, paths: Any, key_of: Callable[[str], str],
                 now: float | None = None) -> ListsReport:
    """Store the Release files apt kept in its lists (each no older than the newest seen for
    its URL) and every index file there that one of them lists by SHA-256. key_of: a Release
    URL's cache key (the method's release_key)."""
    now = time.time() if now is None else now
    rep = ListsReport()
    state = load_state(paths)
    lists = Path(paths.lists)
    try:
        names = set(os.listdir(lists))
    except OSError:
        return rep
    q = apt_pkg.uri_to_filename
    for base in sources(apt_pkg):
        rel: Release | None = None
        for name in RELEASE_NAMES:
            data = _read_small(lists / q(base + name))
            if data is None:
                continue
            key = key_of(base + name)
            parsed = parse_release(data) if name != "Release.gpg" else None
            if parsed is not None and parsed.date is not None:
                newest = state["newest"].get(key)
                if isinstance(newest, (int, float)) and parsed.date < newest:
                    rep.older.append(key)  # apt has an older one than seen: keep it out
                    continue
                state["newest"][key] = parsed.date
            if parsed is not None and rel is None:
                rel = parsed
            _store_release(cache, key, lists / q(base + name), data, state, now, rep)
        if rel is None:
            continue
        for rpath, (sha, _size) in sorted(rel.entries.items()):
            plain = q(base + rpath)
            if os.path.splitext(rpath)[1] in COMPRESSED:
                candidates = [(plain, "")]  # apt kept the very compressed file (GzipIndexes)
            else:
                candidates = [(plain, "")] + [(plain + e, e) for e in COMPRESSED]
            found = [(lists / n, e) for n, e in candidates if n in names]
            if not found or cache.exists(f"sha256:{sha}") or _held_compressed(cache, rel, rpath):
                continue
            key = key_of(base + rpath)
            if not any(_store_index(cache, key, p, sha, e, rep) for p, e in found):
                rep.unmatched += 1
    for key in list(state["fallback"]):
        state["fallback"].pop(key, None)  # consumed: this update's fallbacks are not confirmations
    save_state(paths, state)
    return rep


def _held_compressed(cache: PackageCache, rel: Release, rpath: str) -> bool:
    """The cache holds a compressed form of the index rpath that rel lists (Packages.xz for
    Packages): apt asks for it before the uncompressed one."""
    return any(cache.exists(f"sha256:{rel.entries[rpath + ext][0]}") for ext in COMPRESSED
               if rpath + ext in rel.entries)


def _store_release(cache: PackageCache, key: str, path: Path, data: bytes, state: dict[str, Any],
                   now: float, rep: ListsReport) -> None:
    """Keep the Release file apt accepted under its URL, with when an origin last confirmed it
    (now, unless the method served it from the cache in this update), and publish its record."""
    from cache_core import sha256_file

    entry = cache.lookup(key)
    old = dict(entry.meta or {}) if entry is not None else {}
    try:
        sha = sha256_file(str(path))[0]
    except OSError:
        return
    if key in state["fallback"]:
        confirmed = old.get("confirmed") if entry is not None and entry.digest.endswith(sha) \
            else None
        if not isinstance(confirmed, (int, float)):
            return  # served offline and not ours to vouch for: nothing stored or published
    else:
        confirmed = now
    meta = {"confirmed": confirmed}
    if entry is not None and entry.digest.endswith(sha):
        if old.get("confirmed") == confirmed:
            return
        cache.set_meta(key, meta)
    elif cache.put(key, str(path), sha256=sha, kind="apt-release", meta=meta, link=False) is None:
        return
    rep.releases += 1
    if cache.remote is not None:
        cache.remote.put_record(key)
