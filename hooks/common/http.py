"""The drivers' HTTP client: credentials, retries, downloads, probes.

``pkgcache fetch`` (conditional requests, resume) and the pip driver (wheels pip chose, the
index probe) both go through it. The policy (proxies and no_proxy, TLS and the CA bundle, the
timeout, redaction) is cache_core.net's, shared with the remote stores; a CA file the caller
names (pip's PIP_CERT) is passed on. Credentials in a URL become an Authorization header that is
never sent on to a redirect target, and every message shows a URL through ``redact``.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import random
import re
import secrets
import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from cache_core import EXIT_MISS, EXIT_USAGE
from cache_core.net import DEFAULT_TIMEOUT as DEFAULT_TIMEOUT
from cache_core.net import goes_direct
from cache_core.net import has_secret as has_secret
from cache_core.net import opener as opener
from cache_core.net import redact as redact
from hooks.common.errors import FetchError

DEFAULT_RETRIES = 3
DEFAULT_RETRY_DELAY = 1.0      # seconds; doubled per attempt (1, 2, 4 ...), capped below
MAX_RETRY_DELAY = 30.0
CHUNK = 1 << 16
RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}


class Transient(Exception):
    """A failure worth retrying (connection error, cut body, 5xx)."""

    def __init__(self, message: str, *, reached: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.reached = reached          # the server answered (vs. unreachable)
        self.retry_after = retry_after


def request(url: str, headers: dict[str, str] | None = None,
            method: str | None = None) -> urllib.request.Request:
    """The request for url; user:password@ becomes a Basic Authorization header that is never
    sent on to a redirect target (urllib cannot use credentials in the URL itself)."""
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return urllib.request.Request(url, headers=headers or {}, method=method)
    import base64

    host = parts.netloc.rsplit("@", 1)[1]
    req = urllib.request.Request(urllib.parse.urlunsplit(parts._replace(netloc=host)),
                                 headers=headers or {}, method=method)
    cred = f"{urllib.parse.unquote(parts.username or '')}:{urllib.parse.unquote(parts.password or '')}"
    req.add_unredirected_header("Authorization",
                                "Basic " + base64.b64encode(cred.encode()).decode("ascii"))
    return req


def check_url(url: str) -> str:
    """url checked (http/https, a host, no spaces or control characters), fragment dropped;
    FetchError (exit 2) otherwise."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError as exc:
        raise FetchError(f"bad URL: {exc}", EXIT_USAGE) from None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise FetchError(f"unsupported URL (http/https only): {redact(url)}", EXIT_USAGE)
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):
        raise FetchError("URL contains spaces or control characters", EXIT_USAGE)
    return urllib.parse.urlunsplit(parts._replace(fragment=""))


# -- errors and retries ------------------------------------------------------------------------
def reason(exc: BaseException) -> str:
    """A few words for a network error: "timed out", "Connection refused", ..."""
    why = getattr(exc, "reason", None)
    if isinstance(why, BaseException):
        exc = why
    elif isinstance(why, str):
        return why
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def classify(exc: BaseException, url: str) -> Exception:
    """What an error out of ``opener().open`` means: a FetchError (give up) or a Transient."""
    if isinstance(exc, urllib.error.HTTPError):
        with contextlib.suppress(Exception):
            exc.close()
        if exc.code in RETRY_STATUS:
            return Transient(f"HTTP {exc.code}", reached=True, retry_after=retry_after(exc.headers))
        return FetchError(f"HTTP {exc.code} {exc.reason}: {redact(url)}")
    why = getattr(exc, "reason", exc)
    if isinstance(why, ssl.SSLCertVerificationError):
        return FetchError(f"TLS certificate verification failed ({why.verify_message}): "
                          f"{redact(url)}")
    if isinstance(why, str) and "unknown url type" in why:
        return FetchError(f"redirected to an unsupported URL: {redact(url)}")
    return Transient(f"cannot reach server ({reason(exc)})", reached=False)


def retry_after(headers: Any) -> float | None:
    """A Retry-After header in seconds (capped), or None."""
    value = headers.get("Retry-After") if headers is not None else None
    if value and value.strip().isdigit():
        return min(float(value), MAX_RETRY_DELAY)
    return None


def backoff(attempt: int, first_delay: float, exc: Transient) -> float:
    """Seconds to wait before retry number attempt + 1: Retry-After, else jittered doubling."""
    if exc.retry_after is not None:
        return exc.retry_after
    return min(MAX_RETRY_DELAY, first_delay * (2 ** attempt)) * random.uniform(0.5, 1)


def content_range(value: str) -> tuple[int | None, int | None]:
    """(first byte, total) of a Content-Range header; None for what it does not say."""
    m = re.match(r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)", value)
    if not m:
        return None, None
    return int(m.group(1)), (int(m.group(3)) if m.group(3) != "*" else None)


# -- whole requests ----------------------------------------------------------------------------
def download(url: str, dest: Path, sha256: str | None = None, *, timeout: float = DEFAULT_TIMEOUT,
             retries: int = DEFAULT_RETRIES, retry_delay: float = DEFAULT_RETRY_DELAY,
             cafile: str | None = None) -> Path:
    """Download url to dest (an O_EXCL temp beside it, renamed last), checking its SHA-256 while
    streaming; transient failures are retried. FetchError on failure (nothing left behind)."""
    import time

    url = check_url(url)
    director = opener(cafile)
    attempt = 0
    while True:
        try:
            return _download_once(director, url, dest, sha256, timeout)
        except Transient as exc:
            if attempt >= retries:
                raise FetchError(f"{exc} (after {attempt + 1} attempts): {redact(url)}") from None
            time.sleep(backoff(attempt, retry_delay, exc))
            attempt += 1


def _download_once(director: urllib.request.OpenerDirector, url: str, dest: Path,
                   sha256: str | None, timeout: float) -> Path:
    tmp = dest.parent / f".pkgcache-{os.getpid()}-{secrets.token_hex(8)}.tmp"
    digest = hashlib.sha256()
    try:
        try:
            resp = director.open(request(url), timeout=timeout)
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            raise classify(exc, url) from None
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o644)
        with resp, os.fdopen(fd, "wb") as out:
            done = 0
            while True:
                try:
                    chunk = resp.read1(CHUNK)
                except (http.client.HTTPException, OSError) as exc:
                    raise Transient(f"connection lost after {done} bytes ({reason(exc)})",
                                    reached=True) from None
                if not chunk:
                    break
                digest.update(chunk)
                out.write(chunk)
                done += len(chunk)
        length = resp.headers.get("Content-Length")
        if length and length.isdigit() and int(length) != done:
            raise Transient(f"connection lost after {done} of {length} bytes", reached=True)
        if sha256 and digest.hexdigest() != sha256:
            raise FetchError(f"SHA-256 mismatch for {redact(url)}: expected {sha256}, got "
                             f"{digest.hexdigest()}", EXIT_MISS)
        os.replace(tmp, dest)
        return dest
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def get(url: str, *, accept: str = "*/*", timeout: float = DEFAULT_TIMEOUT,
        limit: int = 32 << 20, cafile: str | None = None) -> tuple[int, str, bytes]:
    """(HTTP status, final URL after redirects, body up to limit bytes) of one GET; status 0
    when no server answered (unreachable, TLS failure, not an http(s) URL)."""
    if not url.startswith(("http://", "https://")):
        return 0, url, b""
    try:
        with opener(cafile).open(request(url, {"Accept": accept}), timeout=timeout) as resp:
            return resp.status, resp.geturl(), resp.read(limit)
    except urllib.error.HTTPError as exc:
        with contextlib.suppress(Exception):
            exc.close()
        return exc.code, url, b""
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError):
        return 0, url, b""


def _unresolvable(url: str) -> str | None:
    """Why url's host has no address (reached directly, not through a proxy), else None."""
    try:
        parts = urllib.parse.urlsplit(url)
        host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return None
    if not host or not goes_direct(url):
        return None
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        return exc.strerror or str(exc)
    except (OSError, UnicodeError):
        return None
    return None


def probe(url: str, *, timeout: float = 5.0, cafile: str | None = None) -> str | None:
    """None if the server answers (any HTTP status but 502/503/504), else the cause in a few
    words: "connection refused", "certificate verify failed: ...", "HTTP 503", "timed out"."""
    if not url.startswith(("http://", "https://")):
        return None
    unresolved = _unresolvable(url)
    if unresolved:  # offline: no TLS set-up (loading the CA bundle) for a host with no address
        return f"name resolution failed: {unresolved}"
    try:
        with opener(cafile).open(request(url, method="HEAD"), timeout=timeout):
            return None
    except urllib.error.HTTPError as exc:
        # any answer means reachable (a client reports 401/404 itself), except a gateway's failure
        with contextlib.suppress(Exception):
            exc.close()
        return f"HTTP {exc.code}" if exc.code in (502, 503, 504) else None
    except urllib.error.URLError as exc:
        why = exc.reason
        if isinstance(why, ssl.SSLCertVerificationError):
            return f"certificate verify failed: {why.verify_message}"
        if isinstance(why, socket.gaierror):
            return f"name resolution failed: {why.strerror}"
        if isinstance(why, OSError) and why.strerror:
            return why.strerror.lower()
        return str(why)
    except TimeoutError:
        return "timed out"
    except (OSError, ValueError, http.client.HTTPException) as exc:
        return str(exc) or type(exc).__name__
