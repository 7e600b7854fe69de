"""The tests' one HTTP server: a threaded HTTP server on 127.0.0.1 that logs every request and
hands it to an *app*. The apps:

- ``StaticApp``: resources set by the test, with ETag, Last-Modified, 304, Range/If-Range (206),
  redirects, 404, 500s, a cut or stalled body, slow bodies (the fetch tests' origin);
- ``DirApp``: the files of a directory with Last-Modified and If-Modified-Since (an apt repo, a
  plain origin);
- ``IndexApp``: a PEP 503 simple index over a directory of wheels and sdists;
- ``GitApp``: git's smart HTTP protocol through ``git http-backend`` (CGI);
- ``FaultApp``: one fault for every request (500/403/401, truncated, endless, trickle, silent),
  written byte for byte.
"""

from __future__ import annotations

import email.utils
import hashlib
import html
import os
import socket
import ssl
import subprocess
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol

BASE_TIME = 1_700_000_000


@dataclass
class Hit:
    """One request as the server saw it, and what it answered."""

    method: str
    path: str
    headers: dict[str, str]
    query: str = ""
    status: int = 0
    sent: int = 0
    proxied: bool = False

    @property
    def target(self) -> str:
        """What the request asked for: path and query (a proxied request's path only)."""
        return self.path if self.proxied or not self.query else f"{self.path}?{self.query}"


class App(Protocol):
    """What the server hands each request to."""

    protocol: str

    def serve(self, h: Handler, hit: Hit) -> None:
        """Answer the request that h holds (hit is already logged)."""


class Handler(BaseHTTPRequestHandler):
    """Logs the request, then lets the server's app answer it."""

    server: HttpServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._dispatch()

    do_HEAD = do_POST = do_PUT = do_GET

    def _dispatch(self) -> None:
        parts = urllib.parse.urlsplit(self.path)
        hit = Hit(self.command, parts.path, {k.lower(): v for k, v in self.headers.items()},
                  query=parts.query, proxied="://" in self.path)
        srv = self.server
        with srv.lock:
            srv.hits.append(hit)
        srv.app.serve(self, hit)

    # -- answers shared by the apps --------------------------------------------------------------
    def reply(self, hit: Hit, status: int, body: bytes = b"",
              headers: list[tuple[str, str]] | None = None) -> None:
        """A whole answer: status, headers, Content-Length (not on 304), body (not on HEAD)."""
        hit.status = status
        self.send_response(status)
        for k, v in headers or []:
            self.send_header(k, v)
        if status != 304:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and status != 304 and self.command != "HEAD":
            self.wfile.write(body)
            hit.sent = len(body)

    def send_chunks(self, hit: Hit, data: bytes, delay: float = 0.0) -> None:
        """Write data in 16 KiB pieces, counting them; delay seconds between pieces."""
        step = 16384
        for i in range(0, len(data), step):
            self.wfile.write(data[i:i + step])
            hit.sent += len(data[i:i + step])
            if delay:
                self.wfile.flush()
                time.sleep(delay)

    def hang_up(self) -> None:
        """Drop the connection now (after what was written)."""
        self.wfile.flush()
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)


class HttpServer(ThreadingHTTPServer):
    """``HttpServer(app).start()``; ``.url(path)``, ``.hits``, ``.count()``, ``.stop()``."""

    daemon_threads = True

    def __init__(self, app: App, port: int = 0, tls: tuple[str, str] | None = None,
                 host: str = "127.0.0.1") -> None:
        self.app = app
        self.host = host
        self.hits: list[Hit] = []
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        handler = type("AppHandler", (Handler,), {"protocol_version": app.protocol})
        super().__init__((host, port), handler)
        self.scheme = "http"
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            self.socket = ctx.wrap_socket(self.socket, server_side=True)
            self.scheme = "https"
        self.port = int(self.server_address[1])
        self._thread: threading.Thread | None = None

    def start(self) -> HttpServer:
        """Serve in a daemon thread."""
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()
        return self

    def url(self, path: str = "/") -> str:
        """The URL of path on this server."""
        return f"{self.scheme}://{self.host}:{self.port}{path}"

    def count(self, path: str | None = None, status: int | None = None,
              method: str | None = None) -> int:
        """How many requests (for path and query, answered with status, with method) were
        logged."""
        with self.lock:
            return sum(1 for h in self.hits if (path is None or h.target == path)
                       and (status is None or h.status == status)
                       and (method is None or h.method == method))

    def requests(self, path: str) -> list[Hit]:
        """The logged requests for path (with its query, if any)."""
        with self.lock:
            return [h for h in self.hits if h.target == path]

    def reset(self) -> None:
        """Forget the logged requests."""
        with self.lock:
            self.hits.clear()

    def stop(self) -> None:
        """Stop serving and close the port (held and stalled answers are released)."""
        self.stopped.set()
        release = getattr(self.app, "release_all", None)
        if release is not None:
            release()
        if self._thread is not None:
            self.shutdown()
            self._thread = None
        self.server_close()


# -- static resources (the fetch tests' origin) ---------------------------------------------------
@dataclass
class Resource:
    """What StaticApp returns for one path."""

    body: bytes = b""
    etag: str | None = None
    last_modified: str | None = None
    location: str | None = None       # redirect target (302)
    status: int = 200                 # e.g. 404
    fail_left: int = 0                # answer 500 this many times first
    cut_after: int | None = None      # send this many body bytes, then drop the connection ...
    cuts_left: int = 0                # ... this many times
    stall_after: int | None = None    # send this many body bytes, then wait for `release`
    chunk_delay: float = 0.0          # seconds between 16 KiB chunks (slow server)
    ranges: bool = True
    release: threading.Event = field(default_factory=threading.Event)


class StaticApp:
    """Resources put by the test; validators, ranges and faults as each Resource says."""

    protocol = "HTTP/1.1"

    def __init__(self) -> None:
        self.resources: dict[str, Resource] = {}
        self.lock = threading.Lock()
        self.version = 0

    def put(self, path: str, body: bytes, *, etag: bool = True, last_modified: bool = True,
            **kw: Any) -> Resource:
        """Serve body at path; a new body gets a new ETag and a later Last-Modified."""
        with self.lock:
            self.version += 1
            res = Resource(body=body, **kw)
            if etag:
                res.etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
            if last_modified:
                res.last_modified = email.utils.formatdate(BASE_TIME + 3600 * self.version,
                                                           usegmt=True)
            self.resources[path] = res
            return res

    def release_all(self) -> None:
        """Let every stalled body go."""
        for res in self.resources.values():
            res.release.set()

    def serve(self, h: Handler, hit: Hit) -> None:
        """Answer from the resource at hit.target (path and query)."""
        with self.lock:
            res = self.resources.get(hit.target)
            fail = res is not None and res.fail_left > 0
            if fail:
                res.fail_left -= 1
        if res is None or res.status == 404:
            return h.reply(hit, 404, b"not found\n")
        if fail or res.status >= 500:
            return h.reply(hit, 500, b"server error\n")
        if res.location:
            return h.reply(hit, 302, b"moved\n", [("Location", res.location)])
        validators = [(k, v) for k, v in (("ETag", res.etag), ("Last-Modified", res.last_modified))
                      if v]
        if _not_modified(res.etag, res.last_modified, hit.headers):
            return h.reply(hit, 304, b"", validators)
        body, status, extra = res.body, 200, list(validators)
        start = _range_start(res, hit.headers)
        if start is not None:
            if start >= len(body):
                return h.reply(hit, 416, b"", [("Content-Range", f"bytes */{len(body)}")])
            status = 206
            extra.append(("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}"))
        part = body[start or 0:]
        hit.status = status
        h.send_response(status)
        for k, v in extra:
            h.send_header(k, v)
        if res.ranges:
            h.send_header("Accept-Ranges", "bytes")
        h.send_header("Content-Type", "application/octet-stream")
        h.send_header("Content-Length", str(len(part)))
        h.end_headers()
        if h.command == "HEAD":
            return None
        limit = None
        with self.lock:
            if res.cut_after is not None and res.cuts_left > 0:
                res.cuts_left -= 1
                limit = res.cut_after
        try:
            if limit is not None:
                h.send_chunks(hit, part[:limit], res.chunk_delay)
                return h.hang_up()
            if res.stall_after is not None and not res.release.is_set():
                h.send_chunks(hit, part[:res.stall_after], res.chunk_delay)
                h.wfile.flush()
                res.release.wait(60)
                return h.hang_up()
            h.send_chunks(hit, part, res.chunk_delay)
        except OSError:
            h.close_connection = True
        return None


def _range_start(res: Resource, headers: dict[str, str]) -> int | None:
    """Where a ``Range: bytes=N-`` request starts (None: answer the whole body)."""
    rng = headers.get("range", "")
    if not (res.ranges and rng.startswith("bytes=") and rng.endswith("-")):
        return None
    if_range = headers.get("if-range")
    if if_range is not None and if_range not in (res.etag, res.last_modified):
        return None
    return int(rng[6:-1])


def _not_modified(etag: str | None, last_modified: str | None, headers: dict[str, str]) -> bool:
    inm = headers.get("if-none-match")
    if inm is not None:
        return etag is not None and etag in [t.strip() for t in inm.split(",")]
    ims = headers.get("if-modified-since")
    if ims and last_modified:
        try:
            return (email.utils.parsedate_to_datetime(last_modified)
                    <= email.utils.parsedate_to_datetime(ims))
        except (TypeError, ValueError):
            return False
    return False


class FetchServer(HttpServer):
    """A StaticApp origin: ``.put(path, body, **faults)``, ``.url(path)``, ``.hits``."""

    def __init__(self, port: int = 0, tls: tuple[str, str] | None = None) -> None:
        self.static = StaticApp()
        super().__init__(self.static, port, tls)

    @property
    def resources(self) -> dict[str, Resource]:
        """path -> Resource."""
        return self.static.resources

    def put(self, path: str, body: bytes, **kw: Any) -> Resource:
        """See StaticApp.put."""
        return self.static.put(path, body, **kw)


# -- a directory ---------------------------------------------------------------------------------
class DirApp:
    """The files under root (GET/HEAD; Last-Modified, If-Modified-Since -> 304; 404)."""

    protocol = "HTTP/1.0"

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.delays: dict[str, float] = {}  # file name -> seconds between 16 KiB pieces

    def serve(self, h: Handler, hit: Hit) -> None:
        """Answer with the file at hit.path (slowly if its name is in ``delays``)."""
        rel = urllib.parse.unquote(hit.path).lstrip("/")
        path = (self.root / rel).resolve()
        if (h.command not in ("GET", "HEAD") or not path.is_file()
                or not path.is_relative_to(self.root.resolve())):
            return h.reply(hit, 404, b"not found\n")
        mtime = int(path.stat().st_mtime)
        lm = email.utils.formatdate(mtime, usegmt=True)
        ims = hit.headers.get("if-modified-since")
        if ims and "if-none-match" not in hit.headers:
            try:
                if mtime <= email.utils.parsedate_to_datetime(ims).timestamp():
                    return h.reply(hit, 304, b"", [("Last-Modified", lm)])
            except (TypeError, ValueError):
                pass
        headers = [("Content-Type", "application/octet-stream"), ("Last-Modified", lm)]
        delay = self.delays.get(path.name)
        if not delay or h.command == "HEAD":
            return h.reply(hit, 200, path.read_bytes(), headers)
        body = path.read_bytes()
        hit.status = 200
        h.send_response(200)
        for k, v in headers + [("Content-Length", str(len(body)))]:
            h.send_header(k, v)
        h.end_headers()
        try:
            h.send_chunks(hit, body, delay)
        except OSError:
            h.close_connection = True
        return None


class DirServer(HttpServer):
    """A DirApp origin. ``.requests`` lists request paths ("HEAD /x" for HEAD) as apt tests count
    them; ``.codes`` the statuses answered."""

    def __init__(self, root: Path) -> None:
        super().__init__(DirApp(root))

    @property
    def base(self) -> str:
        """The origin's URL with a trailing slash (an apt source line's URI)."""
        return HttpServer.url(self, "/")

    @property
    def requests(self) -> list[str]:  # type: ignore[override]
        """Every request so far: its path (with query), "HEAD path" for HEAD."""
        with self.lock:
            return [("HEAD " if h.method == "HEAD" else "") + h.path
                    + (f"?{h.query}" if h.query else "") for h in self.hits]

    @property
    def codes(self) -> list[int]:
        """The statuses answered, in order."""
        with self.lock:
            return [h.status for h in self.hits]

    def deb_requests(self) -> list[str]:
        """The requests for .deb files."""
        return [r for r in self.requests if r.endswith(".deb")]


def serve_dir(root: Path) -> DirServer:
    """A started DirServer for root."""
    srv = DirServer(root)
    srv.start()
    return srv


# -- a PEP 503 index -----------------------------------------------------------------------------
class IndexApp:
    """/simple/, /simple/<project>/ (links with #sha256 and data-requires-python), /files/<f>."""

    protocol = "HTTP/1.0"
    pypi_headers = False  # True: pypi.org's Cache-Control and ETag (pip's HTTP cache then fills)
    gzip_pages = False  # True: pages gzip-compressed for a client that accepts it (as pypi.org)
    page_delay = 0.0  # seconds before a project's page is answered (a slow index)

    def __init__(self, files_dir: Path, requires_python: dict[str, str], log: list[str],
                 chunk_delay: float = 0.0) -> None:
        self.files_dir = files_dir
        self.requires_python = requires_python
        self.log = log  # every request as "path?query" ("HEAD ..." for HEAD), kept across restarts
        self.chunk_delay = chunk_delay  # seconds between 16 KiB pieces of a file (a slow origin)

    def project_files(self, project: str) -> list[Path]:
        """The files of a project, by their parsed names."""
        from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename

        out = []
        for f in sorted(self.files_dir.iterdir()):
            try:
                name = (parse_wheel_filename(f.name)[0] if f.name.endswith(".whl")
                        else parse_sdist_filename(f.name)[0])
            except ValueError:
                continue
            if name == canonicalize_name(project):
                out.append(f)
        return out

    def page(self, project: str) -> bytes | None:
        """The simple page of a project, or None if it has no files."""
        files = self.project_files(project)
        if not files:
            return None
        links = []
        for f in files:
            rp = self.requires_python.get(f.name)
            attr = f' data-requires-python="{html.escape(rp)}"' if rp else ""
            digest = hashlib.sha256(f.read_bytes()).hexdigest()
            links.append(f'<a href="/files/{f.name}#sha256={digest}"{attr}>{f.name}</a><br/>')
        return ("<!DOCTYPE html><html><body>\n" + "\n".join(links) + "\n</body></html>\n").encode()

    def serve(self, h: Handler, hit: Hit) -> None:
        """Answer a PEP 503 request."""
        from packaging.utils import canonicalize_name

        self.log.append(("HEAD " if h.command == "HEAD" else "") + h.path)
        if h.command == "HEAD":
            return h.reply(hit, 200 if hit.path.startswith("/simple") else 404)
        body, ctype = None, "text/html"
        parts = [p for p in hit.path.split("/") if p]
        if parts == ["simple"]:
            names = sorted({canonicalize_name(f.name.split("-")[0])
                            for f in self.files_dir.iterdir()})
            body = "".join(f'<a href="/simple/{n}/">{n}</a>\n' for n in names).encode()
        elif len(parts) == 2 and parts[0] == "simple":
            body = self.page(parts[1])
            time.sleep(self.page_delay)
        elif len(parts) == 2 and parts[0] == "files" and "/" not in parts[1]:
            f = self.files_dir / parts[1]
            if f.is_file():
                body, ctype = f.read_bytes(), "application/octet-stream"
        if body is None:
            hit.status = 404
            return h.send_error(404)
        headers = [("Content-Type", ctype)]
        if self.pypi_headers:  # pypi.org's: pages revalidated (ETag) after 10 min, files immutable
            if ctype != "text/html":
                headers.append(("Cache-Control", "max-age=365000000, immutable, public"))
            else:
                etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
                headers += [("Cache-Control", "max-age=600, public"), ("ETag", etag)]
                if h.headers.get("If-None-Match") == etag:
                    return h.reply(hit, 304, b"", headers)
        if self.gzip_pages and ctype == "text/html" and \
                "gzip" in h.headers.get("Accept-Encoding", ""):
            import gzip

            body = gzip.compress(body, mtime=0)
            headers.append(("Content-Encoding", "gzip"))
        if self.chunk_delay and ctype == "application/octet-stream":
            hit.status = 200
            h.send_response(200)
            for k, v in [*headers, ("Content-Length", str(len(body)))]:
                h.send_header(k, v)
            h.end_headers()
            return h.send_chunks(hit, body, self.chunk_delay)
        return h.reply(hit, 200, body, headers)


# -- git smart HTTP ------------------------------------------------------------------------------
class GitApp:
    """Every repository under root through ``git http-backend``. ``stall_after`` makes the next
    upload-pack answer send that many bytes, set ``stalled`` and hang until ``release``."""

    protocol = "HTTP/1.0"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.lock = threading.Lock()
        self.stall_after: int | None = None
        self.stalled = threading.Event()
        self.release = threading.Event()

    def release_all(self) -> None:
        """Let a stalled pack go."""
        self.release.set()

    def serve(self, h: Handler, hit: Hit) -> None:
        """Run the CGI for this request and relay its answer."""
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": str(self.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "REQUEST_METHOD": h.command,
            "PATH_INFO": urllib.parse.unquote(hit.path),
            "QUERY_STRING": hit.query,
            "CONTENT_TYPE": h.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_ADDR": "127.0.0.1",
            "SERVER_PROTOCOL": "HTTP/1.0",
        }
        if h.headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = h.headers["Content-Encoding"]
        if h.headers.get("Git-Protocol"):
            env["GIT_PROTOCOL"] = h.headers["Git-Protocol"]
        if h.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = _dechunk(h.rfile)
            env["CONTENT_LENGTH"] = str(len(body))
        proc = subprocess.run(["git", "http-backend"], input=body, env=env,
                              capture_output=True, check=False)
        head, sep, payload = proc.stdout.partition(b"\r\n\r\n")
        if not sep:
            head, _, payload = proc.stdout.partition(b"\n\n")
        status, headers = 200, []
        for line in head.decode("latin-1").splitlines():
            if ":" not in line:
                continue
            k, v = line.split(":", 1)
            if k.lower() == "status":
                status = int(v.strip().split()[0])
            else:
                headers.append((k, v.strip()))
        hit.status = status
        h.send_response(status)
        for k, v in headers:
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(payload)))
        h.end_headers()
        stall = None
        with self.lock:
            if (hit.path.endswith("/git-upload-pack") and self.stall_after is not None
                    and len(payload) > self.stall_after):
                stall, self.stall_after = self.stall_after, None
        try:
            if stall is not None:
                h.wfile.write(payload[:stall])
                h.wfile.flush()
                hit.sent = stall
                self.stalled.set()
                self.release.wait(60)
                h.connection.shutdown(socket.SHUT_RDWR)
                return
            h.wfile.write(payload)
            hit.sent = len(payload)
        except OSError:
            pass


def _dechunk(rfile: Any) -> bytes:
    out = b""
    while True:
        size = int(rfile.readline().strip() or b"0", 16)
        if size == 0:
            rfile.readline()
            return out
        out += rfile.read(size)
        rfile.readline()


# -- faults, byte for byte -----------------------------------------------------------------------
_REASONS = {"500": "Internal Server Error", "403": "Forbidden", "401": "Unauthorized",
            "502": "Bad Gateway", "503": "Service Unavailable", "504": "Gateway Timeout"}


class FaultApp:
    """Every request gets the same fault: "500"/"403"/"401"/"502"/"503"/"504" (empty, closed),
    "truncated" (half of body, Content-Length whole), "endless"/"trickle" (a body that never
    ends, fast or 100 B per 0.2 s), "silent" (the request is read, never answered)."""

    protocol = "HTTP/1.1"

    def __init__(self, mode: str, body: bytes = b"") -> None:
        self.mode = mode
        self.body = body
        self.stop = threading.Event()

    def release_all(self) -> None:
        """End the endless and silent answers."""
        self.stop.set()

    def serve(self, h: Handler, hit: Hit) -> None:
        """Write the fault."""
        h.close_connection = True
        m = self.mode
        try:
            if m == "silent":
                self.stop.wait()
            elif m in _REASONS:
                hit.status = int(m)
                h.wfile.write(f"HTTP/1.1 {m} {_REASONS[m]}\r\nContent-Length: 0\r\n"
                              "Connection: close\r\n\r\n".encode())
            elif m == "truncated":
                hit.status = 200
                h.wfile.write(f"HTTP/1.1 200 OK\r\nContent-Length: {len(self.body)}\r\n"
                              "Connection: close\r\n\r\n".encode() + self.body[:len(self.body) // 2])
            elif m in ("endless", "trickle"):
                hit.status = 200
                h.wfile.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
                chunk = os.urandom(65536)
                while not self.stop.is_set():
                    h.wfile.write(chunk if m == "endless" else chunk[:100])
                    if m == "trickle":
                        time.sleep(0.2)
        except OSError:
            pass


class FaultServer(HttpServer):
    """A started FaultApp server; ``.connections`` counts the requests it took."""

    def __init__(self, mode: str, body: bytes = b"") -> None:
        super().__init__(FaultApp(mode, body))
        self.start()

    @property
    def connections(self) -> int:
        """Requests taken (each on its own connection: every answer closes it)."""
        return self.count()

    def url(self, path: str = "/base") -> str:
        """The base URL a remote entry points at."""
        return super().url(path)

