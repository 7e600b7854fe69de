"""The pip driver on the fleet tier (``performance.cache.remote``).

- Files pip chose online are taken from the remotes' ``cas/`` by the SHA-256 the index published
  (the index is the trust root: no record needed); wheels built from an sdist come from the signed
  record ``built:<sdist sha256>:<fingerprint>`` (uploaded by the core when they are put).
- ``pipsha:<sha256>`` records (signed) name the file behind a digest, so a fully hash-locked
  requirements file is served from the fleet without any index or listing.
- ``piplist:<project>`` is a shared set (the core's ``add_to_set``/``read_set``: signed versions
  that many writers add to at once without losing entries) of ``{filename, sha256, ...}`` items:
  what the fleet holds for a project; an offline member resolves from it.

Every file taken on the strength of a listing or a ``pipsha:`` record is also checked against
its own metadata (name and version inside the archive must match the file name), so a poisoned
listing can at worst offer a genuine file under its genuine name. Nothing here raises into the
driver: a fault is a miss.

Trust: a file that comes with a record signed by a trusted key (``pipsha:``, ``piplist:``,
``built:``) is vouched for in this member's own trust record, bound to that key and to the
sources the writer recorded for it (its listing entry's ``sources``): offered only to requests
reading one of those sources, and only while the key is trusted. A record accepted only because
a remote says ``trust: unsigned`` never vouches (such files serve hash-pinned requests only).
"""

from __future__ import annotations

import json
import re
import tarfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from email.parser import HeaderParser
from pathlib import Path
from typing import Any

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    canonicalize_version,
    parse_sdist_filename,
    parse_wheel_filename,
)

from cache_core import PackageCache, Remote, warn

from . import options
from .options import REQ_NAME, requirement_hashes
from .store import Artifact, WheelStore, check_filename, project_of, wheel_tags
from .target import Target
from .trust import KEY, groups_of

PageReader = Callable[[str], "tuple[str, bytes, str] | None"]  # the view's read_page
LISTING = "piplist:"
BY_DIGEST = "pipsha:"


def enabled(cache: PackageCache) -> bool:
    """True when the cache has a remote tier."""
    try:
        return cache.remote is not None
    except Exception:  # noqa: BLE001 - a bad remote config is the core's to report
        return False


def _remote(cache: PackageCache) -> Remote:
    """The cache's remote tier (this module runs only when there is one: install._fleet)."""
    remote = cache.remote
    if remote is None:
        raise RuntimeError("no remote configured")
    return remote


# -- reading --------------------------------------------------------------------------------------
def fetch_by_digest(cache: PackageCache, art: Artifact, dest: Path) -> Path | None:
    """A verified copy of art at dest/<file name> from the local store or the remotes' cas/."""
    if not art.sha256:
        return None
    out = dest / art.filename
    ok = cache.materialize_key(f"sha256:{art.sha256}", str(out), mode="copy", sha256=art.sha256)
    return out if ok else None


def _local(tok: str) -> bool:
    """A source token naming a path on the writer's machine (a find-links directory)."""
    return tok.startswith("file:")


def published_groups(sources: Any) -> list[list[str]]:
    """The source groups a writer publishes: without key tokens, and without any group naming
    a path of its own (``file://`` find-links: the same path on a reader is another source)."""
    out = []
    for g in groups_of(sources):
        toks = [t for t in g if not t.startswith(KEY)]
        if toks and not any(_local(t) for t in toks):
            out.append(toks)
    return out


def bound(sources: Any, signer: str | None) -> list[list[str]]:
    """The vouch groups of a file received with a record signed by signer: the writer's source
    groups, each bound to that key ([] without a trusted signature or recorded sources); a group
    naming a writer's local path (from an older writer) binds nothing."""
    if not signer:
        return []
    return [sorted(set(g) | {KEY + signer}) for g in published_groups(sources)]


def fetch_built(cache: PackageCache, store: WheelStore, art: Artifact, target: Target) -> bool:
    """True if the fleet holds a wheel built from art's sdist for target (now cached here)."""
    if art.is_wheel or not art.sha256:
        return False
    key = store.built_key(art.sha256, target)
    entry = cache.lookup(key)
    rec = None
    if entry is None or not store.trust.vouched(key, entry.digest):
        rec = _remote(cache).get_record(key)  # signed (or from a trust: unsigned remote)
        if rec is None or _remote(cache).bring_object(rec.sha256, key, kind=rec.kind,
                                              meta=rec.meta) is None:
            return False
    elif cache.get(key, count=False) is None:
        return False
    entry = cache.lookup(key)
    filename = str(entry.meta.get("filename", "")) if entry else ""
    if entry is None or wheel_tags(filename) is None or not target.supports(
            wheel_tags(filename) or frozenset()) or not _matches(cache, entry.digest, filename):
        if entry is not None:
            warn(f"pip: fleet record {key[:24]}… names a wrong wheel; ignored")
        return False
    if rec is not None and rec.sha256 == entry.digest:
        groups = bound((rec.meta or {}).get("sources"), rec.signer)
        if groups:
            store.vouch(key, entry.digest, groups)
    return True


def _matches(cache: PackageCache, digest: str, filename: str) -> bool:
    """True if the object's own metadata has the name and version its file name claims."""
    path = cache.local_path(f"sha256:{digest}")
    if path is None:
        return False
    try:
        if filename.endswith(".whl"):
            name, version, _, _ = parse_wheel_filename(filename)
            with zipfile.ZipFile(path) as zf:
                metas = [n for n in zf.namelist() if n.count("/") == 1
                         and n.endswith(".dist-info/METADATA")]
                if len(metas) != 1:
                    return False
                text = zf.read(metas[0]).decode("utf-8", "replace")
        else:
            name, version = parse_sdist_filename(filename)
            with tarfile.open(path) as tf:
                member = next((m for m in tf.getmembers() if m.name.count("/") == 1
                               and m.name.endswith("/PKG-INFO") and m.isfile()), None)
                fh = tf.extractfile(member) if member is not None else None
                if fh is None:
                    return False
                text = fh.read(1 << 20).decode("utf-8", "replace")
        hdr = HeaderParser().parsestr(text)
        return (canonicalize_name(hdr.get("Name", "")) == name
                and canonicalize_version(hdr.get("Version", "")) == canonicalize_version(version))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, tarfile.TarError,
            InvalidWheelFilename, InvalidSdistFilename):
        return False


def _meta(filename: str, info: dict[str, Any]) -> dict[str, Any]:
    """The cache meta of a wheel or sdist taken from a fleet record or listing entry."""
    name, version = (parse_wheel_filename(filename)[:2] if filename.endswith(".whl")
                     else parse_sdist_filename(filename))
    return {"filename": filename, "name": str(name), "version": str(version),
            "requires_python": info.get("requires_python") or None,
            "yanked": bool(info.get("yanked"))}


def _adopt(cache: PackageCache, store: WheelStore, filename: str, digest: str,
           info: dict[str, Any], *, groups: list[list[str]] | None = None) -> bool:
    """Take one (file name, digest) named by a fleet record into the local pip store; vouch
    for it with groups (see bound; the index's own listing: its sources)."""
    try:
        check_filename(filename)
    except Exception:  # noqa: BLE001 - a bad name from a record: ignored
        return False
    kind = "wheel" if filename.endswith(".whl") else "sdist"
    key = f"{kind}:{filename}"
    entry = cache.lookup(key)
    if entry is not None and entry.digest == digest:
        if groups:  # vouched for as a download from those sources would be
            store.vouch(key, digest, groups)
        return True
    if _remote(cache).bring_object(digest) is None:
        return False
    if not _matches(cache, digest, filename):
        warn(f"pip: fleet listing names {filename} for content that is not {filename}; ignored")
        return False
    if not cache.alias(key, digest, kind=kind, meta=_meta(filename, info)):
        return False
    entry = cache.lookup(key)
    if entry is None or store.view(entry, filename) is None:
        return False
    if groups:  # the private trust record, which decides what pip is offered
        store.vouch(key, digest, groups)
    return True


def adopt_hashes(cache: PackageCache, store: WheelStore, target: Target,
                 digests: list[str]) -> int:
    """Take the files behind these digests (``pipsha:`` records) into the cache; count them."""
    n = 0
    have = {e.digest for p in ("wheel:", "sdist:") for e in cache.keys(p)}
    for digest in dict.fromkeys(d.lower() for d in digests):
        if digest in have:
            continue
        rec = _remote(cache).get_record(BY_DIGEST + digest)
        if rec is None or rec.sha256 != digest:
            continue
        filename = str((rec.meta or {}).get("filename", ""))
        tags = wheel_tags(filename) if filename.endswith(".whl") else None
        if filename.endswith(".whl") and (tags is None or not target.supports(tags)):
            continue
        if _adopt(cache, store, filename, digest, rec.meta or {},
                  groups=bound((rec.meta or {}).get("sources"), rec.signer)):
            n += 1
    return n


def read_listing(cache: PackageCache, project: str) -> dict[str, dict[str, Any]]:
    """The fleet's signed listing of project (file name -> info), or {}."""
    return signed_listing(cache, project)[0]


def signed_listing(cache: PackageCache, project: str
                   ) -> tuple[dict[str, dict[str, Any]], str | None]:
    """(the fleet's listing of project, the trusted key that signed it or None)."""
    items, signer = _remote(cache).read_set(LISTING + project)
    return fold(items), signer


def fold(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """A listing (file name -> info) from a shared set's items: the source groups of one file
    and digest are joined; of two digests for one name, the first in the set's order is kept."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        name, digest = item.get("filename"), item.get("sha256")
        if not isinstance(name, str) or not isinstance(digest, str) \
                or not re.fullmatch(r"[0-9a-f]{64}", digest):
            continue
        info = {k: v for k, v in item.items() if k != "filename"}
        old = out.get(name)
        if old is None:
            out[name] = info
        elif old["sha256"] == digest:
            groups = groups_of(old.get("sources"))
            groups += [g for g in groups_of(info.get("sources")) if g not in groups]
            if groups:
                old["sources"] = [list(g) for g in groups]
    return out


def adopt_projects(cache: PackageCache, store: WheelStore, target: Target,
                   projects: list[str], limit: int = 500) -> int:
    """Resolve offline from the fleet's listings: take every file of these projects (and of
    their wheels' dependencies) the target can use. Returns the number of files taken."""
    todo = [str(canonicalize_name(p)) for p in projects]
    seen: set[str] = set()
    taken = 0
    while todo and len(seen) < limit:
        project = todo.pop()
        if project in seen:
            continue
        seen.add(project)
        listing, signer = signed_listing(cache, project)
        for filename, info in listing.items():
            try:
                if filename.endswith(".whl"):
                    if parse_wheel_filename(filename)[0] != project:
                        continue
                    if not target.supports(wheel_tags(filename) or frozenset()):
                        continue
                elif parse_sdist_filename(filename)[0] != project:
                    continue
            except (InvalidWheelFilename, InvalidSdistFilename):
                continue
            digest = info["sha256"]
            if filename.endswith(".whl"):
                if _adopt(cache, store, filename, digest, info,
                          groups=bound(info.get("sources"), signer)):
                    taken += 1
                    todo += _requires(cache, digest)
            else:
                art = Artifact(name=project, version="", url="", filename=filename,
                               sha256=digest, requires_python=info.get("requires_python"),
                               yanked=False, is_direct=False)
                if fetch_built(cache, store, art, target):
                    entry = cache.lookup(store.built_key(digest, target))
                    if entry is not None and store.view(entry, str(entry.meta["filename"])):
                        taken += 1
                        todo += _requires(cache, entry.digest)
    return taken


def _requires(cache: PackageCache, digest: str) -> list[str]:
    """Project names a wheel depends on (all extras and markers: over-fetching is harmless)."""
    path = cache.local_path(f"sha256:{digest}")
    if path is None:
        return []
    try:
        with zipfile.ZipFile(path) as zf:
            metas = [n for n in zf.namelist() if n.count("/") == 1
                     and n.endswith(".dist-info/METADATA")]
            hdr = HeaderParser().parsestr(zf.read(metas[0]).decode("utf-8", "replace"))
    except (OSError, IndexError, KeyError, zipfile.BadZipFile):
        return []
    out = []
    for req in hdr.get_all("Requires-Dist") or []:
        m = REQ_NAME.match(req)
        if m:
            out.append(str(canonicalize_name(m.group(1))))
    return out


def index_urls(pip_args: list[str]) -> list[str]:
    """The simple-index URLs pip will read, as options.source_list names them (-i, extra
    indexes, $PIP_INDEX_URL/$PIP_EXTRA_INDEX_URL, pip's config; default PyPI); none with
    --no-index."""
    if "--no-index" in pip_args:
        return []
    return [v for kind, v in options.source_list(pip_args) if kind == "index"]


class _Links:
    """The anchors of a PEP 503 page: file name -> (absolute URL, sha256, requires-python, yanked)."""

    def __init__(self, base: str, text: str) -> None:
        from html.parser import HTMLParser
        from urllib.parse import unquote, urljoin, urlsplit

        self.files: dict[str, tuple[str, str, str | None, str | None]] = {}
        files = self.files

        class P(HTMLParser):
            def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
                if tag != "a":
                    return
                a = dict(attrs)
                url = urljoin(base, a.get("href") or "")
                url, _, frag = url.partition("#")
                if not frag.startswith("sha256=") or not re.fullmatch(r"[0-9a-fA-F]{64}", frag[7:]):
                    return
                name = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
                files.setdefault(name, (url, frag[7:].lower(), a.get("data-requires-python"),
                                        a.get("data-yanked")))

        P().feed(text)


def index_files(urls: list[str], project: str, timeout: float = 10.0,
                read: PageReader | None = None
                ) -> dict[str, tuple[str, str, str | None, str | None]] | None:
    """The project's files on the indexes (PEP 503/691 pages with SHA-256); None if none
    answered. read: the run's view (view.View.read_page), so pip reads the same download."""
    from hooks.common import http

    from .build import pip_cafile

    out: dict[str, tuple[str, str, str | None, str | None]] = {}
    answered = False
    for base in urls:
        url = base.rstrip("/") + f"/{project}/"
        if read is not None:
            page = read(url)
            if page is None:
                continue
            answered = True
            ctype, body, final = page
            files = (_json_links(final, body) if ctype.split(";", 1)[0].strip()
                     == "application/vnd.pypi.simple.v1+json"
                     else _Links(final, body.decode("utf-8", "replace")).files)
            for k, v in files.items():
                out.setdefault(k, v)
            continue
        status, final, body = http.get(url, accept="text/html", timeout=timeout,
                                       cafile=pip_cafile())
        answered = answered or status in (200, 404)
        if status != 200:
            continue
        for k, v in _Links(final, body.decode("utf-8", "replace")).files.items():
            out.setdefault(k, v)
    return out if answered else None


def _json_links(base: str, body: bytes) -> dict[str, tuple[str, str, str | None, str | None]]:
    """The files of a PEP 691 JSON page, as _Links gives them for an HTML page."""
    from urllib.parse import unquote, urljoin, urlsplit

    out: dict[str, tuple[str, str, str | None, str | None]] = {}
    try:
        data = json.loads(body)
        for f in data.get("files") or []:
            digest = (f.get("hashes") or {}).get("sha256")
            if not isinstance(f.get("url"), str) or not isinstance(digest, str) or \
                    not re.fullmatch(r"[0-9a-fA-F]{64}", digest):
                continue
            url = urljoin(base, f["url"]).partition("#")[0]
            name = str(f.get("filename") or unquote(urlsplit(url).path.rsplit("/", 1)[-1]))
            rp, yanked = f.get("requires-python"), f.get("yanked")
            out.setdefault(name, (url, digest.lower(), rp if isinstance(rp, str) else None,
                                  (yanked if isinstance(yanked, str) else "") if yanked
                                  else None))
    except (ValueError, AttributeError, TypeError):
        return {}
    return out


WORKERS = 8  # projects read at once (their listing, index page and fleet wheels)


@dataclass
class _Wheel:
    """A wheel of the fleet's listing that the index publishes with the same SHA-256, brought
    into the local store and checked (_look_up); the main thread records it (_take)."""

    filename: str
    digest: str
    info: dict[str, Any]
    have: bool  # already cached here under its name with this digest
    requires: list[str]  # the projects it depends on
    groups: list[list[str]] = field(default_factory=list)  # the vouch (this request's origin)


def _check(cache: PackageCache, filename: str, digest: str, info: dict[str, Any]
           ) -> _Wheel | None:
    """The read-only part of taking one wheel (in a look-up thread): its object brought from
    the fleet and its own metadata matching its name; None if either fails."""
    try:
        check_filename(filename)
    except Exception:  # noqa: BLE001 - a bad name from a record: ignored
        return None
    entry = cache.lookup(f"wheel:{filename}")
    have = entry is not None and entry.digest == digest
    if not have:
        if _remote(cache).bring_object(digest) is None:
            return None
        if not _matches(cache, digest, filename):
            warn(f"pip: fleet listing names {filename} for content that is not {filename}; "
                 "ignored")
            return None
    return _Wheel(filename, digest, info, have, _requires(cache, digest))


Looked = tuple[dict[str, dict[str, Any]], dict[str, Any] | None, dict[str, _Wheel]]


def _look_up(cache: PackageCache, target: Target, urls: list[str], project: str,
             read: PageReader | None) -> Looked:
    """The network part of one project, run in parallel (index_verified): the fleet's listing,
    the index's page (through the run's view: pip then reads the same download) and the wheels
    both name with the same SHA-256 brought into the local store and checked (_check). The
    index is written by the caller (_take), for all projects at once."""
    listing = read_listing(cache, project)
    if not listing:
        return listing, None, {}
    published = index_files(urls, project, read=read)
    if not published:
        return listing, None, {}
    wheels: dict[str, _Wheel] = {}
    for filename, info in listing.items():
        if filename.endswith(".whl") and published.get(filename, ("", ""))[1] == info["sha256"] \
                and project_of(filename) == project \
                and target.supports(wheel_tags(filename) or frozenset()):
            w = _check(cache, filename, info["sha256"], info)
            if w is not None:
                wheels[filename] = w
    return listing, published, wheels


def index_verified(cache: PackageCache, store: WheelStore, target: Target, pip_args: list[str],
                   limit: int = 500, read: PageReader | None = None,
                   workers: int = WORKERS) -> int:
    """Take into the cache the fleet's files that the index itself lists with the same SHA-256
    (and the wheels the fleet built from such sdists), recorded as coming from this request's
    sources: pip, resolving online with the cache's tree last in line, then makes the choice
    it makes without the fleet and downloads none of them. Projects are looked up in parallel
    (a page each: pip, reading one at a time, pays a round trip per page), their dependencies
    as soon as a wheel names them; the wheels' keys are recorded at the end, in one index
    transaction, and the whole run is one remote batch (counters written once). Returns the
    number taken."""
    remote = cache.remote
    if remote is None or not index_urls(pip_args):
        return 0
    with remote.batch():
        return _index_verified(cache, store, target, pip_args, limit, read, workers)


def _index_verified(cache: PackageCache, store: WheelStore, target: Target,
                    pip_args: list[str], limit: int, read: PageReader | None,
                    workers: int) -> int:
    from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

    urls = index_urls(pip_args)
    _, names = requirement_hashes(pip_args)
    found = options.source_list(pip_args)  # once: origin() reads pip's config files
    seen: set[str] = set()
    taken = 0
    new: list[_Wheel] = []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        pending: dict[Future[Looked], str] = {}

        def look(project: str) -> None:
            if project not in seen and len(seen) < limit:
                seen.add(project)
                pending[pool.submit(_look_up, cache, target, urls, project, read)] = project

        for n in names:
            look(str(canonicalize_name(n)))
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                project = pending.pop(fut)
                try:
                    listing, published, wheels = fut.result()
                except Exception:  # noqa: BLE001 - a fault is a miss for that project
                    continue
                found_now, requires, fresh = _take(cache, store, target, pip_args, project,
                                                   listing, published, wheels, found)
                taken += found_now
                new += fresh
                for r in requires:
                    look(r)
    return taken + _record(cache, store, new)


def _record(cache: PackageCache, store: WheelStore, wheels: list[_Wheel]) -> int:
    """Record the keys of wheels (one index transaction), their links in the pip view and
    their vouches; the number recorded."""
    if not wheels:
        return 0
    added = cache.alias_many([(f"wheel:{w.filename}", w.digest, "wheel", _meta(w.filename, w.info))
                              for w in wheels])
    n = 0
    for w, ok in zip(wheels, added, strict=False):  # (a fault: [] - none recorded)
        entry = cache.lookup(f"wheel:{w.filename}") if ok else None
        if entry is None or entry.digest != w.digest or store.view(entry, w.filename) is None:
            continue
        if w.groups:  # the private trust record, which decides what pip is offered
            store.vouch(entry.key, w.digest, w.groups)
        n += 1
    return n


def _take(cache: PackageCache, store: WheelStore, target: Target, pip_args: list[str],
          project: str, listing: dict[str, dict[str, Any]], published: dict[str, Any] | None,
          wheels: dict[str, _Wheel], found: list[tuple[str, str]] | None = None
          ) -> tuple[int, list[str], list[_Wheel]]:
    """index_verified's checks for one project: (files taken, projects they depend on, wheels
    to record: _record)."""
    taken, todo, fresh = 0, [], []
    if not published:
        return 0, [], []
    for filename, info in listing.items():
        digest = info["sha256"]
        if published.get(filename, ("", ""))[1] != digest or project_of(filename) != project:
            continue
        origin = options.origin(published[filename][0], pip_args, found)
        groups = [origin] if origin else []
        if filename.endswith(".whl"):
            w = wheels.get(filename)
            if w is None or w.digest != digest:
                continue
            todo += w.requires
            if w.have:
                if groups:  # vouched for as a download from those sources would be
                    store.vouch(f"wheel:{filename}", digest, groups)
                taken += 1
            else:
                w.groups = groups
                fresh.append(w)
            continue
        art = Artifact(name=project, version="", url="", filename=filename,
                       sha256=digest, requires_python=None, yanked=False,
                       is_direct=False)
        if not fetch_built(cache, store, art, target):
            continue
        entry = cache.lookup(store.built_key(digest, target))
        if entry is None:
            continue
        if groups and store.trust.vouched(entry.key, entry.digest):
            store.vouch(entry.key, entry.digest, groups)  # built from this index's sdist
        todo += _requires(cache, entry.digest)
        taken += 1
    return taken, todo, fresh


def adopt_pins(cache: PackageCache, store: WheelStore, target: Target,
               pip_args: list[str]) -> int:
    """A fully pinned (``==``) request: take the pinned versions' files from the fleet's
    listings signed by a trusted key, so pip installs them with no index page at all (the
    pinned() check then makes sure every distribution pip would install is pinned). Returns
    the number of files taken."""
    from packaging.requirements import InvalidRequirement, Requirement

    pins: dict[str, str] = {}
    for line in options.request_lines(pip_args):
        spec = line.split(" --", 1)[0].split(";", 1)[0].strip()
        try:
            req = Requirement(spec)
        except InvalidRequirement:
            continue
        exact = [s.version for s in req.specifier if s.operator == "=="]
        if len(exact) == 1 and "*" not in exact[0]:
            pins[str(canonicalize_name(req.name))] = canonicalize_version(exact[0])
    have = {(str(e.meta.get("name")), canonicalize_version(str(e.meta.get("version"))))
            for p in ("wheel:", "built:") for e in cache.keys(p) if e.meta}
    taken = 0
    for project, version in pins.items():
        if (project, version) in have:  # cached here already: no store request (warm runs)
            continue
        listing, signer = signed_listing(cache, project)
        if not signer:  # only a trusted key's listing vouches (trust: unsigned never does)
            continue
        for filename, info in listing.items():
            try:
                if filename.endswith(".whl"):
                    name, ver, _, _ = parse_wheel_filename(filename)
                    if not target.supports(wheel_tags(filename) or frozenset()):
                        continue
                else:
                    name, ver = parse_sdist_filename(filename)
            except (InvalidWheelFilename, InvalidSdistFilename):
                continue
            if name != project or canonicalize_version(ver) != version:
                continue
            groups = bound(info.get("sources"), signer)
            if filename.endswith(".whl"):
                taken += _adopt(cache, store, filename, info["sha256"], info, groups=groups)
            else:
                art = Artifact(name=project, version=str(ver), url="", filename=filename,
                               sha256=info["sha256"], requires_python=info.get("requires_python"),
                               yanked=False, is_direct=False)
                taken += fetch_built(cache, store, art, target)
    return taken


# -- writing --------------------------------------------------------------------------------------
def publish(cache: PackageCache, arts: list[Artifact], store: WheelStore | None = None) -> None:
    """Queue the ``pipsha:`` records and merged ``piplist:`` listings of what this run cached,
    each file with the sources this member vouched for it from (store's trust record).

    Uploads run in the core's background uploader; only the merge reads the remote here.
    A member without a ``rw`` remote publishes nothing.
    """
    remote = cache.remote
    if remote is None or not remote.writable:
        return
    by_project: dict[str, dict[str, dict[str, Any]]] = {}
    for art in arts:
        if not art.cacheable or not art.sha256:
            continue
        kind = "wheel" if art.is_wheel else "sdist"
        entry = cache.lookup(f"{kind}:{art.filename}")
        if entry is None or entry.digest != art.sha256:
            continue
        info: dict[str, Any] = {"sha256": art.sha256, "requires_python": art.requires_python,
                                "yanked": art.yanked}
        vouch = store.trust.get(entry.key) if store is not None else None
        if vouch and vouch[0] == entry.digest:
            groups = published_groups(vouch[1])
            if groups:
                info["sources"] = groups
        if cache.alias(BY_DIGEST + art.sha256, art.sha256, kind="pipsha",
                       meta={"filename": art.filename, **info}):
            remote.put_record(BY_DIGEST + art.sha256)
        by_project.setdefault(art.name, {})[art.filename] = info
    for project, files in by_project.items():
        merge_listing(cache, project, files)


def merge_listing(cache: PackageCache, project: str, files: dict[str, dict[str, Any]]) -> bool:
    """Add files to the fleet's listing of project (a shared set: the uploader merges them into
    the store's newest version, whatever other writers add at the same time)."""
    key = LISTING + str(canonicalize_name(project))
    return _remote(cache).add_to_set(key, [{"filename": name, **info}
                                           for name, info in sorted(files.items())])
