"""`pkgcache apt import DIR`: ingest existing .debs, each verified against apt's indexes."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .naming import archive_name, key_for

if TYPE_CHECKING:
    from cache_core import PackageCache


@dataclass
class ImportReport:
    """Per-file results: (file, result, reason)."""

    rows: list[tuple[str, str, str]] = field(default_factory=list)

    def count(self, result: str) -> int:
        """How many files had this result (imported, already, unmatched, ...)."""
        return sum(1 for r in self.rows if r[1] == result)


def _control(path: str, apt_inst: Any, apt_pkg: Any) -> tuple[str, str, str]:
    deb = apt_inst.DebFile(path)
    section = apt_pkg.TagSection(deb.control.extractdata("control"))
    return section["Package"], section["Version"], section["Architecture"]


def import_dir(cache: PackageCache, directory: Path, *, apt_pkg: Any | None = None) -> ImportReport:
    """Store every .deb in directory whose SHA256 equals its index record; report the rest."""
    import apt_inst

    from .aptenv import apt_pkg_module
    from .seed import IndexView

    apt_pkg = apt_pkg or apt_pkg_module()
    view: IndexView | None = None
    rep = ImportReport()
    for entry in sorted(os.scandir(directory), key=lambda e: e.name):
        if not entry.name.endswith(".deb"):
            continue
        st = entry.stat(follow_symlinks=False)
        if not stat.S_ISREG(st.st_mode):
            rep.rows.append((entry.name, "skipped", "not a regular file"))
            continue
        try:
            name, version, arch = _control(entry.path, apt_inst, apt_pkg)
        except Exception:  # noqa: BLE001 - any unreadable file is just "not a deb"
            rep.rows.append((entry.name, "unmatched", "not a readable .deb"))
            continue
        if view is None:
            view = IndexView(apt_pkg)
        want = view.find_version(name, version, arch)
        if want is None:
            rep.rows.append((entry.name, "unmatched", f"{name} {version} {arch} is in no index"))
            continue
        if want.size != st.st_size:
            rep.rows.append((entry.name, "unmatched", "size differs from the index"))
            continue
        rep.rows.append((entry.name, *_import_one(cache, entry.path, archive_name(
            name, version, arch), want.sha256, {"package": name, "version": version, "arch": arch})))
    return rep


def _import_one(cache: PackageCache, path: str, fname: str, sha256: str,
                meta: dict[str, Any]) -> tuple[str, str]:
    """(status, detail) of importing one deb that must have the index's sha256; the file is
    hashed once, by the store's copy (or by a plain hash when that deb is cached already)."""
    from cache_core import DigestMismatch, open_regular, sha256_fd

    try:
        fd, _ = open_regular(path)
    except Exception:  # noqa: BLE001 - a symlink, FIFO or vanished file
        return "skipped", "not a regular file"
    try:
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
    finally:
        os.close(fd)
    return ("imported", fname) if got else ("failed", "the cache refused it")
