"""Eviction (LRU under a size cap) and verify/repair: the maintenance passes over the store."""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import time
from typing import TYPE_CHECKING

from . import fsutil
from .hashing import is_digest, sha256_file
from .locks import LockTimeout

if TYPE_CHECKING:
    from .cache import PackageCache


QUARANTINE_MAX_AGE = 7 * 86400       # quarantined files are kept a week for inspection
QUARANTINE_SHARE = 0.1                # ... and at most this share of the cap
QUARANTINE_MAX_UNCAPPED = 1024**3     # ... or 1 GiB when the cache has no cap


def quarantine_entries(cache: PackageCache) -> list[tuple[float, int, str]]:
    """(time quarantined, size, path) of every file in quarantine/, oldest first.

    The time is the inode change time: the move into quarantine/ sets it, the mtime is older.
    """
    out = []
    with contextlib.suppress(FileNotFoundError), os.scandir(cache.quarantine_dir) as it:
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


def prune_quarantine(cache: PackageCache, cap: int, older_than: float | None = None,
                     need: int = 0) -> tuple[int, int, int]:
    """Apply quarantine retention; returns (files removed, bytes freed, bytes kept).

    Removes, oldest first, what is older than QUARANTINE_MAX_AGE (or older_than, if shorter),
    what exceeds quarantine_limit(cap), and up to ``need`` more bytes (the cap is over).
    """
    entries = quarantine_entries(cache)
    kept = sum(size for _, size, _ in entries)
    max_age = QUARANTINE_MAX_AGE if older_than is None else min(older_than, QUARANTINE_MAX_AGE)
    cutoff = time.time() - max_age
    limit = quarantine_limit(cap)
    removed = freed = 0
    for when, size, path in entries:
        if not (when <= cutoff or kept > limit or freed < need):
            break
        _remove_tree(path)
        removed += 1
        freed += size
        kept -= size
    return removed, freed, kept


def run_gc(cache: PackageCache, cap: int, older_than: float | None) -> dict[str, int]:
    """Evict LRU objects/bucket entries (caller holds the gc lock); return what was done.

    quarantine/ counts against the cap and goes first: its files are never served.
    """
    index = cache.index
    counters = index.counters()
    usage = counters.get("total_size", 0) + counters.get("bucket_size", 0)
    target = int(cap * 0.9) if cap else None
    cutoff = time.time() - older_than if older_than is not None else None
    result = {"evicted": 0, "freed_bytes": 0, "pinned": 0, "pinned_bytes": 0, "stale": 0}
    q_bytes = sum(size for _, size, _ in quarantine_entries(cache))
    need = max(0, usage + q_bytes - target) if target is not None else 0
    q_removed, q_freed, q_kept = prune_quarantine(cache, cap, older_than, need)
    result.update(quarantine_removed=q_removed, quarantine_freed_bytes=q_freed)
    usage += q_kept
    pinned_bytes = 0
    for typ, ident, size, last_used in index.lru_candidates():
        too_old = cutoff is not None and last_used < cutoff
        over = target is not None and usage - pinned_bytes > target
        if not (too_old or over):
            break  # candidates are oldest first: nothing later is older or needed
        if typ == "o":
            path = cache.object_path(ident)
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                cache.drop_stale(ident)
                usage -= size
                result["stale"] += 1
                continue
            if stat.S_ISREG(st.st_mode) and st.st_nlink > 1 and not too_old:
                # Hard-linked elsewhere (e.g. apt's archives): evicting frees nothing.
                pinned_bytes += size
                result["pinned"] += 1
                result["pinned_bytes"] += size
                continue
            def unchanged(path=path, inode=st.st_ino) -> bool:
                try:
                    return os.lstat(path).st_ino == inode  # else re-published since we looked
                except FileNotFoundError:
                    return True

            def unlink(path=path, inode=st.st_ino) -> None:
                # Rows first, file second: a kill -9 between leaves an orphan file, not a row
                # without its file. A put that re-published meanwhile brought a new inode.
                with contextlib.suppress(FileNotFoundError):
                    if os.lstat(path).st_ino == inode:
                        os.unlink(path)

            if not index.drop_object(ident, "evictions", remove=unchanged, after=unlink):
                continue
        else:
            bucket, name = ident.split("/", 1)
            try:
                with cache.lock(f"bucket:{bucket}/{name}", timeout=0):
                    index.bucket_drop(bucket, name)
                    _remove_tree(cache.root / bucket / name)
                    index.bump("evictions")
            except LockTimeout:
                continue
        usage -= size
        result["evicted"] += 1
        result["freed_bytes"] += size
    index.flush()
    return result


def _remove_tree(path: os.PathLike[str] | str) -> None:
    """Remove a directory or file without following symlinks."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path, ignore_errors=True)
    else:
        fsutil.unlink_quiet(path)


def run_verify(cache: PackageCache, repair: bool) -> dict[str, list[str]]:
    """Re-hash every object and reconcile the index with the files (caller holds the gc lock).

    Reports: corrupt (content or type wrong), missing (rows without files), orphans (files
    without rows), strays (unexpected files), temps (crash leftovers), dangling keys.
    With repair: quarantine corrupt, drop missing rows, index valid orphans, remove strays and
    temps, recount totals.
    """
    index = cache.index
    rows = index.all_objects()
    report: dict[str, list[str]] = {k: [] for k in
                                    ("corrupt", "missing", "orphans", "strays", "temps", "dangling")}
    seen: set[str] = set()
    for shard in os.scandir(cache.objects_dir):
        if not (shard.is_dir(follow_symlinks=False) and is_digest(shard.name * 32)):
            report["strays"].append(shard.path)
            if repair:
                _remove_tree(shard.path)
            continue
        for ent in os.scandir(shard.path):
            name = ent.name
            if not is_digest(name) or name[:2] != shard.name:
                report["strays"].append(ent.path)
                if repair:
                    _remove_tree(ent.path)
                continue
            seen.add(name)
            try:
                ok = ent.is_file(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if ok:
                try:
                    digest, size = sha256_file(ent.path, follow=False)
                except FileNotFoundError:
                    continue  # evicted or re-published meanwhile
                except OSError:
                    ok = False
                else:
                    ok = digest == name and (name not in rows or rows[name] == size)
            if not ok:
                report["corrupt"].append(name)
                if repair:
                    with contextlib.suppress(FileNotFoundError):
                        os.rename(ent.path, cache.quarantine_dir / f"{name}.{int(time.time())}")
                    index.drop_object(name, "corrupt")
            elif name not in rows:
                report["orphans"].append(name)
                if repair:
                    index.add("", name, size, "object", None)
    for digest in rows:
        if digest not in seen:
            report["missing"].append(digest)
            if repair:
                cache.drop_stale(digest)
    dangling = [r[0] for r in index.conn.execute(
        "SELECT key FROM keys WHERE digest NOT IN (SELECT digest FROM objects)")]
    report["dangling"] = dangling
    if repair:
        for key in dangling:
            index.drop_key(key)
    now = time.time()
    for ent in os.scandir(cache.tmp_dir):
        pid = fsutil.temp_owner_pid(ent.name)
        if pid is None or pid != os.getpid() and not fsutil.pid_alive(pid):
            report["temps"].append(ent.name)
            continue
        try:  # a concurrent put renames its temp away at any moment
            if now - ent.stat(follow_symlinks=False).st_mtime > 6 * 3600:
                report["temps"].append(ent.name)
        except FileNotFoundError:
            continue
    if repair:
        cache._sweep_temps(force=True)
        index.recount()
    return report
