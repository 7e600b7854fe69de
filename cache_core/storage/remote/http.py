"""``http(s)://``: the Bazel HTTP remote-cache layout (GET/HEAD/PUT base/cas/<sha256>, base/ac/..),
as served by nginx's WebDAV module, bazel-remote, Apache mod_dav or any WebDAV server.

Auth: bearer ``token``/``token_file`` or basic ``username`` + ``password``/``password_file`` (or
user:password@ in the URL). The stores' HTTP client, shared with the S3 backend, lives here too;
its policy (proxies, no_proxy, TLS and ``ca_file``) is cache_core.net's.
"""

from __future__ import annotations

import base64
import http.client
import threading
import time
import urllib.parse
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING

from ... import net
from .base import RemoteError, RemoteMissing, RemoteTimeout, register

if TYPE_CHECKING:
    from .config import RemoteSpec

CHUNK = 1 << 20
_ERR_BODY = 4096
MAX_IDLE = 8  # kept-alive connections per store (parallel fetches each hold one while reading)


def read_secret(path: str, limit: int = 4096) -> str:
    """A secret file's first limit bytes, stripped (OSError if it is not a regular file: a
    FIFO never blocks the caller)."""
    import errno
    import os
    import stat

    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", path)
        return os.read(fd, limit).decode("utf-8", "replace").strip()
    finally:
        os.close(fd)


class HttpClient:
    """Requests over http.client with a connect timeout, an idle timeout and a per-object
    deadline; every fault becomes RemoteError/RemoteTimeout, never a traceback. A GET whose body
    was read to its end leaves its connection open for the next GET (keep-alive: one connection
    per store and worker in a run); a kept connection the server has closed meanwhile is
    replaced by a new one once. Other methods use a connection each."""

    def __init__(self, base_url: str, connect_timeout: float, idle_timeout: float,
                 cafile: str | None = None) -> None:
        p = urllib.parse.urlsplit(base_url)
        self.scheme = "https" if p.scheme == "https" else "http"
        self.host = p.hostname or ""
        self.port = p.port or (443 if self.scheme == "https" else 80)
        self.base_path = p.path.rstrip("/")
        self.netloc = self.host if p.port is None else f"{self.host}:{p.port}"
        if ":" in self.host and p.port is not None:
            self.netloc = f"[{self.host}]:{p.port}"
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout
        self.cafile = cafile
        self._idle: list[tuple[http.client.HTTPConnection, net.Proxy | None]] = []
        self._idle_lock = threading.Lock()
        self._proxies: dict[int, net.Proxy | None] = {}  # id(connection) -> its route

    def _take(self) -> tuple[http.client.HTTPConnection, net.Proxy | None] | None:
        """A kept-alive connection, if one is idle and still open."""
        with self._idle_lock:
            while self._idle:
                conn, proxy = self._idle.pop()
                if conn.sock is not None:
                    return conn, proxy
        return None

    def _keep(self, conn: http.client.HTTPConnection, resp: http.client.HTTPResponse) -> bool:
        """Keep conn for the next GET if its response was read to the end and the server lets
        it stay open; True if kept (else the caller closes it)."""
        if not resp.isclosed() or resp.will_close or conn.sock is None or \
                id(conn) not in self._proxies:  # only a GET's connection (its route known)
            return False
        with self._idle_lock:
            if len(self._idle) >= MAX_IDLE:
                return False
            self._idle.append((conn, self._proxies.pop(id(conn))))
        return True

    def finish(self, conn: http.client.HTTPConnection, resp: http.client.HTTPResponse) -> bytes:
        """Read a response's small body (an error's, 4 KiB at most); the connection is kept
        for the next GET if that was all of it, else closed. The body read."""
        body = self.small_body(resp)
        if not self._keep(conn, resp):
            self._proxies.pop(id(conn), None)
            conn.close()
        return body

    def close(self) -> None:
        """Close every kept-alive connection."""
        with self._idle_lock:
            idle, self._idle = self._idle, []
        for conn, _ in idle:
            conn.close()

    def _connect(self, deadline: float) -> tuple[http.client.HTTPConnection, net.Proxy | None]:
        """A connection along the HTTP policy's route (direct, or through the environment's
        proxy); errors name the proxy by host:port only."""
        budget = max(0.001, min(self.connect_timeout, deadline - time.monotonic()))
        try:
            conn, proxy = net.connection(self.scheme, self.host, self.port, budget,
                                         cafile=self.cafile)
        except OSError as exc:  # ca_file missing or unreadable: never the system bundle instead
            raise RemoteError(f"ca_file {self.cafile}: {exc.strerror or _first_line(exc)}"
                              ) from None
        via = f" via proxy {proxy.display}" if proxy else ""
        try:
            conn.connect()
        except TimeoutError:
            conn.close()
            raise RemoteTimeout(f"connect{via} timed out after {budget:.1f} s") from None
        except OSError as exc:  # ssl.SSLError included
            conn.close()
            why = getattr(exc, "strerror", None) or _first_line(exc)
            raise RemoteError(f"cannot connect{via}: {why}") from None
        return conn, proxy

    def _tick(self, conn: http.client.HTTPConnection, deadline: float) -> None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise RemoteTimeout("time budget for the object exhausted")
        if conn.sock is not None:
            conn.sock.settimeout(min(self.idle_timeout, left))

    def request(self, method: str, path: str, headers: dict[str, str], deadline: float,
                body: IO[bytes] | bytes | None = None) -> tuple[http.client.HTTPConnection,
                                                               http.client.HTTPResponse]:
        """Send one request; return the open connection and the response (headers read).
        A GET without a body goes over a kept-alive connection when there is one."""
        kept = self._take() if method == "GET" and body is None else None
        if kept is not None:
            self._proxies[id(kept[0])] = kept[1]
            try:
                return self._send(*kept, method, path, headers, deadline, body)
            except _Stale:  # a kept connection the server has closed: a new one, once
                pass
        conn, proxy = self._connect(deadline)
        if method == "GET":
            self._proxies[id(conn)] = proxy
        return self._send(conn, proxy, method, path, headers, deadline, body)

    def _send(self, conn: http.client.HTTPConnection, proxy: net.Proxy | None, method: str,
              path: str, headers: dict[str, str], deadline: float,
              body: IO[bytes] | bytes | None) -> tuple[http.client.HTTPConnection,
                                                       http.client.HTTPResponse]:
        try:
            self._tick(conn, deadline)
            conn.putrequest(method, net.target(self.scheme, self.netloc, path, proxy),
                            skip_host=True, skip_accept_encoding=True)
            conn.putheader("Host", self.netloc)
            if self.scheme == "http":
                for k, v in net.proxy_headers(proxy).items():
                    conn.putheader(k, v)
            for k, v in headers.items():
                conn.putheader(k, v)
            conn.endheaders()
            if body is not None:
                if isinstance(body, bytes):
                    conn.send(body)
                else:
                    while chunk := body.read(CHUNK):
                        self._tick(conn, deadline)
                        conn.send(chunk)
            self._tick(conn, deadline)
            return conn, conn.getresponse()
        except TimeoutError:
            conn.close()
            self._proxies.pop(id(conn), None)
            raise RemoteTimeout(f"{method} timed out (no answer)") from None
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            self._proxies.pop(id(conn), None)
            cls = _Stale if isinstance(exc, _STALE) else RemoteError
            raise cls(f"{method} failed: {type(exc).__name__}") from None
        except BaseException:
            conn.close()
            self._proxies.pop(id(conn), None)
            raise

    def stream(self, conn: http.client.HTTPConnection, resp: http.client.HTTPResponse,
               deadline: float) -> Iterator[bytes]:
        """The response body in chunks, under the idle timeout and the deadline; read to its
        end, the connection is kept for the next GET (else closed)."""
        done = False
        try:
            length = resp.getheader("Content-Length")
            got = 0
            while True:
                self._tick(conn, deadline)
                chunk = resp.read1(CHUNK)  # one recv at most: the deadline is checked often
                if not chunk:
                    break
                got += len(chunk)
                yield chunk
            if length is not None and length.isdigit() and got != int(length):
                raise RemoteError("truncated body")
            resp.read()  # the end of the body: marks the response closed (read1 does not)
            done = True
        except TimeoutError:
            raise RemoteTimeout("body stalled") from None
        except (OSError, http.client.HTTPException) as exc:
            raise RemoteError(f"body failed: {type(exc).__name__}") from None
        finally:
            if not (done and self._keep(conn, resp)):
                self._proxies.pop(id(conn), None)
                conn.close()

    @staticmethod
    def small_body(resp: http.client.HTTPResponse) -> bytes:
        """Up to 4 KiB of an error body (for the error code), never more."""
        try:
            return resp.read(_ERR_BODY)
        except (OSError, http.client.HTTPException):
            return b""


# what a kept connection the server has closed fails with (then a new connection is opened)
_STALE = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError,
          http.client.BadStatusLine, http.client.ImproperConnectionState)


class _Stale(RemoteError):
    """A request failed the way a connection the server has closed fails."""


def _first_line(exc: BaseException) -> str:
    """An exception's message, first line, at most 200 characters (http.client's tunnel error
    quotes the proxy's status line)."""
    return (str(exc).splitlines() or [type(exc).__name__])[0][:200]


def check_status(method: str, status: int) -> None:
    """Map a status to the policy: 404 and 403 are misses, any other non-2xx is an error."""
    if status in (404, 403, 410):
        raise RemoteMissing(f"HTTP {status}")
    if status == 412 and method == "PUT":
        return  # If-None-Match: * and the object exists already: fine
    if not 200 <= status < 300:
        raise RemoteError(f"{method} answered HTTP {status}")


def lease_fault(method: str, status: int) -> None:
    """A create-if-absent answered neither "created" nor "exists": RemoteError for a store
    fault (5xx) or refused credentials (401, 403), so that it is warned and trips the remote;
    any other status means the store cannot create-if-absent (405, 501: no coalescing)."""
    if status >= 500 and status != 501 or status in (401, 403):
        raise RemoteError(f"{method} answered HTTP {status}")


@register("http", "https")
class HttpBackend:
    """GET/HEAD/PUT under <base>/cas/ and <base>/ac/."""

    def __init__(self, spec: RemoteSpec) -> None:
        p = urllib.parse.urlsplit(spec.url)
        opts = spec.options
        clean = urllib.parse.urlunsplit((p.scheme, p.netloc.rsplit("@", 1)[-1], p.path, "", ""))
        self.client = HttpClient(clean, spec.timeout, spec.idle_timeout, opts.get("ca_file"))
        self.auth: str | None = None
        token = opts.get("token") or (read_secret(opts["token_file"]) if opts.get("token_file")
                                      else None)
        user = opts.get("username") or (urllib.parse.unquote(p.username) if p.username else None)
        password = opts.get("password") or (
            read_secret(opts["password_file"]) if opts.get("password_file") else None) or (
            urllib.parse.unquote(p.password) if p.password else None)
        if token:
            self.auth = f"Bearer {token}"
        elif user is not None:
            raw = f"{user}:{password or ''}".encode()
            self.auth = "Basic " + base64.b64encode(raw).decode()

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        h = {"User-Agent": "pkgcache-remote/1"}
        if self.auth:
            h["Authorization"] = self.auth
        if extra:
            h.update(extra)
        return h

    def _path(self, name: str) -> str:
        return f"{self.client.base_path}/{name}"

    def get(self, name: str, deadline: float) -> Iterator[bytes]:
        """Stream base/name."""
        conn, resp = self.client.request("GET", self._path(name), self._headers(), deadline)
        if resp.status != 200:
            self.client.finish(conn, resp)  # a miss keeps the connection for the next GET
            check_status("GET", resp.status)
            raise RemoteError(f"GET answered HTTP {resp.status}")
        return self.client.stream(conn, resp, deadline)

    def head(self, name: str, deadline: float) -> int | None:
        """Size of base/name, None if missing."""
        conn, resp = self.client.request("HEAD", self._path(name), self._headers(), deadline)
        conn.close()
        try:
            check_status("HEAD", resp.status)
        except RemoteMissing:
            return None
        length = resp.getheader("Content-Length") or ""
        return int(length) if length.isdigit() else -1

    def put(self, name: str, body: IO[bytes], size: int, sha256: str, deadline: float,
            *, if_none_match: bool = False) -> None:
        """PUT base/name (the server creates directories: create_full_put_path on)."""
        h = self._headers({"Content-Length": str(size), "Content-Type": "application/octet-stream"})
        conn, resp = self.client.request("PUT", self._path(name), h, deadline, body)
        self.client.small_body(resp)
        conn.close()
        try:
            check_status("PUT", resp.status)
        except RemoteMissing:
            raise RemoteError(f"PUT answered HTTP {resp.status} (no write access?)") from None

    def list(self, kind: str) -> Iterator[str] | None:
        """A plain HTTP cache cannot list (no PROPFIND): None."""
        return None

    # -- leases (lease.py): WebDAV COPY with Overwrite: F (nginx ignores If-None-Match on PUT) ---
    def create_lease(self, name: str, body: bytes, deadline: float) -> bool | None:
        """PUT a temp beside the lease, COPY it onto the lease with Overwrite: F: True if
        created (201/204), False if it exists (412), None if the server cannot (405, 501, another
        4xx); RemoteError for a 5xx, 401 or 403 (lease_fault)."""
        import io
        import secrets

        tmp = f"{name}.tmp-{secrets.token_hex(6)}"
        h = self._headers({"Content-Length": str(len(body)),
                           "Content-Type": "application/octet-stream"})
        conn, resp = self.client.request("PUT", self._path(tmp), h, deadline, io.BytesIO(body))
        self.client.small_body(resp)
        conn.close()
        if not 200 <= resp.status < 300:
            lease_fault("PUT", resp.status)
            return None
        try:
            conn, resp = self.client.request(  # a path: nginx wants the same host for COPY
                "COPY", self._path(tmp),
                self._headers({"Destination": self._path(name), "Overwrite": "F"}), deadline)
            self.client.small_body(resp)
            conn.close()
        finally:
            self.drop_lease(tmp, deadline)
        if resp.status in (201, 204):
            return True
        if resp.status == 412:
            return False
        lease_fault("COPY", resp.status)
        return None

    def read_lease(self, name: str, deadline: float) -> bytes | None:
        """The lease's body, None if it is gone."""
        try:
            return b"".join(self.get(name, deadline))[:4096]
        except RemoteMissing:
            return None

    def drop_lease(self, name: str, deadline: float) -> None:
        """DELETE the lease (a server without DELETE: it expires)."""
        conn, resp = self.client.request("DELETE", self._path(name), self._headers(), deadline)
        self.client.small_body(resp)
        conn.close()

    def entries(self, kind: str) -> Iterator[tuple[str, int, float]] | None:
        """A plain HTTP cache cannot list: None (``remote gc`` refuses it)."""
        return None

    def delete(self, name: str, deadline: float) -> None:
        """DELETE base/name (WebDAV; a missing object is fine)."""
        conn, resp = self.client.request("DELETE", self._path(name), self._headers(), deadline)
        self.client.small_body(resp)
        conn.close()
        if resp.status not in (404, 410):
            check_status("DELETE", resp.status)
