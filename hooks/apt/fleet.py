"""apt on the fleet: bring the debs a plan needs in from the remote tier before apt starts
downloading, in parallel (bounded), by the SHA-256 of apt's signed index."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .naming import is_safe_name, key_for

if TYPE_CHECKING:
    from cache_core import PackageCache

WORKERS = 4  # parallel remote fetches (each one connection; the remote tier has its budgets)


def prefetch(cache: PackageCache, wants: list[Any], workers: int = WORKERS) -> tuple[int, int]:
    """Fetch every wanted deb (objects with .fname, .sha256, .size) missing from the local store
    from the remotes; returns (count, bytes) brought in. Never raises for remote faults."""
    from concurrent.futures import ThreadPoolExecutor  # here: the hooks' start-up needs none

    remote = cache.remote
    if remote is None:
        return 0, 0
    todo = [w for w in wants if not cache.exists(f"sha256:{w.sha256}")]
    if not todo:
        return 0, 0

    def one(w: Any) -> int:
        key = key_for(w.fname) if is_safe_name(w.fname) else None
        try:
            path = remote.bring_object(  # the seed counts the hit
                w.sha256, key, kind="deb",
                size=w.size if isinstance(w.size, int) and w.size else None)
        except Exception:  # noqa: BLE001 - a miss; placing falls back to apt's own download
            return -1
        return w.size if path is not None else -1

    # one batch: kept-alive connections, one counters write, one generation bump, one fsync per
    # directory for all the debs (each still verified by its SHA-256 and made durable first)
    with remote.batch(), ThreadPoolExecutor(max_workers=max(1, min(workers, len(todo)))) as pool:
        sizes = [s for s in pool.map(one, todo) if s >= 0]
    return len(sizes), sum(sizes)


METHOD_MARKER = b"hooks.apt.method"
SOURCES = ("local", "remote", "origin", "release_fallback")


def method_status() -> dict[str, Any]:
    """Is apt's http(s) method pkgcache's (per scheme: configured path, executable, ours)."""
    import os

    out: dict[str, Any] = {}
    try:
        import apt_pkg  # the configuration alone (no system init: the pre-install shortcut)

        apt_pkg.init_config()
        cfg = apt_pkg.config
    except ImportError:
        return {"active": False, "http": None, "https": None}
    for scheme in ("http", "https"):
        path = cfg.find(f"Dir::Bin::Methods::{scheme}", "")
        ours = False
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            try:
                with open(path, "rb") as fh:
                    ours = METHOD_MARKER in fh.read(8192) or \
                        os.path.realpath(path).startswith("/usr/lib/pkgcache/methods/")
            except OSError:
                ours = False
        out[scheme] = path or None
        out[f"{scheme}_active"] = ours
    out["active"] = bool(out["http_active"] and out["https_active"])
    return out


def describe_run(rec: dict[str, Any] | None, human: Any) -> str:
    """One line: what served the last run's downloads."""
    if not rec:
        return "never"
    c = rec.get("counts") or {}
    parts = []
    for src in SOURCES:
        n = int(c.get(src, 0))
        label = src.replace("_", " ")
        parts.append(f"{label} {n}" + (f" ({human(int(c.get(src + '_bytes', 0)))})" if n else ""))
    if c.get("origin_unchanged"):
        parts.append(f"origin unchanged {int(c['origin_unchanged'])}")
    return ", ".join(parts)
