"""The local store: content-addressed objects on disk plus the index that names them.

ingest (hash while copying into a private temp, or hardlink when that keeps the ownership
invariant), publish (rename into place inside the index transaction that records it), verify
(type, owner, size, full SHA-256), quarantine (move aside, only the inode found bad), place
(a verified copy elsewhere) and the checks drivers need without seeing object paths.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from ... import stamps
from ...errors import CacheError, LockTimeout, UnsafeCacheError, warn
from ...fs import (
    acl_grants_write,
    create_exclusive,
    ensure_private_dir,
    fsync_dir,
    link_verified,
    named_lock,
    open_regular,
    place_temp_fd,
    replace_checked,
    sweep,
    temp_name,
    unlink_quiet,
)
from ...hashing import copy_hashing, sha256_fd
from ...index import BUSY_TIMEOUT_MS, JSON, Entry, Index
from ...keys import digest_of_key, is_private_key, kind_of, normalize_key
from ..tier import Located, Sink
from . import maintenance
from .layout import Layout

Found = tuple[str, int, "Entry | None"]  # (digest, size, entry) of a key in the index


BATCH_EVICT = 256 << 20  # bytes a batch publishes between size-cap checks
GC_ROUNDS = 4  # gcs one put may run while others keep the cache over the cap


class LocalStore:
    """One cache directory: its layout, its index and the operations on its objects. The first
    tier of every Storage; it also implements the Tier protocol (fetch, store, stats), so a
    second LocalStore (e.g. on a shared disk) can serve as a later tier."""

    name = "local"

    def __init__(self, root: Path, *, fsync: bool = True, read_only: bool = False,
                 busy_timeout: float = BUSY_TIMEOUT_MS / 1000, max_size_bytes: int = 0) -> None:
        self.layout = Layout(root)
        self.root = root
        self.fsync = fsync
        self.read_only = read_only
        self.busy_timeout = busy_timeout
        self.max_size_bytes = max_size_bytes
        self._index: Index | None = None
        self._ready = False
        self._swept = False
        self._batch_lock = threading.Lock()
        self._batch_depth = 0
        self._batch_dirs: set[Path] = set()  # shard directories whose fsync the batch owes
        self._batch_evict = False
        self._batch_bytes = 0  # published since the batch's last size-cap check

    # -- opening ----------------------------------------------------------------------------
    def open(self) -> Index:
        """Create or check the layout and open the index (once); raises on an unusable cache."""
        if self._ready and self._index is not None:
            return self._index
        if self.read_only:
            self.layout.check_read_only()
            self._index = Index(str(self.layout.index_path), read_only=True)
            self._index.conn  # noqa: B018 - open now, so faults surface here
            self._ready = True
            return self._index
        self.layout.create()
        self._index = Index(str(self.layout.index_path), self.busy_timeout)
        try:
            self._index.conn  # noqa: B018 - open and migrate now, so faults surface here
        except sqlite3.OperationalError:
            raise  # busy, locked, full, unreadable: not corruption
        except sqlite3.DatabaseError:
            self._index = self._replace_damaged_index()
        self._ready = True
        return self._index

    def _replace_damaged_index(self) -> Index:
        """Move a damaged index to quarantine/ and start a fresh one (objects stay; keys are lost
        until re-harvested; ``verify --repair`` re-indexes the objects by digest)."""
        index_path = self.layout.index_path
        with named_lock(self.layout.lock_dir, "index-recovery", timeout=30):  # layout exists
            probe = Index(str(index_path), self.busy_timeout)
            try:
                probe.conn  # noqa: B018 - another process may have replaced it meanwhile
                return probe
            except sqlite3.OperationalError:
                raise
            except sqlite3.DatabaseError:
                probe.discard()
            stamp = f"{int(time.time() * 1000)}.{os.getpid()}"
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.rename(f"{index_path}{suffix}",
                              self.layout.quarantine_dir / f"index{suffix}.{stamp}")
            warn("the cache index was damaged; moved to quarantine/ and started afresh "
                 "(run `pkgcache verify --repair` to re-index the objects)")
            self.layout.check_index_files()
            fresh = Index(str(index_path), self.busy_timeout)
            fresh.conn  # noqa: B018
            return fresh

    @property
    def index(self) -> Index:
        """The index, opened on first use."""
        return self.open()

    def exists_on_disk(self) -> bool:
        """True if the cache directory exists (maintenance never creates it)."""
        return os.path.isdir(self.root)

    def close(self) -> None:
        """Flush batched statistics and close the index."""
        if self._index is not None:
            with contextlib.suppress(Exception):
                self._index.close()

    # -- locks ------------------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self, name: str, timeout: float | None = None) -> Iterator[None]:
        """An inter-process exclusive lock named by any string."""
        if not self._ready:
            self.open()
        with named_lock(self.layout.lock_dir, name, timeout):
            yield

    def bucket_lock(self, bucket: str, name: str, timeout: float | None = None
                    ) -> contextlib.AbstractContextManager[None]:
        """The lock of one bucket entry; gc and clear take it before removing the entry."""
        return self.lock(f"bucket:{bucket}/{name}", timeout)

    # -- lookups ----------------------------------------------------------------------------
    def resolve(self, key: str) -> Found | None:
        """(digest, size, entry) for a normalized key from the index, or None (nothing counted)."""
        index = self.index
        digest = digest_of_key(key)
        if digest is not None:
            size = index.object_size(digest)
            return (digest, size, None) if size is not None else None
        entry = index.lookup(key)
        return (entry.digest, entry.size, entry) if entry is not None else None

    def object_path(self, digest: str) -> Path:
        """Where the object with this digest lives."""
        return self.layout.object_path(digest)

    def present(self, digest: str, size: int) -> bool:
        """The object's file is a regular file of the recorded size (no hashing)."""
        try:
            st = os.lstat(self.object_path(digest))
        except FileNotFoundError:
            return False
        return stat.S_ISREG(st.st_mode) and st.st_size == size

    def same_object(self, digest: str, path: str | os.PathLike[str]) -> bool:
        """True if path is the very file (inode) of the stored object with this digest."""
        try:
            obj = os.lstat(self.object_path(digest))
            st = os.lstat(path)
        except OSError:
            return False
        return stat.S_ISREG(st.st_mode) and (obj.st_dev, obj.st_ino, obj.st_size) == (
            st.st_dev, st.st_ino, st.st_size)

    def can_link_into(self, directory: str | os.PathLike[str]) -> bool:
        """Can an object be hard-linked into directory? Tried for real with one object (a
        bind-mounted cache is on the same file system yet link() fails with EXDEV)."""
        for entry in self.index.entries("")[:1]:
            probe = os.path.join(directory, f".pkgcache-link-probe-{os.getpid()}")
            try:
                os.link(self.object_path(entry.digest), probe, follow_symlinks=False)
            except OSError:
                return False
            finally:
                with contextlib.suppress(OSError):
                    os.unlink(probe)
            return True
        return False

    # -- verification -----------------------------------------------------------------------
    def verify(self, digest: str, size: int, *, full: bool = False) -> bool:
        """Check type, owner, size and SHA-256 of an object; quarantine it and drop its keys
        if bad, forget it if its file is gone. The SHA-256 is taken from the object's stat stamp
        when that is the one of its last full hash (cache_core.stamps), unless full."""
        path = self.object_path(digest)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        except FileNotFoundError:
            self.drop_stale(digest)
            return False
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # a planted symlink: never follow it
                self.quarantine(digest)
                return False
            raise
        try:
            st = os.fstat(fd)
            # The ownership invariant: a regular file of ours that nobody else can write.
            ok = (stat.S_ISREG(st.st_mode) and st.st_size == size
                  and st.st_uid == os.geteuid() and not st.st_mode & 0o022)
            if ok and (full or not self.stamped(digest, st)):
                got, n = sha256_fd(fd)
                ok = got == digest and n == size
                if ok:
                    self.stamp(digest, st, os.fstat(fd))
        finally:
            os.close(fd)
        if not ok:
            self.quarantine(digest, st.st_ino)
        return ok

    def stamped(self, digest: str, st: os.stat_result) -> bool:
        """True if st is the stamp recorded after the object's last full hash: its bytes are
        those hashed then (cache_core.stamps), no hash needed."""
        sdir = stamps.stamp_dir(str(self.root))
        return sdir is not None and stamps.read(sdir, digest) == stamps.of(st)

    def stamp(self, digest: str, before: os.stat_result, after: os.stat_result) -> None:
        """Record the object's stat stamp after a full hash found it good (cache_core.stamps),
        if it did not change while it was hashed. Best effort."""
        if self.read_only or stamps.of(before) != stamps.of(after):
            return
        with contextlib.suppress(OSError):
            stamps.record(str(self.root), digest, after)

    def drop_stale(self, digest: str) -> None:
        """Forget an object whose file is gone, unless a writer has put it back meanwhile."""
        if self.read_only:
            return
        path = self.object_path(digest)
        self.index.drop_object(digest, "stale", remove=lambda: not os.path.lexists(path))

    def quarantine(self, digest: str, inode: int | None = None, *, quiet: bool = False) -> bool:
        """Move a bad object aside (kept for inspection) and forget every key pointing at it.

        inode: the file found bad; if a writer has replaced it meanwhile, nothing is done.
        None: whatever sits there is bad (a symlink, a FIFO, a stray). The one quarantine.
        """
        if self.read_only:  # root's cache: a miss for us; root's own reads quarantine it
            return False
        path = self.object_path(digest)
        dest = self.layout.quarantine_dir / f"{digest}.{int(time.time() * 1000)}.{os.getpid()}"

        def move() -> bool:
            try:
                if inode is not None and os.lstat(path).st_ino != inode:
                    return False  # replaced by a fresh put since we looked: keep it
                os.rename(path, dest)
            except FileNotFoundError:
                pass
            return True

        if not self.index.drop_object(digest, "corrupt", remove=move):
            return False
        stamps.forget(str(self.root), digest)
        if not quiet:
            warn(f"corrupt cache object {digest[:12]}… quarantined; treated as a miss")
        with contextlib.suppress(OSError):
            maintenance.prune_quarantine(self, self.max_size_bytes)
        return True

    # -- writing ----------------------------------------------------------------------------
    def new_temp(self) -> str:
        """A fresh temp path in tmp/ (swept by the sweep policy if its writer dies)."""
        return temp_name(self.layout.tmp_dir)

    def sweep_temps(self, force: bool = False) -> list[str]:
        """Remove leftovers of crashed writers from tmp/ (once per process unless force)."""
        if self._swept and not force:
            return []
        self._swept = True
        return sweep(self.layout.tmp_dir, force)

    def ingest(self, source: str | int, tmp: str, link: bool, mode: int) -> tuple[str, int, bool]:
        """Copy (or hardlink) a source to tmp, hashing it; (digest, size, linked).

        The source is opened with O_NOFOLLOW|O_NONBLOCK and checked with fstat (a regular file),
        so a symlink or FIFO swapped in after the caller looked is refused, never followed.
        """
        if isinstance(source, int):
            src_fd = os.dup(source)
            os.lseek(src_fd, 0, os.SEEK_SET)
            st = os.fstat(src_fd)
            if not stat.S_ISREG(st.st_mode):
                os.close(src_fd)
                raise CacheError("put: the descriptor is not a regular file")
            link = False
        else:
            try:
                src_fd, st = open_regular(source)
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise CacheError(f"{source}: is a symlink; not cached") from None
                raise
        try:
            if (link and mode == 0o444 and isinstance(source, str) and _linkable(source, st)
                    and link_verified(source, src_fd, tmp)):
                os.fchmod(src_fd, 0o444)  # the object's mode; narrows 0644, never widens
                digest, size = sha256_fd(src_fd)
                return digest, size, True
            dst_fd = create_exclusive(tmp, 0o600)
            try:
                digest, size = copy_hashing(src_fd, dst_fd)
                os.fchmod(dst_fd, mode)
                if self.fsync:
                    os.fsync(dst_fd)
            finally:
                os.close(dst_fd)
            return digest, size, False
        finally:
            os.close(src_fd)

    def publish(self, tmp: str, key: str, digest: str, size: int, kind: str,
                meta: dict[str, JSON] | None, private: bool = False) -> None:
        """Rename tmp into place as the object digest and record key (a normalized key; "" or a
        content key records the object only) in the same index transaction; private: the object
        never leaves this machine."""
        final = self.layout.shard(digest) / digest

        hashed = os.lstat(tmp)  # the inode its writer hashed

        def rename() -> None:  # atomic: readers see the old or the new inode, never a part
            os.replace(tmp, final)

        self.index.add("" if not key or digest_of_key(key) else key, digest, size, kind, meta,
                       publish=rename, private=private)
        if self.fsync and not self._owe_fsync(final.parent):
            fsync_dir(final.parent)  # the rename itself is durable too
        with contextlib.suppress(OSError):
            now = os.lstat(final)
            if (now.st_dev, now.st_ino, now.st_size) == (hashed.st_dev, hashed.st_ino, size):
                self.stamp(digest, now, now)

    def adopt(self, key: str, tmp: str, digest: str, size: int, kind: str,
              meta: dict[str, JSON] | None) -> None:
        """Publish a private temp file (in tmp/) that the caller hashed as it wrote it (0400 and
        marked private for a private key: never wider than its origin kept it)."""
        key = normalize_key(key)
        private = is_private_key(key)
        os.chmod(tmp, 0o400 if private else 0o444)
        self.publish(tmp, key, digest, size, kind, meta, private=private)
        with self._batch_lock:
            if self._batch_depth:
                self._batch_evict = True  # once, when the batch ends, or after BATCH_EVICT
                self._batch_bytes += size  # bytes: a large batch never overruns the cap whole
                if self._batch_bytes < BATCH_EVICT:
                    return
                self._batch_bytes = 0
        self.maybe_evict()

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Publish many objects (from several threads) at the cost of a few: inside, each
        object's bytes are still fsynced before its rename and index row (publish), but the
        fsync of each shard directory, the generation bump and the size-cap check are done once
        for the whole batch, when the outermost block ends (before it returns); the cap also
        every BATCH_EVICT bytes. One batch per process: its worker threads' puts join it."""
        with self.index.deferred_generation():
            with self._batch_lock:
                self._batch_depth += 1
            evict = False
            try:
                yield
            finally:
                with self._batch_lock:
                    self._batch_depth -= 1
                    dirs: set[Path] = set()
                    if not self._batch_depth:
                        dirs, evict = self._batch_dirs, self._batch_evict
                        self._batch_dirs, self._batch_evict = set(), False
                        self._batch_bytes = 0
                for d in sorted(dirs):
                    fsync_dir(d)  # every rename of the batch durable before it returns
        if evict:
            self.apply_cap()

    def _owe_fsync(self, directory: Path) -> bool:
        """Inside a batch: note directory for the batch's end (True); else False."""
        with self._batch_lock:
            if self._batch_depth:
                self._batch_dirs.add(directory)
                return True
        return False

    def alias(self, key: str, digest: str, kind: str, meta: dict[str, JSON] | None) -> bool:
        """Add key for a verified object already stored; False if there is no such object (or
        it left the index meanwhile: no key is ever recorded without its object)."""
        return self.alias_many([(key, digest, kind, meta)])[0]

    def alias_many(self, rows: list[tuple[str, str, str, dict[str, JSON] | None]]) -> list[bool]:
        """alias() for many (key, digest, kind, meta) rows: each object verified (its stat
        stamp, else hashed), then every key recorded in one index transaction, all or none
        (a key whose object left the index meanwhile is not recorded). One bool per row."""
        ok: list[bool] = []
        good: list[tuple[str, str, int, str, dict[str, JSON] | None]] = []
        for key, digest, kind, meta in rows:
            size = self.index.object_size(digest)
            ok.append(size is not None and self.verify(digest, size))
            if ok[-1] and size is not None:
                good.append((key, digest, size, kind, meta))
        done = iter(self.index.add_keys(good) if good else [])
        return [o and next(done) for o in ok]

    # -- reading ----------------------------------------------------------------------------
    def place(self, digest: str, size: int, dest: str, mode: str) -> bool:
        """A verified copy of the object at dest, atomically (temp in dest's dir + rename);
        False (nothing at dest changed) if the object is missing or bad."""
        path = self.object_path(digest)
        dest_dir = os.path.dirname(os.path.abspath(dest))
        tmp = temp_name(dest_dir)
        try:
            if not os.path.isdir(dest_dir):
                raise FileNotFoundError(errno.ENOENT, "no such directory", dest_dir)
            try:
                before = os.lstat(path)
                known = self.known_good(digest, size, before)
                how, fd = place_temp_fd(path, tmp, mode)
                if known:
                    try:
                        if self._unchanged(digest, size, before, os.lstat(path), fd, how):
                            replace_checked(tmp, dest, fd)  # good by its stamp: no hash
                            os.close(fd)
                            if how == "hardlink":
                                self._restamp(digest, before)
                            return True
                    except BaseException:
                        os.close(fd)
                        raise
                if how == "hardlink":
                    before = os.lstat(path)  # a new link changed its ctime; hashed from here
            except FileNotFoundError:
                if not os.path.isdir(dest_dir):
                    raise
                self.drop_stale(digest)
                return False
            except (UnsafeCacheError, OSError) as exc:
                if isinstance(exc, OSError) and exc.errno != errno.ELOOP:
                    raise
                self.quarantine(digest)  # a symlink or FIFO where an object belongs
                return False
            # Hash what was placed (for a hardlink that is the object itself) through the
            # descriptor it was placed by, and check after the rename that dest is that file.
            try:
                os.lseek(fd, 0, os.SEEK_SET)
                got, got_size = sha256_fd(fd)
                if got != digest or got_size != size:
                    self.verify(digest, size, full=True)  # quarantines it if it is bad
                    return False
                # the object did not change while it was copied: it holds what was hashed
                with contextlib.suppress(OSError):  # evicted meanwhile: nothing to stamp
                    self.stamp(digest, before, os.lstat(path))
                replace_checked(tmp, dest, fd)
                if how == "hardlink":
                    self._restamp(digest, before)
            finally:
                os.close(fd)
        finally:
            unlink_quiet(tmp)
        return True

    def known_good(self, digest: str, size: int, st: os.stat_result) -> bool:
        """The object (lstat st) is a regular file of ours, of its size, with the stamp of its
        last full hash."""
        return (stat.S_ISREG(st.st_mode) and st.st_size == size and st.st_uid == os.geteuid()
                and not st.st_mode & 0o022 and self.stamped(digest, st))

    def _unchanged(self, digest: str, size: int, before: os.stat_result,
                   after: os.stat_result, fd: int, how: str) -> bool:
        """The object stayed what its stamp vouched for while it was placed (a hardlink moves
        its ctime, nothing else), and fd holds size bytes."""
        same = (before.st_dev, before.st_ino, before.st_size, before.st_mtime_ns) == \
            (after.st_dev, after.st_ino, after.st_size, after.st_mtime_ns)
        if not same or after.st_uid != before.st_uid or after.st_mode != before.st_mode:
            return False
        if how == "hardlink":
            return os.fstat(fd).st_ino == after.st_ino
        return after.st_ctime_ns == before.st_ctime_ns and os.fstat(fd).st_size == size

    def _restamp(self, digest: str, before: os.stat_result) -> None:
        """A hardlink to a good object was placed (link and rename moved its ctime): its new
        stamp, if nothing but the ctime changed."""
        if self.read_only:
            return
        with contextlib.suppress(OSError):
            now = os.lstat(self.object_path(digest))
            if (now.st_dev, now.st_ino, now.st_size, now.st_mtime_ns, now.st_mode) == \
                    (before.st_dev, before.st_ino, before.st_size, before.st_mtime_ns,
                     before.st_mode):
                stamps.record(str(self.root), digest, now)

    # -- the Tier protocol (as a later tier of another Storage) ------------------------------
    def fetch(self, key: str, sink: Sink) -> Located | None:
        """Copy key's object into sink (Storage hashes it); a corrupt object is quarantined."""
        found = self.resolve(normalize_key(key))
        if found is None:
            return None
        digest, size, entry = found
        claim = Located(digest, size, entry.kind if entry else None, entry.meta if entry else None)
        try:
            fd, st = open_regular(self.object_path(digest))
        except FileNotFoundError:
            self.drop_stale(digest)
            return None
        except (UnsafeCacheError, OSError) as exc:
            if isinstance(exc, OSError) and exc.errno != errno.ELOOP:
                raise
            self.quarantine(digest)  # a symlink or FIFO where an object belongs
            return None
        try:
            if not sink.begin(claim, size):
                return claim
            while chunk := os.read(fd, 1 << 20):
                sink.write(chunk)
        finally:
            os.close(fd)
        if sink.hexdigest() != digest or sink.size != size:
            self.quarantine(digest, st.st_ino)
        return claim

    def store(self, key: str, digest: str, source: str) -> bool:
        """Copy source (hashed) into this store under key if it hashes to digest."""
        if self.read_only:
            return False
        self.open()
        tmp = self.new_temp()
        try:
            got, size, _ = self.ingest(source, tmp, False, 0o444)
            if got != digest:
                return False
            self.publish(tmp, normalize_key(key), digest, size, kind_of(key), None)
        finally:
            unlink_quiet(tmp)
        self.maybe_evict()
        return True

    def stats(self) -> dict[str, object]:
        """This store's index counters (hits, misses, entries, objects, total_size, ...)."""
        self.index.flush()
        return dict(self.index.counters())

    def zero(self) -> None:
        """Reset this store's hit/miss/eviction counters."""
        self.index.zero()

    # -- buckets ----------------------------------------------------------------------------
    def bucket(self, name: str) -> Path:
        """A private directory under the root for non-file data (name already checked)."""
        self.open()
        return ensure_private_dir(self.root / name)

    # -- the size cap -----------------------------------------------------------------------
    def usage(self) -> int:
        """Bytes counted against the cap: objects, bucket entries and quarantine/."""
        c = self.index.counters()
        quarantined = sum(size for _, size, _ in maintenance.quarantine_entries(self))
        return c.get("total_size", 0) + c.get("bucket_size", 0) + quarantined

    def maybe_evict(self) -> None:
        """Run gc while the cap is exceeded. A process that finds the gc lock held leaves the
        cap to the holder, and every holder looks again once it has let the lock go (here, and
        after gc(wait=True), verify and clear): puts made meanwhile are not left over the cap.
        Another gc only if the usage grew during this one (others stored), GC_ROUNDS at most."""
        if self.read_only:  # another user's cache: its owner applies the cap
            return
        for _ in range(GC_ROUNDS):
            before = self.usage()
            if not (self.max_size_bytes and before > self.max_size_bytes):
                return
            done = self._gc(None, None, False)
            if done.get("skipped"):
                return
            freed = done.get("freed_bytes", 0) + done.get("quarantine_freed_bytes", 0)
            if self.usage() <= before - freed:  # nobody stored meanwhile: all it can do
                return

    def apply_cap(self) -> None:
        """maybe_evict after work that is already done (a batch, gc, verify, clear): a fault
        is one warning and the cap waits for the next put, the work's result stands."""
        try:
            self.maybe_evict()
        except (OSError, sqlite3.Error, CacheError) as exc:
            warn(f"size cap not applied ({exc})")

    def gc(self, cap: int | None = None, older_than: float | None = None,
           wait: bool = False) -> dict[str, int]:
        """Evict LRU entries down to 90 % of cap under the gc lock; {"skipped": 1} if held
        (wait: until it is free, then the cap is looked at again as maybe_evict does)."""
        done = self._gc(cap, older_than, wait)
        if wait:
            self.apply_cap()
        return done

    def _gc(self, cap: int | None, older_than: float | None, wait: bool) -> dict[str, int]:
        cap = self.max_size_bytes if cap is None else cap
        try:
            with self.lock("gc", timeout=None if wait else 0):
                self.index.flush()
                return maintenance.gc(self, cap, older_than)
        except LockTimeout:
            return {"skipped": 1}


def _linkable(path: str, st: os.stat_result) -> bool:
    """May this inode become a cache object (hard link)? Only if nobody but us can write it,
    now or later: we own it, mode 0644/0444, no other link, and its directory is ours or
    root's and writable by nobody else (apt's archives dir; never a user's home)."""
    if st.st_uid != os.geteuid() or st.st_nlink != 1:
        return False
    if stat.S_IMODE(st.st_mode) not in (0o644, 0o444):
        return False
    parent = os.path.dirname(os.path.abspath(path))
    try:
        dst = os.stat(parent)
    except OSError:
        return False
    return dst.st_uid in (0, os.geteuid()) and not dst.st_mode & 0o022 and not acl_grants_write(parent)
