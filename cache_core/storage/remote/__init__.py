"""The fleet tier: a remote content store behind the local cache.

Read path: a local miss asks the remotes in order (``cas/<sha256>`` for content keys, a signed
``ac/`` record first for other keys); bytes are streamed through SHA-256 into a temp file and
ingested only if the digest (and size) match. Write path: a put appends an entry to a spool in
the cache; a detached uploader drains it (HEAD before PUT). Failure policy: a timeout or non-404
error opens a breaker shared by every process for 60 s; 403 is a miss; a mismatch is a counted
miss. Nothing here ever raises into a driver: faults are misses plus at most one warning.

RemoteTier is built from the local store, the remote specs and its state dir; it never sees the
PackageCache facade. Drivers reach it only through ``cache.remote`` (cache_core.remote.Remote).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import json
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ... import fs
from ...errors import EXIT_USAGE, CacheError, RecordError, warn
from ...hashing import sha256_bytes, sha256_fd
from ...keys import digest_of_key, is_digest, is_private_key, normalize_key
from ..tier import Located, Sink
from . import sets
from .base import (
    MAX_RECORD_BYTES,
    Backend,
    ListRefused,
    RemoteError,
    RemoteMissing,
    RemoteTimeout,
    make_backend,
    object_name,
    record_name,
)
from .config import RemoteSpec, scrub_secrets
from .records import (
    Record,
    check_fresh,
    decode,
    encode,
    is_revoked,
    load_secret_key,
    now,
    public_key_of,
    valid_kind,
)
from .records import generate_keypair as generate_keypair  # public (docs/core-api.md)
from .state import COUNTERS, State

if TYPE_CHECKING:
    from ...index import Entry
    from ..local import LocalStore

WORK_DIR = "remote-v1"
UPLOAD_ENV = "PKGCACHE_REMOTE_UPLOAD"  # "manual": never start the background uploader
USAGE_PREFIX = "usage:"  # usage:<member>:<day>: what a member took from the fleet (remote gc)
MISMATCH_STRIKES = 3  # objects that do not match in one process before the breaker opens
FREE_MARGIN = 64 << 20  # bytes a fill leaves free on the cache's filesystem (at most 5% of it)
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


class RemoteTier:
    """The remotes of one cache, with in-process budgets and the shared breaker/counters; the
    remote Tier of the cache's Storage (fetch, store, stats)."""

    name = "remote"

    def __init__(self, local: LocalStore, specs: list[RemoteSpec], work_dir: Path, *,
                 config_source: str | None = None) -> None:
        """local: the cache's store (objects read for upload, fills published into it);
        work_dir: where the spool, breaker and usage lists live (``<cache>/remote-v1``; not the
        private state dir of trust memos);
        config_source: the config file the detached uploader is started with."""
        self.local = local
        self.specs = specs
        self.work_dir = work_dir
        self.config_source = config_source
        self._backends: dict[str, Backend] = {}
        self._off: set[str] = set()           # skipped for the rest of this process
        self._spent: dict[str, float] = {}    # seconds spent per remote in this process
        self._signers: dict[str, tuple[str, Any] | None] = {}
        self._bad_seen: dict[str, set[str]] = {}  # per remote: digests that did not match
        self._off_signing: set[str] = set()   # remotes whose signing key is revoked (warned)
        self._strikes: dict[str, int] = {}    # objects that did not match, per remote
        self.expected: dict[str, int] = {}    # digest -> the size a caller knows (get_object)
        self._no_create: set[str] = set()     # remotes that cannot create-if-absent (sets.py)
        self._settle: dict[tuple[str, str], float] = {}  # (remote, set key) -> check after
        self.spawned = False
        self._batch_lock = threading.Lock()
        self._batch_depth = 0
        self._pending: dict[str, tuple[str, dict[str, int]]] = {}  # ident -> (display, counts)
        self._full_warned = False  # "local disk full" said once per process
        self.unlisted = 0  # remotes the last remote_keys() could not list

    # -- plumbing ---------------------------------------------------------------------------
    @property
    def dir(self) -> Path:
        """The tier's directory in the cache, <cache>/remote-v1 (created on first use)."""
        self.local.open()
        return fs.ensure_private_dir(self.work_dir)

    @property
    def spool_dir(self) -> Path:
        """Queued uploads, one small JSON file each."""
        return fs.ensure_private_dir(self.dir / "spool")

    @property
    def state(self) -> State:
        """The shared breaker/counter file."""
        return State(self.dir, self.local.layout.lock_dir)

    def _backend(self, spec: RemoteSpec) -> Backend:
        if spec.ident not in self._backends:
            self._backends[spec.ident] = make_backend(spec)
        return self._backends[spec.ident]

    def usable(self, spec: RemoteSpec) -> bool:
        """Not tripped in this process, breaker closed, run budget left."""
        if spec.ident in self._off:
            return False
        if self._spent.get(spec.ident, 0.0) >= spec.run_budget:
            self._off.add(spec.ident)
            return False
        if self.state.open_until(spec.ident) > time.time():
            self._off.add(spec.ident)  # decided once per process: no re-reading per object
            return False
        return True

    def _deadline(self, spec: RemoteSpec) -> float:
        left = spec.run_budget - self._spent.get(spec.ident, 0.0)
        return time.monotonic() + max(0.001, min(spec.object_budget, left))

    def _count(self, spec: RemoteSpec, **counts: int) -> None:
        with self._batch_lock:
            if self._batch_depth:  # added up here, written once when the batch ends
                row = self._pending.setdefault(spec.ident, (spec.display, {}))[1]
                for k, v in counts.items():
                    row[k] = row.get(k, 0) + v
                return
        self.state.update(spec.ident, spec.display, counts)

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Bring many objects (from several threads) at the cost of a few: the counters are
        added up and written to state.json once, and the local store publishes as a batch
        (LocalStore.batch: each object's bytes fsynced before it is indexed; the directories'
        fsyncs, the generation bump and the size-cap check once), all when the outermost block
        ends. A breaker opened inside is written at once, as outside."""
        with self._batch_lock:
            self._batch_depth += 1
        try:
            with self.local.batch():
                yield
        finally:
            with self._batch_lock:
                self._batch_depth -= 1
                pending = {} if self._batch_depth else self._pending
                if not self._batch_depth:
                    self._pending = {}
            for ident, (display, counts) in pending.items():
                self.state.update(ident, display, counts)

    def _fault(self, spec: RemoteSpec, exc: Exception) -> None:
        """A timeout or error: skip the remote here and open the shared breaker for 60 s."""
        timeout = isinstance(exc, RemoteTimeout)
        reason = scrub_secrets(str(exc), self.specs)
        self._off.add(spec.ident)
        self.state.update(spec.ident, spec.display, {"timeouts" if timeout else "errors": 1},
                          open_breaker=reason)
        warn(f"remote {spec.display}: {reason}; skipped for 60 s")

    def _timed(self, spec: RemoteSpec, started: float) -> None:
        self._spent[spec.ident] = self._spent.get(spec.ident, 0.0) + time.monotonic() - started

    # -- read path (the Tier protocol: Storage hashes and publishes what fetch writes) -------
    def fetch(self, key: str, sink: Sink) -> Located | None:
        """Write key's object from the first remote that has it into sink; the claim, or None.

        Content keys are read from ``cas/`` directly; other keys need a record that passes the
        trust checks first. A remote whose bytes do not match is a counted miss; the next one is
        asked."""
        key = normalize_key(key)
        digest = digest_of_key(key)
        for spec in self.specs:
            if not self.usable(spec):
                continue
            started = time.monotonic()
            try:
                if digest is not None:
                    claim = Located(digest, self.expected.get(digest))
                else:
                    rec = self._record(spec, key)
                    if rec is None:
                        continue
                    claim = Located(rec.sha256, rec.size, rec.kind, rec.meta)
                if self._fetch(spec, claim, sink):
                    self._note_use(claim.digest)
                    return claim
            except RemoteError as exc:  # a local fault (disk full) is not the remote's: no breaker
                self._fault(spec, exc)
            finally:
                self._timed(spec, started)
        return None

    def _record(self, spec: RemoteSpec, key: str) -> Record | None:
        """The verified record for key on this remote, or None (a miss; bad records counted)."""
        data = self._read_small(spec, record_name(key))
        if data is None:
            self._count(spec, misses=1)
            return None
        try:
            rec = decode(data, key, spec.trusted_public_keys, spec.trust == "unsigned",
                         spec.revoked_public_keys)
            check_fresh(rec)
            return rec
        except RecordError as exc:
            self._count(spec, rejected_records=1, misses=1)
            warn(f"remote {spec.display}: record for a key ignored ({exc})")
            return None

    def _read_small(self, spec: RemoteSpec, name: str) -> bytes | None:
        try:
            chunks, total = [], 0
            for chunk in self._backend(spec).get(name, self._deadline(spec)):
                total += len(chunk)
                if total > MAX_RECORD_BYTES:
                    raise RemoteMissing("record too large")
                chunks.append(chunk)
            return b"".join(chunks)
        except RemoteMissing:
            return None

    def _fetch(self, spec: RemoteSpec, claim: Located, sink: Sink) -> bool:
        """Stream cas/<digest> into sink through its hash; False on a miss or mismatch.

        Never more than the cache's filesystem can take (``room``): an object known to be
        larger, a fill of unknown size that outgrows it, or ENOSPC/EDQUOT while writing is a
        miss of this fill (the temp removed by the caller), not the remote's fault."""
        if claim.digest in self._bad(spec):  # rejected already in this run: not fetched again
            self._count(spec, misses=1)
            return False
        limit = claim.size if claim.size is not None else spec.max_object_bytes
        room = self.room()
        capped = room is not None and limit > room
        try:
            if capped and room is not None:
                if (claim.size is not None or room <= 0) and not self.holds(claim.digest):
                    raise _LocalFull(f"needs {limit} bytes, {max(room, 0)} free")
                limit = max(room, 0)
            try:
                if not sink.begin(claim, limit):
                    return True  # the record names content we already hold
                for chunk in self._backend(spec).get(object_name("cas", claim.digest),
                                                     self._deadline(spec)):
                    sink.write(chunk)
            except OverflowError as exc:
                raise (_LocalFull("larger than the free space") if capped
                       else _Mismatch(str(exc))) from None
            except OSError as exc:
                if exc.errno in _DISK_FULL:
                    raise _LocalFull(os.strerror(exc.errno)) from None
                raise
            if sink.hexdigest() != claim.digest or (claim.size is not None
                                                    and sink.size != claim.size):
                raise _Mismatch("content does not match its SHA-256")
        except RemoteMissing:
            self._count(spec, misses=1)
            return False
        except _LocalFull as exc:
            got = sink.size
            sink.discard()  # free the disk first: the counters are written to it too
            self._count(spec, misses=1, bytes_in=got)
            if not self._full_warned:
                self._full_warned = True
                warn(f"remote {spec.display}: object {claim.digest[:12]}… not fetched "
                     f"(cache disk full: {exc})")
            return False
        except _Mismatch as exc:
            self._mark_bad(spec, claim.digest)
            self._count(spec, mismatches=1, misses=1, bytes_in=sink.size)
            warn(f"remote {spec.display}: object {claim.digest[:12]}… ignored ({exc})")
            strikes = self._strikes[spec.ident] = self._strikes.get(spec.ident, 0) + 1
            if strikes >= MISMATCH_STRIKES:  # a lying store: stop asking it (shared breaker)
                self._fault(spec, RemoteError(f"{strikes} objects did not match their SHA-256"))
            return False
        self._count(spec, hits=1, bytes_in=sink.size)
        return True

    def room(self) -> int | None:
        """Bytes a fill may write: the cache filesystem's free space less a margin (64 MiB, at
        most 5% of it), and no more than the size cap; None if unknown."""
        try:
            st = os.statvfs(self.local.layout.tmp_dir)
        except OSError:
            return None
        margin = min(FREE_MARGIN, st.f_blocks * st.f_frsize // 20)
        room = st.f_bavail * st.f_frsize - margin
        cap = self.local.max_size_bytes
        return min(room, cap) if cap else room

    def holds(self, digest: str) -> bool:
        """The local store has the object with this digest (its recorded size; no hashing)."""
        found = self.local.resolve(f"sha256:{digest}")
        return found is not None and self.local.present(found[0], found[1])

    def backend(self, spec: RemoteSpec) -> Backend:
        """The backend of one remote (for leases, see lease.py)."""
        return self._backend(spec)

    def trip(self, spec: RemoteSpec, exc: RemoteError) -> None:
        """A store fault met outside the tier's own calls (a lease): counted like any other
        (one warning, the remote off for this process, the shared breaker opened)."""
        self._fault(spec, exc)

    def upload_content(self, spec: RemoteSpec, digest: str) -> str:
        """Publish cas/<digest> to this remote now (a lease holder, not the background
        uploader): "uploaded" or "skipped"."""
        return self._upload(spec, "", digest)

    def publish(self, key: str, digest: str) -> bool:
        """Upload key's record and object to every usable rw remote now (a lease holder that
        others wait for, not the background uploader); True if one remote took it."""
        done = False
        for spec in self._writers():
            if not self.usable(spec):
                continue
            try:
                done = self._upload(spec, key, digest) in ("uploaded", "skipped") or done
            except (RemoteError, OSError) as exc:
                self._fault(spec, exc)
        return done

    def _bad(self, spec: RemoteSpec) -> set[str]:
        """Digests this remote answered with wrong bytes lately (read once per process)."""
        if spec.ident not in self._bad_seen:
            self._bad_seen[spec.ident] = self.state.bad(spec.ident)
        return self._bad_seen[spec.ident]

    def _mark_bad(self, spec: RemoteSpec, digest: str) -> None:
        self._bad(spec).add(digest)
        self.state.mark_bad(spec.ident, spec.display, digest)

    def get_record(self, key: str) -> Record | None:
        """The first verified record for key among the remotes (signature and key checked)."""
        key = normalize_key(key)
        for spec in self.specs:
            if not self.usable(spec):
                continue
            started = time.monotonic()
            try:
                rec = self._record(spec, key)
                if rec is not None:
                    return rec
            except RemoteError as exc:
                self._fault(spec, exc)
            finally:
                self._timed(spec, started)
        return None

    # -- write path -------------------------------------------------------------------------
    def _writers(self) -> list[RemoteSpec]:
        return [s for s in self.specs if s.mode == "rw"]

    def store(self, key: str, digest: str, source: str) -> bool:
        """Write-behind (the Tier protocol): queue key and its object for the background
        uploader, which re-reads and re-hashes the local object (source) when it uploads."""
        return self.enqueue(key, digest)

    def enqueue(self, key: str, digest: str, spawn: bool = True, bounded: bool = True) -> bool:
        """Queue key (or a bare digest) for upload; start the uploader. False if not queued.

        bounded: drop the entry when the spool is full (background puts; an explicit push
        queues everything it was asked for). A private object is never queued."""
        writers = self._writers()
        if not writers or self._private(key, digest):
            return False
        spool = self.spool_dir
        limit = min(s.spool_max for s in writers)
        with os.scandir(spool) as it:
            n = sum(1 for _ in it) if bounded else 0
        if n >= limit:  # bounded: drop, as bazel-remote does; `remote push --all` catches up
            for s in writers:
                self._count(s, dropped=1)
            return False
        entry = {"key": key if digest_of_key(key) is None else "", "sha256": digest}
        name = f"{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(4)}.json"
        fs.atomic_write(spool / name, json.dumps(entry), 0o600)
        if spawn:
            self.spawn_uploader()
        return True

    def _private(self, key: str, digest: str) -> bool:
        """Must this object stay on this machine? (a private key, or an object stored private)"""
        return is_private_key(key) or self.local.index.is_private(digest)

    def _uploader_lock(self) -> int:
        return os.open(self.dir / "uploader.lock",
                       os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)

    def uploader_running(self) -> bool:
        """True if some process holds the uploader lock."""
        fd = self._uploader_lock()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return False
        except BlockingIOError:
            return True
        finally:
            os.close(fd)

    def spawn_uploader(self) -> None:
        """Start a detached uploader unless one runs (or uploads are manual)."""
        if self.spawned or os.environ.get(UPLOAD_ENV, "").lower() == "manual":
            return
        self.spawned = True
        if self.uploader_running():
            return
        env = dict(os.environ)
        pkg_parent = str(Path(__file__).resolve().parents[3])
        env["PYTHONPATH"] = pkg_parent + (os.pathsep + env["PYTHONPATH"]
                                          if env.get("PYTHONPATH") else "")
        cmd = [sys.executable, "-m", "cache_core.storage.remote.uploader",
               "--cache-dir", str(self.local.root)]
        if self.config_source:
            cmd += ["--config", self.config_source]
        with contextlib.suppress(OSError):
            subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True,
                             cwd="/", env=env)

    def drain(self, wait: bool = False) -> dict[str, int]:
        """Upload every spooled entry (one uploader at a time); entries leave the spool only
        once every rw remote has the object. Survives kill -9: an entry is just a file."""
        result = {"uploaded": 0, "skipped": 0, "failed": 0, "pending": 0}
        fd = self._uploader_lock()
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                result["pending"] = self.spool_count()
                return result
            self.spawned = True  # entries queued while draining are drained here
            self._publish_usage()
            idle = 0
            while True:
                names = sorted(os.listdir(self.spool_dir))
                if not names:
                    break
                progressed = False
                for name in names:
                    if not self._writers_usable():
                        result["pending"] = self.spool_count()
                        return result
                    done = self._upload_entry(self.spool_dir / name, result)
                    if done:
                        fs.unlink_quiet(self.spool_dir / name)
                        progressed = True
                idle = 0 if progressed else idle + 1
                if not progressed and not (self._settle and idle < sets.MAX_TRIES):
                    break  # (sets put without create-if-absent are checked on the next pass)
            result["pending"] = self.spool_count()
            return result
        finally:
            os.close(fd)

    def _writers_usable(self) -> bool:
        return any(self.usable(s) for s in self._writers())

    def spool_count(self) -> int:
        """Entries waiting in the spool."""
        try:
            return len(os.listdir(self.spool_dir))
        except OSError:
            return 0

    def _upload_entry(self, path: Path, result: dict[str, int]) -> bool:
        try:
            with open(path, encoding="utf-8") as fh:
                entry = json.load(fh)
            key, digest = str(entry.get("key") or ""), str(entry["sha256"])
            if not is_digest(digest):
                raise ValueError
        except FileNotFoundError:
            return False
        except (OSError, ValueError, KeyError, TypeError):
            return True  # a damaged entry: drop it
        all_ok = True
        for spec in self._writers():
            if not self.usable(spec):
                all_ok = False
                continue
            started = time.monotonic()
            try:
                outcome = self._upload(spec, key, digest)
                if outcome == "settling":  # a shared set's PUT, checked on the next pass
                    all_ok = False
                    continue
                result[outcome] = result.get(outcome, 0) + 1
            except (RemoteError, RemoteMissing) as exc:
                if isinstance(exc, RemoteMissing):
                    exc = RemoteError(str(exc))
                self._count(spec, upload_errors=1)
                self._fault(spec, exc)
                result["failed"] += 1
                all_ok = False
            finally:
                self._timed(spec, started)
        return all_ok

    def _upload(self, spec: RemoteSpec, key: str, digest: str) -> str:
        """HEAD cas/<digest>, PUT it if absent (verified while read), then PUT key's record."""
        if self._private(key, digest):
            return "private"  # an entry queued before it was known private: never uploaded
        if key:
            entry = self._entry(key)
            if entry is not None and entry.kind == sets.SET_KIND:
                return self._upload_set(spec, entry.key, entry.digest) \
                    if entry.digest == digest else "skipped"
        backend = self._backend(spec)
        path = self.local.object_path(digest)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            return "skipped"  # evicted or quarantined meanwhile: nothing to upload
        try:
            got, size = sha256_fd(fd)
            if got != digest:
                return "skipped"  # a corrupt local object is never published
            name = object_name("cas", digest)
            outcome = "skipped"
            remote_size = backend.head(name, self._deadline(spec))
            if remote_size != size:
                self._put_object(spec, fd, name, size, digest, remote_size is None)
                outcome = "uploaded"
            else:
                self._count(spec, upload_skipped=1)
            if key and not self._revoked_signer(spec) and self._put_key_record(spec, key, digest) \
                    and outcome == "skipped" and backend.head(name, self._deadline(spec)) != size:
                # `remote gc` deleted the object between our HEAD and the record (its last
                # listing of records came before ours): put it back, the record needs it
                self._put_object(spec, fd, name, size, digest, True)
                outcome = "uploaded"
        finally:
            os.close(fd)
        return outcome

    def _put_object(self, spec: RemoteSpec, fd: int, name: str, size: int, digest: str,
                    absent: bool) -> None:
        """PUT the open local object (read from its start) as name."""
        os.lseek(fd, 0, os.SEEK_SET)
        with os.fdopen(os.dup(fd), "rb") as body:
            self._backend(spec).put(name, body, size, digest, self._deadline(spec),
                                    if_none_match=absent)
        self._count(spec, uploads=1, bytes_out=size)

    def _put_key_record(self, spec: RemoteSpec, key: str, digest: str) -> bool:
        """PUT key's signed record if key still names digest here; True if it was written."""
        import io

        entry = self._entry(key)
        if entry is None or entry.digest != digest or not valid_kind(entry.kind):
            return False
        rec = Record(entry.key, digest, entry.size, entry.kind, entry.meta, created=now())
        data = encode(rec, self._signer(spec))
        self._backend(spec).put(record_name(entry.key), io.BytesIO(data), len(data),
                                sha256_bytes(data), self._deadline(spec))
        return True

    # -- shared sets (sets.py): many writers, no lost items ---------------------------------
    def _sets(self, spec: RemoteSpec, own: bool = False) -> sets.SetStore:
        """The set operations on one remote; own: also trust this member's own signing key
        (a writer merging its own earlier versions, whatever its trusted_public_keys say)."""
        backend = self._backend(spec)
        trusted = list(spec.trusted_public_keys)
        signer = self._signer(spec) if own else None
        if signer is not None and not is_revoked(signer, spec.revoked_public_keys):
            trusted.append(public_key_of(signer))

        def content(digest: str, size: int) -> bytes | None:
            data = sets.fetch(backend.get, object_name("cas", digest), size, spec.object_budget)
            if data is None or sets.digest(data) != digest:
                return None
            self._count(spec, bytes_in=len(data))
            return data

        return sets.SetStore(functools.partial(self._read_small, spec), content,
                             lambda name: backend.head(name, self._deadline(spec)) is not None,
                             trusted, spec.trust == "unsigned", spec.revoked_public_keys)

    def read_set(self, key: str) -> tuple[list[dict[str, Any]], str | None]:
        """The items of the newest version of key's set that verifies, from the first remote
        that has one, and its signer; ([], None) if none."""
        key = normalize_key(key)
        for spec in self.specs:
            if not self.usable(spec):
                continue
            started = time.monotonic()
            try:
                store = self._sets(spec)
                n, rec, items = store.read_newest(key)
                if store.rejected:
                    self._count(spec, rejected_records=store.rejected)
                if rec is None:
                    self._count(spec, misses=1)
                    continue
                sets.check_version(key, rec, n)
                self._count(spec, records=1)  # not an object: "hits" count objects only
                return items, rec.signer
            except RecordError as exc:
                self._count(spec, rejected_records=1, misses=1)
                warn(f"remote {spec.display}: shared set ignored ({exc})")
            except RemoteError as exc:
                self._fault(spec, exc)
            finally:
                self._timed(spec, started)
        return [], None

    def add_to_set(self, key: str, items: list[dict[str, Any]]) -> bool:
        """Keep items in this member's copy of key's set and queue it for the uploader (which
        merges it into the store's head); False if no rw remote or nothing new."""
        import tempfile

        key = normalize_key(key)
        if not self._writers():
            return False
        entry = self._entry(key)
        path = self.local.object_path(entry.digest) \
            if entry is not None and self.local.present(entry.digest, entry.size) else None
        old: list[dict[str, Any]] = []
        if entry is not None and entry.kind == sets.SET_KIND and path is not None:
            with contextlib.suppress(OSError, RecordError):
                with open(path, "rb") as fh:
                    old = sets.decode_items(key, fh.read(sets.MAX_SET_BYTES + 1))
        merged = sets.union(old, items)
        if path is not None and entry is not None and entry.kind == sets.SET_KIND \
                and len(merged) == len(sets.union(old)):
            return False
        body = sets.encode_items(key, merged)
        if len(body) > sets.MAX_SET_BYTES:
            warn(f"remote: shared set {key[:40]} over {sets.MAX_SET_BYTES >> 20} MiB; not queued")
            return False
        with tempfile.NamedTemporaryFile(dir=self.dir, prefix=".set-") as tmp:
            tmp.write(body)
            tmp.flush()
            self._put_local(key, tmp.name, sets.SET_KIND)
            return True

    def _upload_set(self, spec: RemoteSpec, key: str, digest: str) -> str:
        """Merge this member's items into the store's head and create the next version (retry
        on a collision): "uploaded", or "skipped" when the head already holds them all."""
        import io

        if self._revoked_signer(spec):
            return "skipped"
        try:
            with open(self.local.object_path(digest), "rb") as fh:
                mine = sets.decode_items(key, fh.read(sets.MAX_SET_BYTES + 1))
        except (OSError, RecordError):
            return "skipped"
        want = {sets.canonical(i) for i in mine}
        backend = self._backend(spec)
        store = self._sets(spec, own=True)
        due = self._settle.pop((spec.ident, key), None)
        wrote = due is not None
        if due is not None:  # one wait for all the sets this pass PUT (not one per set)
            time.sleep(max(0.0, min(sets.SETTLE, due - time.monotonic())))
        for attempt in range(sets.MAX_TRIES):
            n = store.head(key)
            _, _, items = store.newest(key, n)
            if want <= {sets.canonical(i) for i in items}:
                self._count(spec, **({"uploads": 1} if wrote else {"upload_skipped": 1}))
                return "uploaded" if wrote else "skipped"
            merged = sets.union(items, mine)
            body = sets.encode_items(key, merged)
            if len(body) > sets.MAX_SET_BYTES:
                warn(f"remote {spec.display}: shared set {key[:40]} too large; not uploaded")
                return "skipped"
            d = sets.digest(body)
            cas = object_name("cas", d)
            if backend.head(cas, self._deadline(spec)) != len(body):
                backend.put(cas, io.BytesIO(body), len(body), d, self._deadline(spec),
                            if_none_match=True)
                self._count(spec, bytes_out=len(body))
            vkey = sets.version_key(key, n + 1)
            created = now()  # the version's and its hint's: a hint is never newer than it
            data = encode(Record(vkey, d, len(body), sets.VERSION_KIND, {}, created=created),
                          self._signer(spec))
            made = None if spec.ident in self._no_create else \
                backend.create_lease(record_name(vkey), data, self._deadline(spec))
            if made is False:  # another writer took version n + 1: merge that one
                sets.backoff(attempt)
                continue
            if made is None:  # no create-if-absent here: a PUT, checked after a settle below
                self._no_create.add(spec.ident)  # asked once per process (each try leaves a temp)
                backend.put(record_name(vkey), io.BytesIO(data), len(data), sha256_bytes(data),
                            self._deadline(spec))
            # the hint names the version's items too (when small): a reader needs no more. Its
            # time is the version's, so a hint that lands late (after a newer version) and is
            # replayed once that version is gone is refused as that older version would be
            # (check_version).
            hint_meta: dict[str, Any] = {"head": n + 1}
            if len(body) <= sets.INLINE_MAX:
                hint_meta["items"] = merged
            hint = encode(Record(key, d, len(body), sets.HEAD_KIND, hint_meta, created=created),
                          self._signer(spec))
            backend.put(record_name(key), io.BytesIO(hint), len(hint), sha256_bytes(hint),
                        self._deadline(spec))
            wrote = True
            if made:
                self._count(spec, uploads=1)
                return "uploaded"
            # another writer's PUT may replace our version: after a settle, the next pass of
            # drain checks that the head holds our items (and merges again if not)
            self._settle[(spec.ident, key)] = time.monotonic() + sets.SETTLE
            return "settling"
        raise RemoteError(f"shared set: {sets.MAX_TRIES} versions taken by other writers")

    def _signer(self, spec: RemoteSpec) -> tuple[str, Any] | None:
        if not spec.signing_key_file:
            return None
        if spec.ident not in self._signers:
            try:
                self._signers[spec.ident] = load_secret_key(spec.signing_key_file)
            except (OSError, RecordError) as exc:
                warn(f"remote {spec.display}: records uploaded unsigned "
                     f"({getattr(exc, 'strerror', None) or exc})")
                self._signers[spec.ident] = None
        return self._signers[spec.ident]

    def _revoked_signer(self, spec: RemoteSpec) -> bool:
        """A rw member whose own signing key is revoked uploads no records (one warning)."""
        signer = self._signer(spec)
        if signer is None or not is_revoked(signer, spec.revoked_public_keys):
            return False
        if spec.ident not in self._off_signing:
            self._off_signing.add(spec.ident)
            warn(f"remote {spec.display}: signing key {signer[0]!r} is revoked; "
                 "no records uploaded (rotate it: pkgcache remote resign)")
        return True

    # -- explicit syncs (the facade's push/pull choose the keys) ----------------------------
    def push_now(self, wanted: list[tuple[str, str]]) -> dict[str, int]:
        """Queue (key, digest) pairs and drain the spool now, waiting for a running uploader.
        Private objects stay here (counted in "private")."""
        kept = 0
        for key, digest in wanted:
            if self._private(key, digest):
                kept += 1
            else:
                self.enqueue(key, digest, spawn=False, bounded=False)
        result = self.drain(wait=True)
        result["private"] = result.get("private", 0) + kept
        return result

    def remote_keys(self) -> list[str]:
        """Keys named by verified records, then bare digests, on every listable remote; private
        keys (uploaded by an older pkgcache) and their content are left where they are.
        ``unlisted``: the remotes that could not be listed (a fault, or listing refused)."""
        self.unlisted = 0
        found: list[str] = []
        private: set[str] = set()
        for spec in self.specs:
            if not self.usable(spec):
                continue
            backend = self._backend(spec)
            try:
                names = backend.list("ac")
                if names is None:
                    warn(f"remote {spec.display}: cannot list; pass keys to pull")
                    continue
                for hexname in list(names):
                    data = self._read_small(spec, f"ac/{hexname}")
                    try:
                        key = json.loads(data or b"{}").get("key")
                        if isinstance(key, str) and record_name(key) == f"ac/{hexname}":
                            rec = decode(data or b"", key, spec.trusted_public_keys,
                                         spec.trust == "unsigned", spec.revoked_public_keys)
                            if is_private_key(key):
                                private.add(rec.sha256)
                            elif rec.kind in (sets.VERSION_KIND, sets.HEAD_KIND):
                                continue  # a shared set: read with read_set, not pulled
                            elif not key.startswith(USAGE_PREFIX):  # gc's bookkeeping
                                found.append(key)
                    except (ValueError, AttributeError, RecordError):
                        self._count(spec, rejected_records=1)
                found += [f"sha256:{h}" for h in backend.list("cas") or [] if h not in private]
            except ListRefused as exc:  # reads may still work: no breaker
                self.unlisted += 1
                warn(f"remote {spec.display}: {scrub_secrets(str(exc), self.specs)}")
            except RemoteError as exc:
                self.unlisted += 1
                self._fault(spec, exc)
        return list(dict.fromkeys(found))

    # -- key rotation -----------------------------------------------------------------------
    def resign(self, secret_file: str) -> list[dict[str, Any]]:
        """Re-sign every live record on each rw remote with the key in secret_file: the records
        the store lists, or (a store that cannot list) those of the keys in the local index. A
        record is re-signed only if it verifies with this member's trusted (not revoked) keys;
        its key, digest, size, meta and creation time stay. One row per rw remote
        (``new_key_trusted``: whether this member trusts the new key). KeyRefused (exit 2) for
        an unreadable or revoked key."""
        import io

        try:
            signer = load_secret_key(secret_file)
        except (OSError, RecordError) as exc:
            raise KeyRefused(f"{getattr(exc, 'strerror', None) or exc}") from None
        if any(is_revoked(signer, s.revoked_public_keys) for s in self.specs):
            raise KeyRefused(f"key {signer[0]!r} is in revoked_public_keys")
        new_pub = public_key_of(signer)
        rows = []
        for spec in self._writers():
            row: dict[str, Any] = {"url": spec.display, "resigned": 0, "already": 0,
                                   "unverified": 0, "listed": True,
                                   "new_key_trusted": new_pub in spec.trusted_public_keys}
            rows.append(row)
            backend = self._backend(spec)
            try:
                listed = backend.list("ac")
                if listed is None:
                    row["listed"] = False
                names = list(listed) if listed is not None else \
                    [record_name(e.key)[3:] for e in self.local.index.entries("")]
                for hexname in names:
                    name = f"ac/{hexname}"
                    data = self._read_small(spec, name)
                    try:
                        key = json.loads(data or b"{}").get("key")
                        if not isinstance(key, str) or record_name(key) != name:
                            raise RecordError("not a record")
                        rec = decode(data or b"", key, spec.trusted_public_keys, False,
                                     spec.revoked_public_keys)
                    except (ValueError, AttributeError, RecordError):
                        row["unverified"] += int(data is not None)
                        continue
                    with contextlib.suppress(RecordError):
                        decode(data or b"", key, [new_pub], False)
                        row["already"] += 1
                        continue
                    out = encode(rec, signer)
                    backend.put(name, io.BytesIO(out), len(out), sha256_bytes(out),
                                self._deadline(spec))
                    row["resigned"] += 1
            except (RemoteError, RemoteMissing) as exc:
                row["error"] = scrub_secrets(str(exc), self.specs)
        return rows

    # -- usage lists: what this member took from the fleet, per UTC day (for remote gc) ------
    def _note_use(self, digest: str) -> None:
        """Append digest to today's usage list (a rw member publishes it with the spool)."""
        if not self._writers():
            return
        with contextlib.suppress(OSError):
            d = fs.ensure_private_dir(self.dir / "used")
            fd = os.open(d / time.strftime("%Y-%m-%d", time.gmtime()),
                         os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                         0o600)
            try:
                os.write(fd, f"{digest}\n".encode())
            finally:
                os.close(fd)

    def _publish_usage(self) -> None:
        """Put each day's usage list under ``usage:<member>:<day>`` (uploaded with the spool,
        as a signed record and its content); a past day's list is then forgotten here."""
        import socket
        import tempfile

        try:
            d = self.dir / "used"
            days = sorted(n for n in os.listdir(d) if len(n) == 10 and n[4] == "-")
        except OSError:
            return
        today = time.strftime("%Y-%m-%d", time.gmtime())
        member = socket.gethostname().replace(":", "_") or "member"
        for day in days:
            try:
                text = (d / day).read_text("ascii", "replace")
                digests = sorted({x for x in text.split() if is_digest(x)})
                body = "".join(f"{x}\n" for x in digests).encode()
                key = f"{USAGE_PREFIX}{member}:{day}"
                entry = self._entry(key)
                if digests and (entry is None or entry.digest != sha256_bytes(body)):
                    with tempfile.NamedTemporaryFile(dir=d, prefix=".list-") as tmp:
                        tmp.write(body)
                        tmp.flush()
                        self._put_local(key, tmp.name, "usage")
                if day != today:
                    (d / day).unlink()
            except Exception as exc:  # noqa: BLE001 - a local fault: the list waits for the next run
                warn(f"remote: usage list {day} not published ({exc})")

    def _entry(self, key: str) -> Entry | None:
        """key's entry in the local index (no file check), or None."""
        return self.local.index.lookup(normalize_key(key))

    def _put_local(self, key: str, path: str, kind: str) -> None:
        """Store a file of ours under key in the local store and queue it (as a put would)."""
        key = normalize_key(key)
        self.local.open()
        self.local.sweep_temps()
        tmp = self.local.new_temp()
        try:
            digest, size, _ = self.local.ingest(path, tmp, False, 0o444)
            self.local.publish(tmp, key, digest, size, kind, None)
        finally:
            fs.unlink_quiet(tmp)
        self.local.maybe_evict()
        self.enqueue(key, digest)

    # -- store size -------------------------------------------------------------------------
    def gc(self, grace: float, max_size: int | None, dry_run: bool,
           retention: float | None = None) -> list[dict[str, Any]]:
        """``remote gc`` on every rw remote (cache_core/storage/remote/gc.py): one report each
        (``error`` on a store fault); raises gc.CannotList (a CacheError, exit 2) before
        touching anything if one of them cannot list, gc.GcBusy (exit 75) if another member's
        gc is running on one."""
        from . import gc

        writers = self._writers()
        for spec in writers:
            if self._backend(spec).entries("cas") is None:
                raise gc.CannotList(f"{spec.display} cannot list its objects (a plain "
                                    "HTTP/Bazel store): bound it with the server's own limit")
        rows = []
        for spec in writers:
            try:
                rows.append(gc.collect(self._backend(spec), functools.partial(self._read_small, spec),
                                       spec, grace, max_size, dry_run,
                                       gc.DEFAULT_RETENTION if retention is None else retention))
            except (RemoteError, RemoteMissing) as exc:
                rows.append({"url": spec.display, "error": scrub_secrets(str(exc), self.specs)})
        return rows

    def store_status(self, members: bool = False) -> list[dict[str, Any]]:
        """Size, object and record counts of every remote that can list (others: listed False);
        a remote that fails gets an "error" row. members: also the members whose usage lists
        fall in the default retention window (reads every record: one GET each)."""
        from . import gc

        rows = []
        for spec in self.specs:
            try:
                row = gc.store_counts(self._backend(spec), spec)
                if members and row["listed"]:
                    row["members"] = gc.collect(self._backend(spec),
                                                functools.partial(self._read_small, spec), spec,
                                                dry_run=True)["members"]
                rows.append(row)
            except RemoteError as exc:
                rows.append({"url": spec.display, "listed": True,
                             "error": scrub_secrets(str(exc), self.specs)})
        return rows

    # -- reporting --------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """Per-remote counters and breaker, spool size: nothing secret in it."""
        data = self.state.read()
        now = time.time()
        remotes = []
        for spec in self.specs:
            row = data.get(spec.ident) or {}
            open_until = float(row.get("open_until", 0) or 0)
            item: dict[str, Any] = {"url": spec.display, "mode": spec.mode,
                                    "degraded": open_until > now,
                                    "retry_in_s": round(max(0.0, open_until - now), 1)}
            for k in COUNTERS:
                item[k] = int(row.get(k, 0))
            if row.get("last_error"):
                item["last_error"] = scrub_secrets(str(row["last_error"]), self.specs)
            if spec.trust_warning():
                item["config_warning"] = spec.trust_warning()
            remotes.append(item)
        return {"remotes": remotes, "spool": self.spool_count(),
                "uploader_running": self.uploader_running()}

    def zero(self) -> None:
        """Reset the remote counters (``pkgcache stats --zero``); the breaker stays."""
        self.state.zero()

    def stats(self) -> dict[str, Any]:
        """The totals for ``pkgcache stats`` plus the per-remote rows."""
        st = self.status()
        totals = {k: sum(r[k] for r in st["remotes"]) for k in COUNTERS}
        totals["degraded"] = any(r["degraded"] for r in st["remotes"])
        totals["spool"] = st["spool"]
        totals["remotes"] = st["remotes"]
        return totals


class KeyRefused(CacheError):
    """A signing key that cannot be used (unreadable, revoked): a usage error."""

    exit_code = EXIT_USAGE


class _Mismatch(Exception):
    pass


class _LocalFull(Exception):
    """A fill the cache's disk cannot take (not the remote's fault)."""
