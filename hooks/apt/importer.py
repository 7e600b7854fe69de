"""`pkgcache apt import DIR`: ingest existing .debs, each verified against apt's indexes."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .naming import archive_name, key_for

if TYPE_CHECKING:
    from cache_core import PackageCache

    from .seed import IndexView


@dataclass
class ImportReport:
    """Per-file results: (file, result, reason)."""

    rows: list[tuple[str, str, str]] = field(default_factory=list)

    def count(self, result: str) -> int:
        """How many files had this result (imported, already, unmatched, ...)."""
        return sum(1 for r in self.rows if r[1] == result)


def _control(fd: int, apt_inst: Any, apt_pkg: Any) -> tuple[str, str, str]:
    """(package, version, architecture) of the deb open as fd (read from its start)."""
    os.lseek(fd, 0, os.SEEK_SET)
    with open(fd, "rb", closefd=False) as fh:
        deb = apt_inst.DebFile(fh)
        section = apt_pkg.TagSection(deb.control.extractdata("control"))
    return section["Package"], section["Version"], section["Architecture"]


def import_dir(cache: PackageCache, directory: Path, *, apt_pkg: Any | None = None) -> ImportReport:
    """Store every .deb in directory whose SHA256 equals its index record; report the rest."""
    import apt_inst

    from cache_core import open_regular

    from .aptenv import apt_pkg_module
    from .seed import IndexView

    apt_pkg = apt_pkg or apt_pkg_module()
    views: list[IndexView] = []

    def view_of() -> IndexView:  # the indexes, opened at the first deb
        if not views:
            views.append(IndexView(apt_pkg))
        return views[0]

    rep = ImportReport()
    for entry in sorted(os.scandir(directory), key=lambda e: e.name):
        if not entry.name.endswith(".deb"):
            continue
        try:  # opened once, never followed, never blocking: read and hashed through fd
            fd, st = open_regular(entry.path)
        except Exception:  # noqa: BLE001 - a symlink, FIFO or vanished file
            rep.rows.append((entry.name, "skipped", "not a regular file"))
            continue
        try:
            rep.rows.append((entry.name, *_import_fd(cache, fd, st.st_size, view_of, apt_inst,
                                                     apt_pkg)))
        finally:
            os.close(fd)
    return rep


def _import_fd(cache: PackageCache, fd: int, size: int, view_of: Callable[[], IndexView],
               apt_inst: Any, apt_pkg: Any) -> tuple[str, str]:
    """(status, detail) for the deb open as fd: its control read, its index record found."""
    try:
        name, version, arch = _control(fd, apt_inst, apt_pkg)
    except Exception:  # noqa: BLE001 - any unreadable file is just "not a deb"
        return "unmatched", "not a readable .deb"
    want = view_of().find_version(name, version, arch)
    if want is None:
        return "unmatched", f"{name} {version} {arch} is in no index"
    if want.size != size:
        return "unmatched", "size differs from the index"
    return _import_one(cache, fd, archive_name(name, version, arch), want.sha256,
                       {"package": name, "version": version, "arch": arch})


def _import_one(cache: PackageCache, fd: int, fname: str, sha256: str,
                meta: dict[str, Any]) -> tuple[str, str]:
    """(status, detail) of importing one deb, open as fd, that must have the index's sha256;
    it is hashed once, by the store's copy (or by a plain hash when that deb is cached)."""
    from cache_core import DigestMismatch, sha256_fd

    os.lseek(fd, 0, os.SEEK_SET)
    existing = cache.lookup(key_for(fname))
    if existing is not None and existing.digest == sha256 and cache.exists(existing.key):
        if sha256_fd(fd)[0] != sha256:
            return "unmatched", "SHA256 differs from the index"
        return "already", "already cached"
    try:
        got = cache.put(key_for(fname), fd, sha256=sha256, kind="deb", meta=meta,
                        on_mismatch="raise")
    except DigestMismatch:
        return "unmatched", "SHA256 differs from the index"
    return ("imported", fname) if got else ("failed", "the cache refused it")
