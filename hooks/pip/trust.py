"""This machine's own word on pip files: which cache keys it vouched for, and stat stamps.

A shared cache is content, not authority: a co-writer (NFS, a BuildKit cache mount) can re-point
``wheel:``/``sdist:``/``built:`` keys at other objects or edit anything in the cache dir. So the
record of what this machine itself downloaded from an index with a published SHA-256 (or built
from such an sdist), and the stat stamps that let a run skip re-hashing an object, live in the
private local state dir (``$PKGCACHE_STATE_DIR``, else ``/var/lib/pkgcache`` for root and
``~/.local/state/pkgcache`` for other users), in ``pip-trust.json`` (0600). Without a usable
state dir nothing is vouched: cached files are then offered only to hash-pinned requests.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import Any

from cache_core import atomic_write, read_json, state_dir

FILE = "pip-trust.json"
MAX_BYTES = 64 << 20


def _read(path: Path) -> dict[str, Any]:
    """Our own owner-only JSON file ({} otherwise)."""
    return read_json(path, max_bytes=MAX_BYTES, private=True)


def _clean(data: dict[str, Any]) -> tuple[dict[str, list[Any]], dict[str, list[int]]]:
    keys = k if isinstance(k := data.get("keys"), dict) else {}
    stamps = s if isinstance(s := data.get("stamps"), dict) else {}
    good_keys = {k: v for k, v in keys.items()
                 if isinstance(v, list) and len(v) == 2 and isinstance(v[0], str)
                 and isinstance(v[1], list)}
    good_stamps = {k: v for k, v in stamps.items()
                   if isinstance(v, list) and len(v) == 4 and all(isinstance(i, int) for i in v)}
    return good_keys, good_stamps


class Trust:
    """key -> [digest, index sources] this machine vouched for; digest -> stat stamp."""

    def __init__(self) -> None:
        self.dir = state_dir()
        self.path = self.dir / FILE if self.dir is not None else None
        data = _read(self.path) if self.path is not None else {}
        self.keys, self.stamps = _clean(data)
        self._new_keys: dict[str, list[Any]] = {}
        self._dropped: set[str] = set()
        self.dirty = False

    def vouched(self, key: str, digest: str) -> bool:
        """True if this machine recorded digest for key itself."""
        rec = self.keys.get(key)
        return rec is not None and rec[0] == digest

    def sources(self, key: str) -> list[str]:
        """The index URLs the vouched file of key came from ([] if not vouched)."""
        rec = self.keys.get(key)
        return [str(s) for s in rec[1]] if rec else []

    def vouch(self, key: str, digest: str, sources: list[str]) -> None:
        """Record that this machine got digest for key from an index it trusts (or built it)."""
        rec = [digest, sorted(set(sources))]
        if self.keys.get(key) != rec:
            self.keys[key] = rec
            self._new_keys[key] = rec
            self.dirty = True

    def set_stamp(self, digest: str, stamp: list[int] | None) -> None:
        """Remember (or with None forget) digest's stat stamp from its last full hash."""
        if stamp is None:
            if self.stamps.pop(digest, None) is not None:
                self._dropped.add(digest)
                self.dirty = True
        elif self.stamps.get(digest) != stamp:
            self.stamps[digest] = stamp
            self._dropped.discard(digest)
            self.dirty = True

    def save(self, live: set[str] | None = None) -> None:
        """Merge this run's changes into the file (under a lock) and write it atomically 0600.

        live: digests still in the cache (stamps of others are dropped). Best effort: a lost
        write only costs a re-hash or a download later."""
        if not self.dirty or self.path is None or self.dir is None:
            return
        try:
            lfd = os.open(self.dir / (FILE + ".lock"),
                          os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError:
            return
        try:
            fcntl.flock(lfd, fcntl.LOCK_EX)
            keys, stamps = _clean(_read(self.path))
            keys.update(self._new_keys)
            for d in self._dropped:
                stamps.pop(d, None)
            stamps.update(self.stamps)
            if live is not None:
                stamps = {k: v for k, v in stamps.items() if k in live}
            atomic_write(self.path, json.dumps({"keys": keys, "stamps": stamps},
                                               separators=(",", ":")), 0o600)
            self.keys, self.stamps = keys, stamps
            self._new_keys.clear()
            self._dropped.clear()
            self.dirty = False
        except OSError:
            pass
        finally:
            os.close(lfd)
