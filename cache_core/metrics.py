"""The cache's counters in the Prometheus text exposition format, and node_exporter's textfile.

One function renders what ``PackageCache.stats()`` returns; another writes it where
node_exporter's textfile collector reads it (``--collector.textfile.directory``), atomically:
the collector must never read half a file (node_exporter's own docs ask for a temp file and a
rename in the same directory).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from .errors import CacheError
from .fs import atomic_write, check_dir_safe

# (stats key, metric name, type, help)
_CORE = (
    ("hits", "pkgcache_hits_total", "counter", "Lookups answered from the cache."),
    ("misses", "pkgcache_misses_total", "counter", "Lookups the cache could not answer."),
    ("bytes_served", "pkgcache_served_bytes_total", "counter",
     "Bytes handed out from the cache: bytes not downloaded again (bytes saved)."),
    ("puts", "pkgcache_puts_total", "counter", "Files stored."),
    ("bytes_stored", "pkgcache_stored_bytes_total", "counter", "Bytes stored."),
    ("evictions", "pkgcache_evictions_total", "counter", "Entries evicted by the size cap."),
    ("corrupt_detected", "pkgcache_corrupt_total", "counter",
     "Objects whose bytes did not match their digest (quarantined, served as a miss)."),
    ("stale_detected", "pkgcache_stale_total", "counter", "Index rows whose object had gone."),
    ("entries", "pkgcache_entries", "gauge", "Keys in the index."),
    ("objects", "pkgcache_objects", "gauge", "Distinct objects stored."),
    ("size_bytes", "pkgcache_size_bytes", "gauge", "Bytes the cache holds."),
    ("max_size_bytes", "pkgcache_max_size_bytes", "gauge", "The size cap in bytes (0: no cap)."),
    ("quarantine_files", "pkgcache_quarantine_files", "gauge", "Files in quarantine."),
    ("quarantine_bytes", "pkgcache_quarantine_bytes", "gauge", "Bytes in quarantine."),
)
_KIND = (
    ("entries", "pkgcache_kind_entries", "gauge", "Keys in the index, by key kind."),
    ("hits", "pkgcache_kind_hits_total", "counter", "Hits on keys of this kind."),
    ("hit_bytes", "pkgcache_kind_served_bytes_total", "counter",
     "Bytes served for keys of this kind (hits x size)."),
)
_REMOTE = (
    ("hits", "pkgcache_remote_hits_total", "counter", "Objects fetched from a remote store."),
    ("records", "pkgcache_remote_records_total", "counter",
     "Signed shared sets read from a remote store (apt lists, pip pages)."),
    ("misses", "pkgcache_remote_misses_total", "counter", "Lookups a remote store could not answer."),
    ("errors", "pkgcache_remote_errors_total", "counter", "Failed requests to a remote store."),
    ("timeouts", "pkgcache_remote_timeouts_total", "counter", "Requests that timed out."),
    ("mismatches", "pkgcache_remote_mismatches_total", "counter",
     "Objects whose bytes did not match the digest asked for (rejected)."),
    ("rejected_records", "pkgcache_remote_rejected_records_total", "counter",
     "Records refused (unsigned, untrusted key, bad signature)."),
    ("bytes_in", "pkgcache_remote_received_bytes_total", "counter", "Bytes downloaded from the store."),
    ("bytes_out", "pkgcache_remote_sent_bytes_total", "counter", "Bytes uploaded to the store."),
    ("uploads", "pkgcache_remote_uploads_total", "counter", "Objects uploaded."),
    ("upload_errors", "pkgcache_remote_upload_errors_total", "counter", "Failed uploads."),
    ("degraded", "pkgcache_remote_degraded", "gauge",
     "1 while the circuit breaker keeps a remote store off after failures."),
)


def _label(value: str) -> str:
    """A label value escaped as the exposition format requires (backslash, quote, newline)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(pairs: Mapping[str, str]) -> str:
    return "{" + ",".join(f'{k}="{_label(v)}"' for k, v in pairs.items()) + "}"


def _number(value: object) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (int, float)):
        return repr(value) if isinstance(value, float) else str(value)
    return "0"


def render_prometheus(stats: Mapping[str, object]) -> str:
    """``PackageCache.stats()`` as Prometheus text; every sample labelled with the cache dir."""
    base = {"cache_dir": str(stats.get("cache_dir", ""))}
    out: list[str] = []

    def family(name: str, kind: str, text: str, samples: list[tuple[dict[str, str], object]]) -> None:
        out.append(f"# HELP {name} {text}")
        out.append(f"# TYPE {name} {kind}")
        out.extend(f"{name}{_labels(labels)} {_number(v)}" for labels, v in samples)

    family("pkgcache_enabled", "gauge", "1 if the cache is enabled.", [(base, bool(stats.get("enabled")))])
    for key, name, kind, text in _CORE:
        family(name, kind, text, [(base, stats.get(key, 0) or 0)])
    by_kind = stats.get("by_kind")
    if isinstance(by_kind, Mapping) and by_kind:
        for key, name, kind, text in _KIND:
            family(name, kind, text, [({**base, "kind": str(k)}, row.get(key, 0))
                                      for k, row in sorted(by_kind.items())])
    remote = stats.get("remote")
    rows = remote.get("remotes") if isinstance(remote, Mapping) else None
    if isinstance(rows, list) and rows:
        for key, name, kind, text in _REMOTE:
            family(name, kind, text, [({**base, "remote": str(r.get("url", "")),
                                        "mode": str(r.get("mode", ""))}, r.get(key, 0))
                                      for r in rows])
        if isinstance(remote, Mapping):
            family("pkgcache_remote_spool_objects", "gauge", "Objects waiting to be uploaded.",
                   [(base, remote.get("spool", 0))])
    return "\n".join(out) + "\n"


def write_textfile(path: str, text: str) -> None:
    """Write text to path for node_exporter's textfile collector: temp file + rename, 0644.

    The directory must exist and be safe (not writable by others), as for every directory
    pkgcache writes as root; CacheError says why not.
    """
    directory = os.path.dirname(os.path.abspath(path))
    if not path.endswith(".prom"):
        raise CacheError(f"{path}: a textfile for node_exporter must end in .prom")
    if not os.path.isdir(directory):
        raise CacheError(f"{directory}: no such directory (create it, as node_exporter's "
                         "textfile directory)")
    try:
        check_dir_safe(Path(directory))
    except CacheError as exc:
        raise CacheError(f"metrics textfile: {exc}") from None
    try:
        atomic_write(path, text, mode=0o644, fsync=True)
    except OSError as exc:
        raise CacheError(f"{path}: cannot write: {exc.strerror or exc}") from None
