"""Leases on a shared store: when members miss the same object at once, one downloads it from
the origin and the others wait for it to appear in the store (no server of our own).

A lease is an object ``lease/<sha256>`` beside the content, created only if absent, by a small
method of each backend: ``O_CREAT|O_EXCL`` in a ``file://`` store, ``COPY`` with
``Overwrite: F`` on WebDAV (nginx ignores ``If-None-Match`` on PUT), ``If-None-Match: *`` PUT on
S3. Its body names its expiry. The member that takes it first looks for the content (one that
missed it just after the last holder released takes it from the store); else it downloads,
publishes ``cas/<sha256>`` at once (not through the background uploader) and deletes the
lease. The others poll the content with backoff and download themselves when the lease expires
or disappears without content (the holder failed or was killed). A store that cannot
create-if-absent means no coalescing, never an error; so does a store fault while taking or
reading a lease (counted as any remote fault: one warning, the remote off for the run), never
"busy" or a longer wait. On one machine, processes coalesce on a local lock first (only one of
them takes the lease); a fault of that lock is no coalescing too.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from ...errors import LockTimeout, RemoteError, RemoteMissing
from .base import object_name

if TYPE_CHECKING:
    from . import RemoteTier
    from .config import RemoteSpec

LEASE_SECONDS = 120.0  # how long the others wait for a holder at most
POLL_FIRST, POLL_MAX = 0.1, 2.0
LOCAL_WAIT = LEASE_SECONDS + 10.0


class Lease:
    """What a caller learns: ``path`` is set when another member delivered the object (serve
    it, download nothing); ``held`` when this process downloads for the fleet; ``busy`` (only
    with ``wait=0``) when another process or member holds a live lease (ask again later)."""

    def __init__(self) -> None:
        self.path: str | None = None
        self.held = False
        self.busy = False
        self.waited = 0.0


def lease_name(digest: str) -> str:
    """``lease/<sha256>`` (the digest checked like a content name)."""
    return "lease/" + object_name("cas", digest)[4:]


@contextlib.contextmanager
def download_lease(t: RemoteTier | None, digest: str, get: Callable[[], str | None],
                   have: Callable[[], bool], *, seconds: float = LEASE_SECONDS,
                   wait: float | None = None, present: bool = True) -> Iterator[Lease]:
    """Coalesce the download of the object with this SHA-256 across local processes and the
    fleet's members (t: the cache's remote tier; get: the object's verified local path after
    someone delivered it; have: whether the cache holds it now). Inside the block, with
    ``lease.path`` None, the caller downloads and stores the object in the cache; on leaving, a
    held lease publishes it and is released. wait: give up waiting for another member sooner
    than the lease's expiry; 0: never wait (``lease.busy`` says whether to ask again later, for
    a process that must keep serving others meanwhile, such as apt's method). present=False:
    the digest names no object in the store (a pip page's key): ``cas/`` is never asked for."""
    lease = Lease()
    digest = digest.lower()
    if t is None:
        yield lease
        return
    with _local(t, digest, LOCAL_WAIT if wait is None else wait) as locked:
        if not locked:  # another local process held it too long (or a fault): no coalescing
            if locked is False and wait is not None and wait <= 0:  # the other may be done
                lease.path = get() if have() else None
                lease.busy = lease.path is None
            yield lease
            return
        if have():  # another local process fetched it meanwhile
            lease.path = get()
            if lease.path is not None:
                yield lease
                return
        spec = _spec(t)
        got = _take(t, spec, digest, seconds) if spec is not None else None
        if got is None or spec is None:  # no store that can create-if-absent: no coalescing
            yield lease
            return
        if got:
            if present and _present(t, spec, digest):  # delivered before this lease (its holder is done)
                lease.path = get()
                if lease.path is not None:
                    _release(t, spec, digest, publish=False)
                    yield lease
                    return
            lease.held = True
            try:
                yield lease
            finally:
                _release(t, spec, digest)
            return
        started = time.monotonic()
        if wait is not None and wait <= 0:
            try:
                expires = _expires(t, spec, digest)
            except RemoteError as exc:  # a store fault: no coalescing (download now)
                t.trip(spec, exc)
            else:
                if expires == 0.0:  # released just now: delivered, or the holder failed
                    lease.path = get()
                else:  # unreadable while being written counts as live
                    lease.busy = expires is None or expires >= time.time()
        elif _wait(t, spec, digest, seconds if wait is None else min(wait, seconds), present):
            lease.path = get()
        lease.waited = time.monotonic() - started
        yield lease


@contextlib.contextmanager
def _local(t: RemoteTier, digest: str, timeout: float) -> Iterator[bool | None]:
    """One process per digest on this machine: True while held, False when another process
    held it past the timeout, None on a lock fault (either only costs a second download)."""
    try:
        cm = t.local.lock(f"lease:{digest}", timeout=timeout)
        cm.__enter__()
    except LockTimeout:
        yield False
        return
    except Exception:  # noqa: BLE001 - fail open
        yield None
        return
    try:
        yield True
    finally:
        cm.__exit__(None, None, None)


def _spec(t: RemoteTier) -> RemoteSpec | None:
    """The first writable, usable remote whose backend can create-if-absent."""
    for spec in t.specs:
        if spec.mode == "rw" and t.usable(spec) and \
                hasattr(t.backend(spec), "create_lease"):
            return spec
    return None


def _body(seconds: float) -> bytes:
    return json.dumps({"expires": time.time() + seconds}).encode()


def _take(t: RemoteTier, spec: RemoteSpec, digest: str, seconds: float) -> bool | None:
    """True: created (this process holds it); False: someone holds it; None: cannot say."""
    try:
        return t.backend(spec).create_lease(lease_name(digest), _body(seconds),
                                            time.monotonic() + spec.timeout + 5)
    except RemoteError as exc:
        t.trip(spec, exc)
        return None
    except (RemoteMissing, OSError, ValueError):
        return None


def _expires(t: RemoteTier, spec: RemoteSpec, digest: str) -> float | None:
    """The lease's expiry (epoch seconds), 0 if it is gone, None if unreadable (its body);
    RemoteError on a store fault (the caller stops coalescing)."""
    try:
        data = t.backend(spec).read_lease(lease_name(digest), time.monotonic() + spec.timeout + 5)
    except OSError as exc:
        raise RemoteError(f"reading a lease: {exc.strerror or exc}") from None
    if data is None:
        return 0.0
    try:
        value = json.loads(data)["expires"]
        return float(value)
    except (ValueError, KeyError, TypeError):
        return None  # being written (file store): not yet readable


def _wait(t: RemoteTier, spec: RemoteSpec, digest: str, seconds: float,
          present: bool = True) -> bool:
    """Poll the store until the content appears (True), or the lease expires or disappears
    without it (False: the holder failed; the caller downloads itself); present=False: until
    the lease ends (always False: there is no content to look for)."""
    name = object_name("cas", digest)
    end = time.monotonic() + seconds
    delay = POLL_FIRST
    while time.monotonic() < end:
        try:
            if present and \
                    t.backend(spec).head(name, time.monotonic() + spec.timeout + 5) is not None:
                return True
            expires = _expires(t, spec, digest)
        except RemoteError as exc:  # a store fault: stop waiting, download
            t.trip(spec, exc)
            return False
        except OSError:
            return False
        if expires is not None and expires < time.time():
            # gone (released: the content is published first, so look once more) or expired
            if not present:
                return False
            with contextlib.suppress(RemoteError, OSError):
                return t.backend(spec).head(name, time.monotonic() + spec.timeout + 5) is not None
            return False
        time.sleep(min(delay, max(0.0, end - time.monotonic())))
        delay = min(delay * 1.6, POLL_MAX)
    return False


def _present(t: RemoteTier, spec: RemoteSpec, digest: str) -> bool:
    """Is the object in the store already (a member that came after its holder released)?"""
    try:
        name = object_name("cas", digest)
        return t.backend(spec).head(name, time.monotonic() + spec.timeout + 5) is not None
    except RemoteError as exc:
        t.trip(spec, exc)
        return False
    except OSError:
        return False


def _release(t: RemoteTier, spec: RemoteSpec, digest: str, publish: bool = True) -> None:
    """Publish the object now (if the caller stored it), then delete the lease."""
    with contextlib.suppress(Exception):
        if publish and t.holds(digest):
            t.upload_content(spec, digest)
    with contextlib.suppress(Exception):
        t.backend(spec).drop_lease(lease_name(digest), time.monotonic() + spec.timeout + 5)

