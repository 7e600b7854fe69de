"""Shared sets: records that many ``rw`` members add to at once without losing each other's items.

A set under key K is a chain of immutable versions. Record ``K#<n>`` (signed, kind ``setv``) names
a JSON object ``{"set": K, "items": [...]}`` in ``cas/`` holding every item of version n-1 plus the
writer's own. A writer reads the head n, writes the union as n+1 with create-if-absent (O_EXCL on
``file://``, ``If-None-Match: *`` on S3, ``COPY`` with ``Overwrite: F`` on WebDAV); when another
writer took n+1 first, it merges that one and tries n+2. So the head holds every item any writer
added. Record K itself (kind ``sethead``, signed like any record) is a hint: the head's number
when it was written (the last writer wins; readers and writers probe forward from it with HEADs,
whoever signed it: it only says where to start). A hint also names the version's content digest,
its creation time and (when small, INLINE_MAX) its items, all signed: a reader that verifies it
and finds no version above it (one HEAD) takes the set from the hint alone (two requests instead
of five: hint, HEAD, version record, HEAD, content). A store that cannot create-if-absent
(a plain PUT-only WebDAV or Bazel cache) gets a plain PUT, and after a settle (SETTLE) the writer
checks that the head holds its items, merging again if another writer's PUT replaced its version
(best effort: a writer slower than the settle between its read and its PUT can still drop a
version; docs/core-api.md says so).

Trust is the records' own: a version counts only if signed by a trusted, unrevoked key (or the
remote says ``trust: unsigned``); a writer merges only versions it can verify with its trusted keys
or its own (the newest of the last WALK_BACK), so it never re-signs items it could not check; a
reader refuses a version with both a lower number and an older creation time than one it accepted
before for K (a replayed head; see check_version). ``remote gc`` keeps the head and the KEEP
versions below it.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable
from typing import Any

from ...errors import RecordError, RemoteError, RemoteMissing
from .base import record_name
from .records import MAX_CLOCK_SKEW, Record, decode, note_time, now, seen_time

SET_KIND = "set"          # the local entry: this member's own items of a shared set
VERSION_KIND = "setv"     # ``K#<n>`` on a store
HEAD_KIND = "sethead"     # ``K`` on a store: the hint
MAX_SET_BYTES = 4 << 20
MAX_VERSION = 1 << 40    # above any real chain: a store claiming more is lying
MAX_TRIES = 64            # versions a writer tries before it leaves its entry in the spool
WALK_BACK = 8             # versions below the head a reader or writer looks at for a trusted one
KEEP = 16                 # versions below the head that gc keeps (a hint lags by a few at most)
SETTLE = 1.0              # seconds before the read-back on a store without create-if-absent
INLINE_MAX = 32 << 10     # a version's stored items up to this size are also named in its hint


def version_key(key: str, n: int) -> str:
    """The key of version n of the set under key."""
    return f"{key}#{n}"


def split_version(key: str) -> tuple[str, int] | None:
    """(set key, n) of a version's key, or None."""
    base, sep, n = key.rpartition("#")
    return (base, int(n)) if sep and n.isdigit() and n[0] != "0" else None


def canonical(item: dict[str, Any]) -> str:
    """An item's identity: its canonical JSON."""
    return json.dumps(item, sort_keys=True, separators=(",", ":"))


def union(*groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The items of every group, each once, in canonical order."""
    seen: dict[str, dict[str, Any]] = {}
    for g in groups:
        for item in g:
            seen.setdefault(canonical(item), item)
    return [seen[k] for k in sorted(seen)]


def encode_items(key: str, items: list[dict[str, Any]]) -> bytes:
    """The stored form of a set's items."""
    return json.dumps({"set": key, "items": union(items)}, sort_keys=True).encode()


def decode_items(key: str, data: bytes) -> list[dict[str, Any]]:
    """The items of a stored set (RecordError if it is not the set under key)."""
    try:
        doc = json.loads(data)
    except ValueError:
        raise RecordError("set: not JSON") from None
    if not isinstance(doc, dict) or doc.get("set") != key or not isinstance(doc.get("items"), list):
        raise RecordError("set: not the set under this key")
    return [i for i in doc["items"] if isinstance(i, dict)]


class SetStore:
    """The set operations on one store. read: a record's bytes by name or None;
    content: (digest, size) -> bytes checked against digest or None; exists: a name is there."""

    def __init__(self, read: Callable[[str], bytes | None],
                 content: Callable[[str, int], bytes | None], exists: Callable[[str], bool],
                 trusted: list[str], allow_unsigned: bool, revoked: list[str]) -> None:
        self.read, self.content, self.exists = read, content, exists
        self.trusted, self.allow_unsigned, self.revoked = trusted, allow_unsigned, revoked
        self.rejected = 0  # records that did not verify (counted by the caller)

    def _decode(self, key: str, kind: str) -> Record | None:
        data = self.read(record_name(key))
        if data is None:
            return None
        try:
            rec = decode(data, key, self.trusted, self.allow_unsigned, self.revoked)
        except RecordError:
            self.rejected += 1
            return None
        return rec if rec.kind == kind else None

    def read_newest(self, key: str) -> tuple[int, Record | None, list[dict[str, Any]]]:
        """newest(key, head(key)), from the hint alone when it verifies, names its items (or
        their content) and no version above it exists: (n, its record, its items)."""
        hint = self.read(record_name(key))
        fast = self._from_hint(key, hint)
        return fast if fast is not None else self.newest(key, self.head_from(key, hint))

    def _from_hint(self, key: str, data: bytes | None
                   ) -> tuple[int, Record, list[dict[str, Any]]] | None:
        """(n, the hint's record, the items of version n) when the hint passes the record
        checks (signed by a trusted key, or the remote says ``trust: unsigned``), carries a
        creation time (replays are refused as for a version: check_version) and version n is
        the newest on the store; else None (the caller walks the chain)."""
        if data is None:
            return None
        try:
            rec = decode(data, key, self.trusted, self.allow_unsigned, self.revoked)
        except RecordError:
            return None  # another writer's key, an old hint: the chain decides
        n = (rec.meta or {}).get("head")
        if rec.kind != HEAD_KIND or rec.created is None or not isinstance(n, int) or \
                isinstance(n, bool) or not 0 < n < MAX_VERSION or rec.size > MAX_SET_BYTES:
            return None
        if self.exists(record_name(version_key(key, n + 1))):
            return None  # the hint lags: a newer version exists
        inline = (rec.meta or {}).get("items")
        if isinstance(inline, list):
            body = encode_items(key, [i for i in inline if isinstance(i, dict)])
            if len(body) == rec.size and digest(body) == rec.sha256:
                return n, rec, decode_items(key, body)
        stored = self.content(rec.sha256, rec.size)
        if stored is None:
            return None
        try:
            return n, rec, decode_items(key, stored)
        except RecordError:
            self.rejected += 1
            return None

    def head(self, key: str) -> int:
        """The newest version number on the store (0: none): from the hint, then HEADs forward
        (doubling, then halving back: versions are contiguous above the hint)."""
        return self.head_from(key, self.read(record_name(key)))

    def head_from(self, key: str, hint: bytes | None) -> int:
        """head() with the hint's bytes already read (None: no hint)."""
        n = 0
        h = _hinted(hint)  # a starting point only: no signature needed
        if h and self.exists(record_name(version_key(key, h))):
            n = h
        step = 1
        while self.exists(record_name(version_key(key, n + step))):
            n += step
            step *= 2
            if n + step >= MAX_VERSION:  # a store that says yes to everything: not a chain
                raise RemoteError(f"shared set {key[:40]}: no end to its versions")
        while step > 1:  # n exists, n + step does not
            step //= 2
            if self.exists(record_name(version_key(key, n + step))):
                n += step
        return n

    def newest(self, key: str, n: int) -> tuple[int, Record | None, list[dict[str, Any]]]:
        """(n, the newest verified version at or below n within WALK_BACK, its items)."""
        for m in range(n, max(0, n - WALK_BACK), -1):
            rec = self._decode(version_key(key, m), VERSION_KIND)
            if rec is None or rec.size > MAX_SET_BYTES:
                continue
            data = self.content(rec.sha256, rec.size)
            if data is None:
                continue
            try:
                return m, rec, decode_items(key, data)
            except RecordError:
                self.rejected += 1
        return 0, None, []


def _hinted(data: bytes | None) -> int:
    """The head number a hint names (0: none or unreadable). Not verified: a writer whose key
    another does not trust still points it to the chain's end (versions are checked one by one)."""
    try:
        meta = json.loads(data or b"{}").get("meta")
        h = meta.get("head") if isinstance(meta, dict) else None
    except (ValueError, AttributeError):
        return 0
    return h if isinstance(h, int) and not isinstance(h, bool) and 0 < h < MAX_VERSION else 0


def check_version(key: str, rec: Record, n: int) -> None:
    """Refuse (RecordError) version n of key's set when this machine accepted a higher version
    AND a later creation time before (a replayed old head; a store emptied and refilled starts
    again at 1 with newer times and is accepted; writers' clocks differ, so a higher number is
    enough). A trusted signature moves both marks (as records.check_fresh does)."""
    if rec.created is not None and rec.created > now() + MAX_CLOCK_SKEW:
        raise RecordError("created in the future")
    seen_n, seen_t = seen_time(f"{key}#"), seen_time(f"{key}#t")
    newer = rec.created is not None and (seen_t is None or rec.created > seen_t)
    if seen_n is not None and n < seen_n and not newer:
        raise RecordError("an older version of a shared set than one already seen (replayed?)")
    if rec.signer is not None:
        if seen_n is None or n > seen_n:
            note_time(f"{key}#", float(n))
        if newer and rec.created is not None:
            note_time(f"{key}#t", rec.created)


def backoff(attempt: int) -> None:
    """A short random wait before the next try (writers that collided spread out)."""
    time.sleep(random.uniform(0, min(0.5, 0.01 * (attempt + 1))))


def digest(data: bytes) -> str:
    """SHA-256 hex of data."""
    return hashlib.sha256(data).hexdigest()


def fetch(get: Callable[[str, float], Any], name: str, size: int, budget: float) -> bytes | None:
    """Up to size bytes of an object (None if missing or longer)."""
    out = bytearray()
    try:
        for chunk in get(name, time.monotonic() + budget):
            out += chunk
            if len(out) > size:
                return None
    except RemoteMissing:
        return None
    return bytes(out)
