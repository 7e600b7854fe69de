"""PackageCache: content-addressed objects (SHA-256), an SQLite index of keys, verified retrieval,
an LRU size cap. Fail-open: cache faults become misses plus one warning, never exceptions,
unless the cache was made with ``strict=True`` (the CLI does that to report exit codes).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import shutil
import sqlite3
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from . import fsutil
from .config import CacheConfig, default_cache_dir, is_system_dir_for_user, load_config
from .errors import BadKeyError, CacheError, warn
from .hashing import copy_hashing, is_digest, sha256_fd, sha256_file
from .index import BUSY_TIMEOUT_MS, Entry, Index
from .keys import digest_of_key, kind_of, normalize_key
from .locks import LockTimeout, file_lock, lock_path

LAYOUT = "objects-v1"
INDEX_NAME = "index-v1.sqlite"
EVICT_TARGET = 0.9          # evict down to 90 % of the cap
TEMP_MAX_AGE = 6 * 3600     # temp files older than this are swept even if their pid lives
CACHEDIR_TAG = (
    "Signature: 8a477f597d28d172789f06886806bc55\n"
    "# This file is a cache directory tag created by pkgcache.\n"
    "# For information about cache directory tags see https://bford.info/cachedir/\n"
)
T = TypeVar("T")


def _failopen(default: Any) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Turn cache faults into `default` plus one warning, unless the cache is strict."""
    def deco(fn: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(fn)
        def wrapper(self: PackageCache, *args: Any, **kwargs: Any) -> T:
            if not self.enabled:
                return default
            try:
                return fn(self, *args, **kwargs)
            except BadKeyError:
                if self.strict:
                    raise
                warn(f"{fn.__name__}: unusable key; treated as a miss")
                return default
            except Exception as exc:
                if self.strict:
                    raise
                warn(f"cache unavailable, continuing without it ({_describe(exc)})")
                if isinstance(exc, sqlite3.OperationalError) and (
                        "locked" in str(exc) or "busy" in str(exc)):
                    self.enabled = False  # held by another process: don't wait again per call
                return default
        return wrapper
    return deco


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    return f"{type(exc).__name__}: {exc}"


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
        self.fsync = fsync
        self.max_size_bytes = max_size_bytes
        self.busy_timeout = busy_timeout
        self.objects_dir = self.root / LAYOUT / "sha256"
        self.tmp_dir = self.root / "tmp"
        self.quarantine_dir = self.root / "quarantine"
        self.lock_dir = self.root / "locks"
        self.config: CacheConfig | None = None  # set by from_config
        self._index: Index | None = None
        self._ready = False
        self._shards: set[str] = set()
        self._swept = False

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

    # -- setup ------------------------------------------------------------------------------
    def _setup(self) -> Index:
        if self._ready and self._index is not None:
            return self._index
        if self.read_only:
            return self._setup_read_only()
        fsutil.check_new_root(self.root)
        old_umask = os.umask(0o022)
        try:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o755)
        finally:
            os.umask(old_umask)
        fsutil.check_dir_safe(self.root)
        for sub in (self.root / LAYOUT, self.objects_dir, self.tmp_dir, self.quarantine_dir,
                    self.lock_dir):
            fsutil.ensure_private_dir(sub)
        tag = self.root / "CACHEDIR.TAG"
        if not os.path.lexists(tag):
            fsutil.atomic_write(tag, CACHEDIR_TAG)
        index_path = self.root / INDEX_NAME
        self._check_index_files(index_path)
        self._index = Index(str(index_path), self.busy_timeout)
        try:
            self._index.conn  # noqa: B018 - open and migrate now, so faults surface here
        except sqlite3.OperationalError:
            raise  # busy, locked, full, unreadable: not corruption
        except sqlite3.DatabaseError:
            self._index = self._replace_damaged_index(index_path)
        self._ready = True
        return self._index

    @staticmethod
    def _check_index_files(index_path: Path) -> None:
        """The index and its WAL/SHM must be regular files we own that nobody else can write
        (never a symlink or FIFO). It stays readable (users may read root's cache): keys of
        private downloads are hashes and their objects 0400."""
        for suffix in ("", "-wal", "-shm"):
            p = Path(str(index_path) + suffix)
            try:
                st = os.lstat(p)
            except FileNotFoundError:
                continue
            if not stat.S_ISREG(st.st_mode):
                raise fsutil.UnsafeCacheError(f"{p} is not a regular file (symlink or FIFO "
                                              "planted?); refusing it")
            if st.st_uid != os.geteuid() or st.st_mode & 0o022:
                raise fsutil.UnsafeCacheError(f"{p} is owned or writable by another user; "
                                              "refusing it")

    def _setup_read_only(self) -> Index:
        """Open root's cache for reading: it must be root's and safe; nothing is created."""
        fsutil.check_dir_safe(self.root, owner=0)
        index_path = self.root / INDEX_NAME
        if index_path.is_symlink() or not index_path.is_file():
            raise fsutil.UnsafeCacheError(f"{index_path} is not a plain file; not reading it")
        self._index = Index(str(index_path), read_only=True)
        self._index.conn  # noqa: B018 - open now, so faults surface here
        self._ready = True
        return self._index

    def _replace_damaged_index(self, index_path: Path) -> Index:
        """Move a damaged index to quarantine/ and start a fresh one (objects stay; keys are lost
        until re-harvested; ``verify --repair`` re-indexes the objects by digest)."""
        with file_lock(lock_path(self.lock_dir, "index-recovery"), timeout=30):
            probe = Index(str(index_path), self.busy_timeout)
            try:
                probe.conn  # noqa: B018 - another process may have replaced it meanwhile
                return probe
            except sqlite3.OperationalError:
                raise
            except sqlite3.DatabaseError:
                probe._conn = None
            stamp = f"{int(time.time() * 1000)}.{os.getpid()}"
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.rename(f"{index_path}{suffix}", self.quarantine_dir / f"index{suffix}.{stamp}")
            warn("the cache index was damaged; moved to quarantine/ and started afresh "
                 "(run `pkgcache verify --repair` to re-index the objects)")
            self._check_index_files(index_path)
            fresh = Index(str(index_path), self.busy_timeout)
            fresh.conn  # noqa: B018
            return fresh

    @property
    def index(self) -> Index:
        """The SQLite index (opened on first use)."""
        return self._setup()

    def close(self) -> None:
        """Flush batched statistics and close the index."""
        if self._index is not None:
            with contextlib.suppress(Exception):
                self._index.close()
        if self.system is not None:
            self.system.close()

    def __enter__(self) -> PackageCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()

    # -- paths ------------------------------------------------------------------------------
    def object_path(self, digest: str) -> Path:
        """Where the object with this digest lives (digest must be 64 lower-case hex)."""
        if not is_digest(digest):
            raise BadKeyError(f"not a sha256 digest: {digest!r}")
        return self.objects_dir / digest[:2] / digest

    def _shard(self, digest: str) -> Path:
        shard = self.objects_dir / digest[:2]
        if digest[:2] not in self._shards:
            fsutil.ensure_private_dir(shard)
            self._shards.add(digest[:2])
        return shard

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

    def fetch(self, url: str, dest: str, sha256: str | None = None, **options: Any) -> Any:
        """Download url to dest through the cache, like ``curl -fsSL url -o dest``.

        A thin entry to the download driver (hooks.fetch.download: conditional requests, resume, retries);
        raises hooks.fetch.download.FetchError on failure. Options: offline, refresh, retries, timeout.
        """
        from hooks.fetch.download import fetch  # the driver; imported lazily so the core stands alone

        return fetch(self, url, dest, sha256, **options)

    # -- get / put / exists -----------------------------------------------------------------
    @_failopen(None)
    def get(self, key: str, *, count: bool = True) -> str | None:
        """Path of the object for key after checking its size and SHA-256; None on a miss.

        The returned file is read-only and shared: never write to it (use materialize_key).
        count=False: a driver's verification, not a read (no hit or miss counted; the driver
        counts with count_hit/count_miss when it serves or downloads the file).
        """
        if not count:
            found = self._resolve(key, count_miss=False)
            if found is None:
                return None
            digest, size, _ = found
            path = self.object_path(digest)
            return str(path) if self._verify_object(path, digest, size) else None
        found = self._resolve(key, count_miss=self.system is None)
        if found is None:
            return self._from_system(lambda system: system.get(key))
        digest, size, entry = found
        path = self.object_path(digest)
        if not self._verify_object(path, digest, size):
            self.index.bump("misses")
            return None
        self.index.record_hit(entry.key if entry else None, digest, size,
                              entry.last_used if entry else 0.0)
        return str(path)

    def _system_cache(self) -> PackageCache | None:
        """Root's cache if this user may read it (a private index is skipped quietly)."""
        if self.system is not None and not os.access(self.system.root / INDEX_NAME, os.R_OK):
            self.system = None
        return self.system

    def _from_system(self, read: Callable[[PackageCache], Any]) -> Any:
        """A read from root's cache after a miss in ours; counted in our statistics."""
        system = self._system_cache()
        result = read(system) if system is not None else None
        if system is None:
            return result
        if result:
            self.index.bump("hits")
            if isinstance(result, str):
                with contextlib.suppress(OSError):
                    self.index.bump("bytes_served", os.path.getsize(result))
        else:
            self.index.bump("misses")
        return result

    @_failopen(None)
    def count_miss(self, key: str | None = None) -> None:
        """Count one miss: a file a driver had to download itself (apt fetched a deb that is then
        harvested, pip filled its wheel cache, fetch downloaded a URL). key is informational."""
        self.index.bump("misses")

    @_failopen(False)
    def count_hit(self, key: str) -> bool:
        """Count one hit for a file served without get()/materialize_key() (pip or uv reading a
        link to the object); marks key as used. False (nothing counted) if key is not cached."""
        entry = self.index.lookup(normalize_key(key))
        if entry is None:
            return False
        self.index.record_hit(entry.key, entry.digest, entry.size, entry.last_used)
        return True

    @_failopen(False)
    def exists(self, key: str) -> bool:
        """True if key is cached and its object has the recorded size (no hashing)."""
        found = self._resolve(key, count_miss=False)
        if found is None:
            system = self._system_cache()
            return system.exists(key) if system is not None else False
        digest, size, _ = found
        try:
            st = os.lstat(self.object_path(digest))
        except FileNotFoundError:
            return False
        return stat.S_ISREG(st.st_mode) and st.st_size == size

    @_failopen(None)
    def lookup(self, key: str) -> Entry | None:
        """The index entry for key (no file check), or None. With a system cache (a user reading
        root's), its entries count too: read them with get()/materialize_key(), not object_path."""
        entry = self.index.lookup(normalize_key(key))
        system = self._system_cache() if entry is None else None
        if system is not None:
            entry = system.lookup(key)
        return entry

    @_failopen([])
    def keys(self, prefix: str = "") -> list[Entry]:
        """Every entry whose key starts with prefix."""
        return self.index.entries(normalize_key(prefix) if prefix else "")

    @_failopen(None)
    def put(self, key: str, file_path: str | int, *, sha256: str | None = None,
            kind: str | None = None, meta: dict[str, Any] | None = None, link: bool = False,
            private: bool = False) -> str | None:
        """Store file_path (a path, or an open descriptor read from offset 0) under key; return
        its SHA-256, or None if it was not stored.

        sha256: the digest the content must have (mismatch: nothing stored). link: hardlink the
        source into the store when that keeps the ownership invariant (a regular file we own,
        mode 0644/0444, one link, in a directory only we can write), else copy. private: a new
        object is readable by the owner only (0400), e.g. a download behind credentials.
        """
        key = normalize_key(key)
        content_digest = digest_of_key(key)
        if sha256 is not None:
            sha256 = sha256.lower()
            if not is_digest(sha256):
                raise BadKeyError("expected sha256 must be 64 hex digits")
        expected = sha256 or content_digest
        index = self._setup()
        self._sweep_temps()
        tmp = fsutil.temp_name(self.tmp_dir)
        try:
            digest, size, _linked = self._ingest(file_path, tmp, link, 0o400 if private else 0o444)
            if expected is not None and digest != expected:
                name = "<fd>" if isinstance(file_path, int) else os.path.basename(file_path)
                if self.strict:
                    raise CacheError(f"{name}: content does not match the expected SHA-256")
                warn(f"{name}: SHA-256 mismatch; not cached")
                return None
            final = self._shard(digest) / digest

            def publish() -> None:  # atomic: readers see the old or the new inode, never a part
                os.replace(tmp, final)

            index.add("" if content_digest else key, digest, size, kind or kind_of(key), meta,
                      publish=publish)
        finally:
            fsutil.unlink_quiet(tmp)
        self._maybe_evict()
        if not private:  # a download behind credentials never leaves this machine
            self._remote_call("enqueue", key, digest)  # remote tier seam: spool for upload
        return digest

    def _ingest(self, file_path: str | int, tmp: str, link: bool,
                mode: int) -> tuple[str, int, bool]:
        """Copy (or hardlink) a source to tmp, hashing it; (digest, size, linked).

        The source is opened with O_NOFOLLOW|O_NONBLOCK and checked with fstat (a regular file),
        so a symlink or FIFO swapped in after the caller looked is refused, never followed.
        """
        if isinstance(file_path, int):
            src_fd = os.dup(file_path)
            os.lseek(src_fd, 0, os.SEEK_SET)
            st = os.fstat(src_fd)
            if not stat.S_ISREG(st.st_mode):
                os.close(src_fd)
                raise CacheError("put: the descriptor is not a regular file")
            link = False
        else:
            try:
                src_fd, st = fsutil.open_regular(file_path)
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise CacheError(f"{file_path}: is a symlink; not cached") from None
                raise
        try:
            if (link and mode == 0o444 and self._linkable(file_path, st)  # type: ignore[arg-type]
                    and fsutil.link_verified(file_path, src_fd, tmp)):  # type: ignore[arg-type]
                os.fchmod(src_fd, 0o444)  # the object's mode; narrows 0644, never widens
                digest, size = sha256_fd(src_fd)
                return digest, size, True
            digest, size = self._copy_hashing(src_fd, tmp, mode)
            return digest, size, False
        finally:
            os.close(src_fd)

    @staticmethod
    def _linkable(path: str, st: os.stat_result) -> bool:
        """May this inode become a cache object (hard link)? Only if nobody but us can write it,
        now or later: we own it, mode 0644/0444, no other link, and its directory is ours or
        root's and writable by nobody else (apt's archives dir; never a user's home)."""
        if st.st_uid != os.geteuid() or st.st_nlink != 1:
            return False
        if stat.S_IMODE(st.st_mode) not in (0o644, 0o444):
            return False
        try:
            dst = os.stat(os.path.dirname(os.path.abspath(path)))
        except OSError:
            return False
        return (dst.st_uid in (0, os.geteuid()) and not dst.st_mode & 0o022
                and not fsutil.acl_grants_write(os.path.dirname(os.path.abspath(path))))

    def _copy_hashing(self, src_fd: int, tmp: str, mode: int = 0o444) -> tuple[str, int]:
        """Copy a source into a new temp file (fchmod'ed to mode, fsync'd), hashing it."""
        dst_fd = fsutil.create_exclusive(tmp, 0o600)
        try:
            digest, total = copy_hashing(src_fd, dst_fd)
            os.fchmod(dst_fd, mode)
            if self.fsync:
                os.fsync(dst_fd)
        finally:
            os.close(dst_fd)
        return digest, total

    @_failopen(False)
    def alias(self, key: str, digest: str, *, kind: str | None = None,
              meta: dict[str, Any] | None = None) -> bool:
        """Add key for an object already in the store; False if no such object."""
        key = normalize_key(key)
        size = self.index.object_size(digest)
        if size is None or not self._verify_object(self.object_path(digest), digest, size):
            return False
        self.index.add(key, digest, size, kind or kind_of(key), meta)
        return True

    @_failopen(None)
    def set_meta(self, key: str, meta: dict[str, Any]) -> None:
        """Replace the metadata stored with key."""
        self.index.set_meta(normalize_key(key), meta)

    @_failopen(None)
    def forget(self, key: str) -> None:
        """Drop key from the index (its object stays until evicted)."""
        self.index.drop_key(normalize_key(key))

    @_failopen(False)
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
        path = self.object_path(digest)
        dest_dir = os.path.dirname(os.path.abspath(dest))
        tmp = fsutil.temp_name(dest_dir)
        try:
            if not os.path.isdir(dest_dir):
                raise FileNotFoundError(errno.ENOENT, "no such directory", dest_dir)
            try:
                fsutil.place_temp(path, tmp, mode)
            except FileNotFoundError:
                if not os.path.isdir(dest_dir):
                    raise
                self.drop_stale(digest)
                self.index.bump("misses")
                return False
            except (fsutil.UnsafeCacheError, OSError) as exc:
                if isinstance(exc, OSError) and exc.errno != errno.ELOOP:
                    raise
                self._quarantine(path, digest)  # a symlink or FIFO where an object belongs
                self.index.bump("misses")
                return False
            # Hash what was placed: for a hardlink that is the object itself.
            got, got_size = sha256_file(tmp, follow=False)
            if got != digest or got_size != size:
                self._verify_object(path, digest, size)  # quarantines the object if it is bad
                self.index.bump("misses")
                return False
            os.replace(tmp, dest)
        finally:
            fsutil.unlink_quiet(tmp)
        self.index.record_hit(entry.key if entry else None, digest, size,
                              entry.last_used if entry else 0.0)
        return True

    # -- remote tier seam (all logic in cache_core.storage.remote) ---------------------------
    def _remote_call(self, method: str, *args: Any) -> Any:
        """Call the remote tier if one is configured; its faults never reach the caller."""
        if self.config is None or not self.config.remote:
            return None
        try:
            from .storage import remote

            t = remote.tier(self)
            return getattr(t, method)(*args) if t is not None else None
        except Exception as exc:  # noqa: BLE001 - the remote tier never breaks its caller
            warn(f"remote tier unavailable ({_describe(exc)})")
            return None

    def _remote_fill(self, key: str) -> bool:
        return bool(self._remote_call("fill", key))

    def _remote_adopt(self, key: str, tmp: str, digest: str, size: int, kind: str,
                      meta: dict[str, Any] | None) -> None:
        """Publish a private temp file (in tmp_dir) that the remote tier hashed as it wrote it."""
        key = normalize_key(key)
        os.chmod(tmp, 0o444)
        final = self._shard(digest) / digest
        self.index.add("" if digest_of_key(key) else key, digest, size, kind, meta,
                       publish=lambda: os.replace(tmp, final))
        self._maybe_evict()

    # -- lookups and verification -----------------------------------------------------------
    def _resolve(self, key: str, count_miss: bool = True) -> tuple[str, int, Entry | None] | None:
        """(digest, size, entry) for key from the index, or None (a counted miss)."""
        key = normalize_key(key)
        index = self.index
        digest = digest_of_key(key)
        if digest is not None:
            size = index.object_size(digest)
            entry = None
        else:
            entry = index.lookup(key)
            size = entry.size if entry else None
            digest = entry.digest if entry else None
        if digest is None or size is None:
            if count_miss and self._remote_fill(key):  # remote tier seam: a local miss asks it
                return self._resolve(key, count_miss=False)
            if count_miss:
                index.bump("misses")
            return None
        return digest, size, entry

    def _verify_object(self, path: Path, digest: str, size: int) -> bool:
        """Check type, size and SHA-256 of an object; quarantine it and drop its keys if bad."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        except FileNotFoundError:
            self.drop_stale(digest)
            return False
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # a planted symlink: never follow it
                self._quarantine(path, digest)
                return False
            raise
        try:
            st = os.fstat(fd)
            # The ownership invariant: a regular file of ours that nobody else can write.
            ok = (stat.S_ISREG(st.st_mode) and st.st_size == size
                  and st.st_uid == os.geteuid() and not st.st_mode & 0o022)
            if ok:
                got, n = sha256_fd(fd)
                ok = got == digest and n == size
        finally:
            os.close(fd)
        if not ok:
            self._quarantine(path, digest, st.st_ino)
        return ok

    def drop_stale(self, digest: str) -> None:
        """Forget an object whose file is gone, unless a writer has put it back meanwhile."""
        if self.read_only:
            return
        path = self.object_path(digest)
        self.index.drop_object(digest, "stale", remove=lambda: not os.path.lexists(path))

    def _quarantine(self, path: Path, digest: str, inode: int | None = None) -> None:
        """Move a bad object aside (kept for inspection) and forget every key pointing at it.

        inode: the file found bad; if a writer has replaced it meanwhile, nothing is done.
        """
        if self.read_only:  # root's cache: a miss for us; root's own reads quarantine it
            return
        dest = self.quarantine_dir / f"{digest}.{int(time.time() * 1000)}.{os.getpid()}"

        def move() -> bool:
            try:
                if inode is not None and os.lstat(path).st_ino != inode:
                    return False  # replaced by a fresh put since we looked: keep it
                os.rename(path, dest)
            except FileNotFoundError:
                pass
            return True

        if self.index.drop_object(digest, "corrupt", remove=move):
            warn(f"corrupt cache object {digest[:12]}… quarantined; treated as a miss")
            self._prune_quarantine()

    def _prune_quarantine(self) -> None:
        """Quarantine retention right after a move into it (age and size; see evict.py)."""
        from .evict import prune_quarantine

        with contextlib.suppress(OSError):
            prune_quarantine(self, self.max_size_bytes)

    # -- locks and buckets ------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self, name: str, timeout: float | None = None) -> Iterator[None]:
        """An inter-process exclusive lock named by any string."""
        self._setup()
        with file_lock(lock_path(self.lock_dir, name), timeout):
            yield

    def bucket(self, name: str) -> Path:
        """A private directory under the cache root for non-file data (e.g. "git-v1")."""
        fsutil.safe_filename(name)
        self._setup()
        return fsutil.ensure_private_dir(self.root / name)

    @_failopen(None)
    def record_bucket_entry(self, bucket: str, name: str, size_bytes: int) -> None:
        """Count a directory <root>/<bucket>/<name> toward stats and the LRU cap."""
        fsutil.safe_filename(bucket)
        fsutil.safe_filename(name)
        self.index.bucket_set(bucket, name, int(size_bytes))
        self._maybe_evict()

    @_failopen(None)
    def touch_bucket_entry(self, bucket: str, name: str) -> None:
        """Mark a bucket entry as used now."""
        self.index.bucket_touch(bucket, name)

    @_failopen(None)
    def drop_bucket_entry(self, bucket: str, name: str) -> None:
        """Forget a bucket entry (the caller removes the directory)."""
        self.index.bucket_drop(bucket, name)

    # -- maintenance ------------------------------------------------------------------------
    def _sweep_temps(self, force: bool = False) -> list[str]:
        """Remove temp files left by crashed writers; returns the names removed.

        A temp whose writer pid is gone is removed after a minute (at once with force, which
        verify --repair and clear use); any temp older than TEMP_MAX_AGE is removed.
        """
        if self._swept and not force:
            return []
        self._swept = True
        removed = []
        now = time.time()
        with os.scandir(self.tmp_dir) as it:
            for entry in it:
                pid = fsutil.temp_owner_pid(entry.name)
                try:
                    age = now - entry.stat(follow_symlinks=False).st_mtime
                except FileNotFoundError:
                    continue
                if pid == os.getpid():
                    stale = False
                elif pid is None:
                    stale = age > 60
                else:
                    stale = (force or age > 60) and not fsutil.pid_alive(pid)
                if stale or age > TEMP_MAX_AGE:
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            shutil.rmtree(entry.path, ignore_errors=True)
                        else:
                            os.unlink(entry.path)
                        removed.append(entry.name)
                    except FileNotFoundError:
                        pass
        return removed

    def _maybe_evict(self) -> None:
        if self.max_size_bytes and self._usage() > self.max_size_bytes:
            self.gc()

    def _usage(self) -> int:
        """Bytes counted against the cap: objects, bucket entries and quarantine/."""
        from .evict import quarantine_entries

        c = self.index.counters()
        quarantined = sum(size for _, size, _ in quarantine_entries(self))
        return c.get("total_size", 0) + c.get("bucket_size", 0) + quarantined

    def gc(self, max_size_bytes: int | None = None, older_than: float | None = None,
           wait: bool = False) -> dict[str, int]:
        """Evict least-recently-used entries until usage <= 90 % of the cap; one cleaner at a time.

        Objects hard-linked elsewhere (st_nlink > 1) free nothing when evicted: they are kept and
        counted as pinned. older_than (seconds) also evicts everything unused for that long.
        """
        from .evict import run_gc

        if not self._exists_enabled():
            return {"evicted": 0, "freed_bytes": 0, "pinned": 0, "pinned_bytes": 0, "stale": 0}
        self._setup()
        cap = self.max_size_bytes if max_size_bytes is None else max_size_bytes
        try:
            with self.lock("gc", timeout=None if wait else 0):
                self.index.flush()
                return run_gc(self, cap, older_than)
        except LockTimeout:
            return {"skipped": 1}

    def _exists_enabled(self) -> bool:
        """True if the cache is enabled and its directory exists (maintenance never creates it)."""
        return self.enabled and os.path.isdir(self.root)

    def stats(self) -> dict[str, Any]:
        """Counters and totals, without scanning the store (all zero for a missing cache)."""
        from .evict import quarantine_entries

        quarantined: list[tuple[float, int, str]] = []
        if self._exists_enabled():
            self._setup()
            self.index.flush()
            c = self.index.counters()
            quarantined = quarantine_entries(self)
        else:
            c = {}
        lookups = c.get("hits", 0) + c.get("misses", 0)
        return {
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
            **({"remote": self._remote_call("stats")} if self.config and self.config.remote else {}),
        }

    def zero_stats(self) -> None:
        """Reset hit/miss/eviction counters."""
        if not self._exists_enabled():
            return
        self._setup()
        self.index.zero()
        self._remote_call("zero")  # remote tier seam: its counters too (the breaker stays)

    def verify(self, repair: bool = False) -> dict[str, list[str]]:
        """Re-hash every object and reconcile index and files; with repair, fix what is found."""
        from .evict import run_verify

        if not self._exists_enabled():
            return {k: [] for k in ("corrupt", "missing", "orphans", "strays", "temps", "dangling")}
        self._setup()
        with self.lock("gc"):
            self.index.flush()
            return run_verify(self, repair)

    def clear(self) -> int:
        """Remove every object, key, bucket entry not in use and quarantined file; returns the
        objects removed."""
        if not self._exists_enabled():
            return 0
        self._setup()
        with self.lock("gc"):
            self.index.flush()
            n = self.index.counters().get("objects", 0)
            with self.index.write() as c:
                c.execute("DELETE FROM keys")
                c.execute("DELETE FROM objects")
                entries = list(c.execute("SELECT bucket, name FROM buckets"))
            for shard in os.scandir(self.objects_dir):
                if shard.is_dir(follow_symlinks=False):
                    shutil.rmtree(shard.path, ignore_errors=True)
                else:
                    fsutil.unlink_quiet(shard.path)
            self._shards.clear()
            for bucket, name in entries:  # each under its own lock, as gc does: skip one in use
                try:
                    with self.lock(f"bucket:{bucket}/{name}", timeout=10):
                        self.index.bucket_drop(bucket, name)
                        p = self.root / bucket / name
                        if p.is_dir() and not p.is_symlink():
                            shutil.rmtree(p, ignore_errors=True)
                except LockTimeout:
                    warn(f"clear: {bucket}/{name} is in use; left in place")
            self._sweep_temps(force=True)
            from .evict import _remove_tree

            for entry in os.scandir(self.quarantine_dir):
                _remove_tree(entry.path)
            return n
