"""PackageCache: the facade drivers use. Content-addressed objects (SHA-256), an index of keys,
verified retrieval, an LRU size cap, and a remote tier behind a local miss.

The one fail-open policy: a cache fault becomes a miss (the method's default) plus one warning,
never an exception, unless the cache was made with ``strict=True`` (the CLI does that to report
exit codes). The remote tier's faults never reach the caller, strict or not.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ParamSpec, TypeVar

from . import generation as _generation
from .config import CacheConfig, default_cache_dir, is_system_dir_for_user, load_config
from .errors import BadKeyError, CacheError, DigestMismatch, describe, warn
from .fs import unlink_quiet
from .hashing import sha256_file
from .index import BUSY_TIMEOUT_MS, JSON, Entry, Index
from .keys import (
    check_digest,
    digest_of_key,
    is_digest,
    is_private_key,
    kind_of,
    normalize_key,
    safe_filename,
)
from .storage import Storage
from .storage.local import INDEX_NAME, LocalStore
from .storage.local import maintenance as _maintenance

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from .storage.remote import RemoteTier
    from .storage.remote.lease import Lease
    from .storage.remote.records import Record
    from .storage.tier import Tier

P = ParamSpec("P")
T = TypeVar("T")
D = TypeVar("D")


# -- the fail-open policy -------------------------------------------------------------------------
def _contain(cache: PackageCache, what: str, exc: Exception, default: D) -> D:
    """Turn one fault inside the cache into default plus one warning (or re-raise if strict)."""
    if cache.strict:
        raise exc
    if isinstance(exc, BadKeyError):
        warn(f"{what}: unusable key; treated as a miss")
        return default
    warn(f"cache unavailable, continuing without it ({describe(exc)})")
    if isinstance(exc, sqlite3.OperationalError) and ("locked" in str(exc) or "busy" in str(exc)):
        cache.enabled = False  # held by another process: don't wait again per call
    return default


def fail_open(default: D) -> Callable[[Callable[..., T]], Callable[..., T | D]]:
    """Decorate a PackageCache method: disabled -> default; a fault -> _contain."""
    def deco(fn: Callable[..., T]) -> Callable[..., T | D]:
        @functools.wraps(fn)
        def wrapper(self: PackageCache, *args: object, **kwargs: object) -> T | D:
            if not self.enabled:
                return default
            try:
                return fn(self, *args, **kwargs)
            except DigestMismatch:
                raise  # asked for by the caller (put's on_mismatch="raise"): not a fault
            except Exception as exc:  # noqa: BLE001 - the policy: any fault is a miss
                return _contain(self, fn.__name__, exc, default)
        return wrapper
    return deco


class PackageCache:
    """A verified, size-capped, content-addressed file cache shared by all pkgcache drivers."""

    def __init__(self, cache_dir: str, enabled: bool = True, *, max_size_bytes: int = 0,
                 strict: bool = False, fsync: bool = True, read_only: bool = False,
                 busy_timeout: float = BUSY_TIMEOUT_MS / 1000) -> None:
        """Open (creating if needed) the cache at cache_dir. Nothing is touched when disabled.

        read_only: root's cache opened by another user: never created or written, hits only.
        busy_timeout: seconds to wait for another process's index write (hooks use less).
        """
        self.root = Path(os.path.abspath(os.path.expanduser(cache_dir)))
        self.enabled = enabled
        self.read_only = read_only
        self.system: PackageCache | None = None  # root's cache a user reads (see from_config)
        self.strict = strict
        self.config: CacheConfig | None = None  # set by from_config
        self.store = LocalStore(self.root, fsync=fsync, read_only=read_only,
                                busy_timeout=busy_timeout, max_size_bytes=max_size_bytes)
        self.storage = Storage(self.store, self._later_tiers)
        self._tier: RemoteTier | None = None
        self._remote_face: Remote | None = None

    @classmethod
    def from_config(cls, config_path: str | None = None, cache_dir: str | None = None, *,
                    strict: bool = False, config: CacheConfig | None = None) -> PackageCache:
        """Build a cache from the YAML config (lookup order in cache_core.config)."""
        cfg = config or load_config(config_path, cache_dir)
        if cfg.enabled and not cfg.explicit_dir and is_system_dir_for_user(cfg.directory):
            # A user with the system config: read root's cache, write their own.
            cache = cls(default_cache_dir(), cfg.enabled, max_size_bytes=cfg.max_size_bytes,
                        strict=strict)
            if os.path.isdir(cfg.directory):
                cache.system = cls(cfg.directory, read_only=True)
        else:
            cache = cls(cfg.directory, cfg.enabled, max_size_bytes=cfg.max_size_bytes,
                        strict=strict)
        cache.config = cfg
        return cache

    # -- settings shared with the store -----------------------------------------------------
    @property
    def max_size_bytes(self) -> int:
        """The size cap in bytes (0 = none)."""
        return self.store.max_size_bytes

    @max_size_bytes.setter
    def max_size_bytes(self, value: int) -> None:
        self.store.max_size_bytes = value

    @property
    def busy_timeout(self) -> float:
        """Seconds to wait for another process's index write (set it before first use)."""
        return self.store.busy_timeout

    @busy_timeout.setter
    def busy_timeout(self, value: float) -> None:
        self.store.busy_timeout = value

    @property
    def fsync(self) -> bool:
        """Whether writes are fsync'd (file and directory) before they are published."""
        return self.store.fsync

    @property
    def index(self) -> Index:
        """The index (opened on first use); for maintenance and tests, not for drivers."""
        return self.store.open()

    @property
    def objects_dir(self) -> Path:
        """objects-v1/sha256 under the root (tests inspect it; drivers never do)."""
        return self.store.layout.objects_dir

    @property
    def tmp_dir(self) -> Path:
        """tmp/ under the root: in-flight writes."""
        return self.store.layout.tmp_dir

    @property
    def quarantine_dir(self) -> Path:
        """quarantine/ under the root."""
        return self.store.layout.quarantine_dir

    @property
    def lock_dir(self) -> Path:
        """locks/ under the root."""
        return self.store.layout.lock_dir

    def open(self) -> None:
        """Create or check the cache now (raises CacheError/OSError/sqlite3.Error if unusable);
        every other method does it on first use."""
        self.store.open()

    def close(self) -> None:
        """Flush batched statistics and close the index."""
        self.store.close()
        if self.system is not None:
            self.system.close()

    def __enter__(self) -> PackageCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    def object_path(self, digest: str) -> Path:
        """Where the object with this digest lives (tests and maintenance; drivers use
        local_path/same_object, which work through keys and say nothing of the layout)."""
        return self.store.object_path(digest)

    # -- the original API -------------------------------------------------------------------
    def calculate_hash(self, file_path: str) -> str:
        """SHA-256 hex digest of a file, streamed."""
        return sha256_file(file_path)[0]

    def get_cached_file(self, url: str) -> str | None:
        """Path of the verified cached file for url, or None (miss, disabled or corrupt)."""
        return self.get(url)

    def cache_file(self, url: str, source_path: str) -> str | None:
        """Store source_path under url (the source is left untouched); return its SHA-256."""
        return self.put(url, source_path)

    # -- get / put / exists -----------------------------------------------------------------
    @fail_open(None)
    def get(self, key: str, *, count: bool = True, full: bool = False) -> str | None:
        """Path of the object for key after checking its size and SHA-256 (by its stat stamp
        when that is the one of its last full hash; hashed again if full); None on a miss.

        The returned file is read-only and shared: never write to it (use materialize_key).
        count=False: a driver's verification, not a read (no hit or miss counted; the driver
        counts with count_hit/count_miss when it serves or downloads the file).
        """
        if not count:
            found = self._resolve(key, count_miss=False)
            if found is None:
                return None
            digest, size, _ = found
            return (str(self.object_path(digest)) if self.store.verify(digest, size, full=full)
                    else None)
        found = self._resolve(key, count_miss=self.system is None)
        if found is None:
            return self._from_system(lambda system: system.get(key))
        digest, size, entry = found
        if not self.store.verify(digest, size, full=full):
            self.index.bump("misses")
            return None
        self._record_hit(entry, digest, size)
        return str(self.object_path(digest))

    def _record_hit(self, entry: Entry | None, digest: str, size: int) -> None:
        self.index.record_hit(entry.key if entry else None, digest, size,
                              entry.last_used if entry else 0.0)

    def _system_cache(self) -> PackageCache | None:
        """Root's cache if this user may read it (a private index is skipped quietly)."""
        if self.system is not None and not os.access(self.system.root / INDEX_NAME, os.R_OK):
            self.system = None
        return self.system

    def _from_system(self, read: Callable[[PackageCache], T]) -> T | None:
        """A read from root's cache after a miss in ours; counted in our statistics."""
        system = self._system_cache()
        if system is None:
            return None
        result = read(system)
        if result:
            self.index.bump("hits")
            if isinstance(result, str):
                with contextlib.suppress(OSError):
                    self.index.bump("bytes_served", os.path.getsize(result))
        else:
            self.index.bump("misses")
        return result

    @fail_open(None)
    def count_miss(self, key: str | None = None) -> None:
        """Count one miss: a file a driver had to download itself (apt fetched a deb that is then
        harvested, pip filled its wheel cache, fetch downloaded a URL). key is informational."""
        self.index.bump("misses")

    @fail_open(False)
    def count_hit(self, key: str) -> bool:
        """Count one hit for a file served without get()/materialize_key() (pip or uv reading a
        link to the object); marks key as used. False (nothing counted) if key is not cached."""
        entry = self.index.lookup(normalize_key(key))
        if entry is None:
            return False
        self._record_hit(entry, entry.digest, entry.size)
        return True

    @fail_open(False)
    def exists(self, key: str) -> bool:
        """True if key is cached and its object has the recorded size (no hashing)."""
        found = self._resolve(key, count_miss=False)
        if found is None:
            system = self._system_cache()
            return system.exists(key) if system is not None else False
        digest, size, _ = found
        return self.store.present(digest, size)

    @fail_open(None)
    def local_path(self, key: str) -> str | None:
        """The read-only local file of key's object (a key or ``sha256:<hex>``) if this cache
        holds it with its recorded size; NOT hashed: for a driver that trusts it by a stat stamp
        taken at its own last full hash (else use get()). Never a path in root's cache."""
        found = self._resolve(key, count_miss=False)
        if found is None or not self.store.present(found[0], found[1]):
            return None
        return str(self.object_path(found[0]))

    def stamp_holds(self, digest: str) -> bool:
        """True if this cache's object digest is a file of ours with the stat stamp of its last
        full hash (cache_core.stamps): its bytes are good without hashing. False: use get()."""
        try:
            st = os.lstat(self.object_path(digest))
            return self.store.known_good(digest, st.st_size, st)
        except (OSError, ValueError):
            return False

    @fail_open(None)
    def placed_copy(self, path: str) -> tuple[str, bool] | None:
        """(digest, hit): path holds the object digest's bytes, as noted when it was placed from
        it (hit: by a reader of cache_core.stamps, apt's method front) or stored from it, and
        its stat stamp has not changed since; None: hash it."""
        from . import stamps

        return stamps.copy_digest(str(self.root), path)

    @fail_open(False)
    def same_object(self, key: str, path: str) -> bool:
        """True if path is the very file (same inode) of the object stored for key (a key or
        ``sha256:<hex>``): a hard link pkgcache made, so the bytes need no hashing."""
        found = self._resolve(key, count_miss=False)
        return found is not None and self.store.same_object(found[0], path)

    @fail_open(False)
    def can_link_into(self, directory: str) -> bool:
        """Can cached objects be hard-linked into directory? (tried for real with one object)"""
        return self.store.can_link_into(directory)

    @fail_open(None)
    def lookup(self, key: str) -> Entry | None:
        """The index entry for key (no file check), or None. With a system cache (a user reading
        root's), its entries count too: read them with get()/materialize_key()."""
        entry = self.index.lookup(normalize_key(key))
        system = self._system_cache() if entry is None else None
        if system is not None:
            entry = system.lookup(key)
        return entry

    @fail_open([])
    def keys(self, prefix: str = "") -> list[Entry]:
        """Every entry whose key starts with prefix."""
        return self.index.entries(normalize_key(prefix) if prefix else "")

    @fail_open(None)
    def put(self, key: str, file_path: str | int, *, sha256: str | None = None,
            kind: str | None = None, meta: dict[str, JSON] | None = None, link: bool = False,
            private: bool = False, on_mismatch: str = "warn") -> str | None:
        """Store file_path (a path, or an open descriptor read from offset 0) under key; return
        its SHA-256, or None if it was not stored.

        sha256: the digest the content must have (mismatch: nothing stored). link: hardlink the
        source into the store when that keeps the ownership invariant (a regular file we own,
        mode 0644/0444, one link, in a directory only we can write), else copy. private: a new
        object is readable by the owner only (0400), e.g. a download behind credentials, and is
        marked private in the index: it never leaves this machine (also for PRIVATE_KEY_PREFIX keys).
        on_mismatch="raise": a content that is not sha256 raises DigestMismatch instead of a
        warning (a driver that checks a file against its index by this one hashing copy).
        """
        key = normalize_key(key)
        content_digest = digest_of_key(key)
        if sha256 is not None:
            sha256 = check_digest(sha256, "expected sha256")
        expected = sha256 or content_digest
        private = private or is_private_key(key)
        self.store.open()
        self.store.sweep_temps()
        tmp = self.store.new_temp()
        try:
            digest, size, _linked = self._ingest(file_path, tmp, link, 0o400 if private else 0o444)
            if expected is not None and digest != expected:
                name = "<fd>" if isinstance(file_path, int) else os.path.basename(file_path)
                if on_mismatch == "raise":
                    raise DigestMismatch(f"{name}: content does not match the expected SHA-256",
                                         digest)
                if self.strict:
                    raise CacheError(f"{name}: content does not match the expected SHA-256")
                warn(f"{name}: SHA-256 mismatch; not cached")
                return None
            self.store.publish(tmp, key, digest, size, kind or kind_of(key), meta, private=private)
        finally:
            unlink_quiet(tmp)
        self.store.maybe_evict()
        if not private:  # a download behind credentials never leaves this machine
            self._remote("write_behind", key, digest)
        return digest

    def _ingest(self, file_path: str | int, tmp: str, link: bool, mode: int) -> tuple[str, int, bool]:
        """The store's ingest (a seam that fault-injection tests replace)."""
        return self.store.ingest(file_path, tmp, link, mode)

    @fail_open(False)
    def alias(self, key: str, digest: str, *, kind: str | None = None,
              meta: dict[str, JSON] | None = None) -> bool:
        """Add key for an object already in the store; False if no such object."""
        key = normalize_key(key)
        return self.store.alias(key, check_digest(digest, "digest"), kind or kind_of(key), meta)

    @fail_open([])
    def alias_many(self, rows: Sequence[tuple[str, str, str | None, dict[str, JSON] | None]]
                   ) -> list[bool]:
        """alias() for many (key, digest, kind, meta) rows in one index transaction (all or
        none: a kill -9 leaves none of them): one bool per row, False where there is no such
        object. [] when the cache is off or fails (each row then counts as not added)."""
        out = []
        for key, digest, kind, meta in rows:
            key = normalize_key(key)
            out.append((key, check_digest(digest, "digest"), kind or kind_of(key), meta))
        return self.store.alias_many(out)

    @fail_open(None)
    def set_meta(self, key: str, meta: dict[str, JSON]) -> None:
        """Replace the metadata stored with key."""
        self.index.set_meta(normalize_key(key), meta)

    @fail_open(False)
    def materialize_key(self, key: str, dest: str, *, mode: str = "auto",
                        sha256: str | None = None) -> bool:
        """Place a verified copy of key's object at dest atomically; False on miss or mismatch.

        mode: "auto" (reflink, hardlink, copy), "copy" (never share the inode) or "link".
        sha256: an extra digest the content must also match (e.g. from a signed index).
        """
        found = self._resolve(key, count_miss=self.system is None)
        if found is None:
            placed = self._from_system(
                lambda system: system.materialize_key(key, dest, mode=mode, sha256=sha256))
            if placed:
                with contextlib.suppress(OSError):
                    self.index.bump("bytes_served", os.path.getsize(dest))
            return bool(placed)
        digest, size, entry = found
        if sha256 is not None and sha256.lower() != digest:
            return False
        if not self.store.place(digest, size, dest, mode):
            self.index.bump("misses")
            return False
        self._record_hit(entry, digest, size)
        return True

    def _resolve(self, key: str, count_miss: bool = True) -> tuple[str, int, Entry | None] | None:
        """(digest, size, entry) for key from the index; on a local miss the remotes are asked
        (read-through) when count_miss; a miss is counted."""
        key = normalize_key(key)
        found = self.store.resolve(key)
        if found is None and count_miss:
            if self._remote("fill", key):
                return self.store.resolve(key)
            self.index.bump("misses")
        return found

    # -- the later tiers (Storage; the remote tier's logic is in cache_core.storage.remote) ----
    def _later_tiers(self) -> list[Tier]:
        """The tiers after the local store: the remote tier when one is configured."""
        tier = self._remote_tier()
        return [tier] if tier is not None else []

    def _remote_tier(self) -> RemoteTier | None:
        if self.config is None or not self.config.remote:
            return None
        if self._tier is None:
            from .storage.remote import WORK_DIR, RemoteTier

            self._tier = RemoteTier(self.store, list(self.config.remote), self.root / WORK_DIR,
                                    config_source=self.config.source)
        return self._tier

    @property
    def remote(self) -> Remote | None:
        """The fleet's remote tier as drivers use it, or None when no remote is configured: the
        one answer to "is there a remote" (without one, no remote code is even imported)."""
        tier = self._remote_tier()
        if tier is None:
            return None
        if self._remote_face is None:
            self._remote_face = Remote(self, tier)
        return self._remote_face

    def _remote(self, method: str, *args: str) -> object:
        """Call Storage's later tiers (read-through, write-behind, stats): their faults never
        reach the caller (one warning)."""
        return self.remote_call(lambda: getattr(self.storage, method)(*args), None)

    @staticmethod
    def remote_call(call: Callable[[], T], default: D) -> T | D:
        """Run call for the remote tier: any fault is default plus one warning, strict or not."""
        try:
            return call()
        except Exception as exc:  # noqa: BLE001 - the remote tier never breaks its caller
            # the fault's kind only: a remote's message may quote a URL that carries credentials
            what = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
            warn(f"remote tier unavailable ({what})")
            return default

    # -- locks and buckets ------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self, name: str, timeout: float | None = None) -> Iterator[None]:
        """An inter-process exclusive lock named by any string (raises LockTimeout)."""
        with self.store.lock(name, timeout):
            yield

    def bucket_lock(self, bucket: str, name: str, timeout: float | None = None
                    ) -> contextlib.AbstractContextManager[None]:
        """The lock of one bucket entry (e.g. a git mirror); gc and clear take it before they
        remove the entry, so hold it while using the entry's directory."""
        return self.store.bucket_lock(safe_filename(bucket), safe_filename(name), timeout)

    def generation(self) -> tuple[str, str] | None:
        """(path, token) of this cache's generation: a file beside the index whose token is
        replaced after every change of a key or an object (made here if missing), so a driver
        can memoise an answer read from the cache and tell, without SQLite, that it may be
        stale. None if it cannot be read (no memo then)."""
        path = str(self.store.layout.index_path) + _generation.SUFFIX
        token = _generation.read(path)
        if token is None and not self.read_only and not os.path.lexists(path):
            self.index.bump_generation()
            token = _generation.read(path)
        return (path, token) if token else None

    def bucket(self, name: str) -> Path:
        """A private directory under the cache root for non-file data (e.g. "git-v1")."""
        return self.store.bucket(safe_filename(name))

    @fail_open(None)
    def record_bucket_entry(self, bucket: str, name: str, size_bytes: int) -> None:
        """Count a directory <root>/<bucket>/<name> toward stats and the LRU cap."""
        self.index.bucket_set(safe_filename(bucket), safe_filename(name), int(size_bytes))
        self.store.maybe_evict()

    @fail_open(None)
    def touch_bucket_entry(self, bucket: str, name: str) -> None:
        """Mark a bucket entry as used now."""
        self.index.bucket_touch(bucket, name)

    @fail_open(None)
    def drop_bucket_entry(self, bucket: str, name: str) -> None:
        """Forget a bucket entry (the caller removes the directory)."""
        self.index.bucket_drop(bucket, name)

    # -- maintenance ------------------------------------------------------------------------
    def _exists_enabled(self) -> bool:
        """True if the cache is enabled and its directory exists (maintenance never creates it)."""
        return self.enabled and self.store.exists_on_disk()

    def gc(self, max_size_bytes: int | None = None, older_than: float | None = None,
           wait: bool = False) -> dict[str, int]:
        """Evict least-recently-used entries until usage <= 90 % of the cap; one cleaner at a time.

        Objects hard-linked elsewhere (st_nlink > 1) free nothing when evicted: they are kept and
        counted as pinned. older_than (seconds) also evicts everything unused for that long.
        """
        if not self._exists_enabled():
            return {"evicted": 0, "freed_bytes": 0, "pinned": 0, "pinned_bytes": 0, "stale": 0}
        self.store.open()
        return self.store.gc(max_size_bytes, older_than, wait)

    def stats(self) -> dict[str, object]:
        """Counters and totals, without scanning the store (all zero for a missing cache)."""
        quarantined: list[tuple[float, int, str]] = []
        c: dict[str, int] = {}
        by_kind: dict[str, dict[str, int]] = {}
        if self._exists_enabled():
            self.store.open()
            self.index.flush()
            c = self.index.counters()
            by_kind = self.index.usage_by_kind()
            quarantined = _maintenance.quarantine_entries(self.store)
        lookups = c.get("hits", 0) + c.get("misses", 0)
        out: dict[str, object] = {
            "cache_dir": str(self.root),
            "enabled": self.enabled,
            "hits": c.get("hits", 0),
            "misses": c.get("misses", 0),
            "hit_rate": round(c.get("hits", 0) / lookups, 4) if lookups else 0.0,
            "bytes_served": c.get("bytes_served", 0),
            "entries": c.get("entries", 0),
            "objects": c.get("objects", 0),
            "size_bytes": c.get("total_size", 0) + c.get("bucket_size", 0),
            "bucket_bytes": c.get("bucket_size", 0),
            "max_size_bytes": self.max_size_bytes,
            "evictions": c.get("evictions", 0),
            "corrupt_detected": c.get("corrupt", 0),
            "stale_detected": c.get("stale", 0),
            "puts": c.get("puts", 0),
            "bytes_stored": c.get("bytes_stored", 0),
            "system_cache_dir": str(self.system.root) if self.system is not None else None,
            "quarantine_files": len(quarantined),
            "quarantine_bytes": sum(size for _, size, _ in quarantined),
            "by_kind": by_kind,
        }
        tiers = self._remote("stats")
        if isinstance(tiers, dict):
            out.update(tiers)  # {"remote": {...}} with a remote tier
        if self.config and self.config.remote:
            out.setdefault("remote", None)
        return out

    def zero_stats(self) -> None:
        """Reset hit/miss/eviction counters (and the remote tier's; its breaker stays)."""
        if not self._exists_enabled():
            return
        self.index.zero()
        self._remote("zero")

    def verify(self, repair: bool = False) -> dict[str, list[str]]:
        """Re-hash every object and reconcile index and files; with repair, fix what is found."""
        if not self._exists_enabled():
            return {k: [] for k in _maintenance.REPORT_KINDS}
        with self.lock("gc"):
            self.index.flush()
            report = _maintenance.verify(self.store, repair)
        self.store.apply_cap()  # puts made meanwhile left the cap to this lock's holder
        return report

    def clear(self) -> int:
        """Remove every object, key, bucket entry not in use and quarantined file; returns the
        objects removed."""
        if not self._exists_enabled():
            return 0
        with self.lock("gc"):
            self.index.flush()
            removed = _maintenance.clear(self.store)
        self.store.apply_cap()  # puts made meanwhile left the cap to this lock's holder
        return removed


class Remote:
    """``cache.remote``: the remote tier as a driver sees it. Objects come by SHA-256 (from the
    local store, else the remotes' ``cas/``), records by key (signature checked), writes are
    queued for the background uploader. Faults never reach the caller: a miss plus one warning
    (PackageCache.remote_call)."""

    def __init__(self, cache: PackageCache, tier: RemoteTier) -> None:
        self._cache = cache
        self.tier = tier  # for ``pkgcache remote`` (status, drain, gc, resign, store_status)

    @property
    def writable(self) -> bool:
        """This member publishes to the fleet: at least one remote is ``mode: rw``."""
        return any(spec.mode == "rw" for spec in self.tier.specs)

    def trusted_keys(self) -> frozenset[str]:
        """Every ``trusted_public_keys`` entry of the remotes that no remote lists in
        ``revoked_public_keys`` (a driver's vouch bound to a revoked key lapses)."""
        specs = self.tier.specs
        revoked = {k.strip() for s in specs for k in s.revoked_public_keys}
        return frozenset(k for s in specs for k in s.trusted_public_keys if k.strip() not in revoked)

    def timeout(self) -> float:
        """Seconds one request to the remotes may take (the largest ``timeout`` of them)."""
        return max((float(s.timeout) for s in self.tier.specs), default=0.0)

    def page_max_age(self) -> float:
        """Seconds a pip index page signed by a trusted key (or this member's own) is used
        without asking the index: the largest ``pip_page_max_age`` of the remotes (0: off)."""
        return max((float(s.options.get("pip_page_max_age") or 0) for s in self.tier.specs),
                   default=0.0)

    def get_object(self, digest: str, key: str | None = None, *, kind: str | None = None,
                   meta: dict[str, JSON] | None = None, size: int | None = None) -> str | None:
        """Verified local path of the object with this SHA-256, from the local store or else the
        remotes' ``cas/`` (no record needed: the caller took the digest from a signed source such
        as apt's index, pip's index hash or a pinned --sha256). With key, key is also recorded
        locally. size: the size the caller knows: a remote's body is read no further, and any
        other size is a mismatch (which counts toward the breaker)."""
        digest = digest.lower()
        if not is_digest(digest):
            return None
        with self._expecting(digest, size):
            path = self._cache.get(f"sha256:{digest}")  # the local miss asks the remotes
        if path is not None and key is not None:
            self._cache.alias(key, digest, kind=kind, meta=meta)
        return path

    def bring_object(self, digest: str, key: str | None = None, *, kind: str | None = None,
                     meta: dict[str, JSON] | None = None, size: int | None = None) -> str | None:
        """get_object for a later serve (apt's prefetch before the seed places the debs): the
        object is brought into the local store, but no hit is counted here - the serve counts
        it, once."""
        digest = digest.lower()
        if not is_digest(digest):
            return None
        sha = f"sha256:{digest}"
        path = self._cache.get(sha, count=False)
        if path is None:
            with self._expecting(digest, size):
                if self._cache.remote_call(lambda: self._cache.storage.fill(sha), False):
                    path = self._cache.get(sha, count=False)
        if path is not None and key is not None:
            self._cache.alias(key, digest, kind=kind, meta=meta)
        return path

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """``with cache.remote.batch():`` around many get_object/bring_object calls (the
        block's worker threads too; one batch per process at a time): one counters write, two
        generation bumps (the first change, the end) and one fsync per directory for all of
        them, when the block ends; each object is still verified by its SHA-256 and its bytes
        fsynced before it is renamed and indexed (the renames are durable once the block
        ends). A fault setting it up leaves the calls unbatched."""
        stack = contextlib.ExitStack()
        try:
            stack.enter_context(self.tier.batch())
        except Exception:  # noqa: BLE001 - the cache never breaks its caller: no batching
            pass
        with stack:
            yield

    @contextlib.contextmanager
    def _expecting(self, digest: str, size: int | None) -> Iterator[None]:
        """While inside, a remote body for digest is read no further than size (when known)."""
        if size is None or size < 0:
            yield
            return
        self.tier.expected[digest] = size
        try:
            yield
        finally:
            self.tier.expected.pop(digest, None)

    def get_record(self, key: str) -> Record | None:
        """The first record for key on the remotes that passes the trust checks, or None."""
        return self._cache.remote_call(lambda: self.tier.get_record(key), None)

    def put_record(self, key: str) -> bool:
        """Queue key's record (signed when the remote has a signing key) and content for upload."""
        def queue() -> bool:
            entry = self._cache.lookup(key)
            return entry is not None and self.tier.enqueue(entry.key, entry.digest)

        return bool(self._cache.remote_call(queue, False))

    def publish_now(self, key: str) -> bool:
        """Upload key's record (signed when the remote has a signing key) and content now, for
        members waiting on a lease for it; False if none took it (then the uploader may)."""
        def up() -> bool:
            entry = self._cache.lookup(key)
            return entry is not None and self.tier.publish(entry.key, entry.digest)

        return bool(self._cache.remote_call(up, False))

    def read_set(self, key: str) -> tuple[list[dict[str, JSON]], str | None]:
        """The items of the fleet's shared set under key (storage/remote/sets.py) and the trusted
        key that signed them (None: accepted unsigned); ([], None) when no remote has one."""
        return self._cache.remote_call(lambda: self.tier.read_set(key), ([], None))

    def add_to_set(self, key: str, items: list[dict[str, JSON]]) -> bool:
        """Add items (small JSON objects) to the fleet's shared set under key: kept here and
        merged into the store's newest version by the uploader, never losing another writer's
        items (sets.py). False when nothing new was queued."""
        return bool(self._cache.remote_call(lambda: self.tier.add_to_set(key, items), False))

    def download_lease(self, digest: str, *, key: str | None = None, kind: str | None = None,
                       wait: float | None = None, size: int | None = None,
                       present: bool = True) -> AbstractContextManager[Lease]:
        """Coalesce a download by SHA-256 with other processes and members (lease.py):
        ``with cache.remote.download_lease(digest) as lease:`` - lease.path set: another member
        delivered it (serve that); else download and store it in the cache inside the block.
        wait=0: never wait (lease.busy: ask again later); size: as for get_object;
        present=False: a lease on a name, not an object the store may hold (a pip page's
        key): the store's ``cas/`` is never looked at, a waiter only learns the lease ended."""
        from .storage.remote.lease import download_lease as coalesce

        sha = f"sha256:{digest.lower()}"
        return coalesce(self.tier, digest,
                        lambda: self.get_object(digest, key, kind=kind, size=size),
                        lambda: self._cache.exists(sha), wait=wait, present=present)

    def push(self, keys: list[str] | None, all_keys: bool = False) -> dict[str, int]:
        """Queue keys (or every key and every object stored by digest only) and upload now,
        waiting for a running uploader; private objects stay here (counted in "private")."""
        wanted: list[tuple[str, str]] = []
        if all_keys:
            entries = self._cache.keys("")
            wanted += [(e.key, e.digest) for e in entries]
            keyed = {e.digest for e in entries}  # and objects stored by digest only (no key row)
            wanted += [(f"sha256:{d}", d) for d in sorted(self._cache.index.all_objects())
                       if d not in keyed]
        for k in keys or []:
            e = self._cache.lookup(k)
            d = digest_of_key(normalize_key(k))
            if e is not None:
                wanted.append((e.key, e.digest))
            elif d is not None and self._cache.exists(k):
                wanted.append((k, d))
        return self.tier.push_now(wanted)

    def pull(self, keys: list[str] | None, all_keys: bool = False) -> dict[str, int]:
        """Fetch keys (or everything a listable remote holds) into the local cache;
        ``unlisted``: remotes that could not be listed for all_keys (each said in one line)."""
        result = {"pulled": 0, "present": 0, "missing": 0, "unlisted": 0}
        wanted = list(keys or [])
        if all_keys:
            wanted += self.tier.remote_keys()
            result["unlisted"] = self.tier.unlisted
        for k in wanted:
            if self._cache.exists(k):
                result["present"] += 1
            elif self._cache.storage.fill(k):
                result["pulled"] += 1
            else:
                result["missing"] += 1
        return result
