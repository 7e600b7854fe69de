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

    from cache_core import sha256_file

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
        digest = sha256_file(entry.path)[0]
        if digest != want.sha256:
            rep.rows.append((entry.name, "unmatched", "SHA256 differs from the index"))
            continue
        fname = archive_name(name, version, arch)
        existing = cache.lookup(key_for(fname))
        if existing is not None and existing.digest == digest:
            rep.rows.append((entry.name, "already", "already cached"))
            continue
        got = cache.put(key_for(fname), entry.path, sha256=want.sha256, kind="deb",
                        meta={"package": name, "version": version, "arch": arch}, link=False)
        if got is None:
            rep.rows.append((entry.name, "failed", "the cache refused it"))
        else:
            rep.rows.append((entry.name, "imported", fname))
    return rep
