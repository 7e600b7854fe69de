"""Wheels in the shared cache: keys, the find-links page and the linked file views.

Keys (never a URL alone, never name/version alone):
  ``wheel:<exact file name>``            a wheel as published (object = its SHA-256)
  ``sdist:<exact file name>``            a source archive as published
  ``built:<sdist sha256>:<fingerprint>`` a wheel built here from that sdist, only for that
                                         interpreter/ABI/machine/libc/distro fingerprint
The objects are symlinked as ``<cache>/pip-v1/files/<sha256>/<file name>`` so pip and uv can
read them under their real names. Every object offered to pip or uv is checked before each run
by its stat stamp from its last full hash (the cache's, cache_core.stamps); any change means a
full re-hash, and a mismatch is quarantined (and counted) by the cache. pip also checks each file
against the page's ``#sha256=`` fragment.

Trust: the cache dir is content, not authority. A cached file is offered only if this machine
itself vouched for its key -> digest (downloaded it from an index with a published SHA-256,
built it from such an sdist, or received it with a record signed by a trusted fleet key), or to
a hash-checking request that pins that digest (pip/uv check every ``--hash``). The vouches (and
the cache's stat stamps) live in the private local state dir (see trust.py), never in the cache,
so re-pointing a key or editing a memo in a shared cache changes nothing installed.

Provenance: only files pip chose from an index or a find-links location (``is_direct`` false in
its report) get these keys, and each vouch records which of the request's sources the file came
from; a request is offered only files from its own sources (trust.may_offer). Local paths, direct
URLs and VCS references are never stored.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlsplit

from cache_core import CacheError, Entry, PackageCache, atomic_symlink, atomic_write, safe_filename

from .target import Target
from .trust import Request, Trust, groups_of, may_offer

if TYPE_CHECKING:
    from packaging.requirements import Requirement
    from packaging.version import Version

# packaging.utils (and packaging.tags, logging, sysconfig behind it) is imported only where a
# name is canonicalised: a warm uv install never needs it (~30 ms of every run).
_NAME_PART = re.compile(r"^[\w\d._]*$", re.UNICODE)  # packaging.utils' wheel name-part rule
_BUILD_TAG = re.compile(r"(\d+)(.*)$")
_SEPARATORS = re.compile(r"[-_.]+")
# versions as indexes spell them (a subset of PEP 440: checked without packaging.version)
_PLAIN_VERSION = re.compile(r"[0-9]+(\.[0-9]+)*((a|b|rc)[0-9]+)?(\.post[0-9]+)?(\.dev[0-9]+)?"
                            r"(\+[a-z0-9]+(\.[a-z0-9]+)*)?")

BUCKET = "pip-v1"
SDIST_SUFFIXES = (".tar.gz", ".zip")


@dataclass
class Artifact:
    """One file pip's resolver chose (from an installation report)."""

    name: str
    version: str
    url: str
    filename: str
    sha256: str | None
    requires_python: str | None
    yanked: bool
    is_direct: bool
    requested: bool = False

    @property
    def local_path(self) -> Path | None:
        """The local file or directory of a direct ``file://`` requirement, else None."""
        parts = urlsplit(self.url)
        if not self.is_direct or parts.scheme != "file":
            return None
        return Path(unquote(parts.path))

    @property
    def is_wheel(self) -> bool:
        """True for a .whl file."""
        return self.filename.endswith(".whl")

    @property
    def cacheable(self) -> bool:
        """True for a safely named index wheel or sdist with a SHA-256.

        Never for a direct requirement (local file or directory, URL, VCS): those must not enter
        the namespace later resolves read (a local ``six-99.0.tar.gz`` is not PyPI's six).
        """
        return (not self.is_direct and bool(self.filename) and bool(self.sha256) and self.sha256 is not None
                and len(self.sha256) == 64 and all(c in "0123456789abcdef" for c in self.sha256)
                and (self.is_wheel or self.filename.endswith(SDIST_SUFFIXES)))


def parse_report(data: dict[str, Any]) -> list[Artifact]:
    """The artifacts of a pip installation report (format version 1)."""
    if str(data.get("version")) != "1":
        raise ValueError(f"unsupported pip report version {data.get('version')!r}")
    out = []
    for item in data.get("install", []):
        info = item.get("download_info") or {}
        meta = item.get("metadata") or {}
        url = info.get("url", "")
        hashes = (info.get("archive_info") or {}).get("hashes") or {}
        sha = hashes.get("sha256")
        if not sha:
            legacy = (info.get("archive_info") or {}).get("hash") or ""
            sha = legacy[7:] if legacy.startswith("sha256=") else None
        filename = unquote(urlsplit(url).path.rsplit("/", 1)[-1]) if "archive_info" in info else ""
        try:
            check_filename(filename)  # never let an index's URL name a path (e.g. ..%2F)
        except (CacheError, ValueError):
            filename = ""
        out.append(Artifact(name=canonical_name(str(meta.get("name", ""))),
                            version=str(meta.get("version", "")), url=url, filename=filename,
                            sha256=sha.lower() if sha else None,
                            requires_python=meta.get("requires_python"),
                            yanked=bool(item.get("is_yanked")),
                            is_direct=bool(item.get("is_direct")),
                            requested=bool(item.get("requested"))))
    return out


@dataclass
class Candidate:
    """A cached file offered to the installer for one target."""

    entry: Entry
    filename: str
    path: Path

    @property
    def sha256(self) -> str:
        """The file's SHA-256."""
        return self.entry.digest


def _wheel_parts(filename: str) -> tuple[str, frozenset[str]] | None:
    """(name part, tags) of a wheel file name, None if it is not one.

    The checks of ``packaging.utils.parse_wheel_filename`` (extension, parts, name part,
    version, build tag) without importing it; tags as lower-case ``interpreter-abi-platform``
    strings, compressed tag sets expanded (as ``packaging.tags.parse_tag`` does).
    """
    if not filename.endswith(".whl"):
        return None
    stem = filename[:-4]
    dashes = stem.count("-")
    if dashes not in (4, 5):
        return None
    parts = stem.split("-", dashes - 2)
    if "__" in parts[0] or _NAME_PART.match(parts[0]) is None:
        return None
    if _PLAIN_VERSION.fullmatch(parts[1]) is None:  # any other spelling: packaging decides
        from packaging.version import InvalidVersion, Version

        try:
            Version(parts[1])
        except InvalidVersion:
            return None
    if dashes == 5 and _BUILD_TAG.match(parts[2]) is None:
        return None
    interpreters, abis, platforms = parts[-1].lower().split("-")
    return parts[0], frozenset(f"{i}-{a}-{p}" for i in interpreters.split(".")
                               for a in abis.split(".") for p in platforms.split("."))


def canonical_name(name: str) -> str:
    """A project name normalised as PEP 503 (and ``packaging.utils.canonicalize_name``) says,
    without importing packaging.utils (packaging.tags, logging, sysconfig: ~18 ms per run)."""
    return _SEPARATORS.sub("-", name).lower()


def wheel_tags(filename: str) -> frozenset[str] | None:
    """The tags (``interpreter-abi-platform``, lower case) of a wheel file name, or None if
    the name is not a valid wheel name."""
    parts = _wheel_parts(filename)
    return parts[1] if parts is not None else None


def project_of(filename: str) -> str | None:
    """The canonical project name of a wheel or sdist file name."""
    if filename.endswith(".whl"):
        parts = _wheel_parts(filename)
        return canonical_name(parts[0]) if parts is not None else None
    from packaging.utils import InvalidSdistFilename, parse_sdist_filename

    try:
        return str(parse_sdist_filename(filename)[0])
    except InvalidSdistFilename:
        return None


def check_filename(filename: str) -> str:
    """Refuse file names that are not plain, parseable wheel/sdist names."""
    safe_filename(filename)
    ok = (_wheel_parts(filename) is not None if filename.endswith(".whl")
          else project_of(filename) is not None)
    if not ok:
        raise ValueError(f"{filename!r} is not a wheel or sdist file name")
    return filename


class WheelStore:
    """The pip driver's view of the shared cache."""

    def __init__(self, cache: PackageCache) -> None:
        self.cache = cache
        self.root = cache.bucket(BUCKET)
        self.files = self._dir(self.root / "files")
        self.trust = Trust(cache.root)
        self.unvouched: set[str] = set()  # cached file names not offered: never vouched for here
        self.elsewhere: set[str] = set()  # ... vouched, but from none of the request's sources

    def save_trust(self) -> None:
        """Write this run's vouches back if it made any (merged under a lock)."""
        self.trust.save()

    def vouch(self, key: str, digest: str, groups: list[list[str]]) -> None:
        """Record that this machine vouches for key -> digest, from these sources (trust.py)."""
        self.trust.vouch(key, digest, groups)

    def verified(self, entry: Entry, *, rehash: bool = False) -> str | None:
        """The object path of entry if its bytes are known good, else None: by the stat stamp
        of its last full hash (the cache's, cache_core.stamps), else (or with rehash) hashed
        in full by the cache, which quarantines and counts a mismatch."""
        expected = self._object(entry)
        if expected is not None and not rehash and self.cache.stamp_holds(entry.digest):
            return expected
        path = self.cache.get(entry.key, count=False, full=rehash)  # (a check, not a hit)
        if path is None or (expected is not None and path != expected):
            return None
        return path

    @staticmethod
    def _dir(path: Path) -> Path:
        if path.is_symlink():
            raise OSError(f"{path} is a symlink; refusing it")
        path.mkdir(mode=0o755, exist_ok=True)
        return path

    def subdir(self, name: str) -> Path:
        """A private working directory under the pip bucket (tool caches, memo files)."""
        return self._dir(self.root / safe_filename(name))

    # -- keys -------------------------------------------------------------------------------
    @staticmethod
    def built_key(sdist_sha256: str, target: Target) -> str:
        """The key of a wheel built from an sdist for one target fingerprint."""
        return f"built:{sdist_sha256}:{target.fingerprint}"

    def have(self, art: Artifact, target: Target, *, verify: bool = False,
             origin: list[str] | None = None, request: Request | None = None) -> bool:
        """True if the cache can serve art (or the wheel built from it) for target.

        verify: re-hash the object (a bad one is quarantined and reported missing). A wheel
        whose object has the index's SHA-256 (art comes from pip's resolve against the index)
        is vouched for from now on (origin: the sources it came from); a built wheel only if
        this machine vouched for it for one of the request's sources.
        """
        if not art.cacheable:
            return True
        check = (lambda k: self.cache.get(k, count=False)) if verify else self.cache.exists
        if art.is_wheel:
            key = f"wheel:{art.filename}"
            entry = self.cache.lookup(key)
            ok = bool(entry and entry.digest == art.sha256 and check(key))
            if ok and entry is not None and origin:
                self.vouch(key, entry.digest, [origin])
            return ok
        key = self.built_key(str(art.sha256), target)
        entry = self.cache.lookup(key)
        if entry is None or not check(key):
            return False
        # built here (or by a fleet key still trusted) from the sdist this request's index
        # lists with this SHA-256: as good as a build for this request's sources
        if not self.trust.holds(key, entry.digest,
                                request.keys if request is not None else frozenset()):
            return False
        if origin:
            self.vouch(key, entry.digest, [origin])
        return True

    def add(self, key: str, path: str, sha256: str | None, meta: dict[str, Any]) -> str | None:
        """Store a file under key (checked against sha256), vouch for it and link it into the
        view. The caller vouches for the file: from an index with this SHA-256, or built here;
        meta["sources"] names the groups of sources it came from (none: not vouched)."""
        # copied, never linked: the object is then a fresh 0444 file whatever the source's mode
        digest = self.cache.put(key, path, sha256=sha256, kind=key.split(":", 1)[0], meta=meta)
        if digest is None:
            return None
        self.vouch(key, digest, [list(g) for g in groups_of(meta.get("sources"))])
        entry = self.cache.lookup(key)
        if entry is None or self.view(entry, meta["filename"]) is None:
            return None
        return digest

    # -- the linked view ----------------------------------------------------------------------
    def _object(self, entry: Entry) -> str | None:
        """The local file of entry's object, not hashed (None if this cache does not hold it)."""
        return self.cache.local_path(f"sha256:{entry.digest}")

    def view(self, entry: Entry, filename: str, *, rehash: bool = False) -> Path | None:
        """A symlink named filename to entry's verified object, checked or (re)made.

        Symlinks, not hardlinks: a hardlink would pin the object against the cache's LRU
        eviction (and let a writer reach it). The object is verified on every call (stat stamp,
        full hash when it changed); None if it is missing or bad.
        """
        check_filename(filename)
        verified = self.verified(entry, rehash=rehash)
        if verified is None:
            return None
        d = self.files / entry.digest
        dest = d / filename
        try:
            if os.readlink(dest) == verified:
                return dest
        except OSError:
            pass
        self._dir(d)
        atomic_symlink(verified, dest)
        return dest

    def candidates(self, target: Target, request: Request, *, sdists: bool = False,
                   rehash: bool = False) -> list[Candidate]:
        """Cached files the target can install (compatible wheels and its own built wheels)
        that may be offered to request (trust.may_offer: vouched for one of its sources, or a
        digest it pins). Each is verified (stat stamp, or a full hash with rehash or when the
        stamp changed)."""
        out: list[Candidate] = []
        wanted: list[tuple[Entry, str]] = []
        for entry in self.cache.keys("wheel:"):
            filename = entry.key[len("wheel:"):]
            tags = wheel_tags(filename)
            if tags is not None and target.supports(tags):
                wanted.append((entry, filename))
        suffix = ":" + target.fingerprint
        for entry in self.cache.keys("built:"):
            filename = str(entry.meta.get("filename", ""))
            if entry.key.endswith(suffix) and wheel_tags(filename) is not None:
                wanted.append((entry, filename))
        if sdists:
            wanted += [(e, e.key[len("sdist:"):]) for e in self.cache.keys("sdist:")]
        self.unvouched, self.elsewhere = set(), set()
        for entry, filename in wanted:
            if not may_offer(entry.digest, self.trust.get(entry.key), request):
                (self.elsewhere if self.trust.vouched(entry.key, entry.digest)
                 else self.unvouched).add(filename)
                continue
            try:
                path = self.view(entry, filename, rehash=rehash)
            except (CacheError, OSError, ValueError):  # a bad name or object: not offered
                path = None
            if path is not None:
                out.append(Candidate(entry, filename, path))
        self.save_trust()
        return out

    def prune_view(self, *, every: float = 0.0) -> int:
        """Remove links whose object left the cache (evicted, quarantined); count them.

        every: skip if the last prune was less than this many seconds ago.
        """
        stamp = self.root / "pruned.stamp"
        try:
            if every and time.time() - os.lstat(stamp).st_mtime < every:
                return 0
        except FileNotFoundError:
            pass
        stamp.touch()
        tmp = self.root / "tmp"
        if tmp.is_dir() and not tmp.is_symlink():
            for d in tmp.iterdir():  # scratch dirs of runs that were killed
                try:
                    if time.time() - os.lstat(d).st_mtime > 86400 and not d.is_symlink():
                        shutil.rmtree(d, ignore_errors=True)
                except OSError:
                    pass
        live = {e.digest for p in ("wheel:", "built:", "sdist:") for e in self.cache.keys(p)}
        removed = 0
        for d in self.files.iterdir():
            if d.name not in live and not d.is_symlink() and d.is_dir():
                shutil.rmtree(d, ignore_errors=True)
                removed += 1
        flat_root = self.root / "flat"
        if flat_root.is_dir() and not flat_root.is_symlink():
            for flat in flat_root.iterdir():
                if flat.is_symlink() or not flat.is_dir():
                    continue
                for f in flat.iterdir():
                    if not os.path.exists(f):  # a link to an object that left the cache
                        f.unlink(missing_ok=True)
                        removed += 1
        return removed

    def describe(self, req: Requirement, target: Target) -> str | None:
        """Why no cached file fits req for target, or None if the cache knows nothing useful."""
        from packaging.utils import (
            InvalidSdistFilename,
            InvalidWheelFilename,
            canonicalize_name,
            parse_sdist_filename,
            parse_wheel_filename,
        )

        name = str(canonicalize_name(req.name))

        def version_of(filename: str) -> Version | None:
            if project_of(filename) != name:
                return None
            try:
                return (parse_wheel_filename(filename)[1] if filename.endswith(".whl")
                        else parse_sdist_filename(filename)[1])
            except (InvalidWheelFilename, InvalidSdistFilename):
                return None

        def fits(filename: str) -> bool:
            version = version_of(filename)
            return version is not None and req.specifier.contains(version, prereleases=True)

        wheels = [e.key[6:] for e in self.cache.keys("wheel:") if fits(e.key[6:])]
        built = [e for e in self.cache.keys("built:") if fits(str(e.meta.get("filename", "")))]
        sdists = [e for e in self.cache.keys("sdist:") if fits(e.key[6:])]
        shared = sorted(f for f in self.unvouched if fits(f))
        other = sorted(f for f in self.elsewhere if fits(f))
        if other and not shared:
            return (f"the cached {', '.join(other[:3])} not offered: it came from another "
                    "source than this request's indexes and find-links")
        if shared:
            return (f"the cached {', '.join(shared[:3])} not offered: this machine never vouched "
                    "for it (a shared cache is content, not authority; pin it with --hash or "
                    "install once with the index reachable)")
        if any(e.key.endswith(":" + target.fingerprint) for e in built):
            return None
        if wheels and not any(target.supports(wheel_tags(w) or frozenset()) for w in wheels):
            return (f"only wheels with incompatible tags are cached ({', '.join(sorted(wheels)[:3])})"
                    f" for {target.fingerprint}")
        if sdists or built:
            return (f"only an sdist is cached (no wheel built for {target.fingerprint}) "
                    "and the index cannot be used")
        have = sorted({v for e in self.cache.keys("wheel:")
                       if (v := version_of(e.key[6:])) is not None
                       and target.supports(wheel_tags(e.key[6:]) or frozenset())}
                      | {v for e in self.cache.keys("built:")
                         if e.key.endswith(":" + target.fingerprint)
                         and (v := version_of(str(e.meta.get("filename", "")))) is not None})
        if have and req.specifier:
            return (f"version {req.specifier} not in the cache "
                    f"(have {', '.join(str(v) for v in have[-5:])})")
        return None

    # -- pages and directories --------------------------------------------------------------
    def write_page(self, page: Path, cands: list[Candidate], *, relative: bool = False) -> None:
        """Write a find-links HTML page with #sha256= and data-requires-python, atomically."""
        import html
        lines = ["<!DOCTYPE html>", "<html><head><meta charset=\"utf-8\">"
                 "<title>pkgcache wheelhouse</title></head><body>"]
        for c in sorted(cands, key=lambda c: (c.filename, c.sha256)):
            href = quote(c.filename) if relative else c.path.as_uri()
            attrs = ""
            rp = c.entry.meta.get("requires_python")
            if rp:
                attrs += f' data-requires-python="{html.escape(str(rp), quote=True)}"'
            if c.entry.meta.get("yanked"):
                attrs += ' data-yanked=""'
            lines.append(f'<a href="{html.escape(href, quote=True)}#sha256={c.sha256}"{attrs}>'
                         f"{html.escape(c.filename)}</a><br/>")
        lines.append("</body></html>")
        atomic_write(page, "\n".join(lines) + "\n")

    def write_tree(self, root: Path, cands: list[Candidate]) -> Path:
        """A PEP 503 tree (``root/<project>/index.html``) over cands; returns root.

        Given to pip as the *last* ``--extra-index-url``: for the same file on the user's index
        and in the cache, pip's resolver then takes the cache's copy (it keeps the last of equal
        candidates), so a warm online install downloads nothing.
        """
        by_project: dict[str, list[Candidate]] = {}
        for c in cands:
            name = project_of(c.filename)
            if name:
                by_project.setdefault(name, []).append(c)
        root.mkdir(exist_ok=True)
        for name, group in by_project.items():
            d = root / safe_filename(name)
            d.mkdir(exist_ok=True)
            self.write_page(d / "index.html", group)
        return root

    def flat_dir(self, target: Target, cands: list[Candidate], sources: str = "") -> Path:
        """A stable directory of links named like the files (for uv's --find-links), one per
        target and set of request sources (two requests never see each other's files).

        Kept in step with the cache so uv's own cache entries stay valid between runs.
        """
        fp = hashlib.sha256(f"{target.fingerprint}\n{sources}".encode()).hexdigest()[:16]
        with self.cache.lock(f"pip-flat-{fp}"):
            return self._sync_flat(self._dir(self.subdir("flat") / fp), cands)

    def _sync_flat(self, flat: Path, cands: list[Candidate]) -> Path:
        want: dict[str, Candidate] = {}
        for cand in sorted(cands, key=lambda c: c.entry.created):
            want[cand.filename] = cand  # the newest file wins a name clash
        for child in flat.iterdir():
            c = want.get(child.name)
            try:
                keep = c is not None and os.readlink(child) == os.readlink(c.path)
            except OSError:
                keep = False
            if keep:
                want.pop(child.name)
            else:
                child.unlink(missing_ok=True)
        for name, c in want.items():
            atomic_symlink(os.readlink(c.path), flat / name)
        return flat
