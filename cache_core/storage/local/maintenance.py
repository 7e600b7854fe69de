"""Maintenance of the local store: gc (LRU under the cap, quarantine retention), verify/repair
and clear. Works through the store's and the index's public methods; callers hold the gc lock."""

from __future__ import annotations

import contextlib
import os
import stat
import time
from typing import TYPE_CHECKING, Protocol

from ... import stamps
from ...errors import LockTimeout, warn
from ...fs import remove_tree, stale_entries, unlink_quiet
from ...hashing import sha256_file
from ...keys import is_digest

if TYPE_CHECKING:
    from pathlib import Path

    from ...index import Index
    from .layout import Layout


class LocalStore(Protocol):
    """What maintenance uses of the local store (store.LocalStore, which calls in here)."""

    layout: Layout
    root: Path

    @property
    def index(self) -> Index:
        """The store's index (opened on first use)."""

    def bucket_lock(self, bucket: str, name: str, timeout: float | None = None
                    ) -> contextlib.AbstractContextManager[None]:
        """The lock of one bucket entry."""

    def drop_stale(self, digest: str) -> None:
        """Forget an object whose file is gone."""

    def quarantine(self, digest: str, inode: int | None = None, *, quiet: bool = False) -> bool:
        """Move a bad object aside and forget its keys."""

    def object_path(self, digest: str) -> Path:
        """Where the object with this digest lives."""

    def sweep_temps(self, force: bool = False) -> list[str]:
        """Remove leftovers of crashed writers from tmp/."""

QUARANTINE_MAX_AGE = 7 * 86400       # quarantined files are kept a week for inspection
QUARANTINE_SHARE = 0.1                # ... and at most this share of the cap
QUARANTINE_MAX_UNCAPPED = 1024**3     # ... or 1 GiB when the cache has no cap
GC_TARGET = 0.9                       # gc evicts down to this share of the cap
REPORT_KINDS = ("corrupt", "missing", "orphans", "strays", "temps", "dangling")


# -- quarantine retention -------------------------------------------------------------------------
def quarantine_entries(store: LocalStore) -> list[tuple[float, int, str]]:
    """(time quarantined, size, path) of every file in quarantine/, oldest first.

    The time is the inode change time: the move into quarantine/ sets it, the mtime is older.
    """
    out = []
    with contextlib.suppress(FileNotFoundError), os.scandir(store.layout.quarantine_dir) as it:
        for ent in it:
            with contextlib.suppress(FileNotFoundError):
                st = ent.stat(follow_symlinks=False)
                size = st.st_size if stat.S_ISREG(st.st_mode) else 0
                out.append((st.st_ctime, size, ent.path))
    out.sort()
    return out


def quarantine_limit(cap: int) -> int:
    """The most bytes quarantine/ may hold for a cache capped at cap (0 = no cap)."""
    return int(cap * QUARANTINE_SHARE) if cap else QUARANTINE_MAX_UNCAPPED


def prune_quarantine(store: LocalStore, cap: int, older_than: float | None = None,
                     need: int = 0) -> tuple[int, int, int]:
    """Apply quarantine retention; returns (files removed, bytes freed, bytes kept).

    Removes, oldest first, what is older than QUARANTINE_MAX_AGE (or older_than, if shorter),
    what exceeds quarantine_limit(cap), and up to ``need`` more bytes (the cap is over).
    """
    entries = quarantine_entries(store)
    kept = sum(size for _, size, _ in entries)
    max_age = QUARANTINE_MAX_AGE if older_than is None else min(older_than, QUARANTINE_MAX_AGE)
    cutoff = time.time() - max_age
    limit = quarantine_limit(cap)
    removed = freed = 0
    for when, size, path in entries:
        if not (when <= cutoff or kept > limit or freed < need):
            break
        remove_tree(path)
        removed += 1
        freed += size
        kept -= size
    return removed, freed, kept


# -- gc -------------------------------------------------------------------------------------------
def _evict_object(store: LocalStore, digest: str, too_old: bool) -> str:
    """Evict one object: "evicted", "stale" (its file was gone), "pinned" (hard-linked
    elsewhere: evicting frees nothing) or "kept" (re-published since we looked)."""
    path = store.object_path(digest)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        store.drop_stale(digest)
        return "stale"
    if stat.S_ISREG(st.st_mode) and st.st_nlink > 1 and not too_old:
        return "pinned"

    def unchanged() -> bool:
        try:
            return os.lstat(path).st_ino == st.st_ino  # else re-published since we looked
        except FileNotFoundError:
            return True

    def unlink() -> None:
        # Rows first, file second: a kill -9 between leaves an orphan file, not a row
        # without its file. A put that re-published meanwhile brought a new inode.
        with contextlib.suppress(FileNotFoundError):
            if os.lstat(path).st_ino == st.st_ino:
                os.unlink(path)
                stamps.forget(str(store.root), digest)

    ok = store.index.drop_object(digest, "evictions", remove=unchanged, after=unlink)
    return "evicted" if ok else "kept"


def _evict_bucket_entry(store: LocalStore, ident: str) -> bool:
    """Evict one bucket entry (a git mirror) unless its lock is held."""
    bucket, name = ident.split("/", 1)
    try:
        with store.bucket_lock(bucket, name, timeout=0):
            store.index.bucket_drop(bucket, name)
            remove_tree(store.root / bucket / name)
            store.index.bump("evictions")
    except LockTimeout:
        return False
    return True


def gc(store: LocalStore, cap: int, older_than: float | None) -> dict[str, int]:
    """Evict LRU objects/bucket entries down to GC_TARGET of cap; return what was done.

    quarantine/ counts against the cap and goes first: its files are never served.
    older_than (seconds) also evicts everything unused for that long.
    """
    index = store.index
    counters = index.counters()
    usage = counters.get("total_size", 0) + counters.get("bucket_size", 0)
    target = int(cap * GC_TARGET) if cap else None
    cutoff = time.time() - older_than if older_than is not None else None
    result = {"evicted": 0, "freed_bytes": 0, "pinned": 0, "pinned_bytes": 0, "stale": 0}
    q_bytes = sum(size for _, size, _ in quarantine_entries(store))
    need = max(0, usage + q_bytes - target) if target is not None else 0
    q_removed, q_freed, q_kept = prune_quarantine(store, cap, older_than, need)
    result.update(quarantine_removed=q_removed, quarantine_freed_bytes=q_freed)
    usage += q_kept
    pinned_bytes = 0
    for typ, ident, size, last_used in index.lru_candidates():
        too_old = cutoff is not None and last_used < cutoff
        over = target is not None and usage - pinned_bytes > target
        if not (too_old or over):
            break  # candidates are oldest first: nothing later is older or needed
        if typ == "o":
            outcome = _evict_object(store, ident, too_old)
            if outcome == "stale":
                usage -= size
                result["stale"] += 1
                continue
            if outcome == "pinned":
                pinned_bytes += size
                result["pinned"] += 1
                result["pinned_bytes"] += size
                continue
            if outcome == "kept":
                continue
        elif not _evict_bucket_entry(store, ident):
            continue
        usage -= size
        result["evicted"] += 1
        result["freed_bytes"] += size
    index.flush()
    return result


# -- verify / repair ------------------------------------------------------------------------------
def _check_file(path: str, name: str, rows: dict[str, int]) -> tuple[bool, int]:
    """(good, size) of one object file: a regular file whose content hashes to its name."""
    if not stat.S_ISREG(os.lstat(path).st_mode):  # FileNotFoundError: gone meanwhile
        return False, 0
    try:
        digest, size = sha256_file(path, follow=False)
    except FileNotFoundError:
        raise
    except OSError:
        return False, 0
    return digest == name and (name not in rows or rows[name] == size), size


def _verify_objects(store: LocalStore, rows: dict[str, int], report: dict[str, list[str]],
                    repair: bool) -> set[str]:
    """Walk objects-v1/: strays, corrupt objects and orphans; returns the digests seen."""
    seen: set[str] = set()
    for shard in os.scandir(store.layout.objects_dir):
        if not (shard.is_dir(follow_symlinks=False) and is_digest(shard.name * 32)):
            report["strays"].append(shard.path)
            if repair:
                remove_tree(shard.path)
            continue
        for ent in os.scandir(shard.path):
            name = ent.name
            if not is_digest(name) or name[:2] != shard.name:
                report["strays"].append(ent.path)
                if repair:
                    remove_tree(ent.path)
                continue
            seen.add(name)
            try:
                ok, size = _check_file(ent.path, name, rows)
            except FileNotFoundError:
                continue  # evicted or re-published meanwhile
            if not ok:
                report["corrupt"].append(name)
                stamps.forget(str(store.root), name)  # the next read hashes it in full
                if repair:
                    store.quarantine(name, quiet=True)
            elif name not in rows:
                report["orphans"].append(name)
                if repair:
                    store.index.add("", name, size, "object", None)
    return seen


def verify(store: LocalStore, repair: bool) -> dict[str, list[str]]:
    """Re-hash every object and reconcile the index with the files.

    Reports: corrupt (content or type wrong), missing (rows without files), orphans (files
    without rows), strays (unexpected files), temps (crash leftovers), dangling keys.
    With repair: quarantine corrupt, drop missing rows, index valid orphans, remove strays and
    temps, recount totals.
    """
    index = store.index
    rows = index.all_objects()
    report: dict[str, list[str]] = {k: [] for k in REPORT_KINDS}
    seen = _verify_objects(store, rows, report, repair)
    for digest in rows:
        if digest not in seen:
            report["missing"].append(digest)
            if repair:
                store.drop_stale(digest)
    report["dangling"] = index.dangling_keys()
    if repair:
        for key in report["dangling"]:
            index.drop_key(key)
    report["temps"] = [e.name for e in stale_entries(store.layout.tmp_dir, force=True)]
    if repair:
        store.sweep_temps(force=True)
        index.recount()
    return report


# -- clear ----------------------------------------------------------------------------------------
def clear(store: LocalStore) -> int:
    """Remove every object, key, bucket entry not in use and quarantined file; returns the
    objects removed."""
    index = store.index
    n = index.counters().get("objects", 0)
    index.forget_all_objects()
    for shard in os.scandir(store.layout.objects_dir):
        if shard.is_dir(follow_symlinks=False):
            remove_tree(shard.path)
        else:
            unlink_quiet(shard.path)
    store.layout.forget_shards()
    for bucket, name in index.bucket_entries():  # each under its own lock, as gc does
        try:
            with store.bucket_lock(bucket, name, timeout=10):
                index.bucket_drop(bucket, name)
                p = store.root / bucket / name
                if p.is_dir() and not p.is_symlink():
                    remove_tree(p)
        except LockTimeout:
            warn(f"clear: {bucket}/{name} is in use; left in place")
    store.sweep_temps(force=True)
    for entry in os.scandir(store.layout.quarantine_dir):
        remove_tree(entry.path)
    return n
