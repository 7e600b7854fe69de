"""This machine's own word on pip files: which cache keys it vouched for, and from where.

A shared cache is content, not authority: a co-writer (NFS, a BuildKit cache mount) can re-point
``wheel:``/``sdist:``/``built:`` keys at other objects or edit anything in the cache dir. So the
record of what this machine itself took from an index with a published SHA-256 (or built from
such an sdist, or received with a record signed by a trusted fleet key) lives in the private
local state dir
(``$PKGCACHE_STATE_DIR``, else ``/var/lib/pkgcache`` for root and ``~/.local/state/pkgcache``
for other users), one file per cache: ``pip-trust-<sha256(realpath(cache))[:16]>.json`` (0600).
Without a usable state dir nothing is vouched: cached files are then offered only to
hash-pinned requests.

Provenance: each vouch carries *groups* of source tokens (normalised index URLs, find-links
locations, ``@key:NAME:BASE64`` for a fleet key). A group is a set of conditions that must all
hold for a request: every source token is one of the request's sources and every key token is a
key the configuration still trusts. ``may_offer`` is the one rule deciding what a request sees.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cache_core import memo_path, read_memo, write_memo

LEGACY_FILE = "pip-trust.json"  # one per host (before per-cache records): read once, to migrate
MAX_BYTES = 64 << 20
MAX_GROUPS = 16
KEY = "@key:"  # a group token naming the fleet key that vouched (see may_offer)

Group = tuple[str, ...]


def file_name(cache_root: str | os.PathLike[str] | None) -> str:
    """The trust record's file name for one cache (by the real path of its directory)."""
    if cache_root is None:
        return LEGACY_FILE
    real = os.path.realpath(os.fspath(cache_root))
    return f"pip-trust-{hashlib.sha256(real.encode('utf-8', 'surrogateescape')).hexdigest()[:16]}.json"


def groups_of(value: Any) -> list[Group]:
    """Source groups from a record or meta value: a list of lists (one group each), or the old
    form, a flat list of the request's sources (one group: all of them were required)."""
    if not isinstance(value, list) or not value:
        return []
    if all(isinstance(s, str) for s in value):
        return [tuple(sorted(set(value)))]
    out = []
    for g in value:
        if isinstance(g, list) and g and all(isinstance(s, str) for s in g):
            group = tuple(sorted(set(g)))
            if group not in out:
                out.append(group)
    return out[:MAX_GROUPS]


@dataclass(frozen=True)
class Request:
    """What one pip request may be offered from: its sources (index URLs and find-links
    locations, as ``options.sources`` normalises them), the digests it pins in hash-checking
    mode (None when it does not check hashes) and the fleet keys the configuration trusts."""

    sources: frozenset[str]
    hashes: frozenset[str] | None = None
    keys: frozenset[str] = frozenset()


def may_offer(digest: str, vouch: Sequence[Any] | None, req: Request) -> bool:
    """May a cached file with this digest be offered to req, given this machine's vouch
    ``[digest, groups]`` for its key (None: never vouched)?

    Yes if the request pins this very digest (pip/uv check it), or if the vouch is for this
    digest and one of its groups holds for the request: each source in it is one of the
    request's sources and each fleet key in it is still trusted. Online, offline, pinned or
    not: the same rule.
    """
    if req.hashes is not None and digest in req.hashes:
        return True
    if not vouch or vouch[0] != digest:
        return False
    for group in groups_of(vouch[1]):
        if all((t[len(KEY):] in req.keys) if t.startswith(KEY) else (t in req.sources)
               for t in group):
            return True
    return False


def _read(path: Path) -> dict[str, Any]:
    """Our own owner-only JSON file ({} otherwise)."""
    return read_memo(path, MAX_BYTES)


def _clean(data: dict[str, Any]) -> dict[str, list[Any]]:
    """The well-formed vouches of a record (its objects' stat stamps, which older versions kept
    here, are cache_core.stamps' now: dropped at the next save)."""
    raw_keys = data.get("keys")
    keys = raw_keys if isinstance(raw_keys, dict) else {}
    return {k: [v[0], [list(g) for g in groups_of(v[1])]] for k, v in keys.items()
            if isinstance(v, list) and len(v) == 2 and isinstance(v[0], str)
            and isinstance(v[1], list)}


class Trust:
    """key -> [digest, source groups] this machine vouched for."""

    def __init__(self, cache_root: str | os.PathLike[str] | None = None) -> None:
        self.path = memo_path(file_name(cache_root))
        self.dir = self.path.parent if self.path is not None else None
        data = _read(self.path) if self.path is not None else {}
        migrated = False
        if not data and self.path is not None and self.path.name != LEGACY_FILE \
                and not os.path.lexists(self.path):
            data = _read(self.path.with_name(LEGACY_FILE))  # the old host-wide record, once
            migrated = bool(data)
        self.keys = _clean(data)
        self._new_keys: dict[str, list[Any]] = dict(self.keys) if migrated else {}
        self.dirty = migrated

    def vouched(self, key: str, digest: str) -> bool:
        """True if this machine recorded digest for key itself (from any source)."""
        rec = self.keys.get(key)
        return rec is not None and rec[0] == digest

    def holds(self, key: str, digest: str, keys: frozenset[str]) -> bool:
        """True if this machine vouched for digest under key from some source, by itself or
        by a fleet key still among keys (the source does not matter: a built wheel's sdist)."""
        rec = self.keys.get(key)
        return rec is not None and rec[0] == digest and any(
            all(t[len(KEY):] in keys for t in g if t.startswith(KEY)) for g in groups_of(rec[1]))

    def get(self, key: str) -> list[Any] | None:
        """The vouch ``[digest, groups]`` of key, for may_offer."""
        return self.keys.get(key)

    def vouch(self, key: str, digest: str, groups: Iterable[Sequence[str]]) -> None:
        """Record that this machine got digest for key from these sources (each group a set of
        source tokens, all required). The same digest again adds its groups; another digest
        replaces the vouch (the key now names other bytes)."""
        new = [list(g) for g in groups_of([list(g) for g in groups if g])]
        if not new:
            return
        rec = self.keys.get(key)
        if rec is not None and rec[0] == digest:
            have = [list(g) for g in groups_of(rec[1])]
            merged = have + [g for g in new if g not in have]
        else:
            merged = new
        merged = merged[-MAX_GROUPS:]
        out = [digest, merged]
        if rec != out:
            self.keys[key] = out
            self._new_keys[key] = out
            self.dirty = True

    def save(self) -> None:
        """Merge this run's vouches into the file (under a lock) and write it atomically 0600.
        Best effort: a lost write only costs a download later."""
        if not self.dirty or self.path is None or self.dir is None:
            return
        try:
            lfd = os.open(self.dir / (self.path.name + ".lock"),
                          os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError:
            return
        try:
            fcntl.flock(lfd, fcntl.LOCK_EX)
            keys = _clean(_read(self.path))
            for k, rec in self._new_keys.items():
                old = keys.get(k)
                if old is not None and old[0] == rec[0]:  # another run vouched too: keep both
                    rec = [rec[0], (old[1] + [g for g in rec[1] if g not in old[1]])[-MAX_GROUPS:]]
                keys[k] = rec
            if not write_memo(self.path, {"keys": keys}):
                return
            self.keys = keys
            self._new_keys.clear()
            self.dirty = False
        except OSError:
            pass
        finally:
            os.close(lfd)
