"""The SQLite index: key -> object digest, object sizes and LRU times, counters, buckets.

All of pkgcache's SQL lives in this package. WAL on local disk (a rollback journal on network
file systems, shared folders and FUSE, where WAL's shared memory does not work), short
BEGIN IMMEDIATE write transactions, a busy timeout. Running totals are kept by triggers so
``stats`` needs no scan. Hits and last-use times are batched in memory and flushed in one
transaction (at most every FLUSH_SECONDS, and at exit), so a hit is not a write transaction.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

from .. import generation
from ..fs.mounts import wal_unsafe
from .migrations import COUNTERS, SCHEMA_VERSION, migrate

BUSY_TIMEOUT_MS = 30_000
FLUSH_SECONDS = 5.0
TOUCH_GRANULARITY = 300.0  # seconds: coarse last-used, as cargo's cache tracker does
JSON = str | int | float | bool | None | list[Any] | dict[str, Any]  # a value in an entry's meta

@dataclass(frozen=True)
class Entry:
    """One key of the index."""

    key: str
    digest: str
    size: int
    kind: str
    created: float
    last_used: float
    hits: int
    meta: dict[str, JSON]


def _entry(row: tuple[Any, ...]) -> Entry:
    key, digest, size, kind, created, last_used, hits, meta = row
    return Entry(key, digest, size, kind, created, last_used, hits, json.loads(meta) if meta else {})


_ENTRY_COLS = "key, digest, size, kind, created, last_used, hits, meta"


class Index:
    """Process-local handle on the index database (reopened after fork)."""

    def __init__(self, path: str, busy_timeout: float = BUSY_TIMEOUT_MS / 1000,
                 read_only: bool = False) -> None:
        self.path = path
        self.busy_timeout = busy_timeout  # seconds to wait for another writer
        self.force_read_only = read_only  # another user's cache: never try to write it
        self._conn: sqlite3.Connection | None = None
        self._pid = 0
        self._lock = threading.RLock()
        self._pending: dict[str, int] = {}
        self._pending_keys: dict[str, list[float]] = {}  # key -> [hits, last_used]
        self._pending_objects: dict[str, float] = {}
        self._last_flush = time.monotonic()
        self.read_only = False
        self._gen_defer = 0  # > 0: inside deferred_generation()
        self._gen_state = 0  # in a deferral: 0 nothing changed, 1 bumped at the first change

    # -- connection -------------------------------------------------------------------------
    @property
    def conn(self) -> sqlite3.Connection:
        """The connection for this process, created and migrated on first use."""
        if self._conn is None or self._pid != os.getpid():
            self._pending.clear()
            self._pending_keys.clear()
            self._pending_objects.clear()
            self._conn = self._open()
            self._pid = os.getpid()
        return self._conn

    def _open(self) -> sqlite3.Connection:
        """Open and migrate, retrying while another process creates the same new index: SQLite
        answers "database is locked" at once (no busy wait) to a journal-mode switch or schema
        creation that races another connection's."""
        deadline = time.monotonic() + self.busy_timeout
        delay = 0.005
        while True:
            try:
                return self._open_once()
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 0.2)

    def _open_once(self) -> sqlite3.Connection:
        directory = os.path.dirname(self.path) or "."
        if self.force_read_only or os.statvfs(directory).f_flag & os.ST_RDONLY:
            return self._open_read_only()
        conn = None
        try:
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None,
                                   check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
            mode = "delete" if wal_unsafe(directory) else "wal"
            if mode == "delete":  # a WAL index made elsewhere opens here only without shm
                conn.execute("PRAGMA locking_mode=EXCLUSIVE")
            if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != mode:
                conn.execute(f"PRAGMA journal_mode={mode}")
            if mode == "delete":
                conn.execute("PRAGMA locking_mode=NORMAL")
        except sqlite3.OperationalError as exc:
            if conn is not None:
                conn.close()
            if "readonly" in str(exc) or "read-only" in str(exc) or not os.access(directory, os.W_OK):
                return self._open_read_only()
            raise
        self.read_only = False
        try:
            conn.execute("PRAGMA synchronous=NORMAL")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version != SCHEMA_VERSION:
                with self._write(conn):
                    if conn.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
                        migrate(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _open_read_only(self) -> sqlite3.Connection:
        """A read-only cache (ro mount, no write permission): serve hits, write nothing."""
        base = f"file:{urllib.parse.quote(self.path)}?mode=ro"
        try:  # sees a live writer's WAL; needs its -shm file, which exists while it runs
            conn = sqlite3.connect(base, uri=True, isolation_level=None, check_same_thread=False)
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.OperationalError:
            conn = sqlite3.connect(base + "&immutable=1", uri=True, isolation_level=None,
                                   check_same_thread=False)
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version != SCHEMA_VERSION:
            conn.close()
            raise sqlite3.OperationalError("read-only cache without a usable index")
        self.read_only = True
        return conn

    @contextmanager
    def _write(self, conn: sqlite3.Connection | None = None) -> Iterator[sqlite3.Connection]:
        conn = conn or self.conn
        if self.read_only:
            raise sqlite3.OperationalError("attempt to write a readonly database (read-only cache)")
        with self._lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")  # may fail (disk full): then roll back too
            except BaseException:
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise

    @contextmanager
    def _change(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that changes keys or objects; once committed, the generation
        token beside the index is replaced, so a memo of an answer read from
        this index (the warm pip path's) can tell that it may be stale without opening SQLite
        (cache_core.generation)."""
        with self._write() as c:
            yield c
        with self._lock:
            if self._gen_defer and self._gen_state:
                return  # bumped at the deferral's first change, bumped again at its end
            self._gen_state = 1 if self._gen_defer else 0
        self.bump_generation()

    @contextmanager
    def deferred_generation(self) -> Iterator[None]:
        """Inside, the changes of this process bump the generation twice in all, at the first
        change and when the (outermost) block ends, instead of once each: a memo read before
        the batch goes stale at its first change, one read during it at its end."""
        with self._lock:
            self._gen_defer += 1
        try:
            yield
        finally:
            with self._lock:
                self._gen_defer -= 1
                changed = not self._gen_defer and self._gen_state
                if not self._gen_defer:
                    self._gen_state = 0
            if changed:
                self.bump_generation()

    def bump_generation(self) -> None:
        """Replace the generation token beside the index (cache_core.generation)."""
        generation.bump(self.path + generation.SUFFIX)

    def write(self) -> AbstractContextManager[sqlite3.Connection]:
        """A short write transaction (BEGIN IMMEDIATE ... COMMIT); for tests' fault injection."""
        return self._write()

    def discard(self) -> None:
        """Drop a connection to a damaged database without flushing (it is being replaced)."""
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
        self._conn = None

    def close(self) -> None:
        """Flush pending counters and close the connection."""
        if self._conn is not None and self._pid == os.getpid():
            try:
                self.flush()
            finally:
                self._conn.close()
        self._conn = None

    # -- reads ------------------------------------------------------------------------------
    def lookup(self, key: str) -> Entry | None:
        """The entry for key, or None."""
        row = self.conn.execute(f"SELECT {_ENTRY_COLS} FROM keys WHERE key = ?", (key,)).fetchone()
        return _entry(row) if row else None

    def object_size(self, digest: str) -> int | None:
        """Size of a stored object, or None if the index has no such object."""
        row = self.conn.execute("SELECT size FROM objects WHERE digest = ?", (digest,)).fetchone()
        return row[0] if row else None

    def is_private(self, digest: str) -> bool:
        """True if the object was ever stored private: it never leaves this machine."""
        row = self.conn.execute("SELECT private FROM objects WHERE digest = ?", (digest,)).fetchone()
        return bool(row and row[0])

    def entries(self, prefix: str = "") -> list[Entry]:
        """All keys starting with prefix, sorted."""
        if prefix and ord(prefix[-1]) < 0x10FFFF:
            hi = prefix[:-1] + chr(ord(prefix[-1]) + 1)
            rows = self.conn.execute(
                f"SELECT {_ENTRY_COLS} FROM keys WHERE key >= ? AND key < ? ORDER BY key", (prefix, hi))
        elif prefix:
            rows = self.conn.execute(
                f"SELECT {_ENTRY_COLS} FROM keys WHERE substr(key, 1, ?) = ? ORDER BY key",
                (len(prefix), prefix))
        else:
            rows = self.conn.execute(f"SELECT {_ENTRY_COLS} FROM keys ORDER BY key")
        return [_entry(r) for r in rows]

    def counters(self) -> dict[str, int]:
        """All counters and running totals (pending in-memory counts included)."""
        out = dict(self.conn.execute("SELECT name, value FROM counters"))
        for name, value in self._pending.items():
            out[name] = out.get(name, 0) + value
        return out

    def usage_by_kind(self) -> dict[str, dict[str, int]]:
        """kind -> entries, hits and hit bytes (hits x size) of the keys of that kind."""
        rows = self.conn.execute(
            "SELECT kind, COUNT(*), COALESCE(SUM(hits), 0), COALESCE(SUM(hits * size), 0) "
            "FROM keys GROUP BY kind ORDER BY kind")
        return {kind: {"entries": n, "hits": hits, "hit_bytes": hit_bytes}
                for kind, n, hits, hit_bytes in rows}

    def lru_candidates(self) -> list[tuple[str, str, int, float]]:
        """(type, id, size, last_used) of every object and bucket entry, least recently used first."""
        return list(self.conn.execute(
            "SELECT 'o', digest, size, last_used FROM objects UNION ALL "
            "SELECT 'b', bucket || '/' || name, size, last_used FROM buckets ORDER BY 4"))

    def all_objects(self) -> dict[str, int]:
        """digest -> size of every indexed object."""
        return dict(self.conn.execute("SELECT digest, size FROM objects"))

    def dangling_keys(self) -> list[str]:
        """Keys whose object row is gone (verify reports and repairs them)."""
        return [r[0] for r in self.conn.execute(
            "SELECT key FROM keys WHERE digest NOT IN (SELECT digest FROM objects)")]

    def bucket_entries(self) -> list[tuple[str, str]]:
        """(bucket, name) of every bucket entry."""
        return list(self.conn.execute("SELECT bucket, name FROM buckets"))

    # -- writes -----------------------------------------------------------------------------
    def add(self, key: str, digest: str, size: int, kind: str, meta: dict[str, JSON] | None,
            publish: Callable[[], None] | None = None, private: bool = False,
            stored: bool = True) -> None:
        """Record key -> object (creating the object row if needed) in one transaction.

        publish: the file operation that puts the object in place, run inside the transaction,
        so it is serialised with eviction and quarantine (which also move files in theirs).
        private: the object stays on this machine (once private, always: see is_private).
        stored: a file was stored (the puts and bytes_stored counters); False for a new key of
        an object already held.
        """
        now = time.time()
        meta_s = json.dumps(meta, sort_keys=True) if meta else None
        with self._change() as c:
            if publish is not None:
                publish()
            c.execute("INSERT INTO objects(digest, size, created, last_used, private) "
                      "VALUES (?, ?, ?, ?, ?) ON CONFLICT(digest) DO UPDATE SET "
                      "last_used = excluded.last_used, "
                      "private = MAX(objects.private, excluded.private)",
                      (digest, size, now, now, int(private)))
            if key:
                c.execute(
                    "INSERT INTO keys(key, digest, kind, size, created, last_used, meta) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET "
                    "digest = excluded.digest, kind = excluded.kind, size = excluded.size, "
                    "last_used = excluded.last_used, meta = COALESCE(excluded.meta, keys.meta)",
                    (key, digest, kind, size, now, now, meta_s))
            if stored:
                c.execute("UPDATE counters SET value = value + 1 WHERE name = 'puts'")
                c.execute("UPDATE counters SET value = value + ? WHERE name = 'bytes_stored'",
                          (size,))

    def add_keys(self, rows: list[tuple[str, str, int, str, dict[str, JSON] | None]]
                 ) -> list[bool]:
        """Record many keys (key, digest, size, kind, meta) for objects already indexed, in
        one transaction: a row whose object is not indexed with that size (evicted or
        quarantined meanwhile) is skipped (False), so no key is left without its object."""
        now = time.time()
        out: list[bool] = []
        with self._change() as c:
            for key, digest, size, kind, meta in rows:
                row = c.execute("SELECT size FROM objects WHERE digest = ?", (digest,)).fetchone()
                if row is None or row[0] != size:
                    out.append(False)
                    continue
                c.execute("UPDATE objects SET last_used = MAX(last_used, ?) WHERE digest = ?",
                          (now, digest))
                c.execute(
                    "INSERT INTO keys(key, digest, kind, size, created, last_used, meta) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET "
                    "digest = excluded.digest, kind = excluded.kind, size = excluded.size, "
                    "last_used = excluded.last_used, meta = COALESCE(excluded.meta, keys.meta)",
                    (key, digest, kind, size, now, now,
                     json.dumps(meta, sort_keys=True) if meta else None))
                out.append(True)
        return out

    def set_meta(self, key: str, meta: dict[str, JSON]) -> None:
        """Replace the meta dict of key."""
        with self._change() as c:
            c.execute("UPDATE keys SET meta = ? WHERE key = ?", (json.dumps(meta, sort_keys=True), key))

    def drop_object(self, digest: str, counter: str | None = None,
                    remove: Callable[[], bool] | None = None,
                    after: Callable[[], None] | None = None) -> bool:
        """Forget an object and every key pointing at it; optionally bump a counter.

        remove: the file operation (unlink, move to quarantine) run inside the transaction; if it
        returns False the object is left alone (e.g. a writer replaced the file meanwhile).
        after: a file operation run once the rows are gone, in a second write transaction (so
        it is still serialised with puts). Eviction uses it: a kill -9 in between leaves a file
        without a row (harmless, re-indexed by verify --repair), never a row without its file.
        """
        with self._change() as c:
            if remove is not None and not remove():
                return False
            c.execute("DELETE FROM keys WHERE digest = ?", (digest,))
            c.execute("DELETE FROM objects WHERE digest = ?", (digest,))
            if counter:
                c.execute("UPDATE counters SET value = value + 1 WHERE name = ?", (counter,))
        if after is not None:
            with self._change():
                after()
        return True

    def add_many(self, rows: list[tuple[str, str, int, str]]) -> None:
        """Record many (key, digest, size, kind) at once, objects already in place (benchmarks,
        imports); counted neither as puts nor as stored bytes."""
        now = time.time()
        with self._change() as c:
            c.executemany("INSERT OR IGNORE INTO objects(digest, size, created, last_used) "
                          "VALUES (?, ?, ?, ?)", [(d, s, now, now) for _, d, s, _ in rows])
            c.executemany("INSERT OR REPLACE INTO keys(key, digest, kind, size, created, last_used) "
                          "VALUES (?, ?, ?, ?, ?, ?)", [(k, d, kind, s, now, now) for k, d, s, kind in rows])

    def forget_all_objects(self) -> None:
        """Drop every key and object row (clear); bucket entries stay."""
        with self._change() as c:
            c.execute("DELETE FROM keys")
            c.execute("DELETE FROM objects")

    def drop_key(self, key: str) -> None:
        """Forget one key (the object stays, reachable by digest, until evicted)."""
        with self._change() as c:
            c.execute("DELETE FROM keys WHERE key = ?", (key,))

    def bump(self, name: str, value: int = 1) -> None:
        """Count an event in memory (flushed later)."""
        self._pending[name] = self._pending.get(name, 0) + value
        self._maybe_flush()

    def record_hit(self, key: str | None, digest: str, size: int, last_used: float) -> None:
        """Count a hit; last-used times are updated coarsely (TOUCH_GRANULARITY) and batched."""
        now = time.time()
        self._pending["hits"] = self._pending.get("hits", 0) + 1
        self._pending["bytes_served"] = self._pending.get("bytes_served", 0) + size
        if key is not None:
            slot = self._pending_keys.setdefault(key, [0, 0.0])
            slot[0] += 1
            if now - last_used > TOUCH_GRANULARITY:
                slot[1] = now
        if now - last_used > TOUCH_GRANULARITY:
            self._pending_objects[digest] = now
        self._maybe_flush()

    def _maybe_flush(self) -> None:
        if time.monotonic() - self._last_flush > FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        """Write batched counters, hits and last-used times in one transaction."""
        if not (self._pending or self._pending_keys or self._pending_objects):
            return
        if self.read_only:  # statistics of a read-only cache are not kept
            self._pending, self._pending_keys, self._pending_objects = {}, {}, {}
            return
        pending, keys, objs = self._pending, self._pending_keys, self._pending_objects
        self._pending, self._pending_keys, self._pending_objects = {}, {}, {}
        self._last_flush = time.monotonic()
        with self._write() as c:
            c.executemany("UPDATE counters SET value = value + ? WHERE name = ?",
                          [(v, k) for k, v in pending.items()])
            c.executemany("UPDATE keys SET hits = hits + ?, last_used = MAX(last_used, ?) WHERE key = ?",
                          [(h, t, k) for k, (h, t) in keys.items()])
            c.executemany("UPDATE objects SET last_used = MAX(last_used, ?) WHERE digest = ?",
                          [(t, d) for d, t in objs.items()])

    def zero(self) -> None:
        """Reset the event counters (not the totals)."""
        with self._write() as c:
            c.executemany("UPDATE counters SET value = 0 WHERE name = ?", [(n,) for n in COUNTERS])
        self._pending.clear()

    def recount(self) -> None:
        """Recompute the running totals from the tables (repair)."""
        with self._write() as c:
            c.execute("UPDATE counters SET value = (SELECT COALESCE(SUM(size), 0) FROM objects) "
                      "WHERE name = 'total_size'")
            c.execute("UPDATE counters SET value = (SELECT COUNT(*) FROM objects) WHERE name = 'objects'")
            c.execute("UPDATE counters SET value = (SELECT COUNT(*) FROM keys) WHERE name = 'entries'")
            c.execute("UPDATE counters SET value = (SELECT COALESCE(SUM(size), 0) FROM buckets) "
                      "WHERE name = 'bucket_size'")

    # -- buckets ----------------------------------------------------------------------------
    def bucket_set(self, bucket: str, name: str, size: int) -> None:
        """Record or update a bucket entry's size (and touch it)."""
        now = time.time()
        with self._write() as c:
            c.execute("INSERT INTO buckets(bucket, name, size, created, last_used) VALUES (?, ?, ?, ?, ?)"
                      " ON CONFLICT(bucket, name) DO UPDATE SET size = excluded.size, "
                      "last_used = excluded.last_used", (bucket, name, size, now, now))

    def bucket_touch(self, bucket: str, name: str) -> None:
        """Mark a bucket entry as used now."""
        with self._write() as c:
            c.execute("UPDATE buckets SET last_used = ? WHERE bucket = ? AND name = ?",
                      (time.time(), bucket, name))

    def bucket_drop(self, bucket: str, name: str) -> None:
        """Forget a bucket entry."""
        with self._write() as c:
            c.execute("DELETE FROM buckets WHERE bucket = ? AND name = ?", (bucket, name))
