"""Generic download cache behind `pkgcache fetch` (a drop-in for `curl -fsSL URL -o DEST`).

The cached copy of a URL is the cache key ``URL``; its metadata keeps the ETag / Last-Modified of
the response so later fetches revalidate with a conditional request (304 = serve the cached copy).
A download in progress lives in ``<cache>/fetch-v1/<hash(url)>.part`` (plus a ``.json`` with the
validators it was started with) so a later run can resume it with ``Range`` + ``If-Range``.
Nothing enters the cache before it is complete and, when a SHA-256 is pinned, verified.
HTTP (TLS, proxies, credentials, retries) goes through hooks.common.http.

Files: a download without a usable cache goes to a temp file created with O_EXCL|O_NOFOLLOW
directly in DEST's directory, hashed and chmod'ed through its descriptor and renamed last; no
path in a directory someone else may write is ever opened, stat'ed or chmod'ed by name. DEST's
directory itself is opened once (_held_dir): a path swapped after that (a symlink put in place
of a directory whose parent a user can write) does not move the write elsewhere.
Secrets: a URL with credentials (user:password@, a token-like query parameter) is cached under
``fetch-private:<sha256 of the URL>`` with an owner-only object; messages show it redacted.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import re
import secrets
import sys
import time
import urllib.error
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from cache_core import (
    EXIT_MISS,
    EXIT_NETWORK,
    EXIT_USAGE,
    PRIVATE_KEY_PREFIX,
    CacheError,
    DigestMismatch,
    atomic_write,
    copy_fd,
    memo_path,
    open_regular,
    read_memo,
    replace_checked,
    sha256_fd,
    warn,
    write_memo,
)
from hooks.cli.output import human
from hooks.common import trusted_keys
from hooks.common.errors import FetchError
from hooks.common.http import (
    CHUNK,
    DEFAULT_RETRIES,
    DEFAULT_RETRY_DELAY,
    DEFAULT_TIMEOUT,
    Transient,
    backoff,
    check_url,
    classify,
    content_range,
    has_secret,
    opener,
    reason,
    redact,
    request,
)

if TYPE_CHECKING:
    from cache_core import PackageCache

PARTIAL_BUCKET = "fetch-v1"
LOCK_TIMEOUT = 3600.0          # waiting longer than this for another fetch of the URL: go alone
PARTIAL_MAX_AGE = 7 * 86400    # abandoned partial downloads are swept after a week
_HEX64 = re.compile(r"\A[0-9a-f]{64}\Z")


@dataclass
class FetchResult:
    """What fetch() did: ``source`` is cache | revalidated | downloaded | stale."""

    dest: str
    sha256: str
    size: int
    source: str


PRIVATE_PREFIX = PRIVATE_KEY_PREFIX


def cache_key(url: str) -> str:
    """The key a URL is cached under: itself, or a hash when it carries credentials (so the
    index, `ls` and `stats` never hold a secret)."""
    if has_secret(url):
        return PRIVATE_PREFIX + hashlib.sha256(url.encode("utf-8", "surrogatepass")).hexdigest()
    return url


def check_sha256(value: str | None) -> str | None:
    """Lower-case 64-hex digest (an optional ``sha256:`` prefix is accepted) or None."""
    if value is None:
        return None
    v = value.strip().lower()
    v = v[7:] if v.startswith("sha256:") else v
    if not _HEX64.match(v):
        raise FetchError(f"--sha256 needs 64 hex digits, got {value!r}", EXIT_USAGE)
    return v


def url_hash(url: str) -> str:
    """Stable short name for per-URL files and locks."""
    return hashlib.sha256(url.encode("utf-8", "surrogatepass")).hexdigest()[:40]


def trusted_digest(key: str, keys: frozenset[str] = frozenset()) -> str | None:
    """The digest this machine itself downloaded for key, or received with a record signed by
    one of keys (a memo in the private local state dir, never in the cache): an unpinned cached
    copy is served only if it has these bytes, so someone who can edit a shared cache cannot
    swap what a URL gives."""
    data = read_memo(memo_path(f"{url_hash(key)}.json", "fetch"), 4096)
    digest, by = data.get("sha256"), data.get("by")
    if by is not None and by not in keys:  # vouched by a fleet key no longer trusted
        return None
    return digest if isinstance(digest, str) and _HEX64.match(digest) else None


def remember_digest(key: str, digest: str, by: str | None = None) -> None:
    """Record what key gave when this machine downloaded it, or (by) when it came with a
    record signed by that fleet key (best effort)."""
    write_memo(memo_path(f"{url_hash(key)}.json", "fetch"),
               {"sha256": digest, **({"by": by} if by else {})})


def _usable(cache: PackageCache | None) -> bool:
    return cache is not None and cache.enabled


class _Progress:
    """A one-line progress bar on stderr, drawn only when stderr is a terminal."""

    def __init__(self, enabled: bool, name: str, total: int | None, start: int) -> None:
        self.enabled = enabled
        self.name = name[-40:]
        self.total = total
        self.start_bytes = start
        self.t0 = time.monotonic()
        self.last = 0.0
        self.drawn = False

    def update(self, done: int, final: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not final and now - self.last < 0.1:
            return
        self.last = now
        rate = (done - self.start_bytes) / max(now - self.t0, 1e-6)
        if self.total:
            pct = min(100, done * 100 // self.total)
            bar = "#" * (pct // 5)
            text = f"{self.name} [{bar:<20}] {pct:3d}% {human(done)}/{human(self.total)}"
        else:
            text = f"{self.name} {human(done)}"
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.write(f"\r{text} {human(int(rate))}/s\033[K")
            sys.stderr.flush()
            self.drawn = True

    def close(self) -> None:
        if self.drawn:
            with contextlib.suppress(OSError, ValueError):
                sys.stderr.write("\r\033[K")
                sys.stderr.flush()


# -- the partial download ----------------------------------------------------------------------
class _Partial:
    """The bytes received so far plus the validators of the response they came from."""

    def __init__(self, data: Path, shared: bool) -> None:
        self.data = data
        self.info = data.with_suffix(".json")
        self.shared = shared    # lives in the cache bucket (resumable by a later run)
        self.fd: int | None = None  # private: our O_EXCL temp in DEST's directory

    def load(self) -> tuple[int, dict[str, Any]]:
        """(bytes kept, validators); 0 when nothing usable is there."""
        if not self.shared:
            return 0, {}        # a private temp is never resumed
        try:
            st = os.lstat(self.data)
            info = json.loads(self.info.read_text())
        except (OSError, ValueError):
            self.discard()
            return 0, {}
        if not isinstance(info, dict) or not (info.get("etag") or info.get("last_modified")):
            self.discard()
            return 0, {}
        total = info.get("total")
        if not st.st_size or (isinstance(total, int) and st.st_size > total):
            self.discard()
            return 0, {}
        return st.st_size, info

    def start(self, info: dict[str, Any], append: bool) -> BinaryIO:
        """Open the data file for writing (truncating unless append) after saving info."""
        if not self.shared:
            if self.fd is None:   # created once, exclusively, never re-opened by name
                self.fd = os.open(self.data, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                                  | os.O_CLOEXEC, 0o600)
            os.ftruncate(self.fd, 0)
            os.lseek(self.fd, 0, os.SEEK_SET)
            return os.fdopen(os.dup(self.fd), "wb", buffering=0)
        if not append:
            self.discard()
            atomic_write(self.info, json.dumps(info), 0o600)
        fd = os.open(self.data, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
                     | (os.O_APPEND if append else os.O_TRUNC), 0o600)
        return os.fdopen(fd, "ab" if append else "wb", buffering=0)

    def open_done(self) -> int:
        """A descriptor on the complete download (private: our own; shared: opened without
        following symlinks or blocking, and checked to be a regular file)."""
        if self.fd is not None:
            return os.dup(self.fd)
        return open_regular(self.data)[0]

    def discard(self) -> None:
        if not self.shared:
            if self.fd is not None:
                with contextlib.suppress(OSError):
                    if os.lstat(self.data).st_ino == os.fstat(self.fd).st_ino:
                        os.unlink(self.data)   # only our own temp, never a swapped-in entry
                os.close(self.fd)
                self.fd = None
            return
        for p in (self.data, self.info):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(p)


def _sweep_partials(bucket: Path) -> None:
    """Forget partial downloads nobody resumed for a week."""
    cutoff = time.time() - PARTIAL_MAX_AGE
    with contextlib.suppress(OSError), os.scandir(bucket) as it:
        for entry in it:
            with contextlib.suppress(OSError):
                if entry.is_file(follow_symlinks=False) and entry.stat(
                        follow_symlinks=False).st_mtime < cutoff:
                    os.unlink(entry.path)


# -- the public entry point --------------------------------------------------------------------
def fetch(cache: PackageCache | None, url: str, dest: str | os.PathLike[str], sha256: str | None = None, *,
          offline: bool = False, refresh: bool = False, retries: int = DEFAULT_RETRIES,
          retry_delay: float = DEFAULT_RETRY_DELAY, timeout: float = DEFAULT_TIMEOUT,
          progress: bool | None = None) -> FetchResult:
    """Put a verified copy of url at dest (atomically), through the cache; raise FetchError.

    sha256 pinned and cached: no network at all. Otherwise revalidate (ETag/Last-Modified → 304)
    unless offline; an unreachable server or offline mode serves the cached copy with a warning.
    refresh: ignore the cached copy and download again (still stored in the cache).
    """
    url = check_url(url)
    key = cache_key(url)
    sha256 = check_sha256(sha256)
    dest = os.path.abspath(os.fspath(dest))
    if os.path.isdir(dest):
        raise FetchError(f"{dest} is a directory", EXIT_USAGE)
    if not os.path.isdir(os.path.dirname(dest)):
        raise FetchError(f"{os.path.dirname(dest)}: no such directory", EXIT_USAGE)
    with _held_dir(dest) as at:
        res = _fetch(cache, url, key, at, dest, sha256, offline=offline, refresh=refresh,
                     retries=retries, retry_delay=retry_delay, timeout=timeout,
                     progress=progress)
    res.dest = dest
    return res


@contextlib.contextmanager
def _held_dir(dest: str) -> Iterator[str]:
    """dest through its directory opened once (``/proc/self/fd/N/NAME``): the temp file, the
    rename and its check all land in that directory even if its path is swapped meanwhile (a
    parent someone else can write). Without /proc: dest as it is."""
    try:
        fd = os.open(os.path.dirname(dest), os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise FetchError(f"{os.path.dirname(dest)}: {exc.strerror or exc}", EXIT_USAGE) from None
    try:
        held = f"/proc/self/fd/{fd}"
        yield f"{held}/{os.path.basename(dest)}" if os.path.isdir(held) else dest
    finally:
        os.close(fd)


def _fetch(cache: PackageCache | None, url: str, key: str, dest: str, shown: str,
           sha256: str | None, *, offline: bool, refresh: bool, retries: int,
           retry_delay: float, timeout: float, progress: bool | None) -> FetchResult:
    """fetch() once its arguments are checked; dest: the path to write (through DEST's held
    directory), shown: DEST as the user gave it (messages)."""
    if progress is None:
        progress = _isatty(sys.stderr)
    live = cache if _usable(cache) else None  # the cache this fetch uses (None: a plain download)
    if live is not None:
        try:
            live.bucket(PARTIAL_BUCKET)    # opens the cache: one warning here, not one per step
        except (CacheError, OSError) as exc:
            where = f": {exc.filename}" if isinstance(exc, OSError) and exc.filename else ""
            warn(f"cache unavailable, continuing without it ({reason(exc)}{where})")
            live = None

    if live is not None and sha256 and not refresh:  # pinned: local, else the fleet's cas/<sha256>
        hit = _serve(live, key, dest, sha256) or (
            (live.exists(f"sha256:{sha256}") or _from_fleet(live, f"sha256:{sha256}"))
            and _serve(live, f"sha256:{sha256}", dest, sha256))
        if hit:
            return hit
    if live is not None and not refresh:
        _from_fleet(live, key)
    if offline:
        trusted = sha256 or (trusted_digest(key, trusted_keys(live)) if live is not None else None)
        hit = _serve(live, key, dest, trusted) if live is not None and trusted else None
        if hit is None:
            if live is not None:
                live.count_miss(key)
            raise FetchError(f"offline and not in the cache: {redact(url)}", EXIT_MISS)
        warn(f"offline: serving the cached copy of {redact(url)} (not revalidated)")
        return hit

    job = _Download(live, url, dest, sha256, refresh=refresh,
                    retries=max(0, retries), retry_delay=max(0.0, retry_delay), timeout=timeout,
                    progress=progress, shown=shown)
    if live is not None and sha256 and not refresh and not job.private:  # a private URL asks no store
        return _coalesced(live, sha256, dest, job)
    return job.run()


def _coalesced(cache: PackageCache, sha256: str, dest: str, job: _Download) -> FetchResult:
    """A pinned download coalesced with other processes and fleet members missing the same
    content at once: one downloads (and publishes it), the others take it from the store."""
    remote = cache.remote
    if remote is None:
        return job.run()
    try:
        cm = remote.download_lease(sha256)
    except Exception:  # noqa: BLE001 - the fleet never breaks a fetch
        return job.run()
    with cm as lease:
        if lease.path is not None:
            hit = _serve(cache, f"sha256:{sha256}", dest, sha256)
            if hit:
                return hit
        return job.run()


def _from_fleet(cache: PackageCache, key: str) -> bool:
    """On a local miss, take key from the fleet's remotes (no miss counted: a cold download
    counts its own). A content key (a pinned --sha256) needs no record; an unpinned URL needs a
    record signed by a trusted key (digest, ETag, Last-Modified), and its copy is then
    revalidated with the origin like any cached copy (304: the fleet's copy is served), or
    served stale when the origin is down. A record accepted only because its remote says
    ``trust: unsigned`` is cached but never vouched for. True if something was taken."""
    try:
        remote = cache.remote
        if remote is None:
            return False
        if key.startswith("sha256:"):
            return bool(remote.pull([key])["pulled"])
        if cache.lookup(key) is not None:
            return False
        rec = remote.get_record(key)
        if rec is None or remote.get_object(rec.sha256, key, kind=rec.kind,
                                            meta=rec.meta) is None:
            return False
        signer = rec.signer
        entry = cache.lookup(key)
        if signer and entry is not None and entry.digest == rec.sha256:
            # signed by a key this host trusts: its digest is what the URL gave the fleet,
            # vouched for in this machine's own memo, bound to that key (see trusted_digest)
            remember_digest(key, entry.digest, by=signer)
        return True
    except Exception as exc:  # noqa: BLE001 - the fleet never breaks a fetch
        warn(f"fetch: remote tier not used ({type(exc).__name__})")
        return False


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def _serve(cache: PackageCache | None, key: str, dest: str, sha256: str | None,
           source: str = "cache") -> FetchResult | None:
    """Copy the cached object of key to dest if present and (when given) matching sha256."""
    if cache is None:  # the cache was given up on during this fetch
        return None
    entry = cache.lookup(key) if not key.startswith("sha256:") else None
    if entry is None and not key.startswith("sha256:"):
        return None
    if entry is not None and sha256 and entry.digest != sha256:
        return None
    if not cache.materialize_key(key, dest, mode="copy", sha256=sha256):
        return None
    digest = sha256 or (entry.digest if entry is not None else key.removeprefix("sha256:"))
    size = entry.size if entry is not None else os.path.getsize(dest)
    return FetchResult(dest, digest, size, source)


class _Download:
    """One online fetch: revalidate or download (resuming), verify, store, place at dest."""

    def __init__(self, cache: PackageCache | None, key: str, dest: str, sha256: str | None, *,
                 refresh: bool,
                 retries: int, retry_delay: float, timeout: float, progress: bool,
                 shown: str | None = None) -> None:
        self.cache = cache
        self.key = key                  # the URL requested (shown only through redact())
        self.ckey = cache_key(key)      # the cache key (a hash for URLs with credentials)
        self.private = self.ckey != key
        self.dest = dest
        self.shown = shown or dest      # DEST in messages (dest: through its held directory)
        self.sha256 = sha256
        self.refresh = refresh
        self.retries = retries
        self.retry_delay = retry_delay
        self.timeout = timeout
        self.progress = progress
        self.opener = opener()
        self.entry: Any = None          # the cached entry we may revalidate / fall back to
        self.trusted: str | None = sha256   # the digest a cached copy must have to be used

    # -- orchestration -----------------------------------------------------------------------
    def run(self) -> FetchResult:
        started = time.time()
        with self._url_lock() as locked:
            if self.cache is not None:
                self.entry = self.cache.lookup(self.ckey)
                self.trusted = self.sha256 or trusted_digest(self.ckey, trusted_keys(self.cache))
                if self.entry is not None and self.entry.digest != self.trusted:
                    self.entry = None   # pinned or memo'd content differs: never 304 onto it
            # Someone else revalidated or downloaded it while we waited for the lock.
            if (self.entry is not None and not self.refresh
                    and float(self.entry.meta.get("validated", 0)) >= started):
                hit = _serve(self.cache, self.ckey, self.dest, self.trusted)
                if hit:
                    return hit
            with self._partial(locked) as partial:
                try:
                    return self._attempts(partial)
                except _CacheWriteFailed as exc:
                    warn(f"fetch: cannot write into the cache ({exc}); downloading without it")
            self.cache, self.entry = None, None     # e.g. the cache's disk is full
            with self._partial(False) as partial:
                return self._attempts(partial)

    @contextlib.contextmanager
    def _url_lock(self) -> Iterator[bool]:
        """Per-URL lock so concurrent fetches download once; without a cache, no lock."""
        if self.cache is None:
            yield False
            return
        try:
            cm = self.cache.lock("fetch:" + self.ckey, timeout=LOCK_TIMEOUT)
            cm.__enter__()
        except Exception as exc:  # noqa: BLE001 - fail open: download without the lock
            warn(f"fetch: no lock for {redact(self.key)} ({exc}); downloading anyway")
            yield False
            return
        try:
            yield True
        finally:
            cm.__exit__(None, None, None)

    @contextlib.contextmanager
    def _partial(self, locked: bool) -> Iterator[_Partial]:
        """The shared, resumable partial file (needs the cache and the lock) or a private one."""
        bucket = None
        if self.cache is not None and locked:
            try:
                bucket = self.cache.bucket(PARTIAL_BUCKET)
                _sweep_partials(bucket)
            except (CacheError, OSError) as exc:
                warn(f"fetch: cache unusable ({exc}); downloading without it")
                self.cache = None
                bucket = None
        if bucket is not None:
            yield _Partial(bucket / f"{url_hash(self.ckey)}.part", shared=True)
            return
        # No temp directory (mkdtemp in a directory others can write invites swaps): one
        # O_EXCL|O_NOFOLLOW file beside DEST, used through its descriptor only.
        name = f".pkgcache-{os.getpid()}-{secrets.token_hex(8)}.tmp"
        partial = _Partial(Path(os.path.dirname(self.dest)) / name, shared=False)
        try:
            yield partial
        finally:
            partial.discard()

    def _attempts(self, partial: _Partial) -> FetchResult:
        fresh_retry_done = False
        attempt = 0
        while True:
            try:
                return self._once(partial)
            except Transient as exc:
                if self.entry is not None and (not exc.reached or attempt >= self.retries):
                    return self._stale(str(exc))
                if attempt >= self.retries:
                    raise FetchError(f"{exc} (after {attempt + 1} attempts): "
                                     f"{redact(self.key)}") from None
                time.sleep(backoff(attempt, self.retry_delay, exc))
                attempt += 1
            except _ResumedMismatch:
                # A resumed download that fails the pin: the kept part may be bad. Start over once.
                partial.discard()
                if fresh_retry_done:
                    raise FetchError("SHA-256 mismatch", EXIT_MISS) from None
                fresh_retry_done = True

    def _stale(self, why: str) -> FetchResult:
        hit = _serve(self.cache, self.ckey, self.dest, self.trusted, source="stale")
        if hit is None:
            raise FetchError(f"{why}: {redact(self.key)}")
        warn(f"fetch: {why}; serving the cached copy of {redact(self.key)}")
        return hit

    # -- one HTTP exchange ---------------------------------------------------------------------
    def _once(self, partial: _Partial) -> FetchResult:
        headers: dict[str, str] = {}
        cond = self.entry if not self.refresh else None
        if cond is not None:
            if cond.meta.get("etag"):
                headers["If-None-Match"] = cond.meta["etag"]
            if cond.meta.get("last_modified"):
                headers["If-Modified-Since"] = cond.meta["last_modified"]
        offset, info = partial.load()
        if offset:
            headers["Range"] = f"bytes={offset}-"
            etag = info.get("etag") or ""
            headers["If-Range"] = etag if etag and not etag.startswith("W/") else (
                info.get("last_modified") or etag)
        req = request(self.key, headers)
        try:
            resp = self.opener.open(req, timeout=self.timeout)
        except urllib.error.HTTPError as exc:
            if exc.code == 304 and cond is not None:
                with contextlib.suppress(Exception):
                    exc.close()
                return self._not_modified(exc.headers)
            if exc.code == 416 and offset:
                with contextlib.suppress(Exception):
                    exc.close()
                partial.discard()
                raise Transient("range not satisfiable; restarting", reached=True,
                                retry_after=0) from None
            raise classify(exc, self.key) from None
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            raise classify(exc, self.key) from None
        with resp:
            return self._receive(resp, partial, offset, info)

    def _not_modified(self, headers: Any) -> FetchResult:
        meta = dict(self.entry.meta)
        meta["validated"] = time.time()
        if headers.get("ETag"):
            meta["etag"] = headers["ETag"]
        if headers.get("Last-Modified"):
            meta["last_modified"] = headers["Last-Modified"]
        hit = _serve(self.cache, self.ckey, self.dest, self.trusted, source="revalidated")
        if hit is None:         # the object went bad under us: download it again
            self.entry = None
            raise Transient("cached copy unusable; downloading again", reached=True,
                             retry_after=0)
        assert self.cache is not None  # a hit came from it
        self.cache.set_meta(self.ckey, meta)
        return hit

    def _receive(self, resp: Any, partial: _Partial, offset: int,
                 info: dict[str, Any]) -> FetchResult:
        status = resp.status
        length = resp.headers.get("Content-Length")
        length_n = int(length) if length and length.isdigit() else None
        if status == 206 and offset:
            start, total = content_range(resp.headers.get("Content-Range", ""))
            if start != offset or (total is not None and info.get("total") not in (None, total)):
                partial.discard()
                raise Transient("server sent the wrong range; restarting", reached=True,
                                 retry_after=0)
            append = True
        elif status == 200:
            offset, append, total = 0, False, length_n
            info = {"url": redact(self.key), "etag": resp.headers.get("ETag"),
                    "last_modified": resp.headers.get("Last-Modified"), "total": total}
        else:
            raise FetchError(f"unexpected HTTP {status}: {redact(self.key)}")
        expected_end = offset + length_n if length_n is not None else total
        done = offset
        bar = _Progress(self.progress, os.path.basename(self.dest), total, offset)
        try:
            try:
                out = partial.start(info, append)
            except OSError as exc:
                raise _write_failed(partial, exc) from None
            with out:
                while True:
                    try:
                        chunk = resp.read1(CHUNK)   # what has arrived, not a full CHUNK
                    except (http.client.HTTPException, OSError) as exc:
                        raise Transient(f"connection lost after {done} bytes ({reason(exc)})",
                                         reached=True) from None
                    if not chunk:
                        break
                    try:
                        out.write(chunk)
                    except OSError as exc:
                        raise _write_failed(partial, exc) from None
                    done += len(chunk)
                    bar.update(done)
            bar.update(done, final=True)
        finally:
            bar.close()
        if expected_end is not None and done != expected_end:
            raise Transient(f"connection lost after {done} of {expected_end} bytes",
                             reached=True)
        return self._finish(partial, info, resumed=bool(append))

    def _finish(self, partial: _Partial, info: dict[str, Any], resumed: bool) -> FetchResult:
        """Verify the complete download, store it, place it at dest; the partial is consumed.

        Everything goes through one descriptor: the hashing copy into the cache (or, without a
        cache to take it, a plain hash), chmod, the copy (or, for a private temp already beside
        DEST, the rename) to DEST. The bytes are hashed once."""
        try:
            fd = partial.open_done()
        except (OSError, CacheError) as exc:
            partial.discard()
            raise FetchError(f"the download vanished: {reason(exc)}") from None
        try:
            size = os.fstat(fd).st_size
            digest: str | None = None
            if self.cache is not None:
                meta = {"etag": info.get("etag"), "last_modified": info.get("last_modified"),
                        "validated": time.time()}
                if self.private:
                    meta["url"] = redact(self.key)
                meta = {k: v for k, v in meta.items() if v is not None}
                try:
                    digest = self.cache.put(self.ckey, fd, sha256=self.sha256, kind="url",
                                            meta=meta, private=self.private, on_mismatch="raise")
                except DigestMismatch as exc:
                    digest = exc.digest  # reported below
                if digest is not None:
                    remember_digest(self.ckey, digest)
            if digest is None:
                os.lseek(fd, 0, os.SEEK_SET)
                digest, size = sha256_fd(fd)
            if self.sha256 and digest != self.sha256:
                partial.discard()
                if resumed:
                    raise _ResumedMismatch()
                raise FetchError(f"SHA-256 mismatch for {redact(self.key)}: expected "
                                 f"{self.sha256}, got {digest}; nothing cached", EXIT_MISS)
            if self.cache is not None:
                self.cache.count_miss(self.ckey)    # a cold download: one miss in stats
            try:
                if partial.fd is not None:
                    _publish_temp(fd, partial.data, self.dest)
                else:
                    _copy_to(fd, self.dest)
            except OSError as exc:
                raise FetchError(f"cannot write {self.shown}: {exc.strerror or exc}",
                                 EXIT_USAGE if isinstance(exc, PermissionError) else EXIT_NETWORK
                                 ) from None
        finally:
            os.close(fd)
            partial.discard()
        return FetchResult(self.dest, digest, size, "downloaded")


def _umask_mode() -> int:
    """0666 minus the umask: the mode a plain new file (curl -o) would get."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def _publish_temp(fd: int, tmp: Path, dest: str) -> None:
    """Rename our own temp (open as fd) over dest; the mode is set through the descriptor."""
    os.fchmod(fd, _umask_mode())
    replace_checked(tmp, dest, fd)


def _copy_to(src_fd: int, dest: str) -> None:
    """Copy src_fd to a new O_EXCL|O_NOFOLLOW temp beside dest, then rename it over dest."""
    tmp = os.path.join(os.path.dirname(dest), f".pkgcache-{os.getpid()}-{secrets.token_hex(8)}.tmp")
    out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
    try:
        os.lseek(src_fd, 0, os.SEEK_SET)
        copy_fd(src_fd, out)
        replace_checked(tmp, dest, out)  # the temp may be swapped in DEST's directory
    except BaseException:
        with contextlib.suppress(OSError):
            if os.lstat(tmp).st_ino == os.fstat(out).st_ino:
                os.unlink(tmp)   # only our own temp, never a swapped-in entry
        raise
    finally:
        os.close(out)


class _ResumedMismatch(Exception):
    """A resumed download failed its SHA-256 pin."""


class _CacheWriteFailed(Exception):
    """The partial file inside the cache could not be written (disk full, read-only)."""


def _write_failed(partial: _Partial, exc: OSError) -> Exception:
    """The exception for a failed partial write: fall back (cache) or give up (private)."""
    partial.discard()
    reason = exc.strerror or str(exc)
    if partial.shared:
        return _CacheWriteFailed(reason)
    return FetchError(f"cannot write the download next to DEST: {reason}")
