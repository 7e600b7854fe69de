"""``pkgcache remote gc``: bound a listable store's size without losing what the fleet needs.

Kept: every ``cas/`` object a record this member can verify points to (of a shared set, sets.py:
the head and the SET_KEEP versions below it; older versions are deleted like dangling records),
every object a member took from the store within the retention window (its signed usage list,
``usage:<member>:<day>``, published with its spool), and everything younger
than the grace period (by the store's mtime / Last-Modified, so an upload racing the gc
survives). Deleted, in this order: records older than the grace period whose object is gone,
then unreferenced objects, oldest first, until the store fits ``max_size`` (no limit: all of
them). Records are re-listed just before objects are deleted, so one written during the scan
still protects its object; and objects are first moved to ``trash/`` (a backend with
``rename``), the records listed once more and every object one of them names put back before
trash/ is purged, so an uploader that skipped an object (a HEAD showed it) and wrote its record
meanwhile either has it put back or, HEADing again after its record, uploads it again. A fault
before that last listing puts every condemned object back; what a killed gc left in trash/ is
put back by the next gc before it lists anything. Only one gc works on a store at a time: each
takes the store's gc lease (``lease/gc``, created only if absent, its expiry renewed while it
runs); a second one stops at once (GcBusy, exit 75) instead of putting back what the first just
condemned. A lease past its expiry is a killed gc's: the next gc breaks it and puts back trash/.
A store that cannot create-if-absent (an S3-compatible store answering 501) runs without the
lease (one warning): run gc from one member only there.
Because no object a verified record points to is ever deleted, a gc
killed at any point leaves no trusted record dangling; and a reader that meets a missing object
(a record by a key this member does not trust, a store emptied by hand) falls back as on any miss.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ...errors import EXIT_BUSY, EXIT_USAGE, CacheError, RecordError, warn
from ...keys import is_digest
from .base import RemoteError, RemoteMissing, record_name
from .records import Record, decode
from .sets import HEAD_KIND, KEEP, VERSION_KIND, split_version

if TYPE_CHECKING:
    from .base import Backend
    from .config import RemoteSpec

Reader = Callable[[str], "bytes | None"]

DEFAULT_GRACE = 86400.0  # one day
DEFAULT_RETENTION = 7 * 86400.0
USAGE = "usage:"  # usage:<member>:<YYYY-MM-DD> -> the digests a member took that day (USAGE_PREFIX)
MAX_USAGE_BYTES = 64 * 1024 * 1024
SET_KEEP = KEEP  # versions of a shared set kept below its head (and below its hint)


def superseded(live: dict[str, Record]) -> list[str]:
    """Hex names of shared-set versions more than SET_KEEP below both the newest version and
    the set's hint (a reader starts at the hint and walks up: all of that stays)."""
    versions: dict[str, dict[int, str]] = {}
    hints: dict[str, int] = {}
    for hexname, rec in live.items():
        if rec.kind == VERSION_KIND and (kv := split_version(rec.key)) is not None:
            versions.setdefault(kv[0], {})[kv[1]] = hexname
        elif rec.kind == HEAD_KIND and isinstance((rec.meta or {}).get("head"), int):
            hints[rec.key] = int((rec.meta or {})["head"])
    out = []
    for key, chain in versions.items():
        floor = min(max(chain), hints.get(key, max(chain))) - SET_KEEP
        out += [h for n, h in chain.items() if n < floor]
    return out


def _used(backend: Backend, spec: RemoteSpec, live: dict[str, Record], retention: float,
          now: float) -> tuple[set[str], set[str], list[str]]:
    """(digests used within the retention window, members seen, hex names of usage records past
    it). A list that cannot be read protects nothing more (its object is kept by its record)."""
    used: set[str] = set()
    members: set[str] = set()
    expired: list[str] = []
    first_day = time.strftime("%Y-%m-%d", time.gmtime(now - retention))
    for hexname, rec in live.items():
        if not rec.key.startswith(USAGE):
            continue
        member, _, day = rec.key[len(USAGE):].rpartition(":")
        if day < first_day:
            expired.append(hexname)
            continue
        members.add(member)
        data = bytearray()
        try:
            for chunk in backend.get(f"cas/{rec.sha256}", time.monotonic() + spec.object_budget):
                data += chunk
                if len(data) > MAX_USAGE_BYTES:
                    break
        except RemoteMissing:
            continue
        if hashlib.sha256(data).hexdigest() == rec.sha256:
            used.update(x for x in data.decode("ascii", "replace").split() if is_digest(x))
    return used, members, expired


class CannotList(CacheError):
    """The store cannot list its objects (a Bazel HTTP / plain WebDAV store): a usage error."""

    exit_code = EXIT_USAGE


class GcBusy(CacheError):
    """Another member's gc holds the store's gc lease: this one touched nothing (exit 75)."""

    exit_code = EXIT_BUSY


GC_LEASE = "lease/gc"
GC_LEASE_SECONDS = 300.0  # a killed gc blocks the next one this long at most
GC_RENEW_SECONDS = 60.0


class GcLease:
    """The store-wide gc lease: created only if absent (``create_lease``), its body naming its
    holder, a random token and its expiry, which a thread renews every ``every`` seconds while
    the gc runs. ``lost`` says why it is no longer ours (another gc broke it after it expired)."""

    def __init__(self, backend: Backend, spec: RemoteSpec, seconds: float = GC_LEASE_SECONDS,
                 every: float = GC_RENEW_SECONDS) -> None:
        self.backend, self.spec, self.seconds, self.every = backend, spec, seconds, every
        self.token = secrets.token_hex(16)
        self.lost: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _deadline(self) -> float:
        return time.monotonic() + self.spec.timeout + 5

    def _body(self) -> bytes:
        return json.dumps({"expires": time.time() + self.seconds, "token": self.token,
                           "holder": f"{socket.gethostname()}:{os.getpid()}"}).encode()

    def _read(self) -> tuple[bytes | None, dict[str, Any]]:
        raw = self.backend.read_lease(GC_LEASE, self._deadline())
        try:
            body = json.loads(raw) if raw is not None else {}
        except ValueError:
            body = {}
        return raw, body if isinstance(body, dict) else {}

    def take(self) -> bool:
        """True: held (renewed from now on); False: the store cannot create-if-absent (no
        lease). GcBusy while another gc's lease is live; RemoteError on a store fault."""
        create = getattr(self.backend, "create_lease", None)  # a backend without: None
        for _ in range(3):
            made = None if create is None else create(GC_LEASE, self._body(), self._deadline())
            if made is None:
                return False
            if made:
                self.check()  # broken by another gc in the same instant: GcBusy
                self._thread = threading.Thread(target=self._renew, daemon=True,
                                                name="pkgcache-gc-lease")
                self._thread.start()
                return True
            raw, body = self._read()
            expires = body.get("expires")
            if raw is not None and not isinstance(expires, (int, float)):
                expires = time.time() + 1  # being written, or not ours to judge: live
            if raw is not None and float(expires) >= time.time():  # type: ignore[arg-type]
                until = time.strftime("%H:%M:%S UTC", time.gmtime(float(expires)))  # type: ignore[arg-type]
                raise GcBusy(f"{self.spec.display}: another remote gc is running "
                             f"({str(body.get('holder', 'unknown'))[:80]}, lease until {until}); "
                             "this one changed nothing")
            if raw is not None and self._read()[0] == raw:  # expired: a killed gc's; break it
                self.backend.drop_lease(GC_LEASE, self._deadline())
        raise GcBusy(f"{self.spec.display}: another remote gc took the gc lease first; "
                     "this one changed nothing")

    def check(self) -> None:
        """GcBusy unless the lease is still ours (read now, before a step that must be alone)."""
        if self.lost is None:
            _, body = self._read()
            if body.get("token") != self.token:
                self.lost = "another gc broke this gc's lease"
        if self.lost is not None:
            raise GcBusy(f"{self.spec.display}: {self.lost}; stopped")

    def _renew(self) -> None:
        while not self._stop.wait(self.every):
            try:
                _, body = self._read()
                if body.get("token") != self.token:
                    self.lost = "another gc broke this gc's lease"
                    return
                data = self._body()
                self.backend.put(GC_LEASE, io.BytesIO(data), len(data),
                                 hashlib.sha256(data).hexdigest(), self._deadline())
            except (RemoteError, RemoteMissing, OSError) as exc:
                if self.lost is None:
                    self.lost = f"cannot renew the gc lease ({exc})"
                return

    def release(self) -> None:
        """Stop renewing; delete the lease if it is still ours (faults: it expires)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with contextlib.suppress(RemoteError, RemoteMissing, OSError):
            if self._read()[1].get("token") == self.token:
                self.backend.drop_lease(GC_LEASE, self._deadline())


def _live(read: Reader, spec: RemoteSpec, ac: dict[str, tuple[int, float]],
          ) -> tuple[dict[str, Record], int]:
    """{record hex: record} of the records this member verifies; and how many it could not."""
    live: dict[str, Record] = {}
    unverified = 0
    for hexname in ac:
        data = read(f"ac/{hexname}")
        if data is None:
            continue
        try:
            key = json.loads(data).get("key")
            if not isinstance(key, str) or record_name(key) != f"ac/{hexname}":
                raise RecordError("not a record")
            rec = decode(data, key, spec.trusted_public_keys, spec.trust == "unsigned",
                         spec.revoked_public_keys)
            live[hexname] = rec
        except (ValueError, AttributeError, RecordError):
            unverified += 1
    return live, unverified


def collect(backend: Backend, read: Reader, spec: RemoteSpec, grace: float = DEFAULT_GRACE,
            max_size: int | None = None, dry_run: bool = False,
            retention: float = DEFAULT_RETENTION) -> dict[str, Any]:
    """Garbage-collect one store (read: a record's bytes by name, or None); the report (what
    was, or would be, deleted and kept). A real run holds the store's gc lease (GcBusy if
    another gc holds it)."""
    if backend.entries("cas") is None:
        raise CannotList(f"{spec.display} cannot list its objects (a plain HTTP/Bazel store): "
                         "bound it with the server's own size limit")
    if dry_run:
        return _collect(backend, read, spec, grace, max_size, dry_run, retention, None)
    lease = GcLease(backend, spec)
    if not lease.take():
        warn(f"remote gc: {spec.display} cannot create-if-absent: no gc lease, run remote gc "
             "from one member only")
        return _collect(backend, read, spec, grace, max_size, dry_run, retention, None)
    try:
        return _collect(backend, read, spec, grace, max_size, dry_run, retention, lease)
    finally:
        lease.release()


def _collect(backend: Backend, read: Reader, spec: RemoteSpec, grace: float,
             max_size: int | None, dry_run: bool, retention: float,
             lease: GcLease | None) -> dict[str, Any]:
    cas_it = backend.entries("cas") or iter(())
    move = getattr(backend, "rename", None)
    trash = list(backend.entries("trash") or ()) if move is not None else []
    if move is not None and trash and not dry_run:  # a killed gc's: back before any decision
        if lease is not None:
            lease.check()  # only when no other live gc may have condemned them
        _put_back(backend, move, spec, [h for h, _, _ in trash])
        cas_it = backend.entries("cas") or iter(())
    started = time.time()
    cas = {h: (size, mtime) for h, size, mtime in cas_it}
    if dry_run:  # decided as if trash/ were back (a real run puts it back first)
        cas |= {h: (size, mtime) for h, size, mtime in trash if h not in cas}
    ac = {h: (size, mtime) for h, size, mtime in backend.entries("ac") or ()}
    live, unverified = _live(read, spec, ac)
    old = started - grace
    used, members, expired = _used(backend, spec, live, retention, started)
    dangling = [h for h, r in live.items() if r.sha256 not in cas and ac[h][1] < old]
    dangling += [h for h in expired if h not in dangling and ac[h][1] < old]
    dangling += [h for h in superseded(live) if h not in dangling and ac[h][1] < old]
    total = sum(s for s, _ in cas.values()) + sum(s for s, _ in ac.values())
    report: dict[str, Any] = {
        "url": spec.display, "objects": len(cas), "records": len(ac), "bytes": total,
        "unverified_records": unverified, "dry_run": dry_run, "deleted_records": 0,
        "deleted_objects": 0, "deleted_bytes": 0, "deleted": [], "members": sorted(members)}

    def gone(name: str, size: int, delete: bool = True) -> None:
        if delete and not dry_run:
            try:
                backend.delete(name, time.monotonic() + spec.object_budget)
            except RemoteMissing:
                pass
        kind = "records" if name.startswith("ac/") else "objects"
        report[f"deleted_{kind}"] += 1
        report["deleted_bytes"] += size
        report["deleted"].append(name)

    for h in dangling:  # records first: their objects are already gone
        gone(f"ac/{h}", ac[h][0])
        total -= ac[h][0]
    # re-list the records: one written (or rewritten) since the scan protects its object too
    fresh = {h: (s, m) for h, s, m in (backend.entries("ac") or ())
             if h not in ac or m != ac[h][1] or s != ac[h][0]}
    more, _ = _live(read, spec, fresh)
    gone_records = set(dangling)
    keep = ({r.sha256 for h, r in live.items() if h not in gone_records}
            | {r.sha256 for r in more.values()} | used)
    candidates = sorted((m, h, s) for h, (s, m) in cas.items() if h not in keep and m < old)
    if dry_run or move is None:  # a backend that cannot rename: deleted at once
        for _, h, size in candidates:
            if max_size is not None and total <= max_size:
                break
            gone(f"cas/{h}", size)
            total -= size
    else:
        total = _condemn_then_purge(backend, move, read, spec, candidates, max_size, total,
                                    {**ac, **fresh}, keep, gone, lease)
    report["bytes_after"] = total
    report["over_limit"] = max_size is not None and total > max_size
    return report


def _put_back(backend: Backend, move: Callable[[str, str, float], None], spec: RemoteSpec,
              names: list[str]) -> None:
    """Move trash/<h> back to cas/<h> for every name; the first store fault (a timeout
    included) stops it and is raised: on a hung store one timeout, not one per object; what is
    left is put back first by the next gc."""
    for h in names:
        with contextlib.suppress(RemoteMissing):
            move(f"trash/{h}", f"cas/{h}", time.monotonic() + spec.object_budget)


def _condemn_then_purge(backend: Backend, move: Callable[[str, str, float], None], read: Reader,
                        spec: RemoteSpec, candidates: list[tuple[float, str, int]],
                        max_size: int | None, total: int, seen: dict[str, tuple[int, float]],
                        keep: set[str], gone: Callable[..., None],
                        lease: GcLease | None = None) -> int:
    """Move the objects to delete into ``trash/``, list the records once more, put back every
    object a record names, purge the rest; the new total. A fault (or an interrupt) before the
    records are listed puts every condemned object back.

    With the uploader's HEAD after each record (it puts back an object it finds gone), no
    record ends up naming a deleted object: a record listed here has its object put back; one
    written later finds the object gone from cas/ and uploads it again."""
    condemned: dict[str, int] = {}
    named: set[str] | None = None
    try:
        for _, h, size in candidates:
            if max_size is not None and total <= max_size:
                break
            try:
                move(f"cas/{h}", f"trash/{h}", time.monotonic() + spec.object_budget)
            except RemoteMissing:
                continue
            condemned[h] = size
            total -= size
        if condemned:
            late = {h: (s, m) for h, s, m in (backend.entries("ac") or ())
                    if h not in seen or m != seen[h][1] or s != seen[h][0]}
            now_named = keep | {r.sha256 for r in _live(read, spec, late)[0].values()}
            if lease is not None:
                lease.check()  # still alone? else (GcBusy) everything is put back
            named = now_named
    finally:
        back = [h for h in condemned if named is None or h in named]
        try:
            _put_back(backend, move, spec, back)
        except RemoteError:
            if named is not None:
                raise
            # else the fault that stopped the gc is the one raised; the next gc puts back the rest
    total += sum(condemned[h] for h in back)
    for h, size in condemned.items():
        if h in back:
            continue
        if lease is not None and lease.lost:  # the rest stays in trash/: put back next time
            lease.check()
        with contextlib.suppress(RemoteMissing):
            backend.delete(f"trash/{h}", time.monotonic() + spec.object_budget)
        gone(f"cas/{h}", size, delete=False)
    return total


def store_counts(backend: Backend, spec: RemoteSpec) -> dict[str, Any]:
    """The store's size and object/record counts (``remote status --store``); listed: False for
    a store that cannot list."""
    cas_it = backend.entries("cas")
    if cas_it is None:
        return {"url": spec.display, "listed": False}
    cas = list(cas_it)
    ac = list(backend.entries("ac") or ())
    return {"url": spec.display, "listed": True, "objects": len(cas), "records": len(ac),
            "bytes": sum(s for _, s, _ in cas) + sum(s for _, s, _ in ac),
            "oldest": min((m for _, _, m in cas), default=None)}
